//! Fuzzes the attested-TLS certificate reader: `atls::ext::parse_certificate` (X.509 DER with the
//! RA-TLS evidence extension), `TaggedEvidence::decode` and `BoundClaims::decode` (CBOR). Whatever
//! the input: no panic, a one-line reason on refusal, and accepted CBOR re-encodes to a value
//! that decodes to the same thing.
#![no_main]

use atls::ext::{BoundClaims, TaggedEvidence, parse_certificate};
use libfuzzer_sys::fuzz_target;

fn clear<E: std::fmt::Display>(e: &E) {
    let message = e.to_string();
    assert!(!message.trim().is_empty(), "empty error message");
    assert!(
        !message.chars().any(char::is_control),
        "error message is not one printable line: {message:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    match parse_certificate(data) {
        Ok(cert) => assert!(!cert.spki_der.is_empty()),
        Err(e) => clear(&e),
    }
    match TaggedEvidence::decode(data) {
        Ok(tagged) => {
            let again =
                TaggedEvidence::decode(&tagged.encode()).expect("re-encoded evidence parses");
            assert_eq!(again, tagged);
            if let Err(e) = tagged.claims() {
                clear(&e);
            }
        }
        Err(e) => clear(&e),
    }
    match BoundClaims::decode(data) {
        Ok(claims) => {
            let again = BoundClaims::decode(&claims.encode()).expect("re-encoded claims parse");
            assert_eq!(again, claims);
        }
        Err(e) => clear(&e),
    }
});
