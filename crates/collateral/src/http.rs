//! The thin HTTP shell: one blocking GET with a timeout and a body limit, logged with its URL,
//! status, size and duration. Everything about what to fetch lives elsewhere.

use std::time::{Duration, Instant};

use crate::error::Error;

/// Largest response body we accept (matches attest's largest endorsement file).
const MAX_BODY: u64 = 4 * 1024 * 1024;
/// How much of an error body goes into [`Error::HttpStatus`].
const EXCERPT_CHARS: usize = 200;

/// A successful response.
#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) body: Vec<u8>,
    headers: Vec<(String, String)>,
}

impl Response {
    /// The first header with this name (case-insensitive).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// An HTTP client.
#[derive(Debug, Clone)]
pub(crate) struct Http {
    agent: ureq::Agent,
}

impl Http {
    pub(crate) fn new(timeout: Duration) -> Self {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .user_agent(concat!("teemesh-collateral/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        Self { agent }
    }

    /// GETs `url`; a non-2xx status is an error carrying the start of the body.
    pub(crate) fn get(&self, url: &str) -> Result<Response, Error> {
        let network = |e: ureq::Error| Error::Network {
            url: url.to_owned(),
            reason: e.to_string(),
        };
        let started = Instant::now();
        let mut response = self.agent.get(url).call().map_err(network)?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .filter_map(|(n, v)| Some((n.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect();
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_BODY)
            .read_to_vec()
            .map_err(network)?;
        let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        tracing::info!(url, status, bytes = body.len(), ms, "fetched collateral");
        if !(200..300).contains(&status) {
            return Err(Error::HttpStatus {
                url: url.to_owned(),
                status,
                body_excerpt: excerpt(&body),
            });
        }
        Ok(Response { body, headers })
    }
}

/// The start of a body as one printable line.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut out: String = text
        .chars()
        .take(EXCERPT_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().count() > EXCERPT_CHARS {
        out.push('…');
    }
    if out.trim().is_empty() {
        out = "(empty body)".to_owned();
    }
    out
}

/// Decodes `%XX` escapes (Intel PCS URL-encodes the PEM issuer chains it puts in headers).
/// `+` is kept as is: it is a base64 character in PEM, not a space.
pub(crate) fn percent_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad %-escape at byte {i}"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "decoded text is not UTF-8".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(
            percent_decode("-----BEGIN%20CERTIFICATE-----%0AMII+/%3D").as_deref(),
            Ok("-----BEGIN CERTIFICATE-----\nMII+/=")
        );
        assert!(percent_decode("%zz").is_err());
        assert!(percent_decode("abc%4").is_err());
        assert!(percent_decode("%ff").is_err());
    }

    #[test]
    fn excerpts_are_one_bounded_line() {
        assert_eq!(excerpt(b""), "(empty body)");
        assert_eq!(excerpt(b"{\"error\":\n\"x\"}"), "{\"error\": \"x\"}");
        let long = excerpt(&[b'a'; 500]);
        assert_eq!(long.chars().count(), EXCERPT_CHARS + 1);
    }
}
