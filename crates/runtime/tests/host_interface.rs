#![allow(clippy::unwrap_used)]
//! Every kind of port and host service, exercised through a real component: entries, inputs to
//! outputs, requests routed to another module's handler, log, clock, randomness, claims, WASI.

mod common;
mod guest;

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use runtime::{
    CollectingSink, EmittedEvent, LoadedModule, PortKind, RequestRouter, RuntimeError, Unconnected,
};

#[test]
fn load_measures_and_describes() {
    let bytes = guest::component();
    let module = common::runtime().load("echo", &bytes).unwrap();
    let expected = {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(&bytes))
    };
    assert_eq!(module.measurement().to_hex(), expected);
    let manifest = module.manifest();
    assert_eq!(manifest.inputs, ["in"]);
    assert_eq!(manifest.outputs, ["out"]);
    assert_eq!(manifest.requests, ["query"]);
    assert_eq!(manifest.handlers, ["answer"]);
    assert_eq!(manifest.entries, guest::ENTRIES);
}

#[test]
fn entry_returns_ok_or_guest_error() {
    let mut module = common::runtime().load("echo", &guest::component()).unwrap();
    assert_eq!(
        module.call_entry("echo", b"{\"a\":1}").unwrap(),
        b"{\"a\":1}"
    );
    assert_eq!(module.call_entry("echo", b"").unwrap(), b"");
    let err = module.call_entry("fail", b"").unwrap_err();
    match err {
        RuntimeError::Guest {
            module,
            function,
            message,
        } => {
            assert_eq!(module, "echo");
            assert_eq!(function, "call-entry");
            assert_eq!(message, "guest says no");
        }
        other => panic!("expected a guest error, got {other}"),
    }
    // A guest error does not poison the instance.
    assert_eq!(module.call_entry("echo", b"again").unwrap(), b"again");
}

#[test]
fn undeclared_ports_are_refused_before_the_guest_runs() {
    let mut module = common::runtime().load("echo", &guest::component()).unwrap();
    let err = module.call_entry("launch", b"").unwrap_err();
    assert!(
        matches!(&err, RuntimeError::UnknownPort { kind: PortKind::Entry, name, .. } if name == "launch"),
        "{err}"
    );
    assert!(
        err.to_string().contains("(declared: echo, fail, loop"),
        "{err}"
    );
    assert!(matches!(
        module.deliver_input("out", b""),
        Err(RuntimeError::UnknownPort {
            kind: PortKind::Input,
            ..
        })
    ));
    assert!(matches!(
        module.handle_request("ask", b""),
        Err(RuntimeError::UnknownPort {
            kind: PortKind::Handler,
            ..
        })
    ));
}

#[test]
fn input_is_turned_into_an_output_event() {
    let sink = Arc::new(CollectingSink::new());
    let runtime = common::runtime();
    let mut module = runtime
        .load_with(
            "relay",
            &guest::component(),
            sink.clone(),
            Arc::new(Unconnected),
        )
        .unwrap();
    module.deliver_input("in", b"reading=21").unwrap();
    module.call_entry("emit", b"direct").unwrap();
    assert_eq!(
        sink.take(),
        [
            EmittedEvent {
                module: "relay".into(),
                output: "out".into(),
                data: b"reading=21".to_vec(),
            },
            EmittedEvent {
                module: "relay".into(),
                output: "out".into(),
                data: b"direct".to_vec(),
            },
        ]
    );
    // Emitting on an output the manifest does not declare: the guest gets an error back.
    let err = module.call_entry("emit-undeclared", b"x").unwrap_err();
    assert!(
        matches!(&err, RuntimeError::Guest { message, .. } if message.contains("\"nope\" is not declared")),
        "{err}"
    );
    assert!(sink.take().is_empty());
}

/// Routes request port `ask` of any module to handler `answer` of one target module.
struct ToHandler(Mutex<LoadedModule>);

impl RequestRouter for ToHandler {
    fn route(&self, _module: &str, request: &str, data: &[u8]) -> Result<Vec<u8>, String> {
        assert_eq!(request, "query");
        let mut target = self.0.lock().unwrap();
        target
            .handle_request("answer", data)
            .map_err(|e| e.to_string())
    }
}

