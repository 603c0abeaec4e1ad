//! Filled in by the index work.
