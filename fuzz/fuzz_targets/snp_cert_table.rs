//! Fuzzes the SEV-SNP certificate table reader (`platform::snp_certs::parse_cert_table`), which
//! reads the `auxblob` a host hands to the guest. Whatever the input: no panic, a one-line reason
//! on refusal, and an accepted table re-encodes to one that parses to the same entries.
#![no_main]

use libfuzzer_sys::fuzz_target;
use platform::snp_certs::{encode_cert_table, parse_cert_table};

fuzz_target!(|data: &[u8]| {
    match parse_cert_table(data) {
        Ok(entries) => {
            let again = encode_cert_table(&entries).expect("accepted entries re-encode");
            assert_eq!(
                parse_cert_table(&again).expect("re-encoded table parses"),
                entries
            );
        }
        Err(e) => {
            let message = e.to_string();
            assert!(!message.trim().is_empty(), "empty error message");
            assert!(
                !message.chars().any(char::is_control),
                "error message is not one printable line: {message:?}"
            );
        }
    }
});
