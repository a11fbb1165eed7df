//! Why the node could not start, or an admin exchange failed: one variant per cause, each a
//! one-line message naming what was wrong and what was expected.

use std::path::PathBuf;

/// Every way the node library fails.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The configuration file is unreadable or invalid (the message carries file:line).
    #[error("{path}: {message}")]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong, with its position when known.
        message: String,
    },
    /// A file or directory of the data directory could not be read or written.
    #[error("{what} {path}: {reason}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The operating system's reason.
        reason: std::io::Error,
    },
    /// A stored module or its metadata is unusable.
    #[error("data directory: {0}")]
    Store(String),
    /// A frame or message of the admin protocol is malformed.
    #[error("admin protocol: {0}")]
    Protocol(String),
    /// The platform's attester could not be opened.
    #[error("platform: {0}")]
    Platform(#[from] platform::PlatformError),
    /// Attested TLS failed (handshake, appraisal, identity).
    #[error(transparent)]
    Atls(#[from] atls::AtlsError),
    /// The appraisal policy refused the peer.
    #[error("refused: {0}")]
    Refused(String),
    /// The node refused this admin client.
    #[error("not authorised: {0}")]
    Unauthorised(String),
    /// The WebAssembly runtime failed to start.
    #[error(transparent)]
    Runtime(#[from] runtime::RuntimeError),
    /// A socket or connection failed.
    #[error("{what}: {reason}")]
    Net {
        /// What was being done.
        what: String,
        /// The reason (not a `source`: the message already includes it).
        reason: std::io::Error,
    },
    /// The node answered a request with an error.
    #[error("{0}")]
    Remote(crate::protocol::ErrorReply),
    /// The MQTT broker could not start (a listener's settings, the broker's configuration).
    #[error("mqtt: {0}")]
    Mqtt(String),
    /// The admin key could not be created or read.
    #[error("admin key {path}: {message}")]
    AdminKey {
        /// The key file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

impl NodeError {
    pub(crate) fn io(what: &'static str, path: &std::path::Path, source: std::io::Error) -> Self {
        Self::Io {
            what,
            path: path.to_owned(),
            reason: source,
        }
    }
}
