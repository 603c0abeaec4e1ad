//! Fuzz targets: every decoder and validator that sees untrusted bytes, one function per
//! target taking `&[u8]`, asserting what must hold for any input. Not an API.
//!
//! The same functions run under two drivers (docs/fuzzing.md): cargo-fuzz (`fuzz/`, libFuzzer,
//! a nightly-only build) and, on stable, a bounded property test in this module's tests, which
//! mutates the committed corpus (`fuzz/corpus/<target>/`, made by [`seeds`]).
//!
//! What a target asserts, beyond "does not panic":
//!
//! - request decoders (`wire`) against the generated ones: the same messages below the caps,
//!   the true count above them, and an error only where the generated decoder errs too;
//! - validators (`ParsedEntry::parse`, query and match parsing, config checks): a refusal is
//!   `INVALID_ARGUMENT` with a reason and a field; an acceptance is self-consistent (the payload
//!   is its statement's canonical encoding, the digest is of the signed bytes, the leaf decodes
//!   back to the envelope);
//! - notes, receipts and proofs: what verifies re-encodes to the same bytes, and what the
//!   verifier accepts is what was signed;
//! - text formats (TOML, JSON): what parses writes back to text that parses the same;
//! - images (`hashforum hash`): decoding never panics, and the hashes agree.
//!
//! Keys are fixed ([`LOG_SEED`], [`MEMBER_SEED`], [`WITNESS_SEED`]) so that the corpus holds
//! inputs that verify, and mutation reaches the code behind the signature checks.

mod seeds;
mod targets;

pub use seeds::seeds;
pub use targets::*;

/// The forum the targets check statements and notes for.
pub const ORIGIN: &str = crate::forum::DEV_ORIGIN;
/// Seed of the log key.
pub const LOG_SEED: [u8; 32] = [1; 32];
/// Seed of the member `alpha`'s signing key.
pub const MEMBER_SEED: [u8; 32] = [2; 32];
/// Seed of the witness key.
pub const WITNESS_SEED: [u8; 32] = [3; 32];
/// The witness's name.
pub const WITNESS: &str = "witness.fuzz/w1";
/// The member the corpus's statements are by.
pub const MEMBER: &str = "alpha";

/// A fuzz target: any bytes in, a panic when an invariant breaks.
pub type Target = fn(&[u8]);

/// Every target, by name: the names of `fuzz/fuzz_targets/*.rs` and `fuzz/corpus/*`.
pub const TARGETS: &[(&str, Target)] = &[
    ("submit_request", submit_request),
    ("statement", statement),
    ("lookup_request", lookup_request),
    ("match_request", match_request),
    ("log_leaf", log_leaf),
    ("checkpoint", checkpoint),
    ("cosignature", cosignature),
    ("receipt", receipt),
    ("proof", proof),
    ("vkey", vkey),
    ("evidence", evidence),
    ("bundle", bundle),
    ("config", config),
    ("image", image),
];

#[cfg(test)]
mod tests;
