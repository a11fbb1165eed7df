#![allow(clippy::unwrap_used)]
//! A looping, trapping or memory-hungry module fails its own call with a distinct error and the
//! host keeps serving; bytes that are not a conforming component are refused with a reason.

mod common;
mod guest;

use std::time::{Duration, Instant};

use runtime::{Limits, RuntimeError};

#[test]
fn infinite_loop_runs_out_of_fuel_and_the_runtime_carries_on() {
    let runtime = common::runtime_with(Limits {
        fuel_per_call: Some(20_000_000),
        deadline_per_call: None,
        ..Limits::default()
    });
    let mut looping = runtime.load("spinner", &guest::component()).unwrap();
    let mut bystander = runtime.load("bystander", &guest::component()).unwrap();
    let err = looping.call_entry("loop", b"").unwrap_err();
    match &err {
        RuntimeError::OutOfFuel {
            module,
            function,
            fuel,
        } => {
            assert_eq!(module, "spinner");
            assert_eq!(function, "call-entry");
            assert_eq!(*fuel, 20_000_000);
        }
        other => panic!("expected OutOfFuel, got {other}"),
    }
    // The stopped instance is poisoned until restarted; other instances never noticed.
    assert!(matches!(
        looping.call_entry("echo", b"x"),
        Err(RuntimeError::Poisoned { .. })
    ));
    assert_eq!(bystander.call_entry("echo", b"ok").unwrap(), b"ok");
    looping.restart().unwrap();
    assert_eq!(looping.call_entry("echo", b"back").unwrap(), b"back");
    // New instances load as before.
    let mut fresh = runtime.load("fresh", &guest::component()).unwrap();
    assert_eq!(fresh.call_entry("echo", b"new").unwrap(), b"new");
}

#[test]
fn infinite_loop_is_interrupted_at_the_deadline() {
    let deadline = Duration::from_millis(200);
    let runtime = common::runtime_with(Limits {
        fuel_per_call: None,
        deadline_per_call: Some(deadline),
        ..Limits::default()
    });
    let mut looping = runtime.load("spinner", &guest::component()).unwrap();
    let started = Instant::now();
    let err = looping.call_entry("loop", b"").unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(&err, RuntimeError::Interrupted { deadline: d, .. } if *d == deadline),
        "{err}"
    );
    // Never before the deadline (the ticker's phase is accounted for); how long after it is
    // the machine's business, not asserted.
    assert!(
        took >= deadline,
        "interrupted after {took:?}, before {deadline:?}"
    );
    assert!(
        err.to_string()
            .contains("interrupted after its 200ms deadline"),
        "{err}"
    );
    let mut other = runtime.load("other", &guest::component()).unwrap();
    assert_eq!(other.call_entry("echo", b"alive").unwrap(), b"alive");
    looping.restart().unwrap();
    assert_eq!(looping.call_entry("echo", b"again").unwrap(), b"again");
}

#[test]
fn memory_growth_past_the_cap_is_a_memory_limit_error() {
    let runtime = common::runtime_with(Limits {
        memory_bytes: 4 << 20,
        ..Limits::default()
    });
    let mut hungry = runtime.load("hungry", &guest::component()).unwrap();
    let err = hungry.call_entry("grow", b"").unwrap_err();
    match &err {
        RuntimeError::MemoryLimit {
            module,
            limit_bytes,
            ..
        } => {
            assert_eq!(module, "hungry");
            assert_eq!(*limit_bytes, 4 << 20);
        }
        other => panic!("expected MemoryLimit, got {other}"),
    }
    let mut other = runtime.load("other", &guest::component()).unwrap();
    assert_eq!(other.call_entry("echo", b"fine").unwrap(), b"fine");
}

#[test]
fn initial_memory_above_the_cap_is_refused_at_load() {
    let runtime = common::runtime_with(Limits {
        memory_bytes: 1 << 20,
        ..Limits::default()
    });
    let big = guest::build(&guest::Options {
        pages: 32, // 2 MiB
        ..guest::Options::default()
    });
    let err = runtime.load("big", &big).unwrap_err();
    assert!(
        matches!(&err, RuntimeError::MemoryLimit { function, .. } if function == "instantiate"),
        "{err}"
    );
}

