//! Heatmap rendering: normalize a per-patch map, upsample it to the crop,
//! colour it and blend it over the crop.
//!
//! Maps are row-major over a `(grid_h, grid_w)` patch grid; images are
//! `(height, width)` pixels, row-major.

use std::fmt;
use std::str::FromStr;

use image::codecs::png::PngEncoder;
use image::{ExtendedColorType, ImageEncoder, RgbImage, RgbaImage};
use serde::{Deserialize, Serialize};

/// What went wrong while rendering.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The map does not have `grid_h * grid_w` values.
    #[error(
        "map length does not match the {grid_h}x{grid_w} patch grid: expected {expected} values, found {found}"
    )]
    MapLength {
        grid_h: usize,
        grid_w: usize,
        expected: usize,
        found: usize,
    },
    /// An opacity outside `[0, 1]` (or NaN).
    #[error("opacity {0} outside [0, 1]")]
    Opacity(f32),
    /// A grid, output or image with zero height or width.
    #[error("{what} has zero size: {height}x{width}")]
    ZeroSize {
        what: &'static str,
        height: usize,
        width: usize,
    },
    /// The PNG encoder failed.
    #[error("PNG encoding failed: {0}")]
    Encode(#[source] image::ImageError),
    /// A colormap name that is not one of [`Colormap::ALL`].
    #[error(
        "unknown colormap {0:?}: expected one of turbo, viridis, inferno, magma, plasma, cividis"
    )]
    UnknownColormap(String),
}

/// A perceptual colormap from the `colorous` crate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Colormap {
    #[default]
    Turbo,
    Viridis,
    Inferno,
    Magma,
    Plasma,
    Cividis,
}

impl Colormap {
    /// Every colormap, in display order.
    pub const ALL: [Colormap; 6] = [
        Colormap::Turbo,
        Colormap::Viridis,
        Colormap::Inferno,
        Colormap::Magma,
        Colormap::Plasma,
        Colormap::Cividis,
    ];

    /// The lowercase name, e.g. `"turbo"`.
    pub fn name(self) -> &'static str {
        match self {
            Colormap::Turbo => "turbo",
            Colormap::Viridis => "viridis",
            Colormap::Inferno => "inferno",
            Colormap::Magma => "magma",
            Colormap::Plasma => "plasma",
            Colormap::Cividis => "cividis",
        }
    }

    /// The RGB colour at `t` in `[0, 1]` (clamped; NaN counts as 0).
    pub fn color(self, t: f32) -> [u8; 3] {
        let t = if t.is_nan() { 0.0 } else { t.clamp(0.0, 1.0) };
        self.gradient().eval_continuous(f64::from(t)).into_array()
    }

    fn gradient(self) -> colorous::Gradient {
        match self {
            Colormap::Turbo => colorous::TURBO,
            Colormap::Viridis => colorous::VIRIDIS,
            Colormap::Inferno => colorous::INFERNO,
            Colormap::Magma => colorous::MAGMA,
            Colormap::Plasma => colorous::PLASMA,
            Colormap::Cividis => colorous::CIVIDIS,
        }
    }
}

impl fmt::Display for Colormap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Colormap {
    type Err = RenderError;

    /// Parses a lowercase name from [`Colormap::ALL`] (ASCII
    /// case-insensitive, surrounding whitespace ignored).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let trimmed = s.trim();
        Colormap::ALL
            .into_iter()
            .find(|map| map.name().eq_ignore_ascii_case(trimmed))
            .ok_or_else(|| RenderError::UnknownColormap(s.to_owned()))
    }
}

/// Min–max normalizes a map to `[0, 1]`, same length and order.
///
/// Minimum and maximum are taken over the finite values (in f64). If they
/// are equal (a constant map, or a single finite value), every finite value
/// becomes 0.5, the middle of the colormap: a constant map carries no
/// contrast, so it is shown neutrally rather than as all-low or all-high.
/// Non-finite values never produce NaN: NaN and `-inf` become 0.0, `+inf`
/// becomes 1.0. An empty map gives an empty result.
pub fn normalize(map: &[f32]) -> Vec<f32> {
    let (low, high) = map
        .iter()
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(f64::from(v)), hi.max(f64::from(v)))
        });
    let range = high - low;
    map.iter()
        .map(|&v| {
            if v.is_nan() || v == f32::NEG_INFINITY {
                0.0
            } else if v == f32::INFINITY {
                1.0
            } else if range > 0.0 {
                ((f64::from(v) - low) / range).clamp(0.0, 1.0) as f32
            } else {
                0.5
            }
        })
        .collect()
}

