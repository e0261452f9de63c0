//! [`PreprocessError`]: every way an image or a preprocessing config can be
//! refused, each message saying what to do about it.
//!
//! [`MAX_OUTPUT_SIDE`] lives here, beside the error that quotes it, so that
//! the config, resize and decode modules can all use both without depending
//! on one another.

use crate::json::WrongType;

/// Largest resize or crop side a config may ask for. Guards against configs
/// that would allocate gigabytes (a 16384×16384 RGB image is 768 MiB).
pub const MAX_OUTPUT_SIDE: u32 = 16384;

/// Why an image could not become model input, with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum PreprocessError {
    /// Zero bytes were given.
    #[error("the image is empty (0 bytes); give the contents of a PNG, JPEG, WebP or GIF file")]
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
    /// The header announces more pixels than [`DecodeLimits`](super::DecodeLimits) allows.
    #[error(
        "image is {width}×{height} pixels, larger than the {max_width}×{max_height} limit; \
         scale it down first (use a smaller image)"
    )]
    TooLarge {
        width: u32,
        height: u32,
        max_width: u32,
        max_height: u32,
    },
    /// Decoding would need more memory than
    /// [`DecodeLimits::max_alloc_bytes`](super::DecodeLimits::max_alloc_bytes).
    #[error(
        "decoding this {width}×{height} image needs {} MiB, more than the {} MiB limit; \
         scale it down first (use a smaller image)",
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
    #[error(
        "the image exceeds a decoding limit ({detail}); scale it down first (use a smaller image)"
    )]
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
         crop it to a less extreme aspect ratio first, or use a less elongated image"
    )]
    ExtremeAspectRatio {
        width: u32,
        height: u32,
        resized_width: u32,
        resized_height: u32,
    },
    /// The resize would make more pixels than the resource budget allows.
    #[error(
        "the preprocessing resizes to {width}×{height} pixels, more than the {limit} pixels \
         vit-lens works on {platform}; use a smaller size in preprocessor_config.json"
    )]
    OverBudget {
        width: u32,
        height: u32,
        limit: u64,
        platform: &'static str,
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

/// A [`PreprocessError::InvalidConfig`] for `field`.
pub(super) fn invalid(field: &str, reason: impl Into<String>) -> PreprocessError {
    PreprocessError::InvalidConfig {
        field: field.to_owned(),
        reason: reason.into(),
    }
}

impl From<WrongType> for PreprocessError {
    /// The message reads, for example, ``invalid preprocessing setting `do_resize`:
    /// expected true or false, found "yes"``.
    fn from(wrong: WrongType) -> Self {
        invalid(
            &wrong.field,
            format!("expected {}, found {}", wrong.expected, wrong.found),
        )
    }
}
