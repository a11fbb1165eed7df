//! The tiny JSON dialect of the sensor filter: flat objects of ASCII strings and numbers in, and a
//! writer whose number format the C twin (`../c/json.c`) reproduces byte for byte.
//!
//! The parser is hand-written rather than serde_json so that both languages accept and reject
//! exactly the same inputs with exactly the same error strings; the contract is in
//! `examples/README.md` and the shared transcript `testdata/transcript.txt` checks it.
#![forbid(unsafe_code)]

use std::fmt::Write as _;

/// A field value: the only two kinds the filter's payloads carry.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Str(String),
    Num(f64),
}

/// Longest number token accepted; longer ones are rejected rather than parsed.
const MAX_NUMBER_LEN: usize = 64;

/// Parses `{"key": value, ...}` where each value is a string or a number, keeping field order
/// (duplicates are the caller's business).
pub(crate) fn parse_object(input: &[u8]) -> Result<Vec<(String, Value)>, String> {
    let mut parser = Parser { input, pos: 0 };
    parser.object()
}

struct Parser<'a> {
    input: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn fail<T>(&self, pos: usize, what: &str) -> Result<T, String> {
        Err(format!("malformed JSON at byte {pos}: {what}"))
    }

    fn peek(&self) -> Option<u8> {
        self.input.get(self.pos).copied()
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn object(&mut self) -> Result<Vec<(String, Value)>, String> {
        let mut fields = Vec::new();
        self.skip_whitespace();
        if self.peek() != Some(b'{') {
            return self.fail(self.pos, "expected '{'");
        }
        self.pos += 1;
        self.skip_whitespace();
        if self.peek() == Some(b'}') {
            self.pos += 1;
        } else {
            loop {
                if self.peek() != Some(b'"') {
                    return self.fail(self.pos, "expected a string key");
                }
                let key = self.string()?;
                self.skip_whitespace();
                if self.peek() != Some(b':') {
                    return self.fail(self.pos, "expected ':'");
                }
                self.pos += 1;
                self.skip_whitespace();
                let value = match self.peek() {
                    Some(b'"') => Value::Str(self.string()?),
                    Some(b'-' | b'0'..=b'9') => Value::Num(self.number()?),
                    _ => return self.fail(self.pos, "expected a string or a number"),
                };
                fields.push((key, value));
                self.skip_whitespace();
                match self.peek() {
                    Some(b',') => {
                        self.pos += 1;
                        self.skip_whitespace();
                    }
                    Some(b'}') => {
                        self.pos += 1;
                        break;
                    }
                    _ => return self.fail(self.pos, "expected ',' or '}'"),
                }
            }
        }
        self.skip_whitespace();
        if self.pos != self.input.len() {
            return self.fail(self.pos, "trailing characters after the object");
        }
        Ok(fields)
    }

    /// A string starting at the opening quote. Only ASCII is accepted, raw or escaped.
    fn string(&mut self) -> Result<String, String> {
        self.pos += 1;
        let mut out = String::new();
        loop {
            let Some(byte) = self.peek() else {
                return self.fail(self.pos, "unterminated string");
            };
            match byte {
                b'"' => {
                    self.pos += 1;
                    return Ok(out);
                }
                b'\\' => {
                    let escape_pos = self.pos;
                    let decoded = match self.input.get(self.pos + 1).copied() {
                        Some(b'"') => b'"',
                        Some(b'\\') => b'\\',
                        Some(b'/') => b'/',
                        Some(b'b') => 0x08,
                        Some(b'f') => 0x0c,
                        Some(b'n') => b'\n',
                        Some(b'r') => b'\r',
                        Some(b't') => b'\t',
                        Some(b'u') => {
                            let code = self
                                .input
                                .get(self.pos + 2..self.pos + 6)
                                .and_then(|hex| std::str::from_utf8(hex).ok())
                                .filter(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()))
                                .and_then(|hex| u32::from_str_radix(hex, 16).ok());
                            match code {
                                None => return self.fail(escape_pos, "invalid \\u escape"),
                                Some(code) if code >= 0x80 => {
                                    return self.fail(
                                        escape_pos,
                                        "non-ASCII characters are not supported",
                                    );
                                }
                                Some(code) => {
                                    self.pos += 4;
                                    code as u8
                                }
                            }
                        }
                        _ => return self.fail(escape_pos, "invalid escape"),
                    };
                    self.pos += 2;
                    out.push(char::from(decoded));
                }
                0x00..=0x1f => return self.fail(self.pos, "control character in string"),
                0x80..=0xff => {
                    return self.fail(self.pos, "non-ASCII characters are not supported");
                }
                _ => {
                    self.pos += 1;
                    out.push(char::from(byte));
                }
            }
        }
    }

    fn digits(&mut self) {
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
    }

    /// A number in RFC 8259 grammar, converted with correct rounding; must be finite.
    fn number(&mut self) -> Result<f64, String> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return self.fail(self.pos, "invalid number"),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return self.fail(self.pos, "invalid number");
            }
            self.digits();
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return self.fail(self.pos, "invalid number");
            }
            self.digits();
        }
        let token = &self.input[start..self.pos];
        if token.len() > MAX_NUMBER_LEN {
            return self.fail(start, "number too long");
        }
        let value = std::str::from_utf8(token)
            .ok()
            .and_then(|text| text.parse::<f64>().ok())
            .filter(|value| value.is_finite());
        match value {
            Some(value) => Ok(value),
            None => self.fail(start, "number out of range"),
        }
    }
}

