//! A test guest for the runtime: a WebAssembly component of the world
//! `teemesh:module/enclave-module`, written in component-model text (WAT) and assembled in the
//! test, so the tests need no guest toolchain. Its core code implements the canonical ABI by
//! hand: a bump allocator (`realloc`) in a memory module, the host imports lowered into it, and
//! the four guest exports lifted from a main module.
//!
//! Entries (the `arg` bytes in brackets):
//! `echo` [any] → Ok(arg) · `fail` → Err · `loop` → spins forever · `trap` → `unreachable` ·
//! `grow` → grows memory until refused, then traps as an allocator would · `log` [message] ·
//! `now` → 8 bytes LE nanoseconds · `random` [u32 LE length] → that many random bytes ·
//! `state-set` [key=value] · `state-get` [key, or key=…] → value or Err("absent") · `state-delete` [key] ·
//! `claims` → "name|measurement|platform|simulated" · `emit` [data] on output `out` ·
//! `emit-undeclared` on output `nope` · `ask` [data] → response of request port `query` ·
//! `env` (with [`Options::wasi`]) → u32 LE count of WASI environment variables.
//! Input `in` re-emits its data on output `out`; handler `answer` responds `answer:` ‖ data.
#![allow(dead_code, unreachable_pub)]

use std::fmt::Write as _;

/// What to build.
#[derive(Debug, Clone)]
pub struct Options {
    /// Changes the bytes (and so the measurement), not the behaviour.
    pub variant: u32,
    /// Also import `wasi:cli/environment` (as components from wasm32-wasip1 do) and declare the
    /// `env` entry.
    pub wasi: bool,
    /// Overrides the declared entries (e.g. duplicates, to test manifest validation).
    pub entries: Option<Vec<String>>,
    /// Initial memory pages.
    pub pages: u32,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            variant: 0,
            wasi: false,
            entries: None,
            pages: 1,
        }
    }
}

/// The standard guest's component bytes.
pub fn component() -> Vec<u8> {
    build(&Options::default())
}

/// A guest's component bytes.
pub fn build(options: &Options) -> Vec<u8> {
    let text = wat(options);
    match wat::parse_str(&text) {
        Ok(bytes) => bytes,
        Err(e) => panic!("test guest WAT does not assemble: {e}\n{}", numbered(&text)),
    }
}

fn numbered(text: &str) -> String {
    text.lines()
        .enumerate()
        .map(|(i, l)| format!("{:4} {l}\n", i + 1))
        .collect()
}

pub const ENTRIES: &[&str] = &[
    "echo",
    "fail",
    "loop",
    "trap",
    "grow",
    "log",
    "now",
    "random",
    "state-set",
    "state-get",
    "state-delete",
    "claims",
    "emit",
    "emit-undeclared",
    "ask",
];

/// Static data laid out from address 1024: strings and the manifest's lists.
struct Data {
    next: u32,
    segments: String,
}

impl Data {
    fn new() -> Self {
        Self {
            next: 1024,
            segments: String::new(),
        }
    }

    fn bytes(&mut self, bytes: &[u8]) -> (u32, u32) {
        let ptr = self.next;
        let escaped: String = bytes.iter().map(|b| format!("\\{b:02x}")).collect();
        let _ = writeln!(self.segments, "    (data (i32.const {ptr}) \"{escaped}\")");
        self.next = (ptr + bytes.len() as u32 + 7) & !7;
        (ptr, bytes.len() as u32)
    }

    fn str(&mut self, s: &str) -> (u32, u32) {
        self.bytes(s.as_bytes())
    }

    /// A `list<string>`: (ptr, len) pairs.
    fn list(&mut self, items: &[String]) -> (u32, u32) {
        let strings: Vec<(u32, u32)> = items.iter().map(|s| self.str(s)).collect();
        let mut raw = Vec::new();
        for (p, n) in &strings {
            raw.extend_from_slice(&p.to_le_bytes());
            raw.extend_from_slice(&n.to_le_bytes());
        }
        let (ptr, _) = self.bytes(&raw);
        (ptr, items.len() as u32)
    }
}

