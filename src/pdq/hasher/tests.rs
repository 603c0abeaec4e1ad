//! The hasher against Meta's reference: the images and expected hashes in `tests/data/pdq`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use image::{DynamicImage, ImageFormat, Rgb, RgbImage};
use sha2::Digest;

use super::*;
use crate::pdq::distance;

/// `tests/data/pdq`, where the paths in the tables start.
fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/pdq")
}

/// A table path as a file here: upstream's deleted `misc-images/b.jpg` was the same file as
/// `dih/bridge-1-original.jpg`.
fn image_path(table_path: &str) -> PathBuf {
    let path = match table_path {
        "data/misc-images/b.jpg" => "data/reg-test-input/dih/bridge-1-original.jpg",
        other => other,
    };
    data_dir().join(path)
}

fn load(table_path: &str) -> DynamicImage {
    let path = image_path(table_path);
    decode(&std::fs::read(&path).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The hash of a table's image, computed once per test binary (the EXIF photos are 12 MP).
fn hash_of(table_path: &str) -> PdqHash {
    static CACHE: OnceLock<Mutex<HashMap<String, PdqHash>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(hash) = cache.lock().unwrap().get(table_path) {
        return *hash;
    }
    let hash = hash_image(&load(table_path));
    cache.lock().unwrap().insert(table_path.to_owned(), hash);
    hash
}

fn bits(hex_value: &str) -> Bits {
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_value, &mut out).unwrap();
    out
}

/// The rows of an expected table (comment lines skipped), as maps from column name to value.
fn table(name: &str) -> Vec<HashMap<String, String>> {
    let text = std::fs::read_to_string(data_dir().join("expected").join(name)).unwrap();
    let mut lines = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty());
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    lines
        .map(|l| {
            let fields = l.splitn(header.len(), ',');
            header
                .iter()
                .map(|h| h.to_string())
                .zip(fields.map(str::to_owned))
                .collect()
        })
        .collect()
}

/// The largest distance from our hash to a table's `column`, with the path where it is, after
/// checking that each is at most `tolerance`.
fn check_table(name: &str, column: &str, tolerance: u32) -> (u32, String) {
    let rows = table(name);
    assert!(!rows.is_empty(), "{name}");
    let mut worst = (0, String::new());
    for row in &rows {
        let path = &row["path"];
        let d = distance(&hash_of(path).bits, &bits(&row[column]));
        eprintln!("{name}: {path}: {d}");
        assert!(d <= tolerance, "{name}: {path} is {d} bits away");
        if d > worst.0 || worst.1.is_empty() {
            worst = (d, path.clone());
        }
    }
    eprintln!(
        "{name}: max distance {} ({}) over {} rows",
        worst.0,
        worst.1,
        rows.len()
    );
    worst
}

/// Meta's golden hashes (asserted by its Java and HMA tests) come out exactly.
#[test]
fn reference_goldens_exactly() {
    let (max, at) = check_table("reference-golden.csv", "hash", 0);
    assert_eq!(max, 0, "{at}");
}

/// Every other published list is within upstream's tolerance of 16 bits (they come from other
/// decoders and builds).
#[test]
fn upstream_lists_within_16_bits() {
    for name in [
        "wasm-testdata.csv",
        "cpp-readme-reg-test-input.csv",
        "python-port-test.csv",
        "python-port-readme-bridge-mods.csv",
    ] {
        check_table(name, "hash", 16);
    }
}

/// The C++ hasher through PyPI `pdqhash` 0.2.8 (Pillow decoding, RGB path): within 16 bits, and
/// its quality within a point of ours.
#[test]
fn pdqhash_package_within_16_bits_and_same_quality() {
    check_table("computed-pdqhash-0.2.8.csv", "hash_rgb", 16);
    for row in table("computed-pdqhash-0.2.8.csv") {
        let ours = i32::from(hash_of(&row["path"]).quality);
        let theirs: i32 = row["quality_rgb"].parse().unwrap();
        assert!(
            (ours - theirs).abs() <= 1,
            "{}: {ours} vs {theirs}",
            row["path"]
        );
    }
}

const BRIDGE: &str = "data/reg-test-input/dih/bridge-1-original.jpg";

