//! Reading the kernel's and Gramine's pseudo-files: whole, in one go, and bounded, so a
//! misconfigured root (a fake tree, a device node) cannot make us read without end.

use std::io::Read as _;
use std::path::Path;

/// Largest pseudo-file read (the kernel caps `outblob` and `auxblob` at 32 KiB; quotes are ~5 KiB).
pub(crate) const MAX_LEN: u64 = 1024 * 1024;

pub(crate) fn read_bounded(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_LEN + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_LEN {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {MAX_LEN} bytes"),
        ));
    }
    Ok(bytes)
}