#[test]
fn request_is_answered_by_another_modules_handler() {
    let runtime = common::runtime();
    let server = runtime.load("server", &guest::component()).unwrap();
    let router = Arc::new(ToHandler(Mutex::new(server)));
    let mut client = runtime
        .load_with(
            "client",
            &guest::component(),
            Arc::new(CollectingSink::new()),
            router.clone(),
        )
        .unwrap();
    assert_eq!(client.call_entry("ask", b"42").unwrap(), b"answer:42");
    // The handler is callable directly too.
    let direct = router
        .0
        .lock()
        .unwrap()
        .handle_request("answer", b"x")
        .unwrap();
    assert_eq!(direct, b"answer:x");

    // Unconnected request port: the guest sees the router's error.
    let mut lonely = runtime.load("lonely", &guest::component()).unwrap();
    let err = lonely.call_entry("ask", b"42").unwrap_err();
    assert!(
        matches!(&err, RuntimeError::Guest { message, .. } if message.contains("not connected")),
        "{err}"
    );
}

#[test]
fn log_lines_are_counted() {
    let mut module = common::runtime()
        .load("logger", &guest::component())
        .unwrap();
    assert_eq!(module.log_count(), 0);
    module.call_entry("log", b"hello from the guest").unwrap();
    module
        .call_entry("log", b"line\nwith\x1b[31m escapes")
        .unwrap();
    assert_eq!(module.log_count(), 2);
}

#[test]
fn clock_is_wall_time_in_nanoseconds() {
    let mut module = common::runtime()
        .load("clock", &guest::component())
        .unwrap();
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let out = module.call_entry("now", b"").unwrap();
    let after = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let now = u64::from_le_bytes(out.try_into().unwrap());
    assert!(
        before <= now && now <= after,
        "{before} <= {now} <= {after}"
    );
}

#[test]
fn random_bytes_are_random_and_capped() {
    let mut module = common::runtime().load("dice", &guest::component()).unwrap();
    let a = module.call_entry("random", &32u32.to_le_bytes()).unwrap();
    let b = module.call_entry("random", &32u32.to_le_bytes()).unwrap();
    assert_eq!(a.len(), 32);
    assert_ne!(a, b);
    let max = module
        .call_entry("random", &65_536u32.to_le_bytes())
        .unwrap();
    assert_eq!(max.len(), 65_536);
    // One byte over the cap is a guest bug: a trap naming the limit.
    let err = module
        .call_entry("random", &65_537u32.to_le_bytes())
        .unwrap_err();
    assert!(
        matches!(&err, RuntimeError::Trap { reason, .. } if reason.contains("at most 65536")),
        "{err}"
    );
}

#[test]
fn claims_name_the_module_measurement_and_platform() {
    let mut module = common::runtime()
        .load("attested", &guest::component())
        .unwrap();
    let out = String::from_utf8(module.call_entry("claims", b"").unwrap()).unwrap();
    assert_eq!(
        out,
        format!("attested|{}|sim|1", module.measurement().to_hex())
    );
}

#[test]
fn state_without_a_state_directory_is_refused_to_the_guest() {
    let mut module = common::runtime()
        .load("stateless", &guest::component())
        .unwrap();
    let err = module.call_entry("state-set", b"k=v").unwrap_err();
    assert!(
        matches!(&err, RuntimeError::Guest { message, .. } if message.contains("no sealed state")),
        "{err}"
    );
    let err = module.call_entry("state-get", b"k").unwrap_err();
    assert!(matches!(&err, RuntimeError::Guest { message, .. } if message == "absent"));
}

#[test]
fn wasi_imports_link_with_a_context_that_grants_nothing() {
    let bytes = guest::build(&guest::Options {
        wasi: true,
        ..guest::Options::default()
    });
    // The test process has environment variables; the guest must see none of them.
    assert!(std::env::vars().next().is_some());
    let mut module = common::runtime().load("wasi", &bytes).unwrap();
    let count = module.call_entry("env", b"").unwrap();
    assert_eq!(count, 0u32.to_le_bytes());
}

#[test]
fn modules_are_isolated_from_each_other() {
    let runtime = common::runtime();
    let mut a = runtime.load("a", &guest::component()).unwrap();
    let mut b = runtime.load("b", &guest::component()).unwrap();
    a.call_entry("trap", b"").unwrap_err();
    assert!(a.poisoned().is_some());
    assert_eq!(b.call_entry("echo", b"fine").unwrap(), b"fine");
}