/// Bilinear upsampling of a `(grid_h, grid_w)` row-major map to
/// `(out_h, out_w)` pixels (note: height first in both), row-major.
///
/// Half-pixel (align_corners = false) semantics, as torch
/// `F.interpolate(mode="bilinear", align_corners=False)`: output pixel
/// column `x` samples grid coordinate `(x + 0.5) · grid_w / out_w − 0.5`
/// (rows likewise), clamped to `[0, grid_w − 1]`, and interpolates linearly
/// between the two neighbouring grid cells. Weights are computed in f64.
///
/// Errors: a zero-sized grid or output, or `map.len() != grid_h * grid_w`.
pub fn upsample_bilinear(
    map: &[f32],
    grid: (usize, usize),
    out: (u32, u32),
) -> Result<Vec<f32>, RenderError> {
    let (grid_h, grid_w) = grid;
    let (out_h, out_w) = (out.0 as usize, out.1 as usize);
    if grid_h == 0 || grid_w == 0 {
        return Err(RenderError::ZeroSize {
            what: "patch grid",
            height: grid_h,
            width: grid_w,
        });
    }
    if out_h == 0 || out_w == 0 {
        return Err(RenderError::ZeroSize {
            what: "upsampled output",
            height: out_h,
            width: out_w,
        });
    }
    let expected = grid_h.saturating_mul(grid_w);
    if map.len() != expected {
        return Err(RenderError::MapLength {
            grid_h,
            grid_w,
            expected,
            found: map.len(),
        });
    }

    let columns = axis_samples(grid_w, out_w);
    let rows = axis_samples(grid_h, out_h);
    let mut pixels = Vec::with_capacity(out_h * out_w);
    for row in &rows {
        let upper = &map[row.low * grid_w..(row.low + 1) * grid_w];
        let lower = &map[row.high * grid_w..(row.high + 1) * grid_w];
        pixels.extend(columns.iter().map(|col| {
            let top = col.lerp(f64::from(upper[col.low]), f64::from(upper[col.high]));
            let bottom = col.lerp(f64::from(lower[col.low]), f64::from(lower[col.high]));
            row.lerp(top, bottom) as f32
        }));
    }
    Ok(pixels)
}

/// Where one output pixel samples along one axis: between grid cells `low`
/// and `high` (`high = low + 1`, or `low` at the last cell), `fraction` of
/// the way.
struct AxisSample {
    low: usize,
    high: usize,
    fraction: f64,
}

impl AxisSample {
    fn lerp(&self, at_low: f64, at_high: f64) -> f64 {
        at_low * (1.0 - self.fraction) + at_high * self.fraction
    }
}

/// The half-pixel sample positions of `out_len` pixels over `grid_len`
/// cells (both non-zero).
fn axis_samples(grid_len: usize, out_len: usize) -> Vec<AxisSample> {
    let scale = grid_len as f64 / out_len as f64;
    let last = (grid_len - 1) as f64;
    (0..out_len)
        .map(|pixel| {
            let position = ((pixel as f64 + 0.5) * scale - 0.5).clamp(0.0, last);
            let low = position.floor() as usize;
            AxisSample {
                low,
                high: (low + 1).min(grid_len - 1),
                fraction: position - low as f64,
            }
        })
        .collect()
}

/// The heatmap of `map` over `crop`.
///
/// `map` is row-major over the `(grid_h, grid_w)` patch grid. It is
/// [`normalize`]d, upsampled with [`upsample_bilinear`] to the crop's size,
/// coloured with `colormap`, and alpha-blended over the crop:
/// `out = (1 − opacity) · crop + opacity · colour` per channel, rounded. So
/// opacity 0 returns the crop and opacity 1 the pure colormap colours. The
/// result is RGBA with alpha 255, the crop's size.
///
/// Errors: opacity outside `[0, 1]`, a zero-sized crop or grid, or a map
/// whose length does not match the grid.
pub fn overlay(
    crop: &RgbImage,
    map: &[f32],
    grid: (usize, usize),
    colormap: Colormap,
    opacity: f32,
) -> Result<RgbaImage, RenderError> {
    if !(0.0..=1.0).contains(&opacity) {
        return Err(RenderError::Opacity(opacity));
    }
    let (width, height) = crop.dimensions();
    if width == 0 || height == 0 {
        return Err(RenderError::ZeroSize {
            what: "crop",
            height: height as usize,
            width: width as usize,
        });
    }
    let heat = upsample_bilinear(&normalize(map), grid, (height, width))?;
    let keep = 1.0 - opacity;
    let mut out = RgbaImage::new(width, height);
    for ((source, target), &t) in crop.pixels().zip(out.pixels_mut()).zip(&heat) {
        let colour = colormap.color(t);
        let channels = target.0.iter_mut().zip(source.0).zip(colour);
        for ((out, from_crop), from_map) in channels {
            let blended = f32::from(from_crop) * keep + f32::from(from_map) * opacity;
            *out = blended.round().clamp(0.0, 255.0) as u8;
        }
        target.0[3] = u8::MAX;
    }
    Ok(out)
}

/// PNG bytes of an RGBA image.
///
/// Errors: a zero-sized image, or an encoder failure.
pub fn encode_png(image: &RgbaImage) -> Result<Vec<u8>, RenderError> {
    let (width, height) = image.dimensions();
    if width == 0 || height == 0 {
        return Err(RenderError::ZeroSize {
            what: "image",
            height: height as usize,
            width: width as usize,
        });
    }
    let mut bytes = Vec::new();
    PngEncoder::new(&mut bytes)
        .write_image(image.as_raw(), width, height, ExtendedColorType::Rgba8)
        .map_err(RenderError::Encode)?;
    Ok(bytes)
}
