#!/usr/bin/env python3
"""Our MQTT broker against mosquitto, driven by a load tool neither wrote: mqttwrk (crates.io,
built on rumqttc). Each load runs on both brokers alternately, --runs times; the table shows the
median delivered messages/s, how many of the expected deliveries arrived (a run that loses any is
marked, and one that never finishes counts as lost), and the ratio ours / mosquitto.

Usage: python3 scripts/bench-mqttwrk.py [--teemesh BIN] [--mqttwrk BIN] [--runs N] [--quick] [--json]

  --teemesh BIN   the teemesh binary (default target/release/teemesh; build it with
                  cargo build --release -p teemesh)
  --mqttwrk BIN   mqttwrk (default: on PATH, else target/tools/bin/mqttwrk; install it with
                  cargo install mqttwrk --version 0.2.0 --locked --root target/tools)
  --runs N        runs per load and broker (default 3)
  --quick         small counts, one run: checks the harness, measures nothing
  --json          one JSON object on stdout instead of the table

Both brokers listen on 127.0.0.1 only, with unlimited queues (mosquitto: max_queued_messages 0;
ours: max_queued_messages 100000000) and persistence off, as in `teemesh bench mqtt`.
"""

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# How long one mqttwrk run may take before it counts as never finishing (it waits for every
# message it expects).
RUN_TIMEOUT = 120


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, process, what):
    deadline = time.time() + 10
    while time.time() < deadline:
        if process.poll() is not None:
            sys.exit(f"bench-mqttwrk: {what} exited at start (code {process.returncode})")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"bench-mqttwrk: {what} is not listening on 127.0.0.1:{port} after 10 s")


