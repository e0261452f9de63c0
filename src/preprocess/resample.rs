//! The resampling filters a processor can ask for, by PIL code or by timm / torchvision name.

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
