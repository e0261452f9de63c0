//! Image bytes → model input, the way Hugging Face transformers' PIL image
//! processors (`ViTImageProcessorPil`, `DeiTImageProcessorPil`) and timm's
//! evaluation transform prepare images.
//!
//! The pipeline is: [`decode`] (PNG, JPEG, WebP, GIF; EXIF orientation; any
//! colour layout → 8-bit RGB) → resize with a bit-exact port of Pillow's
//! resampler ([`resize_pil`]) → center crop → rescale and normalize into a
//! `(3, height, width)` channel-major `f32` buffer ([`preprocess`]).
//!
//! Everything here is pure computation on byte slices: no file system, no
//! threads, so it runs unchanged on `wasm32-unknown-unknown`.

use std::io::Cursor;

use image::metadata::Orientation;
use image::{
    ColorType, DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader, RgbImage,
};
use serde_json::Value;

/// Mean of the ImageNet training set, per RGB channel, in [0, 1].
/// Source: timm `timm/data/constants.py` `IMAGENET_DEFAULT_MEAN` (same values
/// as transformers `image_utils.IMAGENET_DEFAULT_MEAN`).
pub const IMAGENET_DEFAULT_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// Standard deviation of the ImageNet training set, per RGB channel.
/// Source: timm `timm/data/constants.py` `IMAGENET_DEFAULT_STD`.
pub const IMAGENET_DEFAULT_STD: [f32; 3] = [0.229, 0.224, 0.225];
/// The "standard" mean that maps [0, 1] to [-1, 1].
/// Source: transformers `image_utils.IMAGENET_STANDARD_MEAN`; the default of
/// `ViTImageProcessor` and `DeiTImageProcessor`.
pub const IMAGENET_STANDARD_MEAN: [f32; 3] = [0.5, 0.5, 0.5];
/// Source: transformers `image_utils.IMAGENET_STANDARD_STD`.
pub const IMAGENET_STANDARD_STD: [f32; 3] = [0.5, 0.5, 0.5];
/// Pixel rescale factor, uint8 → [0, 1].
/// Source: transformers `BaseImageProcessor` default `rescale_factor = 1 / 255`.
pub const DEFAULT_RESCALE_FACTOR: f32 = 1.0 / 255.0;
/// Fraction of the resized image kept by the center crop when a timm config
/// does not say. Source: timm `timm/data/constants.py` `DEFAULT_CROP_PCT`.
pub const TIMM_DEFAULT_CROP_PCT: f64 = 0.875;
/// Input side used by timm when a `pretrained_cfg` has no `input_size`.
/// Source: timm `timm/data/config.py` `resolve_data_config` (`(3, 224, 224)`).
pub const TIMM_DEFAULT_INPUT_SIZE: u32 = 224;
/// Largest resize or crop side a config may ask for. Guards against configs
/// that would allocate gigabytes (a 16384×16384 RGB image is 768 MiB).
pub const MAX_OUTPUT_SIDE: u32 = 16384;

/// Fixed-point precision of Pillow's 8-bit resampler: 32 bits minus 8 for the
/// value minus 2 for overflow headroom.
/// Source: Pillow `src/libImaging/Resample.c` `PRECISION_BITS`.
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// PIL resampling filters, with PIL's integer codes (NEAREST=0, LANCZOS=1,
/// BILINEAR=2, BICUBIC=3, BOX=4, HAMMING=5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Resample {
    /// Nearest neighbour (PIL code 0). Pillow does not use the convolution
    /// resampler for this one but an affine scale; so do we.
    Nearest,
    /// Lanczos, a = 3 (PIL code 1).
    Lanczos,
    /// Triangle / linear (PIL code 2).
    Bilinear,
    /// Cubic convolution, a = -0.5 (PIL code 3).
    Bicubic,
    /// Box / area average (PIL code 4).
    Box,
    /// Hamming-windowed sinc (PIL code 5).
    Hamming,
}

impl Resample {
    /// The filter for a PIL integer code (`PIL.Image.Resampling` value), or
    /// `None` for codes vit-lens does not implement.
    pub fn from_pil_code(code: i64) -> Option<Self> {
        match code {
            0 => Some(Self::Nearest),
            1 => Some(Self::Lanczos),
            2 => Some(Self::Bilinear),
            3 => Some(Self::Bicubic),
            4 => Some(Self::Box),
            5 => Some(Self::Hamming),
            _ => None,
        }
    }

    /// PIL's integer code for this filter.
    pub fn pil_code(self) -> u8 {
        match self {
            Self::Nearest => 0,
            Self::Lanczos => 1,
            Self::Bilinear => 2,
            Self::Bicubic => 3,
            Self::Box => 4,
            Self::Hamming => 5,
        }
    }

    /// The filter for a timm / torchvision interpolation name ("bicubic",
    /// "bilinear", "nearest", "lanczos", "box", "hamming"; case-insensitive).
    pub fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "nearest" | "nearest-exact" => Some(Self::Nearest),
            "lanczos" => Some(Self::Lanczos),
            "bilinear" | "linear" => Some(Self::Bilinear),
            "bicubic" | "cubic" => Some(Self::Bicubic),
            "box" => Some(Self::Box),
            "hamming" => Some(Self::Hamming),
            _ => None,
        }
    }
}

/// How the image is resized before cropping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resize {
    /// Resize to exactly `height`×`width`, ignoring the aspect ratio.
    Exact { height: u32, width: u32 },
    /// Resize so the shorter side is this long, keeping the aspect ratio; the
    /// longer side becomes `int(target * long / short)` (truncated), exactly
    /// as torchvision `Resize(int)` and transformers `{"shortest_edge": n}`.
    ShortestEdge(u32),
}

