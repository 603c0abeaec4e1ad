//! Crash points for tests of the real binary: with `HASHFORUM_FAILPOINT=<name>` in its
//! environment, the process aborts (as a power cut would stop it: no unwinding, no flushing) the
//! first time it reaches the point `<name>`. Without the variable, a point costs one load.
//!
//! Points: `after-commit` (a group's entries are durable, its checkpoint is not yet signed
//! and kept).

use std::sync::OnceLock;

/// Aborts the process if the environment names this point.
pub fn hit(name: &str) {
    static POINT: OnceLock<Option<String>> = OnceLock::new();
    let point = POINT.get_or_init(|| std::env::var("HASHFORUM_FAILPOINT").ok());
    if point.as_deref() == Some(name) {
        eprintln!("hashforum: failpoint {name}: aborting");
        std::process::abort();
    }
}
