//! Image bytes → model input, the way Hugging Face transformers' PIL image
//! processors (`ViTImageProcessorPil`, `DeiTImageProcessorPil`) and timm's
//! evaluation transform prepare images.
//!
//! The pipeline is: [`decode()`] (PNG, JPEG, WebP, GIF; EXIF orientation; any
//! colour layout → 8-bit RGB) → resize with a bit-exact port of Pillow's
//! resampler ([`resize_pil`]) → center crop → rescale and normalize into a
//! `(3, height, width)` channel-major `f32` buffer ([`preprocess`]).
//! [`preprocess_bytes`] runs it all; [`PreprocessConfig`] says how.
//!
//! Where each step lives (every public item is re-exported here):
//! - `config`: [`PreprocessConfig`] from `preprocessor_config.json` or a timm
//!   `pretrained_cfg`, the processor defaults and their constants;
//! - `decode`: bytes → RGB, with [`DecodeLimits`] checked from the header;
//! - `resample`: the [`Resample`] filters, by PIL code or timm name;
//! - `resize`: the Pillow resize port, resize targets and the center crop;
//! - `normalize`: rescale and normalize into `f32`;
//! - `error`: [`PreprocessError`], every refusal with what to do about it.
//!
//! Everything here is pure computation on byte slices: no file system, no
//! threads, so it runs unchanged on `wasm32-unknown-unknown`.

mod config;
mod decode;
mod error;
mod normalize;
mod resample;
mod resize;

use image::RgbImage;

pub use config::{
    CropOffset, PreprocessConfig, Resize, DEFAULT_RESCALE_FACTOR, IMAGENET_DEFAULT_MEAN,
    IMAGENET_DEFAULT_STD, IMAGENET_STANDARD_MEAN, IMAGENET_STANDARD_STD, MEAN_STD_RANGE,
    RESCALE_FACTOR_RANGE, TIMM_DEFAULT_CROP_PCT, TIMM_DEFAULT_INPUT_SIZE,
};
pub use decode::{decode, DecodeLimits};
pub use error::{PreprocessError, MAX_OUTPUT_SIDE};
use normalize::normalize;
pub use resample::Resample;
pub use resize::{center_crop, resize_pil, resize_target};

/// One image ready for the model.
#[derive(Clone, Debug, PartialEq)]
pub struct Preprocessed {
    /// (3, height, width), channel-major f32, normalized.
    pub pixel_values: Vec<f32>,
    /// Height of the model input, in pixels.
    pub height: u32,
    /// Width of the model input, in pixels.
    pub width: u32,
    /// The resized+cropped RGB image the model saw (for drawing heatmaps on),
    /// `width`×`height`.
    pub crop: RgbImage,
}

/// Resize, center-crop, rescale and normalize `image` as `cfg` says.
///
/// Input: any `W`×`H` RGB image. Output: `pixel_values` of shape
/// `(3, height, width)` where `(height, width)` is the crop size, or the
/// resize size when there is no crop.
pub fn preprocess(
    image: &RgbImage,
    cfg: &PreprocessConfig,
) -> Result<Preprocessed, PreprocessError> {
    let crop = resize_and_crop(image, cfg, cfg.resample)?;
    let pixel_values = normalize(&crop, cfg);
    let (width, height) = crop.dimensions();
    Ok(Preprocessed {
        pixel_values,
        height,
        width,
        crop,
    })
}

/// Takes an object mask (same size as the image, true on the object) through the geometric
/// part of `cfg` — resize (nearest neighbour, so it stays binary) and center crop — so it lines
/// up with [`Preprocessed::crop`]. Returns the mask's (height, width, values).
/// Refuses what [`preprocess`] refuses (an invalid config, an empty mask, an extreme
/// aspect ratio).
pub fn transform_mask(
    mask: &image::GrayImage,
    cfg: &PreprocessConfig,
) -> Result<(u32, u32, Vec<bool>), PreprocessError> {
    let (w, h) = mask.dimensions();
    let as_rgb = RgbImage::from_fn(w, h, |x, y| {
        let v = mask.get_pixel(x, y).0[0];
        image::Rgb([v, v, v])
    });
    let crop = resize_and_crop(&as_rgb, cfg, Resample::Nearest)?;
    let (cw, ch) = crop.dimensions();
    let inside = crop.pixels().map(|p| p.0[0] >= 128).collect();
    Ok((ch, cw, inside))
}

/// [`decode()`] then [`preprocess`].
pub fn preprocess_bytes(
    bytes: &[u8],
    cfg: &PreprocessConfig,
    limits: &DecodeLimits,
) -> Result<Preprocessed, PreprocessError> {
    cfg.validate()?;
    let image = decode(bytes, limits)?;
    preprocess(&image, cfg)
}

/// The geometric part of `cfg`: checks the config and the image, resizes
/// with `resample` (refusing a resize that would exceed [`MAX_OUTPUT_SIDE`]),
/// then center-crops.
fn resize_and_crop(
    image: &RgbImage,
    cfg: &PreprocessConfig,
    resample: Resample,
) -> Result<RgbImage, PreprocessError> {
    cfg.validate()?;
    let (w, h) = image.dimensions();
    if w == 0 || h == 0 {
        return Err(PreprocessError::NoPixels {
            width: w,
            height: h,
        });
    }

    let resized = match cfg.resize {
        Some(resize) => {
            let (out_h, out_w) = resize_target(resize, h, w);
            if out_h > MAX_OUTPUT_SIDE || out_w > MAX_OUTPUT_SIDE {
                return Err(PreprocessError::ExtremeAspectRatio {
                    width: w,
                    height: h,
                    resized_width: out_w,
                    resized_height: out_h,
                });
            }
            let pixels = u64::from(out_w) * u64::from(out_h);
            let limits = crate::budget::LIMITS;
            if pixels > limits.max_input_pixels {
                return Err(PreprocessError::OverBudget {
                    width: out_w,
                    height: out_h,
                    limit: limits.max_input_pixels,
                    platform: limits.platform,
                });
            }
            resize_pil(image, out_w, out_h, resample)?
        }
        None => image.clone(),
    };

    match cfg.crop {
        Some((ch, cw)) => center_crop(&resized, ch, cw, cfg.crop_offset),
        None => Ok(resized),
    }
}
