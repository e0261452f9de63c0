//! Image bytes → 8-bit RGB: format sniffing, size and memory limits checked
//! from the header before decoding, EXIF orientation, and Pillow's
//! `convert("RGB")` for every colour layout.

use std::io::Cursor;

use image::metadata::Orientation;
use image::{
    ColorType, DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader, RgbImage,
};

use super::error::PreprocessError;

/// Bounds on what [`decode()`] accepts, checked from the file header before any
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

    // A PNG's size sits at a fixed place in its header: refuse an oversized one before the
    // decoder reads anything (or fails on something else first, such as a bad checksum).
    if let Some((width, height)) = png_size(bytes, format) {
        if let Some(e) = too_large(width, height, limits) {
            return Err(e);
        }
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
    // On 32-bit targets (wasm32) the PNG decoder refuses huge images even without limits, so
    // a PNG's size is read from its header directly.
    let (width, height) = match png_size(bytes, format) {
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

/// (width, height) from a PNG's IHDR chunk, which follows the 8-byte signature.
fn png_size(bytes: &[u8], format: ImageFormat) -> Option<(u32, u32)> {
    if format != ImageFormat::Png || bytes.get(12..16)? != b"IHDR" {
        return None;
    }
    let be = |at: usize| -> Option<u32> {
        Some(u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
    };
    Some((be(16)?, be(20)?))
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
