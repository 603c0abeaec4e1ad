//! The PDQ algorithm itself, from a luma buffer to 16x16 DCT coefficients and from those to
//! hash bits, after Meta's description (`hashing.pdf`) and reference hasher (`pdqhashing`).
//!
//! Pure: no decoding, no I/O. Arithmetic is `f32` in the reference's order of operations, so
//! that the bits come out as the reference's do:
//!
//! 1. luma = 0.299 R + 0.587 G + 0.114 B per pixel;
//! 2. a Jarosz tent filter: two rounds of a box filter along rows then along columns, each box
//!    `ceil(dimension / 128)` samples wide (half the decimation step), shrinking at the edges;
//! 3. decimation to 64x64 by taking the sample at the centre of each cell;
//! 4. quality: the sum of the absolute vertical and horizontal steps of the 64x64 buffer, in
//!    percent of full scale and truncated, divided by 90 and capped at 100;
//! 5. a 16x16 DCT (frequencies 1 to 16 of each axis: the constant term is left out);
//! 6. bit `k = 16 i + j` is set when coefficient `(i, j)` is above the median of the 256
//!    (the 128th smallest), and bit `k` is `2^k` of the hash read as a 256-bit number.

use std::sync::LazyLock;

use image::DynamicImage;

use crate::pdq::{Bits, Dihedral};

/// Images with fewer rows or columns than this get the zero hash and quality 0, as in the
/// reference.
pub(super) const MIN_HASHABLE_DIM: usize = 5;

/// The decimated buffer is 64x64; its DCT keeps 16x16 coefficients.
const SIDE: usize = 64;
const DCT_SIDE: usize = 16;

/// The 16x16 DCT coefficients of an image, row (vertical frequency) first.
pub(super) type Dct16 = [[f32; DCT_SIDE]; DCT_SIDE];

/// An image's luma, row by row.
pub(super) struct Luma {
    pub(super) width: usize,
    pub(super) height: usize,
    pub(super) pixels: Vec<f32>,
}

/// The luma of an image with the reference coefficients (ITU-R BT.601), as `f32`. Alpha is
/// ignored, as when the reference drops it; grey pixels go through the same sum as colour
/// ones (`0.299 g + 0.587 g + 0.114 g`), as they do in the reference's RGB path.
pub(super) fn luma(img: &DynamicImage) -> Luma {
    let (width, height) = (img.width() as usize, img.height() as usize);
    let pixels = match img {
        DynamicImage::ImageRgb8(buf) => luma_of(buf.as_raw(), 3, |p| (p[0], p[1], p[2])),
        DynamicImage::ImageRgba8(buf) => luma_of(buf.as_raw(), 4, |p| (p[0], p[1], p[2])),
        DynamicImage::ImageLuma8(buf) => luma_of(buf.as_raw(), 1, |p| (p[0], p[0], p[0])),
        DynamicImage::ImageLumaA8(buf) => luma_of(buf.as_raw(), 2, |p| (p[0], p[0], p[0])),
        other => luma_of(other.to_rgb8().as_raw(), 3, |p| (p[0], p[1], p[2])),
    };
    Luma {
        width,
        height,
        pixels,
    }
}

fn luma_of(raw: &[u8], channels: usize, rgb: impl Fn(&[u8]) -> (u8, u8, u8)) -> Vec<f32> {
    const R: f32 = 0.299;
    const G: f32 = 0.587;
    const B: f32 = 0.114;
    raw.chunks_exact(channels)
        .map(|p| {
            let (r, g, b) = rgb(p);
            R * f32::from(r) + G * f32::from(g) + B * f32::from(b)
        })
        .collect()
}

/// The 16x16 DCT of an image's luma and the quality (0-100), or `None` when the image is
/// smaller than [`MIN_HASHABLE_DIM`] either way.
pub(super) fn dct_and_quality(mut luma: Luma) -> Option<(Dct16, u8)> {
    let (w, h) = (luma.width, luma.height);
    if w < MIN_HASHABLE_DIM || h < MIN_HASHABLE_DIM {
        return None;
    }
    tent_filter(&mut luma.pixels, w, h);
    let small = decimate(&luma.pixels, w, h);
    Some((dct16(&small), quality(&small)))
}

/// The box width for shrinking `old` samples to `new`: half the step, rounded up.
fn window_size(old: usize, new: usize) -> usize {
    old.div_ceil(2 * new)
}

/// The Jarosz filter: two rounds of box filtering along rows then columns, in place.
fn tent_filter(pixels: &mut [f32], width: usize, height: usize) {
    let along_rows = window_size(width, SIDE);
    let along_cols = window_size(height, SIDE);
    let mut scratch = vec![0.0f32; pixels.len()];
    for _ in 0..2 {
        box_filter_rows(pixels, &mut scratch, width, along_rows);
        box_filter(&scratch, pixels, width, along_cols);
    }
}