/// Where a center crop starts when the margin is odd.
///
/// The two reference implementations disagree by one pixel when the margin
/// `image - crop` is odd and its half rounds up to an even number:
/// transformers (both backends) floors, torchvision's `CenterCrop` (used by
/// timm) rounds half to even.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CropOffset {
    /// `(size - crop) // 2`: transformers `center_crop`.
    #[default]
    Floor,
    /// `int(round((size - crop) / 2.0))` (Python's round half to even):
    /// torchvision `CenterCrop`, hence timm's eval transform.
    RoundHalfEven,
}

/// Everything that turns an RGB image into model input.
#[derive(Clone, Debug, PartialEq)]
pub struct PreprocessConfig {
    /// Resize step; `None` keeps the image size.
    pub resize: Option<Resize>,
    /// Filter for the resize step.
    pub resample: Resample,
    /// `(height, width)` center crop after resizing; `None` for no crop.
    pub crop: Option<(u32, u32)>,
    /// Multiplier taking uint8 values to [0, 1], usually 1/255; `None` leaves
    /// the values in [0, 255]. A factor that is the `f32` rounding of `1/n`
    /// (as 1/255 is) is applied as the exact `f64` `1/n`, like transformers
    /// applies the Python float from its config.
    pub rescale_factor: Option<f32>,
    /// Per-channel mean subtracted after rescaling (0 for no normalization).
    pub mean: [f32; 3],
    /// Per-channel divisor applied after subtracting the mean (1 for none).
    pub std: [f32; 3],
    /// Rounding of the center-crop offset when the margin is odd.
    pub crop_offset: CropOffset,
}

impl PreprocessConfig {
    /// Google-ViT processor defaults for `image_size`: resize
    /// `image_size`×`image_size` bilinear, mean/std 0.5 (transformers
    /// `ViTImageProcessor` with `size` set to `image_size`).
    pub fn vit_defaults(image_size: u32) -> Self {
        Self {
            resize: Some(Resize::Exact {
                height: image_size,
                width: image_size,
            }),
            resample: Resample::Bilinear,
            crop: None,
            rescale_factor: Some(DEFAULT_RESCALE_FACTOR),
            mean: IMAGENET_STANDARD_MEAN,
            std: IMAGENET_STANDARD_STD,
            crop_offset: CropOffset::Floor,
        }
    }

    /// `DeiTImageProcessor` defaults scaled to `image_size`: resize to
    /// `image_size * 256 / 224` (integer division) squared, bicubic, then
    /// center-crop `image_size`. Mean/std are transformers'
    /// `IMAGENET_STANDARD_MEAN`/`_STD` (0.5), which is what
    /// `DeiTImageProcessor` uses by default; timm-trained DeiT weights expect
    /// [`IMAGENET_DEFAULT_MEAN`]/[`IMAGENET_DEFAULT_STD`] instead, which
    /// checkpoints state in their `preprocessor_config.json` or
    /// `pretrained_cfg`.
    pub fn deit_defaults(image_size: u32) -> Self {
        let resized = u32::try_from(u64::from(image_size) * 256 / 224).unwrap_or(u32::MAX);
        Self {
            resize: Some(Resize::Exact {
                height: resized,
                width: resized,
            }),
            resample: Resample::Bicubic,
            crop: Some((image_size, image_size)),
            rescale_factor: Some(DEFAULT_RESCALE_FACTOR),
            mean: IMAGENET_STANDARD_MEAN,
            std: IMAGENET_STANDARD_STD,
            crop_offset: CropOffset::Floor,
        }
    }

