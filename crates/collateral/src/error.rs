//! The one error type of the fetcher: each variant names the URL or file involved and what was
//! expected, so a failed fetch can be fixed without reading code.

use std::path::PathBuf;

/// Why collateral could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered with a non-success status.
    #[error("HTTP {status} from {url}: {body_excerpt}")]
    HttpStatus {
        /// The requested URL.
        url: String,
        /// The HTTP status code.
        status: u16,
        /// The start of the response body (servers explain errors there).
        body_excerpt: String,
    },
    /// The request did not complete: DNS, connect, TLS, timeout, or a body over the size limit.
    #[error("cannot fetch {url}: {reason}")]
    Network {
        /// The requested URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The response lacks the header that carries its issuer chain.
    #[error("response from {url} has no {header} header (the issuer chain that signs it)")]
    MissingHeader {
        /// The requested URL.
        url: String,
        /// The expected header name.
        header: &'static str,
    },
    /// The response (or its issuer-chain header) is not what the endpoint serves.
    #[error("unexpected response from {url}: {reason}")]
    InvalidResponse {
        /// The requested URL.
        url: String,
        /// What was wrong with it.
        reason: String,
    },
    /// Offline mode, and the cache does not hold this URL.
    #[error(
        "offline: {url} is not in the collateral cache {cache_dir}; fetch it once online, or supply that endorsement yourself"
    )]
    NotCached {
        /// The URL that would have been fetched.
        url: String,
        /// The cache directory that was searched.
        cache_dir: PathBuf,
    },
    /// Reading or writing the cache failed.
    #[error("collateral cache {path}: {source}")]
    CacheIo {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The evidence is of a kind whose endorsements cannot be fetched.
    #[error("cannot fetch endorsements for this evidence: {reason}")]
    UnsupportedEvidence {
        /// Why, and what to do instead.
        reason: String,
    },
    /// The evidence could not be read.
    #[error("evidence: {0}")]
    Evidence(#[from] attest::Error),
}

impl Error {
    pub(crate) fn cache_io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::CacheIo {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn unsupported(reason: impl Into<String>) -> Self {
        Self::UnsupportedEvidence {
            reason: reason.into(),
        }
    }
}
