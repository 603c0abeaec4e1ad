//! The hashes of a local file: MD5 and SHA-256 of every file, PDQ of images.
//!
//! The file is read once, in chunks that feed both digests. The bytes are kept for decoding
//! only while they may be an image: from the first bytes on (the signature) a file that is not
//! one is streamed without being held, and an image file larger than [`MAX_IMAGE_FILE`] is not
//! decoded.

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::path::Path;

use md5::Md5;
use sha2::{Digest, Sha256};

use super::{decode, hash_dihedral, image_format, HashError, PdqHash};
use crate::pdq::Dihedral;

/// The largest image file decoded, in bytes (a 12-megapixel photo is a few MB as JPEG and
/// tens of MB as PNG).
pub const MAX_IMAGE_FILE: usize = 128 << 20;

/// Enough bytes to recognise every image signature the decoders know.
const SIGNATURE_LEN: usize = 32;

/// The read size.
const CHUNK: usize = 64 << 10;

/// The hashes of one file.
#[derive(Debug)]
pub struct FileHashes {
    /// MD5 of the content.
    pub md5: [u8; 16],
    /// SHA-256 of the content.
    pub sha256: [u8; 32],
    /// The PDQ hash when the content is a decodable image, else why not (never
    /// [`HashError::Io`]).
    pub pdq: Result<PdqHash, HashError>,
    /// The PDQ hashes of the image's rotations and mirrors ([`hash_dihedral`]; the first is
    /// `pdq`), present exactly when `pdq` is.
    pub dihedral: Option<[(Dihedral, PdqHash); 8]>,
}

/// Hashes a local file: MD5 and SHA-256 always, PDQ when it is an image. The content never
/// leaves the machine.
///
/// A file that is not an image, or not a decodable one, is not an error: its `pdq` says why
/// there is no PDQ hash.
///
/// # Errors
/// [`HashError::Io`], naming the file, when it cannot be opened or read.
pub fn hash_file(path: &Path) -> Result<FileHashes, HashError> {
    let io_error = |error| HashError::Io {
        path: path.to_owned(),
        error,
    };
    let mut file = File::open(path).map_err(io_error)?;
    let (mut md5, mut sha256) = (Md5::new(), Sha256::new());
    let mut kept = Kept::Undecided(Vec::new());
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_error(e)),
        };
        md5.update(&buf[..n]);
        sha256.update(&buf[..n]);
        kept.push(&buf[..n]);
    }
    let (pdq, dihedral) = match kept.finish().and_then(|bytes| decode(&bytes)) {
        Ok(img) => {
            let variants = hash_dihedral(&img);
            (Ok(variants[0].1), Some(variants))
        }
        Err(e) => (Err(e), None),
    };
    Ok(FileHashes {
        md5: md5.finalize().into(),
        sha256: sha256.finalize().into(),
        pdq,
        dihedral,
    })
}

/// The bytes kept for decoding while a file is read.
enum Kept {
    /// Too few bytes yet to tell whether it is an image.
    Undecided(Vec<u8>),
    /// An image so far: all its bytes.
    Image(Vec<u8>),
    /// Nothing kept, and why there will be no PDQ hash.
    Dropped(HashError),
}

impl Kept {
    fn push(&mut self, chunk: &[u8]) {
        match self {
            Kept::Undecided(bytes) => {
                bytes.extend_from_slice(chunk);
                if bytes.len() >= SIGNATURE_LEN {
                    let bytes = std::mem::take(bytes);
                    *self = Kept::decide(bytes);
                }
            }
            Kept::Image(bytes) if bytes.len() + chunk.len() > MAX_IMAGE_FILE => {
                *self = Kept::Dropped(HashError::TooLarge(format!(
                    "file of more than {} MiB",
                    MAX_IMAGE_FILE >> 20
                )));
            }
            Kept::Image(bytes) => bytes.extend_from_slice(chunk),
            Kept::Dropped(_) => {}
        }
    }

    fn decide(bytes: Vec<u8>) -> Kept {
        match image_format(&bytes) {
            Ok(_) => Kept::Image(bytes),
            Err(e) => Kept::Dropped(e),
        }
    }

    /// The whole image file, or why there is none.
    fn finish(self) -> Result<Vec<u8>, HashError> {
        match self {
            Kept::Undecided(bytes) => image_format(&bytes).map(|_| bytes),
            Kept::Image(bytes) => Ok(bytes),
            Kept::Dropped(e) => Err(e),
        }
    }
}
