//! Where teemesh keeps its state: `$TEEMESH_HOME`, else `$XDG_DATA_HOME/teemesh`, else
//! `~/.local/share/teemesh`.

use std::path::PathBuf;

/// The teemesh state directory (not created here).
pub(crate) fn teemesh_home() -> PathBuf {
    if let Some(dir) = std::env::var_os("TEEMESH_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("teemesh");
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".local/share/teemesh")
}

/// The default verifier key for signing attestation results.
pub(crate) fn default_result_key() -> PathBuf {
    teemesh_home().join("verifier-result-key.pem")
}
