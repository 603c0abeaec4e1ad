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

impl Dihedral {
    /// The wire enum.
    pub fn to_pb(self) -> crate::pb::Dihedral {
        use crate::pb::Dihedral as P;
        match self {
            Dihedral::Original => P::Original,
            Dihedral::Rotate90 => P::Rotate90,
            Dihedral::Rotate180 => P::Rotate180,
            Dihedral::Rotate270 => P::Rotate270,
            Dihedral::FlipX => P::FlipX,
            Dihedral::FlipY => P::FlipY,
            Dihedral::FlipPlus1 => P::FlipPlus1,
            Dihedral::FlipMinus1 => P::FlipMinus1,
        }
    }

    /// From the wire enum; unspecified is the original.
    ///
    /// # Errors
    /// For a value outside the enum.
    pub fn from_pb(v: i32) -> Result<Self, crate::types::Invalid> {
        use crate::pb::Dihedral as P;
        match P::try_from(v) {
            Ok(P::Unspecified | P::Original) => Ok(Dihedral::Original),
            Ok(P::Rotate90) => Ok(Dihedral::Rotate90),
            Ok(P::Rotate180) => Ok(Dihedral::Rotate180),
            Ok(P::Rotate270) => Ok(Dihedral::Rotate270),
            Ok(P::FlipX) => Ok(Dihedral::FlipX),
            Ok(P::FlipY) => Ok(Dihedral::FlipY),
            Ok(P::FlipPlus1) => Ok(Dihedral::FlipPlus1),
            Ok(P::FlipMinus1) => Ok(Dihedral::FlipMinus1),
            Err(_) => Err(crate::types::Invalid(format!(
                "unknown dihedral variant {v}"
            ))),
        }
    }
}

/// The hash of the transposed image (`flpp`), from the hash alone.
///
/// Bit `16 i + j` of a PDQ hash (counting from the least significant bit of the number whose
/// big-endian bytes are the hash) says whether DCT coefficient `(i, j)` exceeds the median of
/// all 256. Transposing the image transposes the DCT: the same coefficients, so the same
/// median, at `(j, i)`. The other mirrors and rotations change the sign of some coefficients,
/// and so the median: they need the image.
pub fn transposed(bits: &Bits) -> Bits {
    let bit = |k: usize| bits[31 - k / 8] >> (k % 8) & 1;
    let mut out = [0u8; 32];
    for i in 0..16 {
        for j in 0..16 {
            let k = 16 * j + i;
            out[31 - k / 8] |= bit(16 * i + j) << (k % 8);
        }
    }
    out
}

/// The Hamming distance between two hashes: how many of the 256 bits differ.
pub fn distance(a: &Bits, b: &Bits) -> u32 {
    a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum()
}
