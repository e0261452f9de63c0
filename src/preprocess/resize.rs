//! The geometric steps: the resize target size ([`resize_target`]), a
//! bit-exact port of Pillow's resampler ([`resize_pil`], after Pillow's
//! `src/libImaging/Resample.c`) and the center crop ([`center_crop`]).

use image::RgbImage;

use super::config::{CropOffset, Resize};
use super::error::{invalid, PreprocessError};
use super::resample::Resample;

/// Fixed-point precision of Pillow's 8-bit resampler: 32 bits minus 8 for the
/// value minus 2 for overflow headroom.
/// Source: Pillow `src/libImaging/Resample.c` `PRECISION_BITS`.
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Output `(height, width)` of a resize step for an `h`×`w` input.
///
/// `ShortestEdge(s)` follows torchvision's `_compute_resized_output_size` and
/// transformers' `get_resize_output_image_size`: the shorter side becomes `s`,
/// the longer `int(s * long / short)` in float64.
pub fn resize_target(resize: Resize, h: u32, w: u32) -> (u32, u32) {
    match resize {
        Resize::Exact { height, width } => (height, width),
        Resize::ShortestEdge(s) => {
            let (short, long) = if w <= h { (w, h) } else { (h, w) };
            let new_long = (f64::from(s) * f64::from(long) / f64::from(short.max(1))) as u32;
            if w <= h {
                (new_long, s)
            } else {
                (s, new_long)
            }
        }
    }
}

/// Center crop to `crop_h`×`crop_w`, with the offset rounding of `offset`.
/// Fails if the crop is larger than the image (transformers would pad with
/// zeros instead; vit-lens refuses, since a padded input is never what a
/// checkpoint was evaluated on).
pub fn center_crop(
    image: &RgbImage,
    crop_h: u32,
    crop_w: u32,
    offset: CropOffset,
) -> Result<RgbImage, PreprocessError> {
    let (w, h) = image.dimensions();
    if crop_h > h || crop_w > w || crop_h == 0 || crop_w == 0 {
        return Err(PreprocessError::CropTooLarge {
            crop_height: crop_h,
            crop_width: crop_w,
            height: h,
            width: w,
        });
    }
    let start = |margin: u32| match offset {
        CropOffset::Floor => margin / 2,
        CropOffset::RoundHalfEven => {
            let half = margin / 2;
            // margin / 2.0 = half + 0.5 when odd: ties go to the even neighbour.
            if margin % 2 == 1 && half % 2 == 1 {
                half + 1
            } else {
                half
            }
        }
    };
    let top = start(h - crop_h) as usize;
    let left = start(w - crop_w) as usize;
    let (cw, ch) = (crop_w as usize, crop_h as usize);
    let src = image.as_raw();
    let row_bytes = w as usize * 3;
    let mut out = Vec::with_capacity(cw * ch * 3);
    for y in top..top + ch {
        let start = y * row_bytes + left * 3;
        out.extend_from_slice(&src[start..start + cw * 3]);
    }
    RgbImage::from_raw(crop_w, crop_h, out)
        .ok_or(PreprocessError::Internal("center crop buffer size"))
}

