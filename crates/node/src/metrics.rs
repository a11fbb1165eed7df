//! The node's Prometheus metrics: counters and gauges in memory, rendered in the text
//! exposition format, served by a deliberately tiny HTTP/1.1 responder (one bounded request
//! line and headers, `GET /metrics` only, then the connection closes).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

/// Upper bounds of the call-duration histogram, seconds.
const DURATION_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 2.5, 10.0,
];
/// Longest HTTP request head the responder reads.
const MAX_REQUEST_HEAD: usize = 8 << 10;
/// How long a scraper may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Default)]
struct Histogram {
    buckets: [u64; DURATION_BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// Everything the node counts.
#[derive(Debug)]
pub struct Metrics {
    started: Instant,
    simulated: bool,
    platform: String,
    modules_loaded: AtomicU64,
    admin_accepted: AtomicU64,
    admin_refused: AtomicU64,
    attestation_refusals: AtomicU64,
    /// (module, kind, outcome) → calls.
    calls: Mutex<BTreeMap<(String, &'static str, &'static str), u64>>,
    /// kind → durations.
    durations: Mutex<BTreeMap<&'static str, Histogram>>,
    /// (op, outcome) → admin requests.
    requests: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    /// module → output events dropped.
    dropped_outputs: Mutex<BTreeMap<String, u64>>,
    /// module → incoming events rejected (forged, replayed, malformed, misrouted).
    rejected_events: Mutex<BTreeMap<String, u64>>,
    /// The node's MQTT broker, when `[mqtt]` configures one: its counters are rendered too.
    mqtt: std::sync::OnceLock<mqtt::broker::Broker>,
}

impl Metrics {
    /// Counters at zero for a node on `platform`.
    pub fn new(platform: &str, simulated: bool) -> Self {
        Self {
            started: Instant::now(),
            simulated,
            platform: platform.to_owned(),
            modules_loaded: AtomicU64::new(0),
            admin_accepted: AtomicU64::new(0),
            admin_refused: AtomicU64::new(0),
            attestation_refusals: AtomicU64::new(0),
            calls: Mutex::default(),
            durations: Mutex::default(),
            requests: Mutex::default(),
            dropped_outputs: Mutex::default(),
            rejected_events: Mutex::default(),
            mqtt: std::sync::OnceLock::new(),
        }
    }

    /// Renders `broker`'s counters with the node's (once; later calls are ignored).
    pub(crate) fn attach_mqtt(&self, broker: mqtt::broker::Broker) {
        let _ = self.mqtt.set(broker);
    }

    fn render_mqtt(&self, out: &mut String) {
        let Some(broker) = self.mqtt.get() else {
            return;
        };
        let c = broker.counters();
        let counters: [(&str, &str, u64); 10] = [
            (
                "connections",
                "Client connections accepted (CONNACK Success).",
                c.connections.get(),
            ),
            (
                "messages_in",
                "PUBLISH packets received from clients.",
                c.messages_in.get(),
            ),
            (
                "messages_out",
                "PUBLISH packets queued to clients.",
                c.messages_out.get(),
            ),
            (
                "dropped_queue_full",
                "Messages dropped for a client that is behind (QoS 0: stalled for limits.stall_timeout_ms or over limits.max_outbound_bytes; QoS 1/2: over limits.max_queued_messages).",
                c.dropped_queue_full.get(),
            ),
            (
                "dropped_offline_qos0",
                "QoS 0 messages for a disconnected session (not kept).",
                c.dropped_offline_qos0.get(),
            ),
            (
                "dropped_too_large",
                "Messages larger than the client's maximum packet size.",
                c.dropped_too_large.get(),
            ),
            (
                "expired",
                "Messages that expired before delivery.",
                c.expired.get(),
            ),
            (
                "slow_consumers_disconnected",
                "Clients disconnected because a write to them made no progress for 30 s.",
                c.slow_consumers_disconnected.get(),
            ),
            (
                "connections_refused",
                "Connections refused before CONNECT: limits.max_connections, limits.max_connections_per_address or limits.max_connect_size.",
                c.connections_refused.get(),
            ),
            (
                "protocol_errors",
                "Clients disconnected for a malformed packet or a protocol error.",
                c.protocol_errors.get(),
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(
                out,
                "# HELP teemesh_mqtt_{name}_total {help}\n# TYPE teemesh_mqtt_{name}_total counter\nteemesh_mqtt_{name}_total {value}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP teemesh_mqtt_connections_live Client connections being served.\n# TYPE teemesh_mqtt_connections_live gauge\nteemesh_mqtt_connections_live {}",
            broker.live_connections()
        );
    }

    /// Seconds since start.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    pub(crate) fn set_modules_loaded(&self, n: usize) {
        self.modules_loaded.store(n as u64, Ordering::Relaxed);
    }

    pub(crate) fn admin_connection(&self, accepted: bool) {
        let counter = if accepted {
            &self.admin_accepted
        } else {
            &self.admin_refused
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn attestation_refused(&self) {
        self.attestation_refusals.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn call(
        &self,
        module: &str,
        kind: &'static str,
        outcome: &'static str,
        took: Duration,
    ) {
        *lock(&self.calls)
            .entry((module.to_owned(), kind, outcome))
            .or_default() += 1;
        let secs = took.as_secs_f64();
        let mut durations = lock(&self.durations);
        let h = durations.entry(kind).or_default();
        for (i, bound) in DURATION_BUCKETS.iter().enumerate() {
            if secs <= *bound {
                h.buckets[i] += 1;
            }
        }
        h.count += 1;
        h.sum += secs;
    }

    pub(crate) fn request(&self, op: &'static str, outcome: &'static str) {
        *lock(&self.requests).entry((op, outcome)).or_default() += 1;
    }

    pub(crate) fn event_rejected(&self, module: &str) {
        *lock(&self.rejected_events)
            .entry(module.to_owned())
            .or_default() += 1;
    }

    pub(crate) fn set_dropped_outputs(&self, module: &str, dropped: u64) {
        lock(&self.dropped_outputs).insert(module.to_owned(), dropped);
    }

    /// The metrics in the Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP teemesh_node_build_info Node software version and platform.\n# TYPE teemesh_node_build_info gauge\nteemesh_node_build_info{{version=\"{}\",platform=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION"),
            escape(&self.platform)
        );
        let gauges: [(&str, &str, f64); 6] = [
            (
                "teemesh_node_simulated",
                "1 when the node runs on the SIMULATED TEE (no hardware protection).",
                f64::from(u8::from(self.simulated)),
            ),
            (
                "teemesh_node_uptime_seconds",
                "Seconds since the node started.",
                self.uptime().as_secs_f64(),
            ),
            (
                "teemesh_node_modules_loaded",
                "Modules currently loaded.",
                self.modules_loaded.load(Ordering::Relaxed) as f64,
            ),
            (
                "teemesh_node_admin_connections_accepted_total",
                "Admin connections accepted (attested TLS and authorised).",
                self.admin_accepted.load(Ordering::Relaxed) as f64,
            ),
            (
                "teemesh_node_admin_connections_refused_total",
                "Admin connections refused (handshake, appraisal or authorisation).",
                self.admin_refused.load(Ordering::Relaxed) as f64,
            ),
            (
                "teemesh_node_attestation_refusals_total",
                "Peers whose attestation the policy refused.",
                self.attestation_refusals.load(Ordering::Relaxed) as f64,
            ),
        ];
        for (name, help, value) in gauges {
            let kind = if name.ends_with("_total") {
                "counter"
            } else {
                "gauge"
            };
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        }
        let name = "teemesh_node_calls_total";
        let _ = writeln!(
            out,
            "# HELP {name} Calls into modules by module, kind and outcome.\n# TYPE {name} counter"
        );
        for ((module, kind, outcome), n) in lock(&self.calls).iter() {
            let _ = writeln!(
                out,
                "{name}{{module=\"{}\",kind=\"{kind}\",outcome=\"{outcome}\"}} {n}",
                escape(module)
            );
        }
        let name = "teemesh_node_call_duration_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Duration of calls into modules by kind.\n# TYPE {name} histogram"
        );
        for (kind, h) in lock(&self.durations).iter() {
            for (bound, n) in DURATION_BUCKETS.iter().zip(h.buckets) {
                let _ = writeln!(out, "{name}_bucket{{kind=\"{kind}\",le=\"{bound}\"}} {n}");
            }
            let _ = writeln!(
                out,
                "{name}_bucket{{kind=\"{kind}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(out, "{name}_sum{{kind=\"{kind}\"}} {}", h.sum);
            let _ = writeln!(out, "{name}_count{{kind=\"{kind}\"}} {}", h.count);
        }
        let name = "teemesh_node_admin_requests_total";
        let _ = writeln!(
            out,
            "# HELP {name} Admin requests by operation and outcome.\n# TYPE {name} counter"
        );
        for ((op, outcome), n) in lock(&self.requests).iter() {
            let _ = writeln!(out, "{name}{{op=\"{op}\",outcome=\"{outcome}\"}} {n}");
        }
        let name = "teemesh_node_outputs_dropped_total";
        let _ = writeln!(
            out,
            "# HELP {name} Output events dropped because a module's queue was full.\n# TYPE {name} counter"
        );
        for (module, n) in lock(&self.dropped_outputs).iter() {
            let _ = writeln!(out, "{name}{{module=\"{}\"}} {n}", escape(module));
        }
        let name = "teemesh_node_events_rejected_total";
        let _ = writeln!(
            out,
            "# HELP {name} Incoming events rejected before the module saw them (forged, altered, replayed, reordered, misrouted).\n# TYPE {name} counter"
        );
        for (module, n) in lock(&self.rejected_events).iter() {
            let _ = writeln!(out, "{name}{{module=\"{}\"}} {n}", escape(module));
        }
        self.render_mqtt(&mut out);
        out
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Label values: backslash, quote and newline escaped as the format requires.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Serves `GET /metrics` on `listener` until the task is aborted.
pub(crate) async fn serve(listener: TcpListener, metrics: std::sync::Arc<Metrics>) {
    loop {
        let Ok((mut tcp, from)) = listener.accept().await else {
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let head = tokio::time::timeout(REQUEST_TIMEOUT, read_head(&mut tcp)).await;
            let (status, body) = match head {
                Ok(Some(head)) => respond(&head, &metrics),
                _ => ("400 Bad Request", "bad request\n".to_owned()),
            };
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            if let Err(e) = tcp.write_all(response.as_bytes()).await {
                tracing::debug!(%from, "metrics response failed: {e}");
            }
            let _ = tcp.shutdown().await;
        });
    }
}

/// Reads up to the blank line ending the request head, at most [`MAX_REQUEST_HEAD`] bytes.
async fn read_head(tcp: &mut tokio::net::TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        if buf.len() > MAX_REQUEST_HEAD {
            return None;
        }
        let n = tcp.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8(buf).ok()
}

fn respond(head: &str, metrics: &Metrics) -> (&'static str, String) {
    let request_line = head.lines().next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    match (parts.next(), parts.next()) {
        (Some("GET"), Some("/metrics")) => ("200 OK", metrics.render()),
        (Some("GET"), Some(_)) => ("404 Not Found", "only /metrics is served\n".to_owned()),
        _ => ("405 Method Not Allowed", "only GET /metrics\n".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_with_escaped_labels() {
        let metrics = Metrics::new("sim", true);
        metrics.call("a\"b", "entry", "ok", Duration::from_millis(2));
        metrics.request("load", "ok");
        let text = metrics.render();
        assert!(text.contains("teemesh_node_simulated 1\n"), "{text}");
        assert!(
            text.contains(
                "teemesh_node_calls_total{module=\"a\\\"b\",kind=\"entry\",outcome=\"ok\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "teemesh_node_call_duration_seconds_bucket{kind=\"entry\",le=\"0.0025\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "teemesh_node_call_duration_seconds_bucket{kind=\"entry\",le=\"0.001\"} 0"
            ),
            "{text}"
        );
        assert_eq!(
            respond("POST /metrics HTTP/1.1\r\n\r\n", &metrics).0,
            "405 Method Not Allowed"
        );
        assert_eq!(
            respond("GET / HTTP/1.1\r\n\r\n", &metrics).0,
            "404 Not Found"
        );
    }
}
