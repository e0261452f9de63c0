//! The last step: uint8 RGB → rescaled, normalized, channel-major `f32`.

use image::RgbImage;

use super::config::PreprocessConfig;

/// Rescale and normalize to channel-major f32 `(3, h, w)`, with
/// transformers' arithmetic: `v = f32(f64(x) * factor)` then
/// `(v - mean) / std` in f32. (timm's `x as f32 / 255.0` gives the same
/// `v` for every uint8 `x`.)
pub(super) fn normalize(image: &RgbImage, cfg: &PreprocessConfig) -> Vec<f32> {
    let factor = cfg.rescale_factor.map(exact_rescale_factor);
    // One lookup table per channel: a pixel value maps to one output value.
    let mut lut = [[0.0_f32; 256]; 3];
    for (c, table) in lut.iter_mut().enumerate() {
        for (x, out) in table.iter_mut().enumerate() {
            let v = match factor {
                Some(f) => (x as f64 * f) as f32,
                None => x as f32,
            };
            *out = (v - cfg.mean[c]) / cfg.std[c];
        }
    }
    let (w, h) = image.dimensions();
    let plane = w as usize * h as usize;
    let mut out = vec![0.0_f32; 3 * plane];
    for (i, px) in image.as_raw().chunks_exact(3).enumerate() {
        for c in 0..3 {
            out[c * plane + i] = lut[c][usize::from(px[c])];
        }
    }
    out
}

/// The `f64` factor transformers would multiply by: configs hold the Python
/// float `1/255`, which our `f32` field only approximates. A factor whose
/// `f32` value equals that of `1/n` for an integer `n` is taken as `1/n`.
fn exact_rescale_factor(factor: f32) -> f64 {
    let f = f64::from(factor);
    let n = (1.0 / f).round();
    if n >= 1.0 && ((1.0 / n) as f32) == factor {
        1.0 / n
    } else {
        f
    }
}