/// Resizes like Pillow's `Image.resize((width, height), resample)` on an RGB
/// image, bit for bit: the separable two-pass fixed-point convolution of
/// `Resample.c` for every filter but [`Resample::Nearest`], which Pillow (and
/// this function) does as an affine scale.
///
/// The pass order follows Pillow 13: horizontal then vertical, except that
/// the vertical pass goes first when the height shrinks by more than twice as
/// many pixels as the width. Pillow 12.1 and older always go horizontal
/// first (12.2 and 12.3 only for images over 100 times taller than wide), so
/// for such strongly height-reducing resizes results differ from older
/// Pillow by up to a few levels.
///
/// Input `W`×`H`, output `width`×`height`; the same size returns a copy.
pub fn resize_pil(
    image: &RgbImage,
    width: u32,
    height: u32,
    resample: Resample,
) -> Result<RgbImage, PreprocessError> {
    let (in_w, in_h) = image.dimensions();
    if width == 0 || height == 0 || in_w == 0 || in_h == 0 {
        return Err(invalid(
            "size",
            format!(
                "cannot resize {in_w}×{in_h} to {width}×{height}; both sizes must be at least 1×1"
            ),
        ));
    }
    if (width, height) == (in_w, in_h) {
        return Ok(image.clone());
    }
    let (support, weight): (f64, fn(f64) -> f64) = match resample {
        Resample::Nearest => return resize_nearest(image, width, height),
        Resample::Lanczos => (3.0, lanczos_filter),
        Resample::Bilinear => (1.0, bilinear_filter),
        Resample::Bicubic => (2.0, bicubic_filter),
        Resample::Box => (0.5, box_filter),
        Resample::Hamming => (1.0, hamming_filter),
    };
    let filter = Filter { support, weight };

    let (in_w_us, in_h_us) = (in_w as usize, in_h as usize);
    let (out_w, out_h) = (width as usize, height as usize);
    let need_horizontal = out_w != in_w_us;
    let need_vertical = out_h != in_h_us;
    let src = image.as_raw();

    // Pillow 13 runs the vertical pass first when the height shrinks by more
    // than twice as many pixels as the width does (`ImagingResampleInner`);
    // the rounding to uint8 between the passes makes the order visible.
    let shrink_h = i64::from(in_h) - i64::from(height);
    let shrink_w = i64::from(in_w) - i64::from(width);
    let vertical_first = shrink_h > 0 && shrink_h > shrink_w * 2;

    let out = if vertical_first {
        let vert = Taps::new(in_h_us, out_h, filter);
        let mid = vertical_pass(src, in_w_us, 0, &vert);
        if need_horizontal {
            horizontal_pass(&mid, in_w_us, &Taps::new(in_w_us, out_w, filter))
        } else {
            mid
        }
    } else {
        let vert = Taps::new(in_h_us, out_h, filter);
        // Only the source rows the vertical pass reads go through the
        // horizontal pass.
        let first_row = vert.bounds.first().map_or(0, |b| b.0);
        let last_row = vert.bounds.last().map_or(in_h_us, |b| b.0 + b.1);
        let (mid, mid_w, mid_first) = if need_horizontal {
            let horiz = Taps::new(in_w_us, out_w, filter);
            let rows = &src[first_row * in_w_us * 3..last_row * in_w_us * 3];
            (horizontal_pass(rows, in_w_us, &horiz), out_w, first_row)
        } else {
            (src.clone(), in_w_us, 0)
        };
        if need_vertical {
            vertical_pass(&mid, mid_w, mid_first, &vert)
        } else {
            mid
        }
    };
    RgbImage::from_raw(width, height, out).ok_or(PreprocessError::Internal("resize buffer size"))
}

/// A separable filter: weight function and support (half-width at scale 1).
#[derive(Clone, Copy)]
struct Filter {
    support: f64,
    weight: fn(f64) -> f64,
}

// The kernels, as in Pillow `src/libImaging/Resample.c`.

fn box_filter(x: f64) -> f64 {
    if x > -0.5 && x <= 0.5 {
        1.0
    } else {
        0.0
    }
}

fn bilinear_filter(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 {
        1.0 - x
    } else {
        0.0
    }
}

fn hamming_filter(x: f64) -> f64 {
    let x = x.abs();
    if x == 0.0 {
        1.0
    } else if x >= 1.0 {
        0.0
    } else {
        let x = x * std::f64::consts::PI;
        // Pillow writes the window constants as C `float` literals (0.54f,
        // 0.46f); their f32 values matter for bit-exactness.
        x.sin() / x * (f64::from(0.54_f32) + f64::from(0.46_f32) * x.cos())
    }
}

fn bicubic_filter(x: f64) -> f64 {
    // Cubic convolution with a = -0.5 (Keys).
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        1.0
    } else {
        let x = x * std::f64::consts::PI;
        x.sin() / x
    }
}

fn lanczos_filter(x: f64) -> f64 {
    if (-3.0..3.0).contains(&x) {
        sinc(x) * sinc(x / 3.0)
    } else {
        0.0
    }
}

/// Fixed-point taps for one axis: for output index `i`, `bounds[i]` is
/// (first input index, number of taps) and the taps are
/// `coeffs[i * ksize .. i * ksize + count]`, scaled by `2^PRECISION_BITS`.
struct Taps {
    bounds: Vec<(usize, usize)>,
    coeffs: Vec<i32>,
    ksize: usize,
}

impl Taps {
    /// Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc` for resampling
    /// `in_size` samples to `out_size` (both ≥ 1).
    fn new(in_size: usize, out_size: usize, filter: Filter) -> Self {
        // Pillow: scale = (double)(in1 - in0) / outSize, box edges as C floats.
        let scale = f64::from(in_size as f32) / out_size as f64;
        let filterscale = scale.max(1.0);
        let support = filter.support * filterscale;
        let ksize = support.ceil() as usize * 2 + 1;
        let inv_filterscale = 1.0 / filterscale;

        let mut bounds = Vec::with_capacity(out_size);
        let mut coeffs = vec![0_i32; out_size * ksize];
        let mut weights = vec![0.0_f64; ksize];
        for (xx, taps) in coeffs.chunks_exact_mut(ksize).enumerate() {
            let center = (xx as f64 + 0.5) * scale;
            // C `(int)` truncates toward zero.
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).clamp(0, in_size as i64) as usize;
            let count = xmax.saturating_sub(xmin).min(ksize);
            let mut total = 0.0;
            for (x, w) in weights.iter_mut().take(count).enumerate() {
                *w = (filter.weight)(((x + xmin) as f64 - center + 0.5) * inv_filterscale);
                total += *w;
            }
            for (tap, &w) in taps.iter_mut().zip(&weights).take(count) {
                let w = if total != 0.0 { w / total } else { w };
                let scaled = w * f64::from(1_u32 << PRECISION_BITS);
                *tap = if w < 0.0 {
                    (-0.5 + scaled) as i32
                } else {
                    (0.5 + scaled) as i32
                };
            }
            bounds.push((xmin, count));
        }
        Self {
            bounds,
            coeffs,
            ksize,
        }
    }

    fn taps(&self, i: usize) -> (usize, &[i32]) {
        let (first, count) = self.bounds[i];
        let start = i * self.ksize;
        (first, &self.coeffs[start..start + count])
    }
}

