//! Hashing on the member's side: image bytes → PDQ hash and quality, the 8 dihedral variants,
//! and MD5 and SHA-256 of any file.
//!
//! The PDQ arithmetic (module `algorithm`) follows Meta's reference hasher and reproduces its
//! golden hashes; the image decoders are the `image` crate's (JPEG, PNG, GIF, WebP, BMP), told
//! apart by content, never by file name, and bounded by [`decode_limits`]. A different decoder
//! can move a hash by a few bits: see `tests/data/pdq/README.md`.
//!
//! Like the reference, the hasher reads pixels as stored: it does not apply an EXIF
//! orientation (`tests/data/pdq/data/reg-test-input/exif-rotn`). Rotated copies are what
//! [`hash_dihedral`] is for.
//!
//! Not here: hash submission and matching (`submit --file` and `match --file` call this).

mod algorithm;
mod file;
#[cfg(test)]
mod tests;

use std::io::Cursor;
use std::path::PathBuf;

use image::{DynamicImage, ImageError, ImageFormat, ImageReader, Limits};

use crate::pdq::{Bits, Dihedral};

pub use file::{hash_file, FileHashes, MAX_IMAGE_FILE};

/// The lowest quality at which a PDQ hash is accepted by default: below it the image is too
/// flat (few edges) for its hash to say much, as Meta advises.
pub const MIN_QUALITY: u8 = 50;

/// The largest width or height decoded, in pixels.
pub const MAX_DIMENSION: u32 = 16_384;

/// The most memory a decoder may allocate for one image, in bytes. Hashing needs about as much
/// again (two `f32` planes of the image).
pub const MAX_DECODE_ALLOC: u64 = 512 << 20;

/// A PDQ hash with its quality.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PdqHash {
    /// The 256 bits, as the 32 bytes of the hex form.
    pub bits: Bits,
    /// 0 (a flat image: the hash is noise) to 100. Compare with [`MIN_QUALITY`].
    pub quality: u8,
}

impl PdqHash {
    /// The hash of an image too small to hash (under 5 pixels either way): zero, quality 0.
    const UNHASHABLE: PdqHash = PdqHash {
        bits: [0; 32],
        quality: 0,
    };

    /// The lowercase hex form (64 digits), as a PDQ hash value is written on the wire.
    pub fn hex(&self) -> String {
        hex::encode(self.bits)
    }
}

/// Why there is no PDQ hash (or, for [`HashError::Io`], no hashes at all).
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// A file could not be opened or read. The only error of [`hash_file`] itself. The message
    /// holds the system's reason (so it is not repeated as a `source`).
    #[error("{}: {error}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        error: std::io::Error,
    },
    /// The content starts with no image signature that the decoders know.
    #[error("not an image (no JPEG, PNG, GIF, WebP or BMP signature)")]
    NotAnImage,
    /// An image format that is recognised but not decoded here (TIFF, AVIF, ...).
    #[error("unsupported image format {0} (JPEG, PNG, GIF, WebP and BMP are supported)")]
    UnsupportedFormat(String),
    /// The image is larger than the decoding limits ([`MAX_DIMENSION`], [`MAX_DECODE_ALLOC`]).
    #[error("image too large: {0}")]
    TooLarge(String),
    /// The image's bytes are corrupt, truncated or use a feature the decoder lacks.
    #[error("undecodable image: {0}")]
    Undecodable(String),
}

/// The PDQ hash of an image, with its quality.
///
/// An image under 5 pixels wide or high gets the zero hash with quality 0, as in the reference.
pub fn hash_image(img: &DynamicImage) -> PdqHash {
    match algorithm::dct_and_quality(algorithm::luma(img)) {
        Some((dct, quality)) => PdqHash {
            bits: algorithm::bits(&dct),
            quality,
        },
        None => PdqHash::UNHASHABLE,
    }
}

/// The PDQ hashes of the image's eight rotations and mirrors, in [`Dihedral::ALL`] order, the
/// first being [`hash_image`]'s.
///
/// As in the reference, they come from one DCT, transposed and with signs flipped; each is
/// thresholded at its own median. They are within a few bits of hashing the rotated or
/// mirrored image itself. All share the image's quality.
pub fn hash_dihedral(img: &DynamicImage) -> [(Dihedral, PdqHash); 8] {
    let dct = algorithm::dct_and_quality(algorithm::luma(img));
    Dihedral::ALL.map(|variant| {
        let hash = match &dct {
            Some((dct, quality)) => PdqHash {
                bits: algorithm::bits(&algorithm::dihedral(dct, variant)),
                quality: *quality,
            },
            None => PdqHash::UNHASHABLE,
        };
        (variant, hash)
    })
}

/// Decodes an image, its format told by its content: JPEG, PNG, GIF (the first frame), WebP or
/// BMP, within [`decode_limits`]. EXIF orientation is not applied (see the module doc).
///
/// # Errors
/// [`HashError::NotAnImage`] when no image signature is found,
/// [`HashError::UnsupportedFormat`] for another image format, [`HashError::TooLarge`] past the
/// limits and [`HashError::Undecodable`] for corrupt or truncated content.
pub fn decode(bytes: &[u8]) -> Result<DynamicImage, HashError> {
    let format = image_format(bytes)?;
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    reader.limits(decode_limits());
    reader.decode().map_err(|err| match err {
        ImageError::Limits(e) => HashError::TooLarge(e.to_string()),
        ImageError::Unsupported(e) => HashError::Undecodable(e.to_string()),
        other => HashError::Undecodable(other.to_string()),
    })
}

/// The limits every decode runs under, so that a hostile file (a small file claiming a huge
/// image) cannot exhaust memory: at most [`MAX_DIMENSION`] pixels either way and
/// [`MAX_DECODE_ALLOC`] bytes.
pub fn decode_limits() -> Limits {
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_DIMENSION);
    limits.max_image_height = Some(MAX_DIMENSION);
    limits.max_alloc = Some(MAX_DECODE_ALLOC);
    limits
}

/// The image format of `bytes` if it is one we decode.
fn image_format(bytes: &[u8]) -> Result<ImageFormat, HashError> {
    let format = image::guess_format(bytes).map_err(|_| HashError::NotAnImage)?;
    if format.reading_enabled() {
        Ok(format)
    } else {
        Err(HashError::UnsupportedFormat(format!("{format:?}")))
    }
}