    /// Parse a Hugging Face `preprocessor_config.json`: ViTImageProcessor,
    /// DeiTImageProcessor, ViTFeatureExtractor, the `*Fast` variants,
    /// old-style `"size": 224` integers (a square, as for ViT/DeiT),
    /// `"size": {"height", "width"}`, `"size": {"shortest_edge"}`,
    /// `crop_size` in either form, the `do_resize` / `do_center_crop` /
    /// `do_rescale` / `do_normalize` flags and `resample` codes.
    ///
    /// Fields that are missing (or `null`) fall back to `defaults`, the way
    /// transformers falls back to the processor class's defaults: pass
    /// [`Self::deit_defaults`] for a `DeiT*` processor type and
    /// [`Self::vit_defaults`] otherwise. A flag that is off disables its step
    /// whatever the size fields say; a flag that is on needs its size either
    /// in the JSON or in `defaults`. Keys that change the pipeline in ways
    /// vit-lens does not implement (`crop_pct`, `do_pad: true`,
    /// `longest_edge`, `max_height`) are refused rather than ignored.
    pub fn from_hf_json(json: &[u8], defaults: &PreprocessConfig) -> Result<Self, PreprocessError> {
        let value: Value = serde_json::from_slice(json).map_err(PreprocessError::ConfigJson)?;
        let obj = value.as_object().ok_or_else(|| {
            invalid(
                "preprocessor_config.json",
                "the file must hold a JSON object; re-download it from the model repository",
            )
        })?;
        let get = |key: &str| obj.get(key).filter(|v| !v.is_null());

        if let Some(v) = get("crop_pct") {
            return Err(invalid(
                "crop_pct",
                format!(
                    "{v} is set, but crop_pct resizing is not part of the ViT/DeiT processors vit-lens \
                     implements; remove the key or use an explicit size and crop_size"
                ),
            ));
        }
        if get("do_pad").and_then(Value::as_bool) == Some(true) {
            return Err(invalid(
                "do_pad",
                "padding is not supported; set do_pad to false",
            ));
        }

        let do_resize = match get("do_resize") {
            Some(v) => json_bool("do_resize", v)?,
            None => defaults.resize.is_some(),
        };
        let resize = if do_resize {
            match get("size") {
                Some(v) => Some(parse_hf_size(v)?),
                None => Some(defaults.resize.ok_or_else(|| {
                    invalid(
                        "size",
                        "do_resize is true but no size is given; add a \"size\" entry",
                    )
                })?),
            }
        } else {
            None
        };

        let resample = match get("resample") {
            Some(v) => {
                let code = v.as_i64().ok_or_else(|| {
                    invalid(
                        "resample",
                        format!("{v} is not a PIL filter code; use an integer 0-5"),
                    )
                })?;
                Resample::from_pil_code(code).ok_or_else(|| {
                    invalid(
                        "resample",
                        format!(
                            "PIL filter code {code} is not supported; use 0 (nearest), 1 (lanczos), \
                             2 (bilinear), 3 (bicubic), 4 (box) or 5 (hamming)"
                        ),
                    )
                })?
            }
            None => defaults.resample,
        };

        let do_crop = match get("do_center_crop") {
            Some(v) => json_bool("do_center_crop", v)?,
            None => defaults.crop.is_some(),
        };
        let crop = if do_crop {
            match get("crop_size") {
                Some(v) => Some(parse_hf_crop(v)?),
                None => Some(defaults.crop.ok_or_else(|| {
                    invalid(
                        "crop_size",
                        "do_center_crop is true but no crop_size is given; add a \"crop_size\" entry",
                    )
                })?),
            }
        } else {
            None
        };

        let do_rescale = match get("do_rescale") {
            Some(v) => json_bool("do_rescale", v)?,
            None => defaults.rescale_factor.is_some(),
        };
        let rescale_factor = if do_rescale {
            Some(match get("rescale_factor") {
                Some(v) => json_f32("rescale_factor", v)?,
                None => defaults.rescale_factor.unwrap_or(DEFAULT_RESCALE_FACTOR),
            })
        } else {
            None
        };

        let defaults_normalize = defaults.mean != [0.0; 3] || defaults.std != [1.0; 3];
        let do_normalize = match get("do_normalize") {
            Some(v) => json_bool("do_normalize", v)?,
            None => defaults_normalize,
        };
        let (mean, std) = if do_normalize {
            let mean = match get("image_mean") {
                Some(v) => json_triple("image_mean", v)?,
                None if defaults_normalize => defaults.mean,
                None => IMAGENET_STANDARD_MEAN,
            };
            let std = match get("image_std") {
                Some(v) => json_triple("image_std", v)?,
                None if defaults_normalize => defaults.std,
                None => IMAGENET_STANDARD_STD,
            };
            (mean, std)
        } else {
            ([0.0; 3], [1.0; 3])
        };

        let cfg = Self {
            resize,
            resample,
            crop,
            rescale_factor,
            mean,
            std,
            crop_offset: defaults.crop_offset,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// [`Self::from_hf_json`] with the defaults of the processor class the
    /// JSON names (`image_processor_type`, or the legacy
    /// `feature_extractor_type`): [`Self::deit_defaults`] for `DeiT*`,
    /// [`Self::vit_defaults`] for anything else, at `image_size` (the model
    /// config's `image_size`).
    pub fn from_hf_json_auto(json: &[u8], image_size: u32) -> Result<Self, PreprocessError> {
        let value: Value = serde_json::from_slice(json).map_err(PreprocessError::ConfigJson)?;
        let class = ["image_processor_type", "feature_extractor_type"]
            .iter()
            .find_map(|key| value.get(key).and_then(Value::as_str))
            .unwrap_or("");
        let defaults = if class.starts_with("DeiT") {
            Self::deit_defaults(image_size)
        } else {
            Self::vit_defaults(image_size)
        };
        Self::from_hf_json(json, &defaults)
    }

    /// From a timm `pretrained_cfg` object (or a timm `config.json` holding
    /// one under `"pretrained_cfg"`), as timm's eval transform
    /// (`create_transform(**resolve_data_config({}, model=...))`) does:
    ///
    /// - `input_size` `[3, H, W]` (default `[3, 224, 224]`);
    /// - `interpolation` name (default "bicubic");
    /// - `crop_pct` (default 0.875), `crop_mode` (default "center"):
    ///   "center" resizes the shorter side to `floor(H / crop_pct)` then
    ///   center-crops H×W (square `input_size` only, as timm's simple path);
    ///   "squash" resizes to exactly `floor(H / crop_pct)`×`floor(W / crop_pct)`
    ///   then crops; "border" and anything else are refused;
    /// - `mean`, `std` (default ImageNet's), rescale by 1/255.
    ///
    /// The crop offset rounds half to even like torchvision's `CenterCrop`.
    pub fn from_timm_pretrained_cfg(cfg: &Value) -> Result<Self, PreprocessError> {
        let cfg = match cfg.get("pretrained_cfg") {
            Some(inner) if inner.is_object() => inner,
            _ => cfg,
        };
        if !cfg.is_object() {
            return Err(invalid(
                "pretrained_cfg",
                "must be a JSON object; pass the model's pretrained_cfg (or its config.json)",
            ));
        }
        let get = |key: &str| cfg.get(key).filter(|v| !v.is_null());

        let (height, width) = match get("input_size") {
            Some(v) => {
                let dims: Option<Vec<u32>> = v.as_array().map(|a| {
                    a.iter()
                        .filter_map(|d| d.as_u64().and_then(|d| u32::try_from(d).ok()))
                        .collect()
                });
                match dims.as_deref() {
                    Some(&[3, h, w]) => (h, w),
                    _ => {
                        return Err(invalid(
                            "input_size",
                            format!(
                                "{v} is not [3, height, width]; vit-lens needs 3-channel RGB input"
                            ),
                        ))
                    }
                }
            }
            None => (TIMM_DEFAULT_INPUT_SIZE, TIMM_DEFAULT_INPUT_SIZE),
        };

        let resample = match get("interpolation").and_then(Value::as_str) {
            None | Some("") => Resample::Bicubic,
            Some(name) => Resample::from_name(name).ok_or_else(|| {
                invalid(
                    "interpolation",
                    format!(
                        "\"{name}\" is not supported; use bicubic, bilinear, nearest, lanczos, box or hamming"
                    ),
                )
            })?,
        };

        // timm takes `pretrained_cfg.get('crop_pct') or DEFAULT_CROP_PCT`: 0 means "unset".
        let crop_pct = match get("crop_pct") {
            Some(v) => {
                let pct = v.as_f64().ok_or_else(|| {
                    invalid("crop_pct", format!("{v} is not a number; use e.g. 0.875"))
                })?;
                if pct == 0.0 {
                    TIMM_DEFAULT_CROP_PCT
                } else if pct.is_finite() && pct > 0.0 {
                    pct
                } else {
                    return Err(invalid(
                        "crop_pct",
                        format!("{pct} must be a positive number such as 0.875"),
                    ));
                }
            }
            None => TIMM_DEFAULT_CROP_PCT,
        };
        let scaled = |side: u32| -> Result<u32, PreprocessError> {
            // Python: math.floor(img_size / crop_pct)
            let s = (f64::from(side) / crop_pct).floor();
            if s >= 1.0 && s <= f64::from(MAX_OUTPUT_SIDE) {
                Ok(s as u32)
            } else {
                Err(invalid(
                    "crop_pct",
                    format!("{crop_pct} scales the {side}-pixel input to {s} pixels; use a crop_pct near 1"),
                ))
            }
        };

        let mode = get("crop_mode").and_then(Value::as_str).unwrap_or("center");
        let resize = match mode {
            "" | "center" => {
                if height != width {
                    return Err(invalid(
                        "crop_mode",
                        format!(
                            "\"center\" with a non-square input_size {height}×{width} (timm's \
                             ResizeKeepRatio) is not supported; use a square input_size or crop_mode \"squash\""
                        ),
                    ));
                }
                Resize::ShortestEdge(scaled(height)?)
            }
            "squash" => Resize::Exact {
                height: scaled(height)?,
                width: scaled(width)?,
            },
            other => {
                return Err(invalid(
                    "crop_mode",
                    format!("\"{other}\" is not supported; use \"center\" or \"squash\""),
                ))
            }
        };

        let mean = match get("mean") {
            Some(v) if v.as_array().is_some_and(|a| !a.is_empty()) => json_triple("mean", v)?,
            _ => IMAGENET_DEFAULT_MEAN,
        };
        let std = match get("std") {
            Some(v) if v.as_array().is_some_and(|a| !a.is_empty()) => json_triple("std", v)?,
            _ => IMAGENET_DEFAULT_STD,
        };

        let cfg = Self {
            resize: Some(resize),
            resample,
            crop: Some((height, width)),
            rescale_factor: Some(DEFAULT_RESCALE_FACTOR),
            mean,
            std,
            crop_offset: CropOffset::RoundHalfEven,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// (height, width) of the model input this config produces (crop size if
    /// cropping, else resize size); `None` if it depends on the image
    /// (`ShortestEdge` or no resize, without crop).
    pub fn output_size(&self) -> Option<(u32, u32)> {
        match (self.crop, self.resize) {
            (Some(crop), _) => Some(crop),
            (None, Some(Resize::Exact { height, width })) => Some((height, width)),
            (None, _) => None,
        }
    }

    /// Checks every value: sizes between 1 and [`MAX_OUTPUT_SIDE`], a crop that
    /// fits inside the resized image, finite positive rescale factor and
    /// standard deviations, finite means.
    pub fn validate(&self) -> Result<(), PreprocessError> {
        let side_ok = |v: u32| (1..=MAX_OUTPUT_SIDE).contains(&v);
        match self.resize {
            Some(Resize::Exact { height, width }) if !side_ok(height) || !side_ok(width) => {
                return Err(invalid(
                    "size",
                    format!(
                        "resize to {height}×{width} is out of range; each side must be 1..={MAX_OUTPUT_SIDE}"
                    ),
                ));
            }
            Some(Resize::ShortestEdge(s)) if !side_ok(s) => {
                return Err(invalid(
                    "size",
                    format!("shortest edge {s} is out of range; use 1..={MAX_OUTPUT_SIDE}"),
                ));
            }
            _ => {}
        }
        if let Some((ch, cw)) = self.crop {
            if !side_ok(ch) || !side_ok(cw) {
                return Err(invalid(
                    "crop_size",
                    format!(
                        "crop {ch}×{cw} is out of range; each side must be 1..={MAX_OUTPUT_SIDE}"
                    ),
                ));
            }
            let fits = match self.resize {
                Some(Resize::Exact { height, width }) => Some((height, width)),
                // The shorter side becomes `s` and the longer one at least `s`.
                Some(Resize::ShortestEdge(s)) => Some((s, s)),
                None => None,
            };
            if let Some((h, w)) = fits {
                if ch > h || cw > w {
                    return Err(invalid(
                        "crop_size",
                        format!(
                            "crop {ch}×{cw} is larger than the resized image ({h}×{w} at least); \
                             make crop_size at most the resize size"
                        ),
                    ));
                }
            }
        }
        if let Some(f) = self.rescale_factor {
            if !(f.is_finite() && f > 0.0) {
                return Err(invalid(
                    "rescale_factor",
                    format!("{f} must be a positive number, usually 1/255 = 0.00392156862745098"),
                ));
            }
        }
        if self.mean.iter().any(|m| !m.is_finite()) {
            return Err(invalid(
                "image_mean",
                format!("{:?} must be finite numbers", self.mean),
            ));
        }
        if self.std.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            return Err(invalid(
                "image_std",
                format!(
                    "{:?} must be positive numbers (a std of 0 would divide by zero)",
                    self.std
                ),
            ));
        }
        Ok(())
    }
}

/// Bounds on what [`decode`] accepts, checked from the file header before any
/// pixel memory is allocated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Widest image accepted, in pixels.
    pub max_width: u32,
    /// Tallest image accepted, in pixels.
    pub max_height: u32,
    /// Most bytes decoding may hold at once: the decoder's native buffer
    /// (3 bytes per pixel for RGB, 4 for RGBA, 6 for 16-bit RGB), plus a
    /// 3-byte-per-pixel RGB copy when the source is not 8-bit RGB, plus
    /// another one when EXIF asks for a 90° rotation. A 10000×10000 RGB JPEG
    /// needs 300 MB.
    pub max_alloc_bytes: u64,
}

impl Default for DecodeLimits {
    /// 16384×16384 pixels and 512 MiB.
    fn default() -> Self {
        Self {
            max_width: 16384,
            max_height: 16384,
            max_alloc_bytes: 512 * 1024 * 1024,
        }
    }
}

/// Decodes PNG, JPEG, WebP, GIF (first frame); applies EXIF orientation;
/// converts grayscale, alpha (dropped, like PIL's `convert("RGB")`), 16-bit
/// (high byte, like Pillow's 16-bit RGB path) and CMYK JPEG to 8-bit RGB.
///
/// The image size is read from the header and checked against `limits`
/// before any pixel buffer is allocated.
///
/// Unlike transformers, which feeds whatever `PIL.Image.open` returns, the
/// EXIF orientation is applied deliberately (as `PIL.ImageOps.exif_transpose`
/// would), so that phone photos are upright.
pub fn decode(bytes: &[u8], limits: &DecodeLimits) -> Result<RgbImage, PreprocessError> {
    if bytes.is_empty() {
        return Err(PreprocessError::Empty);
    }
    let format = image::guess_format(bytes).map_err(|_| PreprocessError::UnrecognizedFormat {
        detail: describe_magic(bytes),
    })?;
    let name = format_name(format);
    if !matches!(
        format,
        ImageFormat::Png | ImageFormat::Jpeg | ImageFormat::WebP | ImageFormat::Gif
    ) {
        return Err(PreprocessError::UnsupportedFormat {
            format: name.to_owned(),
            detail: "vit-lens reads PNG, JPEG, WebP and GIF".to_owned(),
        });
    }

    if format == ImageFormat::Jpeg {
        // zune-jpeg fills a cut-off scan with grey and reports success;
        // Pillow refuses such files ("image file is truncated"), and so do we.
        check_jpeg_complete(bytes)?;
    }

    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut decoder_limits = image::Limits::default();
    decoder_limits.max_alloc = Some(limits.max_alloc_bytes);
    reader.limits(decoder_limits);
    let mut decoder = reader.into_decoder().map_err(|e| match e {
        // Some decoders (PNG) refuse oversized images while reading the header; say how
        // large the image is, read from the header alone.
        ImageError::Limits(_) => {
            header_limit_error(bytes, format, limits).unwrap_or_else(|| map_image_error(name, e))
        }
        e => map_image_error(name, e),
    })?;

    let (width, height) = decoder.dimensions();
    if width == 0 || height == 0 {
        return Err(PreprocessError::NoPixels { width, height });
    }
    if let Some(e) = too_large(width, height, limits) {
        return Err(e);
    }
    // A malformed EXIF block should not make an otherwise fine image unusable.
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    // Peak memory: the decoder's buffer, plus our RGB copy unless it already
    // is 8-bit RGB, plus one more RGB buffer when EXIF asks for a rotation
    // (flips happen in place).
    let rgb_bytes = 3 * u64::from(width) * u64::from(height);
    let copy_bytes = if decoder.color_type() == ColorType::Rgb8 {
        0
    } else {
        rgb_bytes
    };
    let rotate_bytes = match orientation {
        Orientation::Rotate90
        | Orientation::Rotate270
        | Orientation::Rotate90FlipH
        | Orientation::Rotate270FlipH => rgb_bytes,
        _ => 0,
    };
    let needed = decoder
        .total_bytes()
        .saturating_add(copy_bytes)
        .saturating_add(rotate_bytes);
    if needed > limits.max_alloc_bytes {
        return Err(PreprocessError::TooMuchMemory {
            width,
            height,
            needed_bytes: needed,
            limit_bytes: limits.max_alloc_bytes,
        });
    }

    let decoded = DynamicImage::from_decoder(decoder).map_err(|e| map_image_error(name, e))?;
    let mut rgb = DynamicImage::ImageRgb8(to_rgb8_like_pil(decoded));
    rgb.apply_orientation(orientation);
    Ok(rgb.into_rgb8())
}

/// The size error for an image whose decoder refused it: its dimensions, read from the header
/// with no allocation limit (reading a header allocates no pixel memory).
fn header_limit_error(
    bytes: &[u8],
    format: ImageFormat,
    limits: &DecodeLimits,
) -> Option<PreprocessError> {
    // PNG's size is at a fixed place in its header; read it directly, because on 32-bit
    // targets (wasm32) the decoder refuses huge images even without limits.
    let from_ihdr = (format == ImageFormat::Png && bytes.len() >= 24 && &bytes[12..16] == b"IHDR")
        .then(|| {
            let be = |at: usize| {
                u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
            };
            (be(16), be(20))
        });
    let (width, height) = match from_ihdr {
        Some(size) => size,
        None => {
            let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
            reader.no_limits();
            reader.into_dimensions().ok()?
        }
    };
    too_large(width, height, limits).or(Some(PreprocessError::TooMuchMemory {
        width,
        height,
        needed_bytes: 3 * u64::from(width) * u64::from(height),
        limit_bytes: limits.max_alloc_bytes,
    }))
}

/// The error for an image wider or taller than `limits` allow, if it is.
fn too_large(width: u32, height: u32, limits: &DecodeLimits) -> Option<PreprocessError> {
    (width > limits.max_width || height > limits.max_height).then_some(PreprocessError::TooLarge {
        width,
        height,
        max_width: limits.max_width,
        max_height: limits.max_height,
    })
}

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
            resize_pil(image, out_w, out_h, cfg.resample)?
        }
        None => image.clone(),
    };

    let crop = match cfg.crop {
        Some((ch, cw)) => center_crop(&resized, ch, cw, cfg.crop_offset)?,
        None => resized,
    };

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
pub fn transform_mask(
    mask: &image::GrayImage,
    cfg: &PreprocessConfig,
) -> Result<(u32, u32, Vec<bool>), PreprocessError> {
    cfg.validate()?;
    let (w, h) = mask.dimensions();
    if w == 0 || h == 0 {
        return Err(PreprocessError::NoPixels {
            width: w,
            height: h,
        });
    }
    let as_rgb = RgbImage::from_fn(w, h, |x, y| {
        let v = mask.get_pixel(x, y).0[0];
        image::Rgb([v, v, v])
    });
    let resized = match cfg.resize {
        Some(resize) => {
            let (out_h, out_w) = resize_target(resize, h, w);
            resize_pil(&as_rgb, out_w, out_h, Resample::Nearest)?
        }
        None => as_rgb,
    };
    let crop = match cfg.crop {
        Some((ch, cw)) => center_crop(&resized, ch, cw, cfg.crop_offset)?,
        None => resized,
    };
    let (cw, ch) = crop.dimensions();
    let inside = crop.pixels().map(|p| p.0[0] >= 128).collect();
    Ok((ch, cw, inside))
}