/// Pillow's `clip8`: drop the fraction bits and clamp to 0..=255.
#[inline]
fn clip8(acc: i64) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Rounding bias added before the shift: one half in fixed point.
const HALF: i64 = 1 << (PRECISION_BITS - 1);

/// Horizontal pass over `rows` (RGB, `in_w` wide) → RGB rows `taps.bounds.len()` wide.
fn horizontal_pass(rows: &[u8], in_w: usize, taps: &Taps) -> Vec<u8> {
    let out_w = taps.bounds.len();
    let n_rows = rows.len() / (in_w * 3);
    let mut out = vec![0_u8; n_rows * out_w * 3];
    for (src_row, dst_row) in rows
        .chunks_exact(in_w * 3)
        .zip(out.chunks_exact_mut(out_w * 3))
    {
        for (xx, dst) in dst_row.chunks_exact_mut(3).enumerate() {
            let (first, k) = taps.taps(xx);
            let mut acc = [HALF; 3];
            let src = &src_row[first * 3..(first + k.len()) * 3];
            for (px, &kv) in src.chunks_exact(3).zip(k) {
                let kv = i64::from(kv);
                acc[0] += i64::from(px[0]) * kv;
                acc[1] += i64::from(px[1]) * kv;
                acc[2] += i64::from(px[2]) * kv;
            }
            dst[0] = clip8(acc[0]);
            dst[1] = clip8(acc[1]);
            dst[2] = clip8(acc[2]);
        }
    }
    out
}

/// Vertical pass over `src` (RGB, `width` wide, its first row being source
/// row `first_row`) → `taps.bounds.len()` rows.
fn vertical_pass(src: &[u8], width: usize, first_row: usize, taps: &Taps) -> Vec<u8> {
    let row_len = width * 3;
    let out_h = taps.bounds.len();
    let mut out = vec![0_u8; out_h * row_len];
    let mut acc = vec![0_i64; row_len];
    for (yy, dst_row) in out.chunks_exact_mut(row_len).enumerate() {
        let (first, k) = taps.taps(yy);
        acc.fill(HALF);
        // Integer sums are exact, so summing row by row equals Pillow's
        // per-pixel loop.
        for (i, &kv) in k.iter().enumerate() {
            let y = first + i - first_row;
            let src_row = &src[y * row_len..(y + 1) * row_len];
            let kv = i64::from(kv);
            for (a, &p) in acc.iter_mut().zip(src_row) {
                *a += i64::from(p) * kv;
            }
        }
        for (d, &a) in dst_row.iter_mut().zip(&acc) {
            *d = clip8(a);
        }
    }
    out
}

/// Pillow's NEAREST resize: `ImagingScaleAffine` with the source coordinate of
/// each output column/row accumulated in float64 from
/// `(in / out) * 0.5` in steps of `in / out`.
fn resize_nearest(image: &RgbImage, width: u32, height: u32) -> Result<RgbImage, PreprocessError> {
    let (in_w, in_h) = image.dimensions();
    let axis = |in_size: u32, out_size: u32| -> Vec<Option<usize>> {
        let step = f64::from(in_size as f32) / f64::from(out_size);
        let mut pos = step * 0.5;
        (0..out_size)
            .map(|_| {
                // Pillow's COORD(): negative → -1, else truncate.
                let idx = if pos < 0.0 { None } else { Some(pos as usize) };
                pos += step;
                idx.filter(|&i| i < in_size as usize)
            })
            .collect()
    };
    let cols = axis(in_w, width);
    let rows = axis(in_h, height);
    let src = image.as_raw();
    let row_len = in_w as usize * 3;
    let mut out = vec![0_u8; width as usize * height as usize * 3];
    for (dst_row, y) in out.chunks_exact_mut(width as usize * 3).zip(&rows) {
        // Pixels that map outside the source stay black, as with Pillow's fill.
        let Some(y) = *y else { continue };
        let src_row = &src[y * row_len..(y + 1) * row_len];
        for (dst, x) in dst_row.chunks_exact_mut(3).zip(&cols) {
            if let Some(x) = *x {
                dst.copy_from_slice(&src_row[x * 3..x * 3 + 3]);
            }
        }
    }
    RgbImage::from_raw(width, height, out).ok_or(PreprocessError::Internal("nearest buffer size"))
}
