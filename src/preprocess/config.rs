//! [`PreprocessConfig`]: what turns an RGB image into model input, read from
//! a Hugging Face `preprocessor_config.json` ([`PreprocessConfig::from_hf_json`])
//! or a timm `pretrained_cfg` ([`PreprocessConfig::from_timm_pretrained_cfg`]),
//! with the processor defaults and the constants they come from.

use serde_json::Value;

use super::error::{invalid, PreprocessError, MAX_OUTPUT_SIDE};
use super::resample::Resample;
use crate::json::{self, FromJson};

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

/// `rescale_factor` bounds: it takes 0–255 down (1/255 in every known processor); below 1e-6
/// every pixel would be ~0, above 1 it would amplify.
pub const RESCALE_FACTOR_RANGE: (f32, f32) = (1e-6, 1.0);
/// `image_std` bounds (`image_mean` must lie within ±the upper one): processors use 0.2–0.5
/// on rescaled pixels, or ~58 on 0–255 ones. A std below 1e-6 would blow a pixel up past 10⁸
/// (a denormal one past f32's range); above 1e6 every input would be ~0.
pub const MEAN_STD_RANGE: (f32, f32) = (1e-6, 1e6);

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
        if !value.is_object() {
            return Err(invalid(
                "preprocessor_config.json",
                "the file must hold a JSON object; re-download it from the model repository",
            ));
        }
        let get = |key: &str| json::field(&value, key);

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

        let resize = optional_step(&value, "do_resize", "size", defaults.resize, parse_hf_size)?;

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

        let crop = optional_step(
            &value,
            "do_center_crop",
            "crop_size",
            defaults.crop,
            parse_hf_crop,
        )?;

        let do_rescale =
            json::optional(&value, "do_rescale")?.unwrap_or(defaults.rescale_factor.is_some());
        let rescale_factor = if do_rescale {
            Some(
                json::optional(&value, "rescale_factor")?
                    .or(defaults.rescale_factor)
                    .unwrap_or(DEFAULT_RESCALE_FACTOR),
            )
        } else {
            None
        };

        let defaults_normalize = defaults.mean != [0.0; 3] || defaults.std != [1.0; 3];
        let do_normalize = json::optional(&value, "do_normalize")?.unwrap_or(defaults_normalize);
        let (mean, std) = if do_normalize {
            let mean = match json::optional(&value, "image_mean")? {
                Some(PerChannel(values)) => values,
                None if defaults_normalize => defaults.mean,
                None => IMAGENET_STANDARD_MEAN,
            };
            let std = match json::optional(&value, "image_std")? {
                Some(PerChannel(values)) => values,
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
        let get = |key: &str| json::field(cfg, key);

        let (height, width) = match get("input_size") {
            Some(v) => {
                let dims: Option<Vec<u32>> = v.as_array().map(|a| {
                    a.iter()
                        .filter_map(|d| Side::from_json(d).map(|s| s.0))
                        .collect()
                });
                match dims.as_deref() {
                    Some(&[3, h, w]) => (h, w),
                    _ => {
                        return Err(invalid(
                            "input_size",
                            format!(
                                "{v} is not [3, height, width]; vit-lens needs 3-channel RGB input, so use [3, height, width]"
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
            Some(v) if v.as_array().is_some_and(|a| !a.is_empty()) => {
                json::read::<PerChannel>("mean", v)?.0
            }
            _ => IMAGENET_DEFAULT_MEAN,
        };
        let std = match get("std") {
            Some(v) if v.as_array().is_some_and(|a| !a.is_empty()) => {
                json::read::<PerChannel>("std", v)?.0
            }
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
    /// fits inside the resized image, a rescale factor within
    /// [`RESCALE_FACTOR_RANGE`], standard deviations within [`MEAN_STD_RANGE`]
    /// and means within ± its upper bound (so no normalized pixel can overflow
    /// f32).
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
                             use a crop_size at most the resize size"
                        ),
                    ));
                }
            }
        }
        let (low, high) = RESCALE_FACTOR_RANGE;
        if let Some(f) = self.rescale_factor {
            if !(low..=high).contains(&f) {
                return Err(invalid(
                    "rescale_factor",
                    format!(
                        "{f} is out of range; it must be a number from {low:e} to {high}, usually 1/255 = 0.00392156862745098"
                    ),
                ));
            }
        }
        let (_, mean_high) = MEAN_STD_RANGE;
        if let Some(m) = self
            .mean
            .iter()
            .find(|m| !(-mean_high..=mean_high).contains(*m))
        {
            return Err(invalid(
                "image_mean",
                format!(
                    "{:?} holds {}; each mean must be a finite number from -{mean_high:e} to {mean_high:e}",
                    self.mean,
                    crate::budget::format_number(f64::from(*m))
                ),
            ));
        }
        let (std_low, std_high) = MEAN_STD_RANGE;
        if self.std.iter().any(|s| !(std_low..=std_high).contains(s)) {
            return Err(invalid(
                "image_std",
                format!(
                    "{:?} must be positive numbers from {std_low:e} to {std_high:e} (a std of 0 would divide by zero, a tiny one overflow)",
                    self.std
                ),
            ));
        }
        Ok(())
    }
}

/// The setting of a step that a flag turns on or off (`do_resize` with its
/// `size`, `do_center_crop` with its `crop_size`): `None` when the flag is
/// false, or missing and `default` is `None`; otherwise the JSON's `key`,
/// else `default`, else an error asking for `key`.
fn optional_step<T>(
    json: &Value,
    flag: &str,
    key: &str,
    default: Option<T>,
    parse: impl FnOnce(&Value) -> Result<T, PreprocessError>,
) -> Result<Option<T>, PreprocessError> {
    if !json::optional(json, flag)?.unwrap_or(default.is_some()) {
        return Ok(None);
    }
    match json::field(json, key) {
        Some(v) => parse(v).map(Some),
        None => default.map(Some).ok_or_else(|| {
            invalid(
                key,
                format!("{flag} is true but no {key} is given; set a \"{key}\" entry"),
            )
        }),
    }
}

/// A per-channel triple in a config: `[a, b, c]`, `[a]` or a bare number
/// (broadcast to the three channels).
struct PerChannel([f32; 3]);

impl FromJson<'_> for PerChannel {
    const EXPECTED: &'static str = "a number or a list of 3 numbers (one per RGB channel)";
    fn from_json(v: &Value) -> Option<Self> {
        if let Some(x) = f32::from_json(v) {
            return Some(Self([x, x, x]));
        }
        let nums: Option<Vec<f32>> = v.as_array()?.iter().map(f32::from_json).collect();
        match *nums.as_deref()? {
            [a, b, c] => Some(Self([a, b, c])),
            [a] => Some(Self([a, a, a])),
            _ => None,
        }
    }
}

