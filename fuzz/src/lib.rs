//! Invariants shared by the fuzz targets: whatever the input, a refusal is an `attest::Error`
//! whose message is one non-empty printable line, so a log shows a reason and nothing forged.

/// Panics (which libFuzzer reports as a crash) when `err`'s message is empty or holds control
/// characters (a line break, carriage return or terminal escape from the input).
pub fn assert_clear_error(err: &attest::Error) {
    let message = err.to_string();
    assert!(!message.trim().is_empty(), "empty error message: {err:?}");
    assert!(
        !message.chars().any(char::is_control),
        "error message is not one printable line: {message:?}"
    );
}

/// Checks the error of `result`, if any, and hands back the success value.
pub fn check<T>(result: Result<T, attest::Error>) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(err) => {
            assert_clear_error(&err);
            None
        }
    }
}