/// [`decode`] then [`preprocess`].
pub fn preprocess_bytes(
    bytes: &[u8],
    cfg: &PreprocessConfig,
    limits: &DecodeLimits,
) -> Result<Preprocessed, PreprocessError> {
    cfg.validate()?;
    let image = decode(bytes, limits)?;
    preprocess(&image, cfg)
}

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
    let filter = match resample {
        Resample::Nearest => return resize_nearest(image, width, height),
        Resample::Lanczos => Filter {
            support: 3.0,
            weight: lanczos_filter,
        },
        Resample::Bilinear => Filter {
            support: 1.0,
            weight: bilinear_filter,
        },
        Resample::Bicubic => Filter {
            support: 2.0,
            weight: bicubic_filter,
        },
        Resample::Box => Filter {
            support: 0.5,
            weight: box_filter,
        },
        Resample::Hamming => Filter {
            support: 1.0,
            weight: hamming_filter,
        },
    };

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

/// Rescale and normalize to channel-major f32 `(3, h, w)`, with
/// transformers' arithmetic: `v = f32(f64(x) * factor)` then
/// `(v - mean) / std` in f32. (timm's `x as f32 / 255.0` gives the same
/// `v` for every uint8 `x`.)
fn normalize(image: &RgbImage, cfg: &PreprocessConfig) -> Vec<f32> {
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

/// Any decoded layout → 8-bit RGB, as Pillow's `convert("RGB")` does:
/// grayscale replicated, alpha dropped (not composited), 16-bit samples
/// reduced to their high byte (Pillow's `RGB;16B` unpacker; note Pillow
/// itself clips 16-bit *grayscale* ("I;16") to 255 instead, which vit-lens
/// deliberately does not copy).
fn to_rgb8_like_pil(image: DynamicImage) -> RgbImage {
    let (w, h) = (image.width(), image.height());
    let rgb_from = |samples: &mut dyn Iterator<Item = [u8; 3]>| -> RgbImage {
        let mut out = Vec::with_capacity(w as usize * h as usize * 3);
        for px in samples {
            out.extend_from_slice(&px);
        }
        RgbImage::from_raw(w, h, out).unwrap_or_else(|| RgbImage::new(w, h))
    };
    let hi = |v: u16| (v >> 8) as u8;
    match image {
        DynamicImage::ImageRgb8(img) => img,
        DynamicImage::ImageLuma8(img) => rgb_from(&mut img.as_raw().iter().map(|&l| [l, l, l])),
        DynamicImage::ImageLumaA8(img) => {
            rgb_from(&mut img.as_raw().chunks_exact(2).map(|p| [p[0], p[0], p[0]]))
        }
        DynamicImage::ImageRgba8(img) => {
            rgb_from(&mut img.as_raw().chunks_exact(4).map(|p| [p[0], p[1], p[2]]))
        }
        DynamicImage::ImageLuma16(img) => rgb_from(&mut img.as_raw().iter().map(|&l| {
            let l = hi(l);
            [l, l, l]
        })),
        DynamicImage::ImageLumaA16(img) => rgb_from(&mut img.as_raw().chunks_exact(2).map(|p| {
            let l = hi(p[0]);
            [l, l, l]
        })),
        DynamicImage::ImageRgb16(img) => rgb_from(
            &mut img
                .as_raw()
                .chunks_exact(3)
                .map(|p| [hi(p[0]), hi(p[1]), hi(p[2])]),
        ),
        DynamicImage::ImageRgba16(img) => rgb_from(
            &mut img
                .as_raw()
                .chunks_exact(4)
                .map(|p| [hi(p[0]), hi(p[1]), hi(p[2])]),
        ),
        other => other.to_rgb8(),
    }
}

/// Why an image could not become model input, with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum PreprocessError {
    /// Zero bytes were given.
    #[error("the image is empty (0 bytes); pass the contents of a PNG, JPEG, WebP or GIF file")]
    Empty,
    /// The bytes match no image format's signature.
    #[error(
        "the file is not an image vit-lens can read (PNG, JPEG, WebP or GIF): {detail}; \
         check that it is an image file, or convert it to PNG or JPEG"
    )]
    UnrecognizedFormat {
        /// What the first bytes look like.
        detail: String,
    },
    /// A known image format that vit-lens does not decode (BMP, TIFF, ...),
    /// or a variant of a supported one that the decoder cannot handle.
    #[error(
        "{format} images are not supported ({detail}); convert the image to PNG or JPEG first"
    )]
    UnsupportedFormat {
        /// The format's name.
        format: String,
        /// Decoder's explanation.
        detail: String,
    },
    /// The data starts like a supported format but is broken or cut short.
    #[error(
        "the {format} data is corrupt or truncated ({detail}); re-download or re-export the image"
    )]
    Corrupt {
        /// The format's name.
        format: String,
        /// Decoder's explanation.
        detail: String,
    },
    /// The header announces more pixels than [`DecodeLimits`] allows.
    #[error(
        "image is {width}×{height} pixels, larger than the {max_width}×{max_height} limit; \
         scale it down first"
    )]
    TooLarge {
        width: u32,
        height: u32,
        max_width: u32,
        max_height: u32,
    },
    /// Decoding would need more memory than [`DecodeLimits::max_alloc_bytes`].
    #[error(
        "decoding this {width}×{height} image needs {} MiB, more than the {} MiB limit; \
         scale it down first",
        needed_bytes.div_ceil(1 << 20),
        limit_bytes / (1 << 20)
    )]
    TooMuchMemory {
        width: u32,
        height: u32,
        needed_bytes: u64,
        limit_bytes: u64,
    },
    /// The decoder hit its own memory or size limit mid-way.
    #[error("the image exceeds a decoding limit ({detail}); scale it down first")]
    DecoderLimit {
        /// Decoder's explanation.
        detail: String,
    },
    /// A 0×N or N×0 image.
    #[error("the image has no pixels ({width}×{height}); use an image of at least 1×1 pixels")]
    NoPixels { width: u32, height: u32 },
    /// The crop does not fit in the (resized) image.
    #[error(
        "the {crop_height}×{crop_width} center crop does not fit in the {height}×{width} image; \
         enable resizing or use a smaller crop_size"
    )]
    CropTooLarge {
        crop_height: u32,
        crop_width: u32,
        height: u32,
        width: u32,
    },
    /// Resizing the shorter side would make the longer one absurdly long.
    #[error(
        "the {width}×{height} image is so elongated that resizing it gives \
         {resized_width}×{resized_height} pixels, more than {MAX_OUTPUT_SIDE} on a side; \
         crop it to a less extreme aspect ratio first"
    )]
    ExtremeAspectRatio {
        width: u32,
        height: u32,
        resized_width: u32,
        resized_height: u32,
    },
    /// A config value is out of range or not supported.
    #[error("invalid preprocessing setting `{field}`: {reason}")]
    InvalidConfig {
        /// The offending key (JSON name where there is one).
        field: String,
        /// What is wrong and what to do.
        reason: String,
    },
    /// `preprocessor_config.json` is not JSON.
    #[error(
        "preprocessor_config.json is not valid JSON ({0}); re-download it from the model repository"
    )]
    ConfigJson(#[source] serde_json::Error),
    /// A bug in vit-lens: a buffer had the wrong size.
    #[error("internal error in vit-lens preprocessing ({0}); please report this as a bug")]
    Internal(&'static str),
}

fn invalid(field: &str, reason: impl Into<String>) -> PreprocessError {
    PreprocessError::InvalidConfig {
        field: field.to_owned(),
        reason: reason.into(),
    }
}

fn json_bool(field: &str, v: &Value) -> Result<bool, PreprocessError> {
    v.as_bool()
        .ok_or_else(|| invalid(field, format!("{v} is not true or false")))
}

fn json_f32(field: &str, v: &Value) -> Result<f32, PreprocessError> {
    v.as_f64()
        .map(|f| f as f32)
        .ok_or_else(|| invalid(field, format!("{v} is not a number")))
}

/// A per-channel triple: `[a, b, c]`, `[a]` or a bare number (broadcast).
fn json_triple(field: &str, v: &Value) -> Result<[f32; 3], PreprocessError> {
    let bad = || {
        invalid(
            field,
            format!("{v} is not a number or a list of 3 numbers (one per RGB channel)"),
        )
    };
    if let Some(x) = v.as_f64() {
        let x = x as f32;
        return Ok([x, x, x]);
    }
    let items = v.as_array().ok_or_else(bad)?;
    let nums: Option<Vec<f32>> = items.iter().map(|x| x.as_f64().map(|x| x as f32)).collect();
    match nums.as_deref() {
        Some(&[a, b, c]) => Ok([a, b, c]),
        Some(&[a]) => Ok([a, a, a]),
        _ => Err(bad()),
    }
}

fn json_side(field: &str, v: &Value) -> Result<u32, PreprocessError> {
    v.as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| {
            invalid(
                field,
                format!("{v} is not a positive whole number of pixels"),
            )
        })
}