def start_mosquitto(directory):
    program = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not os.path.exists(program):
        sys.exit("bench-mqttwrk: mosquitto is missing (apt-get install mosquitto)")
    port = free_port()
    config = os.path.join(directory, "mosquitto.conf")
    with open(config, "w") as f:
        f.write(
            "persistence false\nallow_anonymous true\nmax_queued_messages 0\n"
            f"log_type error\nlistener {port} 127.0.0.1\n"
        )
    process = subprocess.Popen(
        [program, "-c", config], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    wait_for_port(port, process, "mosquitto")
    return process, port


def start_ours(directory, teemesh):
    config = os.path.join(directory, "broker.toml")
    with open(config, "w") as f:
        f.write(
            '[[listener]]\nkind = "tcp"\naddress = "127.0.0.1:0"\n\n'
            "[limits]\nmax_queued_messages = 100000000\n"
        )
    env = dict(os.environ, RUST_LOG="error")
    process = subprocess.Popen(
        [teemesh, "mqtt", "broker", "--config", config],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        text=True,
    )
    line = process.stdout.readline()
    try:
        ready = json.loads(line)
        address = next(l["address"] for l in ready["listeners"] if l["kind"] == "tcp")
    except (ValueError, KeyError, StopIteration):
        sys.exit(f"bench-mqttwrk: teemesh mqtt broker printed no ready line: {line!r}")
    return process, int(address.rsplit(":", 1)[1])


STAT = re.compile(r"Aggregate (Pub|Sub)Stats: \w+ \{([^}]*)\}", re.S)
FIELD = re.compile(r"(\w+): ([0-9.]+)")


def run_mqttwrk(mqttwrk, port, load):
    """One run: (delivered, expected, messages/s delivered, finished)."""
    expected = load["publishers"] * load["count"] * load["subscribers"]
    command = [
        mqttwrk, "bench", "-S", "127.0.0.1", "-P", str(port),
        "-n", str(load["count"]), "-p", str(load["publishers"]),
        "-s", str(load["subscribers"]), "-m", str(load["size"]),
        "--publish-qos", str(load["qos"]), "--subscribe-qos", str(load["qos"]),
        "-i", "100",
    ]
    try:
        out = subprocess.run(
            command, capture_output=True, text=True, timeout=RUN_TIMEOUT
        ).stdout
    except subprocess.TimeoutExpired:
        return 0, expected, 0.0, False
    stats = {kind: dict(FIELD.findall(body)) for kind, body in STAT.findall(out)}
    sub = stats.get("Sub")
    if sub is None:
        return 0, expected, 0.0, False
    return int(sub["publish_count"]), expected, float(sub["throughput"]), True


def loads(quick):
    count = {64: 200_000, 8192: 40_000}
    result = []
    for qos in (0, 1):
        for size in (64, 8192):
            for fan in (1, 4):
                n = 2_000 if quick else count[size] // fan
                result.append(
                    {"qos": qos, "size": size, "publishers": fan, "subscribers": fan, "count": n}
                )
    return result


def label(load):
    size = "8 KiB" if load["size"] == 8192 else f"{load['size']} B"
    return f"QoS {load['qos']} {size} {load['publishers']}→{load['subscribers']}"


def summary(runs):
    delivered = sum(r[0] for r in runs)
    expected = sum(r[1] for r in runs)
    rate = statistics.median(r[2] for r in runs)
    unfinished = sum(1 for r in runs if not r[3])
    return {
        "median_msgs_per_s": rate,
        "delivered": delivered,
        "expected": expected,
        "lost": expected - delivered,
        "unfinished_runs": unfinished,
    }


def cell(s):
    text = f"{s['median_msgs_per_s']:>10,.0f}"
    if s["unfinished_runs"]:
        return text + f" ({s['unfinished_runs']} run(s) never finished)"
    if s["lost"]:
        return text + f" ({s['lost']} lost)"
    return text + " (none lost)"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--teemesh", default=os.path.join(ROOT, "target/release/teemesh"))
    parser.add_argument("--mqttwrk")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    runs = 1 if args.quick else args.runs
    mqttwrk = args.mqttwrk or shutil.which("mqttwrk") or os.path.join(
        ROOT, "target/tools/bin/mqttwrk"
    )
    if not os.path.exists(mqttwrk):
        sys.exit(
            "bench-mqttwrk: mqttwrk is missing: cargo install mqttwrk --version 0.2.0 --locked "
            "--root target/tools (or give --mqttwrk BIN)"
        )
    if not os.path.exists(args.teemesh):
        sys.exit(
            f"bench-mqttwrk: {args.teemesh} is missing: cargo build --release -p teemesh "
            "(or give --teemesh BIN)"
        )
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-mqttwrk.") as directory:
        ours, our_port = start_ours(directory, args.teemesh)
        peer, peer_port = start_mosquitto(directory)
        try:
            for load in loads(args.quick):
                results = {"ours": [], "mosquitto": []}
                for run in range(runs):
                    # Alternate which broker goes first, so drift favours neither.
                    order = [("ours", our_port), ("mosquitto", peer_port)]
                    if run % 2:
                        order.reverse()
                    for name, port in order:
                        results[name].append(run_mqttwrk(mqttwrk, port, load))
                row = {"load": label(load), **load}
                row["ours"] = summary(results["ours"])
                row["mosquitto"] = summary(results["mosquitto"])
                peer_rate = row["mosquitto"]["median_msgs_per_s"]
                row["ratio"] = row["ours"]["median_msgs_per_s"] / peer_rate if peer_rate else None
                rows.append(row)
                print(
                    f"bench-mqttwrk: {row['load']}: ours {cell(row['ours']).strip()}, "
                    f"mosquitto {cell(row['mosquitto']).strip()}",
                    file=sys.stderr,
                )
        finally:
            for process in (ours, peer):
                process.terminate()
                process.wait()
    if args.json:
        print(json.dumps({"tool": "mqttwrk 0.2.0", "runs": runs, "quick": args.quick, "loads": rows}))
        return
    print(f"mqttwrk against both brokers over TCP, medians of {runs} run(s) each, delivered messages/s")
    if args.quick:
        print("(--quick: small counts, one run; the figures mean nothing)")
    print(f"{'load':<20} {'ours':<34} {'mosquitto':<34} ours/mosquitto")
    for row in rows:
        ratio = f"{row['ratio']:.2f}×" if row["ratio"] else "—"
        print(f"{row['load']:<20} {cell(row['ours']):<34} {cell(row['mosquitto']):<34} {ratio}")
    lost = sum(row["ours"]["lost"] for row in rows)
    print(f"ours lost {lost} of {sum(row['ours']['expected'] for row in rows)} deliveries in all")


if __name__ == "__main__":
    main()
