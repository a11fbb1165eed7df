//! Fuzzes the application descriptor: `mesh::Descriptor::parse` (YAML loader, typed fields,
//! checks) and `mesh::yaml_to_json` on any UTF-8 text. A refusal is one printable line that
//! names a position; an accepted descriptor survives a round trip through its JSON form.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use mesh::Descriptor;

fn no_files(_: &Path) -> std::io::Result<String> {
    Err(std::io::Error::other("no files while fuzzing"))
}

fn assert_clear(err: &mesh::Error) {
    let message = err.to_string();
    assert!(
        message.starts_with("fuzz.yaml"),
        "error without the file: {message:?}"
    );
    assert!(
        !message.chars().any(char::is_control),
        "error message is not one printable line: {message:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(err) = mesh::yaml_to_json(text, "fuzz.yaml") {
        assert_clear(&err);
    }
    match Descriptor::parse(text, "fuzz.yaml", Path::new("."), &no_files) {
        Err(err) => assert_clear(&err),
        Ok(descriptor) => {
            let json = descriptor.to_json().to_string();
            // Inline policies print their defaults, so the JSON form can outgrow the limit.
            if json.len() > mesh::yaml::MAX_BYTES {
                return;
            }
            let again = Descriptor::parse(&json, "fuzz.yaml", Path::new("."), &no_files)
                .unwrap_or_else(|e| panic!("the JSON form does not parse: {e}\n{json}"));
            assert_eq!(
                again.spec(),
                descriptor.spec(),
                "the JSON form changed it:\n{json}"
            );
        }
    }
});