#[test]
fn trap_is_reported_and_poisons_only_that_instance() {
    let runtime = common::runtime();
    let mut module = runtime.load("crashy", &guest::component()).unwrap();
    let err = module.call_entry("trap", b"").unwrap_err();
    match &err {
        RuntimeError::Trap {
            module,
            function,
            reason,
        } => {
            assert_eq!(module, "crashy");
            assert_eq!(function, "call-entry");
            assert!(reason.contains("unreachable"), "{reason}");
        }
        other => panic!("expected Trap, got {other}"),
    }
    let poisoned = module.call_entry("echo", b"x").unwrap_err();
    assert!(poisoned.to_string().contains("restart it"), "{poisoned}");
    module.restart().unwrap();
    assert_eq!(module.call_entry("echo", b"x").unwrap(), b"x");
}

#[test]
fn garbage_is_not_wasm() {
    let runtime = common::runtime();
    let err = runtime.load("junk", b"#!/bin/sh\necho hi\n").unwrap_err();
    assert!(matches!(err, RuntimeError::NotWasm { .. }), "{err}");
    let err = runtime.load("empty", b"").unwrap_err();
    assert!(matches!(err, RuntimeError::NotWasm { .. }), "{err}");
    let text = guest::wat(&guest::Options::default());
    let err = runtime.load("text", text.as_bytes()).unwrap_err();
    assert!(err.to_string().contains("WebAssembly text"), "{err}");
}

#[test]
fn core_module_is_not_a_component() {
    let core = wat::parse_str("(module (func (export \"run\")))").unwrap();
    let err = common::runtime().load("core", &core).unwrap_err();
    assert!(matches!(err, RuntimeError::NotAComponent), "{err}");
    assert!(
        err.to_string().contains("wasm-tools component new"),
        "{err}"
    );
}

#[test]
fn truncated_component_is_invalid() {
    let bytes = guest::component();
    let err = common::runtime()
        .load("cut", &bytes[..bytes.len() / 2])
        .unwrap_err();
    assert!(matches!(err, RuntimeError::Invalid { .. }), "{err}");
}

#[test]
fn component_without_the_guest_export_does_not_conform() {
    let empty = wat::parse_str("(component)").unwrap();
    let err = common::runtime().load("empty", &empty).unwrap_err();
    assert!(
        matches!(&err, RuntimeError::DoesNotConform { detail } if detail.contains("teemesh:module/guest@0.1.0")),
        "{err}"
    );
}

#[test]
fn component_importing_what_the_node_lacks_does_not_conform() {
    let wat = r#"(component
        (import "evil:net/socket@1.0.0" (instance
            (export "connect" (func (param "addr" string)))))
    )"#;
    let bytes = wat::parse_str(wat).unwrap();
    let err = common::runtime().load("evil", &bytes).unwrap_err();
    assert!(
        matches!(&err, RuntimeError::DoesNotConform { detail } if detail.contains("evil:net/socket@1.0.0")),
        "{err}"
    );

    // A host function the world does not have.
    let wat = r#"(component
        (import "teemesh:module/host@0.1.0" (instance
            (export "launch-missiles" (func))))
    )"#;
    let bytes = wat::parse_str(wat).unwrap();
    let err = common::runtime().load("greedy", &bytes).unwrap_err();
    assert!(
        matches!(&err, RuntimeError::DoesNotConform { detail } if detail.contains("launch-missiles")),
        "{err}"
    );
}

#[test]
fn export_with_the_wrong_signature_does_not_conform() {
    // `describe` returning a string instead of the manifest record.
    let text = guest::wat(&guest::Options::default()).replace(
        "(func $describe (result $manifest)",
        "(func $describe (result string)",
    );
    let bytes = wat::parse_str(&text).unwrap();
    let err = common::runtime().load("wrong", &bytes).unwrap_err();
    assert!(
        matches!(&err, RuntimeError::DoesNotConform { detail } if detail.contains("describe")),
        "{err}"
    );
}

#[test]
fn duplicate_port_names_are_an_invalid_manifest() {
    let bytes = guest::build(&guest::Options {
        entries: Some(vec!["echo".into(), "echo".into()]),
        ..guest::Options::default()
    });
    let err = common::runtime().load("dup", &bytes).unwrap_err();
    assert!(
        matches!(&err, RuntimeError::InvalidManifest { detail, .. } if detail.contains("declared twice")),
        "{err}"
    );
}