/// An image side in a config, in pixels (0 passes here and is refused by
/// [`PreprocessConfig::validate`]).
struct Side(u32);

impl FromJson<'_> for Side {
    const EXPECTED: &'static str = "a positive whole number of pixels";
    fn from_json(v: &Value) -> Option<Self> {
        v.as_u64().and_then(|n| u32::try_from(n).ok()).map(Self)
    }
}

/// The pixel side `v` of the config key `field`.
fn side(field: &str, v: &Value) -> Result<u32, PreprocessError> {
    Ok(json::read::<Side>(field, v)?.0)
}

/// `size`: int (square), `[h, w]`, `{"height","width"}` or `{"shortest_edge"}`.
fn parse_hf_size(v: &Value) -> Result<Resize, PreprocessError> {
    if v.is_number() {
        let s = side("size", v)?;
        return Ok(Resize::Exact {
            height: s,
            width: s,
        });
    }
    if let Some(items) = v.as_array() {
        return match items.as_slice() {
            [s] => {
                let s = side("size", s)?;
                Ok(Resize::Exact {
                    height: s,
                    width: s,
                })
            }
            [h, w] => Ok(Resize::Exact {
                height: side("size", h)?,
                width: side("size", w)?,
            }),
            _ => Err(invalid("size", format!("{v} must be [height, width]"))),
        };
    }
    if !v.is_object() {
        return Err(invalid(
            "size",
            format!("{v} is not a size; use a number, [height, width] or {{\"height\": H, \"width\": W}}"),
        ));
    }
    let key = |k: &str| json::field(v, k);
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
            height: side("size.height", h)?,
            width: side("size.width", w)?,
        }),
        (None, None, Some(s)) => Ok(Resize::ShortestEdge(side("size.shortest_edge", s)?)),
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
