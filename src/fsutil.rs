//! Small file helpers shared by `init`, identities, key files and the server config.
//!
//! Private keys are written readable by their owner only, and read only when no one outside
//! their owner and group can read them, and their group cannot change them (the rule
//! PostgreSQL applies to its key: `0600`, or `0640` with the service's group, as a systemd
//! deployment uses). A key that others could have read is refused at start-up with a message
//! saying how to fix it, rather than used.

use std::io::Write;
use std::path::Path;

/// Writes a file that only its owner may read (mode 0600 on Unix): private keys. The mode is
/// set also when the file already exists with a wider one.
///
/// # Errors
/// When the file cannot be created or written.
pub fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut file = opts.open(path)?;
    #[cfg(unix)]
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    file.write_all(contents)?;
    file.sync_all()
}

/// Reads a private key file, refusing one that others may read or write, or that its group may
/// write (any of the mode bits `0o037`).
///
/// # Errors
/// When the file cannot be read, or its mode lets others read it (`PermissionDenied`, saying
/// how to fix it).
pub fn read_private(path: &Path) -> std::io::Result<Vec<u8>> {
    let file = std::fs::File::open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = file.metadata()?.permissions().mode() & 0o777;
        if mode & 0o037 != 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!(
                    "private key file has mode {mode:04o}, so others may have read or changed \
                     it; make it readable by its owner only (chmod 600 {}), or by its group \
                     too (chmod 640)",
                    path.display()
                ),
            ));
        }
    }
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut { file }, &mut out)?;
    Ok(out)
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn private_files_are_0600_even_when_they_existed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        std::fs::write(&path, b"old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_private(&path, b"secret").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(read_private(&path).unwrap(), b"secret");
    }

    #[test]
    fn readable_private_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        write_private(&path, b"secret").unwrap();
        for mode in [0o600, 0o400, 0o640, 0o440] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            assert!(read_private(&path).is_ok(), "{mode:o}");
        }
        for mode in [0o604, 0o644, 0o660, 0o666, 0o620] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let err = read_private(&path).unwrap_err();
            assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied, "{mode:o}");
            assert!(err.to_string().contains("chmod 600"), "{err}");
        }
    }
}

/// Writes a file and syncs it and its directory, so that it survives a crash once this
/// returns: evidence a follower keeps.
///
/// # Errors
/// When the file cannot be written or synced.
pub fn write_synced(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut file = std::fs::File::create(path)?;
    file.write_all(contents)?;
    file.sync_all()?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}