/// The distances Meta's Java test asserts: rotate-90 = 120, pen-and-coaster = 138, grayscale =
/// 0, half size = 4 there (2 with Pillow's resizer).
#[test]
fn reference_distances() {
    let original = hash_of(BRIDGE).bits;
    let d = |other: &Bits| distance(&original, other);
    assert_eq!(
        d(&hash_of("data/reg-test-input/dih/bridge-2-rotate-90.jpg").bits),
        120
    );
    assert_eq!(
        d(&hash_of("data/reg-test-input/pen-and-coaster.png").bits),
        138
    );
    // Grayscale with the same (BT.601) weights, here and by Pillow (`L.png`).
    let img = load(BRIDGE);
    let rgb = img.to_rgb8();
    let grey = image::GrayImage::from_fn(img.width(), img.height(), |x, y| {
        let [r, g, b] = rgb.get_pixel(x, y).0.map(u32::from);
        image::Luma([((299 * r + 587 * g + 114 * b + 500) / 1000) as u8])
    });
    assert_eq!(d(&hash_image(&DynamicImage::ImageLuma8(grey)).bits), 0);
    assert_eq!(d(&hash_of("data/misc-images/modes/L.png").bits), 0);
    let half = img.resize_exact(
        img.width() / 2,
        img.height() / 2,
        image::imageops::FilterType::Triangle,
    );
    let half_distance = d(&hash_image(&half).bits);
    eprintln!("half size: {half_distance}");
    assert!(half_distance <= 6, "{half_distance}");
}

/// Each dihedral variant of bridge-1, computed from its DCT, is within a few bits of hashing
/// the rotated or mirrored file in `dih/`.
#[test]
fn dihedral_variants_match_the_rotated_files() {
    let files = [
        (Dihedral::Original, "bridge-1-original.jpg"),
        (Dihedral::Rotate90, "bridge-2-rotate-90.jpg"),
        (Dihedral::Rotate180, "bridge-3-rotate-180.jpg"),
        (Dihedral::Rotate270, "bridge-4-rotate-270.jpg"),
        (Dihedral::FlipX, "bridge-5-flipx.jpg"),
        (Dihedral::FlipY, "bridge-6-flipy.jpg"),
        (Dihedral::FlipPlus1, "bridge-7-flip-plus-1.jpg"),
        (Dihedral::FlipMinus1, "bridge-8-flip-minus-1.jpg"),
    ];
    let variants = hash_dihedral(&load(BRIDGE));
    assert_eq!(variants[0].1, hash_of(BRIDGE));
    for ((variant, hash), (expected, file)) in variants.iter().zip(files) {
        assert_eq!(*variant, expected);
        let direct = hash_of(&format!("data/reg-test-input/dih/{file}"));
        let d = distance(&hash.bits, &direct.bits);
        eprintln!("{}: {d}", variant.name());
        assert!(d <= 8, "{}: {d} bits from {file}", variant.name());
        assert_eq!(hash.quality, direct.quality);
    }
}

/// Like the reference, the hasher ignores EXIF orientation: `exif-rotn-6.jpg` says "rotate 90"
/// and hashes as stored, to the reference's value.
#[test]
fn exif_orientation_is_not_applied() {
    use image::ImageDecoder;
    let path = "data/reg-test-input/exif-rotn/exif-rotn-6.jpg";
    let bytes = std::fs::read(image_path(path)).unwrap();
    let mut decoder = image::codecs::jpeg::JpegDecoder::new(std::io::Cursor::new(&bytes)).unwrap();
    assert_eq!(
        decoder.orientation().unwrap(),
        image::metadata::Orientation::Rotate90
    );
    let reference = bits("e9782aad54ae0b6365315ac278592d6ad4b5434a5bcd7471f7abcb594b481a94");
    assert!(distance(&hash_of(path).bits, &reference) <= 2);
}

/// A synthetic image with edges everywhere: a diagonal pattern and a disc.
fn pattern(width: u32, height: u32) -> DynamicImage {
    DynamicImage::ImageRgb8(RgbImage::from_fn(width, height, |x, y| {
        let (dx, dy) = (x as i32 - 40, y as i32 - 30);
        let disc = if dx * dx + dy * dy < 400 { 200 } else { 0 };
        Rgb([
            ((x * 7 + y * 3) % 256) as u8,
            disc,
            ((x ^ y) * 5 % 256) as u8,
        ])
    }))
}