/// `size`: int (square), `[h, w]`, `{"height","width"}` or `{"shortest_edge"}`.
fn parse_hf_size(v: &Value) -> Result<Resize, PreprocessError> {
    if v.is_number() {
        let s = json_side("size", v)?;
        return Ok(Resize::Exact {
            height: s,
            width: s,
        });
    }
    if let Some(items) = v.as_array() {
        return match items.as_slice() {
            [s] => {
                let s = json_side("size", s)?;
                Ok(Resize::Exact {
                    height: s,
                    width: s,
                })
            }
            [h, w] => Ok(Resize::Exact {
                height: json_side("size", h)?,
                width: json_side("size", w)?,
            }),
            _ => Err(invalid("size", format!("{v} must be [height, width]"))),
        };
    }
    let obj = v
        .as_object()
        .ok_or_else(|| invalid("size", format!("{v} is not a size")))?;
    let key = |k: &str| obj.get(k).filter(|x| !x.is_null());
    for unsupported in ["longest_edge", "max_height", "max_width"] {
        if key(unsupported).is_some() {
            return Err(invalid(
                "size",
                format!(
                    "{v} uses \"{unsupported}\", which vit-lens does not support; use \
                     {{\"height\", \"width\"}} or {{\"shortest_edge\"}}"
                ),
            ));
        }
    }
    match (key("height"), key("width"), key("shortest_edge")) {
        (Some(h), Some(w), None) => Ok(Resize::Exact {
            height: json_side("size.height", h)?,
            width: json_side("size.width", w)?,
        }),
        (None, None, Some(s)) => Ok(Resize::ShortestEdge(json_side("size.shortest_edge", s)?)),
        _ => Err(invalid(
            "size",
            format!("{v} must be {{\"height\": H, \"width\": W}} or {{\"shortest_edge\": S}}"),
        )),
    }
}

