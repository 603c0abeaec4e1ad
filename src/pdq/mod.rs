//! PDQ: Meta's perceptual image hash (256 bits), hashing on the member's side and matching by
//! Hamming distance.
//!
//! | module | scope |
//! |---|---|
//! | [`hasher`] | image bytes → PDQ hash and quality, and the 8 dihedral variants (member side) |
//! | [`index`] | the in-memory exact matching index, updated entry by entry |
//!
//! A hash is kept as its 32 bytes in the order of its hex form (`ContentHash::as_bytes`), so
//! the byte `bits[0]` is the first two hex digits.

pub mod hasher;
pub mod index;

/// A PDQ hash: 256 bits, as the 32 bytes of its hex form.
pub type Bits = [u8; 32];

/// The default matching threshold: Meta's recommendation for PDQ.
pub const DEFAULT_MAX_DISTANCE: u32 = 31;

/// The largest threshold a query may ask for. Unrelated images are about 128 bits apart; past
/// 64 a match means little, and the index answers by a full scan.
pub const MAX_DISTANCE: u32 = 64;

/// The eight rotations and mirrors of an image (the dihedral group of the square), in the
/// order and with the names of Meta's reference hasher (`pdq-photo-hasher --dihedral`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dihedral {
    /// The image as it is.
    Original,
    /// Rotated 90 degrees counter-clockwise.
    Rotate90,
    /// Rotated 180 degrees.
    Rotate180,
    /// Rotated 270 degrees counter-clockwise.
    Rotate270,
    /// Mirrored top to bottom (about the x axis), as the reference's `bridge-5-flipx.jpg`.
    FlipX,
    /// Mirrored left to right (about the y axis), as the reference's `bridge-6-flipy.jpg`.
    FlipY,
    /// Mirrored about the main diagonal (transposed).
    FlipPlus1,
    /// Mirrored about the anti-diagonal.
    FlipMinus1,
}

impl Dihedral {
    /// All eight, in the reference order.
    pub const ALL: [Dihedral; 8] = [
        Dihedral::Original,
        Dihedral::Rotate90,
        Dihedral::Rotate180,
        Dihedral::Rotate270,
        Dihedral::FlipX,
        Dihedral::FlipY,
        Dihedral::FlipPlus1,
        Dihedral::FlipMinus1,
    ];

    /// The short name the reference hasher prints (`orig`, `r090`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Dihedral::Original => "orig",
            Dihedral::Rotate90 => "r090",
            Dihedral::Rotate180 => "r180",
            Dihedral::Rotate270 => "r270",
            Dihedral::FlipX => "flpx",
            Dihedral::FlipY => "flpy",
            Dihedral::FlipPlus1 => "flpp",
            Dihedral::FlipMinus1 => "flpm",
        }
    }
}

/// The Hamming distance between two hashes: how many of the 256 bits differ.
pub fn distance(a: &Bits, b: &Bits) -> u32 {
    a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum()
}
