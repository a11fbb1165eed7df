//! What the relay does, written against a one-function `Host` so that a native test can check it:
//! input `in` and entry `emit` both put their bytes, unchanged, on output `out`.
#![forbid(unsafe_code)]

/// What the relay needs from the node: emitting on its output.
pub(crate) trait Host {
    fn emit_output(&mut self, output: &str, data: &[u8]) -> Result<(), String>;
}

pub(crate) const INPUTS: &[&str] = &["in"];
pub(crate) const OUTPUTS: &[&str] = &["out"];
pub(crate) const ENTRIES: &[&str] = &["emit"];

pub(crate) fn on_input(host: &mut impl Host, input: &str, data: &[u8]) -> Result<(), String> {
    match input {
        "in" => forward(host, data).map_err(|e| format!("in: {e}")),
        _ => Err(format!("unknown input {input:?}")),
    }
}

pub(crate) fn on_request(handler: &str) -> Result<Vec<u8>, String> {
    Err(format!("unknown handler {handler:?}"))
}

/// `emit` starts an event: the benchmark calls it to put events into the ring of relays.
pub(crate) fn call_entry(host: &mut impl Host, entry: &str, arg: &[u8]) -> Result<Vec<u8>, String> {
    match entry {
        "emit" => forward(host, arg)
            .map(|()| Vec::new())
            .map_err(|e| format!("emit: {e}")),
        _ => Err(format!("unknown entry {entry:?}")),
    }
}

fn forward(host: &mut impl Host, data: &[u8]) -> Result<(), String> {
    host.emit_output("out", data)
        .map_err(|e| format!("emitting out: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records what was emitted, or refuses with `refusal`.
    #[derive(Default)]
    struct MockHost {
        emitted: Vec<(String, Vec<u8>)>,
        refusal: Option<String>,
    }

    impl Host for MockHost {
        fn emit_output(&mut self, output: &str, data: &[u8]) -> Result<(), String> {
            if let Some(refusal) = &self.refusal {
                return Err(refusal.clone());
            }
            self.emitted.push((output.to_string(), data.to_vec()));
            Ok(())
        }
    }

    #[test]
    fn input_and_entry_emit_their_bytes_unchanged() {
        let mut host = MockHost::default();
        let binary = [0_u8, 0xff, b'\n', 0x80];
        assert_eq!(on_input(&mut host, "in", &binary), Ok(()));
        assert_eq!(call_entry(&mut host, "emit", b"{\"n\":1}"), Ok(Vec::new()));
        assert_eq!(call_entry(&mut host, "emit", b""), Ok(Vec::new()));
        let expected: Vec<(String, Vec<u8>)> = vec![
            ("out".into(), binary.to_vec()),
            ("out".into(), b"{\"n\":1}".to_vec()),
            ("out".into(), Vec::new()),
        ];
        assert_eq!(host.emitted, expected);
    }

    #[test]
    fn refusals_and_unknown_ports_are_errors() {
        let mut host = MockHost {
            refusal: Some("output \"out\" is not connected".into()),
            ..MockHost::default()
        };
        assert_eq!(
            on_input(&mut host, "in", b"x"),
            Err("in: emitting out: output \"out\" is not connected".into())
        );
        assert_eq!(
            call_entry(&mut host, "emit", b"x"),
            Err("emit: emitting out: output \"out\" is not connected".into())
        );
        host.refusal = None;
        assert_eq!(
            on_input(&mut host, "out", b"x"),
            Err("unknown input \"out\"".into())
        );
        assert_eq!(
            call_entry(&mut host, "stats", b""),
            Err("unknown entry \"stats\"".into())
        );
        assert_eq!(on_request("echo"), Err("unknown handler \"echo\"".into()));
        assert!(host.emitted.is_empty());
    }
}