/// Appends `text` as a JSON string: quotes, backslashes and control characters escaped, all else
/// (including non-ASCII UTF-8) verbatim.
pub(crate) fn write_string(out: &mut String, text: &str) {
    out.push('"');
    for ch in text.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{00}'..='\u{1f}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(ch));
            }
            _ => out.push(ch),
        }
    }
    out.push('"');
}

/// `text` as a JSON string literal (for error messages that quote a name).
pub(crate) fn quoted(text: &str) -> String {
    let mut out = String::new();
    write_string(&mut out, text);
    out
}

/// Appends a finite number the way ECMAScript's `Number.prototype.toString` does: the fewest
/// significant digits that read back as the same double, plain notation for 1e-7 <= |x| < 1e21,
/// exponent notation (`1.5e+21`, `1e-7`) outside it, integers without a fraction, and zero of
/// either sign as `0`.
pub(crate) fn write_number(out: &mut String, value: f64) {
    if value == 0.0 {
        out.push('0');
        return;
    }
    // The shortest correctly rounded `%.*e` rendering that parses back to `value`. The C twin runs
    // the same loop with snprintf and strtod, so both pick the same digits by construction.
    let mut scientific = String::new();
    for precision in 0..17 {
        scientific = format!("{value:.precision$e}");
        if scientific.parse::<f64>() == Ok(value) {
            break;
        }
    }
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let negative = mantissa.starts_with('-');
    let mut digits: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).collect();
    while digits.len() > 1 && digits.last() == Some(&b'0') {
        digits.pop();
    }
    write_digits(out, negative, &digits, exponent);
}

/// ECMAScript Number::toString layout of `0.d1d2... × 10^(exponent + 1)`.
fn write_digits(out: &mut String, negative: bool, digits: &[u8], exponent: i32) {
    if negative {
        out.push('-');
    }
    let count = digits.len() as i32;
    let point = exponent + 1; // position of the decimal point relative to the first digit
    let push_digits =
        |out: &mut String, digits: &[u8]| out.extend(digits.iter().map(|&d| char::from(d)));
    if count <= point && point <= 21 {
        push_digits(out, digits);
        out.extend(std::iter::repeat_n('0', (point - count) as usize));
    } else if 0 < point && point <= 21 {
        let (whole, fraction) = digits.split_at(point as usize);
        push_digits(out, whole);
        out.push('.');
        push_digits(out, fraction);
    } else if -6 < point && point <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-point) as usize));
        push_digits(out, digits);
    } else {
        push_digits(out, &digits[..1]);
        if count > 1 {
            out.push('.');
            push_digits(out, &digits[1..]);
        }
        let _ = write!(
            out,
            "e{}{}",
            if point - 1 < 0 { '-' } else { '+' },
            (point - 1).abs()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn number(value: f64) -> String {
        let mut out = String::new();
        write_number(&mut out, value);
        out
    }

    #[test]
    fn numbers_format_like_ecmascript() {
        let cases = [
            (0.0, "0"),
            (-0.0, "0"),
            (30.0, "30"),
            (21.5, "21.5"),
            (-21.5, "-21.5"),
            (0.1, "0.1"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1e21, "1e+21"),
            (1.5e21, "1.5e+21"),
            (123456789012345680000.0, "123456789012345680000"),
            (1e-6, "0.000001"),
            (1e-7, "1e-7"),
            (1.25e-7, "1.25e-7"),
            (f64::MAX, "1.7976931348623157e+308"),
            (f64::MIN_POSITIVE, "2.2250738585072014e-308"),
            (5e-324, "5e-324"),
            (100.0, "100"),
        ];
        for (value, expected) in cases {
            assert_eq!(number(value), expected, "{value:e}");
        }
    }

    #[test]
    fn numbers_read_back_exactly() {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let value = f64::from_bits(state);
            if !value.is_finite() {
                continue;
            }
            let text = number(value);
            let parsed = parse_object(format!("{{\"n\":{text}}}").as_bytes());
            assert_eq!(parsed, Ok(vec![("n".into(), Value::Num(value))]), "{text}");
        }
    }

    #[test]
    fn parser_reports_position_and_reason() {
        let cases: [(&[u8], &str); 12] = [
            (b"", "malformed JSON at byte 0: expected '{'"),
            (b"[1]", "malformed JSON at byte 0: expected '{'"),
            (b"{\"a\" 1}", "malformed JSON at byte 5: expected ':'"),
            (
                b"{\"a\":true}",
                "malformed JSON at byte 5: expected a string or a number",
            ),
            (
                b"{\"a\":1,}",
                "malformed JSON at byte 7: expected a string key",
            ),
            (
                b"{\"a\":01}",
                "malformed JSON at byte 6: expected ',' or '}'",
            ),
            (b"{\"a\":1.}", "malformed JSON at byte 7: invalid number"),
            (
                b"{\"a\":1e999}",
                "malformed JSON at byte 5: number out of range",
            ),
            (
                b"{\"a\":\"\\u00e9\"}",
                "malformed JSON at byte 6: non-ASCII characters are not supported",
            ),
            (
                b"{\"a\":\"\xc3\xa9\"}",
                "malformed JSON at byte 6: non-ASCII characters are not supported",
            ),
            (
                b"{\"a\":\"x",
                "malformed JSON at byte 7: unterminated string",
            ),
            (
                b"{} x",
                "malformed JSON at byte 3: trailing characters after the object",
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(
                parse_object(input),
                Err(expected.to_string()),
                "{}",
                String::from_utf8_lossy(input)
            );
        }
    }
}