/// `crop_size`: int (square), `[h, w]` or `{"height","width"}`.
fn parse_hf_crop(v: &Value) -> Result<(u32, u32), PreprocessError> {
    match parse_hf_size(v) {
        Ok(Resize::Exact { height, width }) => Ok((height, width)),
        Ok(Resize::ShortestEdge(_)) | Err(_) => Err(invalid(
            "crop_size",
            format!("{v} must be a number or {{\"height\": H, \"width\": W}}"),
        )),
    }
}

fn format_name(format: ImageFormat) -> &'static str {
    match format {
        ImageFormat::Png => "PNG",
        ImageFormat::Jpeg => "JPEG",
        ImageFormat::Gif => "GIF",
        ImageFormat::WebP => "WebP",
        ImageFormat::Bmp => "BMP",
        ImageFormat::Tiff => "TIFF",
        ImageFormat::Ico => "ICO",
        ImageFormat::Avif => "AVIF",
        ImageFormat::Hdr => "HDR",
        ImageFormat::OpenExr => "OpenEXR",
        ImageFormat::Qoi => "QOI",
        ImageFormat::Tga => "TGA",
        ImageFormat::Dds => "DDS",
        ImageFormat::Pnm => "PNM",
        ImageFormat::Farbfeld => "Farbfeld",
        _ => "this image format's",
    }
}

