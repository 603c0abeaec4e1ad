//! Filled in by the hasher work.
