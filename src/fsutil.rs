//! Small file helpers shared by `init`, identities and key files.

use std::io::Write;
use std::path::Path;

/// Writes a file that only its owner may read (mode 0600 on Unix): private keys.
///
/// # Errors
/// When the file cannot be created or written.
pub fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut file = opts.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}