/// `(call $eq (local.get $p) (local.get $n) (i32.const ptr) (i32.const len))`.
fn eq(p: &str, n: &str, lit: (u32, u32)) -> String {
    format!(
        "(call $eq (local.get {p}) (local.get {n}) (i32.const {}) (i32.const {}))",
        lit.0, lit.1
    )
}

fn lit_args(lit: (u32, u32)) -> String {
    format!("(i32.const {}) (i32.const {})", lit.0, lit.1)
}

pub fn wat(options: &Options) -> String {
    let mut data = Data::new();
    let mut entries: Vec<String> = ENTRIES.iter().map(|s| (*s).to_owned()).collect();
    if options.wasi {
        entries.push("env".to_owned());
    }
    let entries = options.entries.clone().unwrap_or(entries);
    let one = |s: &str| vec![s.to_owned()];
    let lists = [
        data.list(&one("in")),
        data.list(&one("out")),
        data.list(&one("query")),
        data.list(&one("answer")),
        data.list(&entries),
    ];
    let mut manifest = Vec::new();
    for (p, n) in lists {
        manifest.extend_from_slice(&p.to_le_bytes());
        manifest.extend_from_slice(&n.to_le_bytes());
    }
    let manifest = data.bytes(&manifest).0;
    let e = |data: &mut Data, s: &str| data.str(s);
    let (echo, fail, lp, trap, grow) = (
        e(&mut data, "echo"),
        e(&mut data, "fail"),
        e(&mut data, "loop"),
        e(&mut data, "trap"),
        e(&mut data, "grow"),
    );
    let (log, now, random) = (
        e(&mut data, "log"),
        e(&mut data, "now"),
        e(&mut data, "random"),
    );
    let (sset, sget, sdel) = (
        e(&mut data, "state-set"),
        e(&mut data, "state-get"),
        e(&mut data, "state-delete"),
    );
    let (claims, emit, emit_undeclared, ask, env) = (
        e(&mut data, "claims"),
        e(&mut data, "emit"),
        e(&mut data, "emit-undeclared"),
        e(&mut data, "ask"),
        e(&mut data, "env"),
    );
    // The request port has a name of its own: a descriptor names ports by module.port, so a
    // port name is unique within a module across kinds.
    let request_query = e(&mut data, "query");
    let (input_in, output_out, output_nope, handler_answer) = (
        e(&mut data, "in"),
        e(&mut data, "out"),
        e(&mut data, "nope"),
        e(&mut data, "answer"),
    );
    let (msg_fail, msg_absent, msg_noeq, msg_unknown, prefix_answer, bar) = (
        e(&mut data, "guest says no"),
        e(&mut data, "absent"),
        e(&mut data, "state-set wants key=value"),
        e(&mut data, "unknown port"),
        e(&mut data, "answer:"),
        e(&mut data, "|"),
    );
    data.str(&format!("variant-{}", options.variant));
    let heap = (data.next + 4095) & !4095;
    let pages = options.pages.max(heap.div_ceil(65536));
    let data_segments = data.segments;

    let wasi_import_type = if options.wasi {
        r#"(import "wasi:cli/environment@0.2.0" (instance $env
    (export "get-environment" (func (result (list (tuple string string)))))))
  (alias export $env "get-environment" (func $getenv))
  (core func $getenv-lower (canon lower (func $getenv) (memory $memory) (realloc $realloc)))
  (core instance $wasi-core (export "get-environment" (func $getenv-lower)))"#
    } else {
        ""
    };
    let wasi_core_import = if options.wasi {
        r#"(import "wasi" "get-environment" (func $getenv (param i32)))"#
    } else {
        ""
    };
    let wasi_with = if options.wasi {
        r#"(with "wasi" (instance $wasi-core))"#
    } else {
        ""
    };
    let env_entry = if options.wasi {
        format!(
            r#"(if {cond} (then
        (call $getenv (i32.const 32))
        (local.set $t (call $alloc (i32.const 4)))
        (i32.store (local.get $t) (i32.load (i32.const 36)))
        (return (call $ok (local.get $t) (i32.const 4)))))"#,
            cond = eq("$ep", "$en", env)
        )
    } else {
        String::new()
    };

    let c = |lit| eq("$ep", "$en", lit);
    format!(
        r#"(component
  (type $host-type (instance
    (type $level (enum "debug" "info" "warn" "error"))
    (export "level" (type $level-e (eq $level)))
    (type $claims (record (field "name" string) (field "measurement" string)
                          (field "platform" string) (field "simulated" bool)))
    (export "module-claims" (type $claims-e (eq $claims)))
    (type $payload (list u8))
    (type $unit-result (result (error string)))
    (type $payload-result (result $payload (error string)))
    (type $payload-option (option $payload))
    (export "emit-output" (func (param "output" string) (param "data" $payload) (result $unit-result)))
    (export "send-request" (func (param "request" string) (param "data" $payload) (result $payload-result)))
    (export "log" (func (param "level" $level-e) (param "message" string)))
    (export "now-nanos" (func (result u64)))
    (export "random-bytes" (func (param "len" u32) (result $payload)))
    (export "state-get" (func (param "key" string) (result $payload-option)))
    (export "state-set" (func (param "key" string) (param "value" $payload) (result $unit-result)))
    (export "state-delete" (func (param "key" string)))
    (export "claims" (func (result $claims-e)))
  ))
  (import "teemesh:module/host@0.1.0" (instance $host (type $host-type)))

  (core module $Mem
    (memory (export "memory") {pages})
    (global $heap (mut i32) (i32.const {heap}))
    (func (export "realloc") (param $old i32) (param $old-size i32) (param $align i32) (param $size i32) (result i32)
      (local $p i32) (local $end i32) (local $have i32)
      (local.set $p (i32.and (i32.add (global.get $heap) (i32.sub (local.get $align) (i32.const 1)))
                             (i32.sub (i32.const 0) (local.get $align))))
      (local.set $end (i32.add (local.get $p) (local.get $size)))
      (local.set $have (i32.shl (memory.size) (i32.const 16)))
      (if (i32.gt_u (local.get $end) (local.get $have)) (then
        (if (i32.eq (memory.grow (i32.shr_u (i32.add (i32.sub (local.get $end) (local.get $have)) (i32.const 65535))
                                            (i32.const 16)))
                    (i32.const -1))
          (then unreachable))))
      (if (local.get $old) (then
        (memory.copy (local.get $p) (local.get $old)
          (select (local.get $old-size) (local.get $size) (i32.lt_u (local.get $old-size) (local.get $size))))))
      (global.set $heap (local.get $end))
      (local.get $p))
{data_segments}  )
  (core instance $mem (instantiate $Mem))
  (alias core export $mem "memory" (core memory $memory))
  (alias core export $mem "realloc" (core func $realloc))

  (alias export $host "emit-output" (func $emit))
  (alias export $host "send-request" (func $send))
  (alias export $host "log" (func $log))
  (alias export $host "now-nanos" (func $now))
  (alias export $host "random-bytes" (func $random))
  (alias export $host "state-get" (func $sget))
  (alias export $host "state-set" (func $sset))
  (alias export $host "state-delete" (func $sdel))
  (alias export $host "claims" (func $claims))
  (core func $emit-lower (canon lower (func $emit) (memory $memory) (realloc $realloc)))
  (core func $send-lower (canon lower (func $send) (memory $memory) (realloc $realloc)))
  (core func $log-lower (canon lower (func $log) (memory $memory)))
  (core func $now-lower (canon lower (func $now)))
  (core func $random-lower (canon lower (func $random) (memory $memory) (realloc $realloc)))
  (core func $sget-lower (canon lower (func $sget) (memory $memory) (realloc $realloc)))
  (core func $sset-lower (canon lower (func $sset) (memory $memory) (realloc $realloc)))
  (core func $sdel-lower (canon lower (func $sdel) (memory $memory)))
  (core func $claims-lower (canon lower (func $claims) (memory $memory) (realloc $realloc)))
  (core instance $host-core
    (export "emit-output" (func $emit-lower))
    (export "send-request" (func $send-lower))
    (export "log" (func $log-lower))
    (export "now-nanos" (func $now-lower))
    (export "random-bytes" (func $random-lower))
    (export "state-get" (func $sget-lower))
    (export "state-set" (func $sset-lower))
    (export "state-delete" (func $sdel-lower))
    (export "claims" (func $claims-lower)))
  {wasi_import_type}

  (core module $Main
    (import "mem" "memory" (memory 1))
    (import "mem" "realloc" (func $realloc (param i32 i32 i32 i32) (result i32)))
    (import "host" "emit-output" (func $emit (param i32 i32 i32 i32 i32)))
    (import "host" "send-request" (func $send (param i32 i32 i32 i32 i32)))
    (import "host" "log" (func $log (param i32 i32 i32)))
    (import "host" "now-nanos" (func $now (result i64)))
    (import "host" "random-bytes" (func $random (param i32 i32)))
    (import "host" "state-get" (func $sget (param i32 i32 i32)))
    (import "host" "state-set" (func $sset (param i32 i32 i32 i32 i32)))
    (import "host" "state-delete" (func $sdel (param i32 i32)))
    (import "host" "claims" (func $claims (param i32)))
    {wasi_core_import}

    ;; Export results are written at 16 (discriminant, ptr, len); import results land at 32.
    (func $alloc (param $n i32) (result i32)
      (call $realloc (i32.const 0) (i32.const 0) (i32.const 8) (local.get $n)))
    (func $eq (param $p i32) (param $n i32) (param $q i32) (param $m i32) (result i32)
      (local $i i32)
      (if (i32.ne (local.get $n) (local.get $m)) (then (return (i32.const 0))))
      (block $done
        (loop $next
          (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
          (if (i32.ne (i32.load8_u (i32.add (local.get $p) (local.get $i)))
                      (i32.load8_u (i32.add (local.get $q) (local.get $i))))
            (then (return (i32.const 0))))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br $next)))
      (i32.const 1))
    (func $find (param $p i32) (param $n i32) (param $byte i32) (result i32)
      (local $i i32)
      (block $done
        (loop $next
          (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
          (if (i32.eq (i32.load8_u (i32.add (local.get $p) (local.get $i))) (local.get $byte))
            (then (return (local.get $i))))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br $next)))
      (i32.const -1))
    (func $concat (param $p i32) (param $n i32) (param $q i32) (param $m i32) (result i32)
      (local $dst i32)
      (local.set $dst (call $alloc (i32.add (local.get $n) (local.get $m))))
      (memory.copy (local.get $dst) (local.get $p) (local.get $n))
      (memory.copy (i32.add (local.get $dst) (local.get $n)) (local.get $q) (local.get $m))
      (local.get $dst))
    (func $ok (param $p i32) (param $n i32) (result i32)
      (i32.store8 (i32.const 16) (i32.const 0))
      (i32.store (i32.const 20) (local.get $p))
      (i32.store (i32.const 24) (local.get $n))
      (i32.const 16))
    (func $err (param $p i32) (param $n i32) (result i32)
      (i32.store8 (i32.const 16) (i32.const 1))
      (i32.store (i32.const 20) (local.get $p))
      (i32.store (i32.const 24) (local.get $n))
      (i32.const 16))
    ;; An imported result<_, string> at 32 as this export's result<payload, string>.
    (func $forward-unit (result i32)
      (if (result i32) (i32.load8_u (i32.const 32))
        (then (call $err (i32.load (i32.const 36)) (i32.load (i32.const 40))))
        (else (call $ok (i32.const 0) (i32.const 0)))))
    ;; An imported result<payload, string> at 32 as this export's result.
    (func $forward-payload (result i32)
      (if (result i32) (i32.load8_u (i32.const 32))
        (then (call $err (i32.load (i32.const 36)) (i32.load (i32.const 40))))
        (else (call $ok (i32.load (i32.const 36)) (i32.load (i32.const 40))))))

    (func (export "describe") (result i32) (i32.const {manifest}))

    (func (export "call-entry") (param $ep i32) (param $en i32) (param $ap i32) (param $an i32) (result i32)
      (local $t i32) (local $n i32)
      (if {c_echo} (then (return (call $ok (local.get $ap) (local.get $an)))))
      (if {c_fail} (then (return (call $err {msg_fail}))))
      (if {c_loop} (then (loop $forever (br $forever))))
      (if {c_trap} (then unreachable))
      (if {c_grow} (then
        (block $refused (loop $more
          (br_if $refused (i32.eq (memory.grow (i32.const 16)) (i32.const -1)))
          (br $more)))
        unreachable))
      (if {c_log} (then
        (call $log (i32.const 1) (local.get $ap) (local.get $an))
        (return (call $ok (i32.const 0) (i32.const 0)))))
      (if {c_now} (then
        (local.set $t (call $alloc (i32.const 8)))
        (i64.store (local.get $t) (call $now))
        (return (call $ok (local.get $t) (i32.const 8)))))
      (if {c_random} (then
        (call $random (i32.load (local.get $ap)) (i32.const 32))
        (return (call $ok (i32.load (i32.const 32)) (i32.load (i32.const 36))))))
      (if {c_sset} (then
        (local.set $t (call $find (local.get $ap) (local.get $an) (i32.const 61)))
        (if (i32.lt_s (local.get $t) (i32.const 0)) (then (return (call $err {msg_noeq}))))
        (local.set $n (i32.add (local.get $t) (i32.const 1)))
        (call $sset (local.get $ap) (local.get $t)
                    (i32.add (local.get $ap) (local.get $n)) (i32.sub (local.get $an) (local.get $n))
                    (i32.const 32))
        (return (call $forward-unit))))
      (if {c_sget} (then
        ;; The key ends at the first `=`, if any (so JSON text like "k=" can name key "k).
        (local.set $t (call $find (local.get $ap) (local.get $an) (i32.const 61)))
        (if (i32.lt_s (local.get $t) (i32.const 0)) (then (local.set $t (local.get $an))))
        (call $sget (local.get $ap) (local.get $t) (i32.const 32))
        (if (i32.load8_u (i32.const 32))
          (then (return (call $ok (i32.load (i32.const 36)) (i32.load (i32.const 40))))))
        (return (call $err {msg_absent}))))
      (if {c_sdel} (then
        (call $sdel (local.get $ap) (local.get $an))
        (return (call $ok (i32.const 0) (i32.const 0)))))
      (if {c_claims} (then
        (call $claims (i32.const 32))
        ;; name | measurement | platform | simulated (one digit)
        (local.set $t (call $concat (i32.load (i32.const 32)) (i32.load (i32.const 36)) {bar}))
        (local.set $n (i32.add (i32.load (i32.const 36)) (i32.const 1)))
        (local.set $t (call $concat (local.get $t) (local.get $n) (i32.load (i32.const 40)) (i32.load (i32.const 44))))
        (local.set $n (i32.add (local.get $n) (i32.load (i32.const 44))))
        (local.set $t (call $concat (local.get $t) (local.get $n) {bar}))
        (local.set $n (i32.add (local.get $n) (i32.const 1)))
        (local.set $t (call $concat (local.get $t) (local.get $n) (i32.load (i32.const 48)) (i32.load (i32.const 52))))
        (local.set $n (i32.add (local.get $n) (i32.load (i32.const 52))))
        (local.set $t (call $concat (local.get $t) (local.get $n) {bar}))
        (local.set $n (i32.add (local.get $n) (i32.const 1)))
        (i32.store8 (i32.const 8) (i32.add (i32.const 48) (i32.load8_u (i32.const 56))))
        (local.set $t (call $concat (local.get $t) (local.get $n) (i32.const 8) (i32.const 1)))
        (local.set $n (i32.add (local.get $n) (i32.const 1)))
        (return (call $ok (local.get $t) (local.get $n)))))
      (if {c_emit} (then
        (call $emit {out} (local.get $ap) (local.get $an) (i32.const 32))
        (return (call $forward-unit))))
      (if {c_emit_undeclared} (then
        (call $emit {nope} (local.get $ap) (local.get $an) (i32.const 32))
        (return (call $forward-unit))))
      (if {c_ask} (then
        (call $send {ask} (local.get $ap) (local.get $an) (i32.const 32))
        (return (call $forward-payload))))
      {env_entry}
      (call $err {msg_unknown}))

    (func (export "on-input") (param $ip i32) (param $in i32) (param $dp i32) (param $dn i32) (result i32)
      (if {c_in} (then
        (call $emit {out} (local.get $dp) (local.get $dn) (i32.const 32))
        (return (call $forward-unit))))
      (call $err {msg_unknown}))

    (func (export "on-request") (param $hp i32) (param $hn i32) (param $dp i32) (param $dn i32) (result i32)
      (if {c_answer} (then
        (return (call $ok
          (call $concat {prefix_answer} (local.get $dp) (local.get $dn))
          (i32.add (i32.const {prefix_len}) (local.get $dn))))))
      (call $err {msg_unknown}))
  )
  (core instance $main (instantiate $Main
    (with "mem" (instance $mem))
    (with "host" (instance $host-core))
    {wasi_with}))

  (type $manifest (record (field "inputs" (list string)) (field "outputs" (list string))
                          (field "requests" (list string)) (field "handlers" (list string))
                          (field "entries" (list string))))
  (type $payload (list u8))
  (type $unit-result (result (error string)))
  (type $payload-result (result $payload (error string)))
  (func $describe (result $manifest)
    (canon lift (core func $main "describe") (memory $memory)))
  (func $on-input (param "input" string) (param "data" $payload) (result $unit-result)
    (canon lift (core func $main "on-input") (memory $memory) (realloc $realloc)))
  (func $on-request (param "handler" string) (param "data" $payload) (result $payload-result)
    (canon lift (core func $main "on-request") (memory $memory) (realloc $realloc)))
  (func $call-entry (param "entry" string) (param "arg" $payload) (result $payload-result)
    (canon lift (core func $main "call-entry") (memory $memory) (realloc $realloc)))
  (instance $guest
    (export "manifest" (type $manifest))
    (export "describe" (func $describe))
    (export "on-input" (func $on-input))
    (export "on-request" (func $on-request))
    (export "call-entry" (func $call-entry)))
  (export "teemesh:module/guest@0.1.0" (instance $guest))
)
"#,
        c_echo = c(echo),
        c_fail = c(fail),
        c_loop = c(lp),
        c_trap = c(trap),
        c_grow = c(grow),
        c_log = c(log),
        c_now = c(now),
        c_random = c(random),
        c_sset = c(sset),
        c_sget = c(sget),
        c_sdel = c(sdel),
        c_claims = c(claims),
        c_emit = c(emit),
        c_emit_undeclared = c(emit_undeclared),
        c_ask = c(ask),
        c_in = eq("$ip", "$in", input_in),
        c_answer = eq("$hp", "$hn", handler_answer),
        msg_fail = lit_args(msg_fail),
        msg_absent = lit_args(msg_absent),
        msg_noeq = lit_args(msg_noeq),
        msg_unknown = lit_args(msg_unknown),
        out = lit_args(output_out),
        nope = lit_args(output_nope),
        ask = lit_args(request_query),
        bar = lit_args(bar),
        prefix_answer = lit_args(prefix_answer),
        prefix_len = prefix_answer.1,
    )
}