/// Rows filtered a few at a time: a block of rows is transposed so that its rows become the
/// lanes of [`box_filter`], whose running sums then advance side by side (vectorised, where
/// one row alone would wait on each addition). Each row's arithmetic is unchanged.
fn box_filter_rows(input: &[f32], output: &mut [f32], width: usize, window: usize) {
    const BLOCK: usize = 8;
    // Sample t of the block's rows is lanes[t]; in the last block, the lanes past its rows
    // carry stale values, filtered and dropped.
    let mut lanes_in = vec![[0.0f32; BLOCK]; width];
    let mut lanes_out = vec![[0.0f32; BLOCK]; width];
    for (src, dst) in input
        .chunks(width * BLOCK)
        .zip(output.chunks_mut(width * BLOCK))
    {
        for (r, row) in src.chunks_exact(width).enumerate() {
            for (lane, &x) in lanes_in.iter_mut().zip(row) {
                lane[r] = x;
            }
        }
        box_filter(
            lanes_in.as_flattened(),
            lanes_out.as_flattened_mut(),
            BLOCK,
            window,
        );
        for (r, row) in dst.chunks_exact_mut(width).enumerate() {
            for (x, lane) in row.iter_mut().zip(&lanes_out) {
                *x = lane[r];
            }
        }
    }
}

/// One box filter over a line of samples, each sample being `lanes` independent values (1 along
/// a row; a whole row when filtering columns, so all columns advance together). At the ends
/// the window shrinks and the sum is divided by the number of samples it holds.
///
/// The window covers `half - 1` samples before the output and `window - half` after, with
/// `half = (window + 2) / 2`; the running sum adds the new sample before it drops the old one.
fn box_filter(input: &[f32], output: &mut [f32], lanes: usize, window: usize) {
    let len = input.len() / lanes;
    // The window is ceil(len / 128) samples, so never longer than the line.
    debug_assert!(window >= 1 && window <= len);
    let half = (window + 2) / 2;
    let mut sum = vec![0.0f32; lanes];
    let mut count = 0usize;
    let sample = |t: usize| &input[t * lanes..(t + 1) * lanes];
    let (mut next_in, mut next_out, mut next_drop) = (0, 0, 0);
    let emit = |sum: &[f32], count: usize, t: usize, output: &mut [f32]| {
        let n = count as f32;
        for (o, s) in output[t * lanes..(t + 1) * lanes].iter_mut().zip(sum) {
            *o = s / n;
        }
    };
    // The first samples of the window, before any output.
    for _ in 0..half - 1 {
        add(&mut sum, sample(next_in));
        next_in += 1;
        count += 1;
    }
    // A growing window.
    for _ in 0..window - half + 1 {
        add(&mut sum, sample(next_in));
        next_in += 1;
        count += 1;
        emit(&sum, count, next_out, output);
        next_out += 1;
    }
    // The full window.
    for _ in 0..len - window {
        add(&mut sum, sample(next_in));
        sub(&mut sum, sample(next_drop));
        next_in += 1;
        next_drop += 1;
        emit(&sum, count, next_out, output);
        next_out += 1;
    }
    // A shrinking window.
    for _ in 0..half - 1 {
        sub(&mut sum, sample(next_drop));
        next_drop += 1;
        count -= 1;
        emit(&sum, count, next_out, output);
        next_out += 1;
    }
}

fn add(sum: &mut [f32], sample: &[f32]) {
    for (s, x) in sum.iter_mut().zip(sample) {
        *s += x;
    }
}

fn sub(sum: &mut [f32], sample: &[f32]) {
    for (s, x) in sum.iter_mut().zip(sample) {
        *s -= x;
    }
}

/// The sample nearest the centre of each cell of a 64x64 grid.
fn decimate(pixels: &[f32], width: usize, height: usize) -> Vec<f32> {
    // The centre of cell i of n over len samples: floor((i + 0.5) * len / n), in f64.
    let centre = |i: usize, len: usize| ((i as f64 + 0.5) * len as f64 / SIDE as f64) as usize;
    let mut out = Vec::with_capacity(SIDE * SIDE);
    for i in 0..SIDE {
        let row = &pixels[centre(i, height) * width..];
        out.extend((0..SIDE).map(|j| row[centre(j, width)]));
    }
    out
}

