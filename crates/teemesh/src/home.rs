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

/// The operator's admin key: the file at `path`, else `$TEEMESH_HOME/admin-key.pem` (created
/// with mode 0600 on first use).
pub(crate) fn admin_key(path: Option<&std::path::Path>) -> anyhow::Result<node::AdminKey> {
    let path = path.map_or_else(|| teemesh_home().join("admin-key.pem"), ToOwned::to_owned);
    Ok(node::AdminKey::load_or_create(&path)?)
}