fn encoded(img: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

/// JPEG, PNG, GIF, WebP and BMP decode by content; the lossless ones hash exactly as the pixels.
#[test]
fn formats_are_detected_by_content() {
    let img = pattern(120, 90);
    let expected = hash_image(&img);
    for (format, tolerance) in [
        (ImageFormat::Png, 0),
        (ImageFormat::Bmp, 0),
        (ImageFormat::WebP, 0),
        (ImageFormat::Gif, 24),
        (ImageFormat::Jpeg, 24),
    ] {
        let hash = hash_image(&decode(&encoded(&img, format)).unwrap());
        let d = distance(&hash.bits, &expected.bits);
        assert!(d <= tolerance, "{format:?}: {d}");
    }
}

/// Undecodable input is refused with the reason, never a panic.
#[test]
fn bad_input_is_refused_with_the_reason() {
    assert!(matches!(
        decode(b"hello, world"),
        Err(HashError::NotAnImage)
    ));
    assert!(matches!(decode(b""), Err(HashError::NotAnImage)));
    let tiff = b"II*\0\x08\0\0\0\0\0\0\0\0\0\0\0";
    let err = decode(tiff).unwrap_err();
    assert!(
        matches!(&err, HashError::UnsupportedFormat(f) if f == "Tiff"),
        "{err}"
    );
    let png = encoded(&pattern(64, 64), ImageFormat::Png);
    let err = decode(&png[..png.len() / 2]).unwrap_err();
    assert!(matches!(err, HashError::Undecodable(_)), "{err}");
}

/// A tiny file claiming a huge image is refused before anything is allocated for it.
#[test]
fn decoding_is_bounded() {
    // A BMP header (54 bytes) for 20000 x 20000 pixels of 24 bits, and no pixels.
    let mut bmp = Vec::new();
    bmp.extend_from_slice(b"BM");
    bmp.extend_from_slice(&54u32.to_le_bytes()); // file size (ignored)
    bmp.extend_from_slice(&0u32.to_le_bytes());
    bmp.extend_from_slice(&54u32.to_le_bytes()); // pixel data offset
    bmp.extend_from_slice(&40u32.to_le_bytes()); // BITMAPINFOHEADER
    bmp.extend_from_slice(&20_000i32.to_le_bytes());
    bmp.extend_from_slice(&20_000i32.to_le_bytes());
    bmp.extend_from_slice(&1u16.to_le_bytes());
    bmp.extend_from_slice(&24u16.to_le_bytes());
    bmp.extend_from_slice(&[0; 24]);
    let err = decode(&bmp).unwrap_err();
    assert!(matches!(err, HashError::TooLarge(_)), "{err}");
}

/// Under 5 pixels either way there is no hash (zero, quality 0), as in the reference; at 5 there
/// is.
#[test]
fn tiny_images_get_the_zero_hash() {
    let unhashable = PdqHash {
        bits: [0; 32],
        quality: 0,
    };
    assert_eq!(hash_image(&pattern(4, 100)), unhashable);
    assert!(hash_dihedral(&pattern(100, 4))
        .iter()
        .all(|(_, h)| *h == unhashable));
    assert_ne!(hash_image(&pattern(5, 5)).bits, [0; 32]);
}

/// A flat image has quality 0, below [`MIN_QUALITY`]; a busy one 100.
#[test]
fn quality_separates_flat_from_busy_images() {
    let flat = DynamicImage::ImageRgb8(RgbImage::from_pixel(200, 100, Rgb([90, 90, 90])));
    assert_eq!(hash_image(&flat).quality, 0);
    assert_eq!(hash_of(BRIDGE).quality, 100);
    assert!(hash_of("data/misc-images/small.jpg").quality < MIN_QUALITY);
}

fn temp_file(bytes: &[u8]) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut file, bytes).unwrap();
    file
}

/// MD5 and SHA-256 of any file; a non-image has no PDQ hash, and says why.
#[test]
fn hash_file_digests_any_file() {
    let file = temp_file(b"abc");
    let hashes = hash_file(file.path()).unwrap();
    assert_eq!(hex::encode(hashes.md5), "900150983cd24fb0d6963f7d28e17f72");
    assert_eq!(
        hex::encode(hashes.sha256),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert!(matches!(hashes.pdq, Err(HashError::NotAnImage)));
    assert!(hashes.dihedral.is_none());
    // Longer than one read, and not an image.
    let big = vec![b'x'; 200_000];
    let hashes = hash_file(temp_file(&big).path()).unwrap();
    assert_eq!(hashes.sha256, <[u8; 32]>::from(sha2::Sha256::digest(&big)));
    assert!(matches!(hashes.pdq, Err(HashError::NotAnImage)));
}

/// An image file gets the same PDQ hash and variants as its decoded image, and the digests of
/// its bytes.
#[test]
fn hash_file_hashes_images() {
    let path = image_path("data/reg-test-input/pen-and-coaster.png");
    let hashes = hash_file(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(
        hashes.sha256,
        <[u8; 32]>::from(sha2::Sha256::digest(&bytes))
    );
    assert_eq!(hashes.md5, <[u8; 16]>::from(md5::Md5::digest(&bytes)));
    let img = decode(&bytes).unwrap();
    assert_eq!(hashes.pdq.unwrap(), hash_image(&img));
    assert_eq!(hashes.dihedral.unwrap(), hash_dihedral(&img));
    assert_eq!(
        hash_of("data/reg-test-input/pen-and-coaster.png").hex(),
        "1f811b9d267fbc6693c0c7f30e041f9df49b836303e10f067fcdfc12c02d01f9"
    );
}

/// A file that cannot be read is an error naming it.
#[test]
fn hash_file_names_a_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-such-image.jpg");
    let err = hash_file(&path).unwrap_err();
    assert!(matches!(err, HashError::Io { .. }));
    assert!(err.to_string().contains("no-such-image.jpg"), "{err}");
}