/// A short description of unrecognized data, for the error message.
fn describe_magic(bytes: &[u8]) -> String {
    let head: Vec<String> = bytes.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!(
        "its first bytes ({}) match no known image format",
        head.join(" ")
    )
}

/// Fails unless the JPEG's marker segments are intact up to the first
/// start-of-scan and an end-of-image marker (`FF D9`) follows it. Entropy-coded
/// data never contains `FF D9` (a data `FF` is stuffed as `FF 00`), so a
/// missing EOI means the file was cut short.
fn check_jpeg_complete(bytes: &[u8]) -> Result<(), PreprocessError> {
    let truncated = |what: &str| PreprocessError::Corrupt {
        format: "JPEG".to_owned(),
        detail: format!("the data ends {what}; the file is truncated"),
    };
    // Skip SOI (FF D8), then walk the marker segments up to SOS (FF DA).
    let mut pos = 2;
    let scan_start = loop {
        // Markers may be preceded by any number of FF fill bytes.
        while bytes.get(pos) == Some(&0xFF) && bytes.get(pos + 1) == Some(&0xFF) {
            pos += 1;
        }
        match (bytes.get(pos), bytes.get(pos + 1)) {
            (Some(0xFF), Some(0xDA)) => break pos,
            (Some(0xFF), Some(0x01 | 0xD0..=0xD7)) => pos += 2,
            (Some(0xFF), Some(0xD9)) => return Err(truncated("before any image data")),
            (Some(0xFF), Some(_)) => {
                let len = match (bytes.get(pos + 2), bytes.get(pos + 3)) {
                    (Some(&hi), Some(&lo)) => usize::from(u16::from_be_bytes([hi, lo])),
                    _ => return Err(truncated("inside a header segment")),
                };
                pos += 2 + len;
            }
            (None, _) | (Some(_), None) => return Err(truncated("before the image data starts")),
            (Some(_), Some(_)) => {
                return Err(PreprocessError::Corrupt {
                    format: "JPEG".to_owned(),
                    detail: format!("expected a marker at byte {pos}"),
                })
            }
        }
    };
    let has_eoi = bytes[scan_start..].windows(2).any(|w| w == [0xFF, 0xD9]);
    if has_eoi {
        Ok(())
    } else {
        Err(truncated("before the end-of-image marker"))
    }
}

fn map_image_error(format: &str, err: ImageError) -> PreprocessError {
    match err {
        ImageError::Limits(e) => PreprocessError::DecoderLimit {
            detail: e.to_string(),
        },
        ImageError::Unsupported(e) => PreprocessError::UnsupportedFormat {
            format: format.to_owned(),
            detail: e.to_string(),
        },
        ImageError::IoError(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            PreprocessError::Corrupt {
                format: format.to_owned(),
                detail: "the data ends early; the file is truncated".to_owned(),
            }
        }
        other => PreprocessError::Corrupt {
            format: format.to_owned(),
            detail: other.to_string(),
        },
    }
}