/// The reference's quality metric of the 64x64 buffer: 0 for a flat image, 100 for a busy one.
fn quality(small: &[f32]) -> u8 {
    let step = |u: f32, v: f32| (((u - v) * 100.0 / 255.0) as i32).unsigned_abs();
    let mut total: u32 = 0;
    for i in 0..SIDE - 1 {
        for j in 0..SIDE {
            total += step(small[i * SIDE + j], small[(i + 1) * SIDE + j]);
        }
    }
    for i in 0..SIDE {
        for j in 0..SIDE - 1 {
            total += step(small[i * SIDE + j], small[i * SIDE + j + 1]);
        }
    }
    // At most 100, so it fits in a u8.
    (total / 90).min(100) as u8
}

/// `D[i][j] = sqrt(2/64) cos(pi/128 (i + 1) (2j + 1))`: computed in f64, kept as f32.
static DCT_MATRIX: LazyLock<[[f32; SIDE]; DCT_SIDE]> = LazyLock::new(|| {
    let scale = (2.0f64 / SIDE as f64).sqrt();
    let mut d = [[0.0f32; SIDE]; DCT_SIDE];
    for (i, row) in d.iter_mut().enumerate() {
        for (j, x) in row.iter_mut().enumerate() {
            let angle = (std::f64::consts::PI / 2.0 / SIDE as f64) * (i + 1) as f64;
            *x = (scale * (angle * (2 * j + 1) as f64).cos()) as f32;
        }
    }
    d
});

/// `D A D^T` for the 64x64 buffer `A`, each sum accumulated in f32 in order of `k`.
fn dct16(small: &[f32]) -> Dct16 {
    let d = &*DCT_MATRIX;
    // T = D A (16x64). The loop over j is innermost so it runs over rows of A; each T[i][j]
    // still sums its terms in order of k.
    let mut t = [[0.0f32; SIDE]; DCT_SIDE];
    for (t_row, d_row) in t.iter_mut().zip(d) {
        for (k, dk) in d_row.iter().enumerate() {
            for (x, a) in t_row.iter_mut().zip(&small[k * SIDE..(k + 1) * SIDE]) {
                *x += dk * a;
            }
        }
    }
    let mut b = [[0.0f32; DCT_SIDE]; DCT_SIDE];
    for (b_row, t_row) in b.iter_mut().zip(&t) {
        for (x, d_row) in b_row.iter_mut().zip(d) {
            *x = t_row.iter().zip(d_row).fold(0.0f32, |s, (p, q)| s + p * q);
        }
    }
    b
}

/// The hash bits of a 16x16 DCT: bit `16 i + j` set when `dct[i][j]` exceeds the median.
pub(super) fn bits(dct: &Dct16) -> Bits {
    let mut sorted: Vec<f32> = dct.iter().flatten().copied().collect();
    // The median is the 128th smallest of 256 (the lower middle), as the reference's Torben
    // selection returns.
    let (_, &mut median, _) = sorted.select_nth_unstable_by(127, f32::total_cmp);
    let mut out = [0u8; 32];
    for (k, &x) in dct.iter().flatten().enumerate() {
        if x > median {
            // Bit k of the number whose big-endian bytes are the hash.
            out[31 - k / 8] |= 1 << (k % 8);
        }
    }
    out
}

/// The DCT of a rotated or mirrored image, from the DCT of the image.
///
/// Mirroring an axis multiplies the coefficient of frequency `f` along it by `(-1)^f`; index
/// `i` holds frequency `i + 1`, so the even indices change sign. Swapping the axes
/// (transposition) swaps the indices.
pub(super) fn dihedral(dct: &Dct16, variant: Dihedral) -> Dct16 {
    // (transposed, whether out[i][j] changes sign)
    let (transpose, negate): (bool, fn(usize, usize) -> bool) = match variant {
        Dihedral::Original => (false, |_, _| false),
        // The reference's flip-x mirrors top to bottom (about the x axis), its flip-y left to
        // right, as its `dih/bridge-5-flipx.jpg` and `bridge-6-flipy.jpg` are.
        Dihedral::FlipX => (false, |i, _| i % 2 == 0),
        Dihedral::FlipY => (false, |_, j| j % 2 == 0),
        Dihedral::Rotate180 => (false, |i, j| (i + j) % 2 == 1),
        Dihedral::FlipPlus1 => (true, |_, _| false),
        Dihedral::Rotate90 => (true, |i, _| i % 2 == 0),
        Dihedral::Rotate270 => (true, |_, j| j % 2 == 0),
        Dihedral::FlipMinus1 => (true, |i, j| (i + j) % 2 == 1),
    };
    let mut out = [[0.0f32; DCT_SIDE]; DCT_SIDE];
    for (i, row) in out.iter_mut().enumerate() {
        for (j, x) in row.iter_mut().enumerate() {
            let v = if transpose { dct[j][i] } else { dct[i][j] };
            *x = if negate(i, j) { -v } else { v };
        }
    }
    out
}
