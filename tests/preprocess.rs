//! Preprocessing parity with Pillow, transformers and timm.
//!
//! Reference arrays come from `tests/fixtures/make_images.py` (Pillow 13.0.0,
//! transformers 5.23.0, timm 1.0.31, torchvision 0.29.2) and live in
//! `tests/fixtures/images/preprocess_reference.safetensors`.
//!
//! Tolerances (measured, see the `eprintln!` lines with `--nocapture`):
//! - Pillow resize: bit-exact for every filter.
//! - pixel_values vs transformers' PIL processors and timm's eval transform:
//!   bit-exact (max |diff| = 0); asserted ≤ 1e-6.
//! - pixel_values vs transformers' torchvision ("fast") processors, which
//!   `AutoImageProcessor` picks by default in transformers 5.23: torchvision's
//!   antialiased uint8 resize differs from Pillow by one uint8 level on a
//!   small share of pixels (about 1 % of values at 24×24, 0.1 % for the
//!   224×224 defaults on rgb.png), i.e. max |diff| = 1/255/std = 0.0078 for
//!   std 0.5; elsewhere only f32 rounding of its fused normalize (≤ 6e-8).
//!   Asserted ≤ one step.
//! - JPEG decode vs Pillow (libjpeg-turbo vs zune-jpeg): measured max 2
//!   levels (mean 0.015) for the 4:4:4 EXIF JPEG and max 1 (mean 0.013) for
//!   the CMYK JPEG; asserted max ≤ 4, mean ≤ 0.25. Through preprocessing this
//!   is at most one uint8 step in pixel_values.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use image::RgbImage;
use safetensors::{Dtype, SafeTensors};
use serde_json::json;
use vit_lens::preprocess::{
    center_crop, decode, preprocess, preprocess_bytes, resize_pil, CropOffset, DecodeLimits,
    PreprocessConfig, PreprocessError, Resample, Resize, IMAGENET_DEFAULT_MEAN,
    IMAGENET_DEFAULT_STD, IMAGENET_STANDARD_MEAN, IMAGENET_STANDARD_STD,
};

// ---------------------------------------------------------------------------
// Allocation tracking: the largest single allocation made by this thread.

struct TrackingAlloc;

thread_local! {
    static LARGEST_ALLOC: Cell<usize> = const { Cell::new(0) };
}

fn note_alloc(size: usize) {
    let _ = LARGEST_ALLOC.try_with(|largest| {
        if size > largest.get() {
            largest.set(size);
        }
    });
}

unsafe impl GlobalAlloc for TrackingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_alloc(layout.size());
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_alloc(layout.size());
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_alloc(new_size);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: TrackingAlloc = TrackingAlloc;

// ---------------------------------------------------------------------------
// Fixtures.

fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/images")
        .join(name)
}

fn fixture(name: &str) -> Vec<u8> {
    let path = fixture_path(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn reference_bytes() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| fixture("preprocess_reference.safetensors"))
}

fn reference() -> SafeTensors<'static> {
    SafeTensors::deserialize(reference_bytes()).expect("reference safetensors parses")
}

/// An HWC uint8 reference as an RgbImage.
fn ref_image(name: &str) -> RgbImage {
    let st = reference();
    let t = st.tensor(name).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(t.dtype(), Dtype::U8, "{name}");
    let shape = t.shape();
    assert_eq!(shape.len(), 3, "{name}");
    assert_eq!(shape[2], 3, "{name}");
    RgbImage::from_raw(shape[1] as u32, shape[0] as u32, t.data().to_vec()).expect("size matches")
}

/// A CHW float32 reference: (shape, values).
fn ref_f32(name: &str) -> (Vec<usize>, Vec<f32>) {
    let st = reference();
    let t = st.tensor(name).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(t.dtype(), Dtype::F32, "{name}");
    let values = t
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    (t.shape().to_vec(), values)
}

fn rgb_png() -> RgbImage {
    static IMG: OnceLock<RgbImage> = OnceLock::new();
    IMG.get_or_init(|| decode(&fixture("rgb.png"), &DecodeLimits::default()).expect("rgb.png"))
        .clone()
}

fn exif_jpeg_decoded_by_us() -> RgbImage {
    decode(&fixture("exif_rot6.jpg"), &DecodeLimits::default()).expect("exif_rot6.jpg")
}

/// Every `step`-th row and column of a (3, h, w) buffer.
fn strided(values: &[f32], h: usize, w: usize, step: usize) -> (Vec<usize>, Vec<f32>) {
    let rows: Vec<usize> = (0..h).step_by(step).collect();
    let cols: Vec<usize> = (0..w).step_by(step).collect();
    let mut out = Vec::with_capacity(3 * rows.len() * cols.len());
    for c in 0..3 {
        for &y in &rows {
            for &x in &cols {
                out.push(values[c * h * w + y * w + x]);
            }
        }
    }
    (vec![3, rows.len(), cols.len()], out)
}

struct Diff {
    max: f32,
    mean: f64,
    differing: usize,
    total: usize,
}

fn diff_f32(a: &[f32], b: &[f32]) -> Diff {
    assert_eq!(a.len(), b.len(), "lengths differ");
    let mut max = 0.0_f32;
    let mut sum = 0.0_f64;
    let mut differing = 0;
    for (x, y) in a.iter().zip(b) {
        let d = (x - y).abs();
        max = max.max(d);
        sum += f64::from(d);
        if d > 0.0 {
            differing += 1;
        }
    }
    Diff {
        max,
        mean: sum / a.len().max(1) as f64,
        differing,
        total: a.len(),
    }
}

fn diff_u8(a: &RgbImage, b: &RgbImage) -> Diff {
    assert_eq!(a.dimensions(), b.dimensions(), "sizes differ");
    let fa: Vec<f32> = a.as_raw().iter().map(|&v| f32::from(v)).collect();
    let fb: Vec<f32> = b.as_raw().iter().map(|&v| f32::from(v)).collect();
    diff_f32(&fa, &fb)
}

/// Compare our pixel_values (full (3, h, w)) with a reference that is either
/// full or strided by `step`.
fn compare_pv(ours: &vit_lens::preprocess::Preprocessed, name: &str, step: usize) -> Diff {
    let (shape, want) = ref_f32(name);
    let (h, w) = (ours.height as usize, ours.width as usize);
    assert_eq!(ours.pixel_values.len(), 3 * h * w);
    let (got_shape, got) = strided(&ours.pixel_values, h, w, step);
    assert_eq!(got_shape, shape, "{name}: shape");
    let d = diff_f32(&got, &want);
    eprintln!(
        "{name}: max |diff| {:.3e}, mean {:.3e}, {} of {} values differ",
        d.max, d.mean, d.differing, d.total
    );
    d
}

/// A Pillow resize case, as in make_images.py.
struct ResizeCase {
    name: &'static str,
    /// Crop box of rgb.png: (left, top, right, bottom).
    source: (u32, u32, u32, u32),
    /// Output (width, height).
    size: (u32, u32),
}

const RESIZE_CASES: [ResizeCase; 6] = [
    ResizeCase {
        name: "down",
        source: (0, 0, 320, 240),
        size: (37, 29),
    },
    ResizeCase {
        name: "up",
        source: (150, 100, 174, 118),
        size: (41, 31),
    },
    ResizeCase {
        name: "mixed",
        source: (0, 0, 80, 40),
        size: (25, 50),
    },
    ResizeCase {
        name: "vertical_first",
        source: (0, 0, 40, 240),
        size: (20, 30),
    },
    ResizeCase {
        name: "same_width",
        source: (0, 0, 80, 60),
        size: (80, 19),
    },
    ResizeCase {
        name: "same_height",
        source: (120, 90, 200, 150),
        size: (29, 60),
    },
];

const FILTERS: [(&str, Resample); 6] = [
    ("nearest", Resample::Nearest),
    ("lanczos", Resample::Lanczos),
    ("bilinear", Resample::Bilinear),
    ("bicubic", Resample::Bicubic),
    ("box", Resample::Box),
    ("hamming", Resample::Hamming),
];

// ---------------------------------------------------------------------------
// Pillow resize, bit for bit.

#[test]
fn resize_is_bit_exact_with_pillow_for_every_filter() {
    let src = rgb_png();
    let mut checked = 0;
    for (fname, filter) in FILTERS {
        for ResizeCase {
            name: case,
            source: (l, t, r, b),
            size: (w, h),
        } in RESIZE_CASES
        {
            let name = format!("resize/{fname}/{case}");
            if case.starts_with("same_") && !matches!(fname, "bicubic" | "bilinear") {
                continue;
            }
            let part = image::imageops::crop_imm(&src, l, t, r - l, b - t).to_image();
            let ours = resize_pil(&part, w, h, filter).expect("resize");
            let want = ref_image(&name);
            let d = diff_u8(&ours, &want);
            assert_eq!(
                d.differing, 0,
                "{name}: {} of {} samples differ from Pillow (max {})",
                d.differing, d.total, d.max
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 6 * 4 + 2 * 2);
}

#[test]
fn resize_same_size_is_a_copy_and_degenerate_sizes_are_refused() {
    let src = rgb_png();
    let same = resize_pil(&src, 320, 240, Resample::Lanczos).expect("same size");
    assert_eq!(same, src);
    assert!(matches!(
        resize_pil(&src, 0, 10, Resample::Bicubic),
        Err(PreprocessError::InvalidConfig { .. })
    ));
    // 1×1 → 5×3 and back: every filter handles single-pixel inputs.
    let one = RgbImage::from_pixel(1, 1, image::Rgb([200, 100, 50]));
    for (_, filter) in FILTERS {
        let up = resize_pil(&one, 5, 3, filter).expect("upscale 1x1");
        assert!(up.pixels().all(|p| p.0 == [200, 100, 50]), "{filter:?}");
        let down = resize_pil(&src, 1, 1, filter).expect("downscale to 1x1");
        assert_eq!(down.dimensions(), (1, 1));
    }
}

// ---------------------------------------------------------------------------
// transformers processors.

const TOL: f32 = 1e-6;

#[test]
fn vit_defaults_match_transformers_pil_processor() {
    let img = rgb_png();
    let out = preprocess(&img, &PreprocessConfig::vit_defaults(224)).expect("preprocess");
    assert_eq!((out.height, out.width), (224, 224));
    assert_eq!(out.crop.dimensions(), (224, 224));
    assert!(compare_pv(&out, "pv/vit_pil_224_s11/rgb", 11).max <= TOL);

    let out = preprocess(&img, &PreprocessConfig::vit_defaults(24)).expect("preprocess");
    assert!(compare_pv(&out, "pv/vit_pil_24/rgb", 1).max <= TOL);
}

#[test]
fn deit_defaults_match_transformers_pil_processor() {
    let img = rgb_png();
    let cfg = PreprocessConfig::deit_defaults(224);
    assert_eq!(
        cfg.resize,
        Some(Resize::Exact {
            height: 256,
            width: 256
        })
    );
    let out = preprocess(&img, &cfg).expect("preprocess");
    assert_eq!((out.height, out.width), (224, 224));
    assert!(compare_pv(&out, "pv/deit_pil_224_s11/rgb", 11).max <= TOL);

    // 25 → 22: an odd margin, where the floor offset matters.
    let cfg = PreprocessConfig {
        resize: Some(Resize::Exact {
            height: 25,
            width: 25,
        }),
        crop: Some((22, 22)),
        ..PreprocessConfig::deit_defaults(22)
    };
    let out = preprocess(&img, &cfg).expect("preprocess");
    assert!(compare_pv(&out, "pv/deit_pil_25_22/rgb", 1).max <= TOL);
}

#[test]
fn shortest_edge_without_crop_matches_transformers() {
    let cfg = PreprocessConfig {
        resize: Some(Resize::ShortestEdge(20)),
        crop: None,
        ..PreprocessConfig::deit_defaults(224)
    };
    assert_eq!(cfg.output_size(), None);
    let out = preprocess(&rgb_png(), &cfg).expect("preprocess");
    assert_eq!((out.height, out.width), (20, 26));
    assert!(compare_pv(&out, "pv/deit_pil_se20/rgb", 1).max <= TOL);
}

#[test]
fn exif_image_matches_transformers_on_the_upright_image() {
    // transformers does not apply EXIF orientation; the reference was made
    // from Pillow's decode after ImageOps.exif_transpose. On Pillow's pixels
    // we are exact; on our own JPEG decode, JPEG decoder differences remain.
    let pil_decoded = ref_image("decoded/exif_rot6.jpg");
    let ours_decoded = exif_jpeg_decoded_by_us();
    assert_eq!(ours_decoded.dimensions(), (64, 48));

    let vit = PreprocessConfig::vit_defaults(24);
    let deit = PreprocessConfig {
        resize: Some(Resize::Exact {
            height: 25,
            width: 25,
        }),
        crop: Some((22, 22)),
        ..PreprocessConfig::deit_defaults(22)
    };
    for (cfg, name) in [
        (&vit, "pv/vit_pil_24/exif"),
        (&deit, "pv/deit_pil_25_22/exif"),
    ] {
        let exact = preprocess(&pil_decoded, cfg).expect("preprocess");
        assert!(compare_pv(&exact, name, 1).max <= TOL, "{name}");
        let ours = preprocess(&ours_decoded, cfg).expect("preprocess");
        let d = compare_pv(&ours, name, 1);
        // Two uint8 steps after normalization with std 0.5.
        assert!(d.max <= 4.0 / 255.0 / 0.5 + TOL, "{name}: {}", d.max);
    }
}

#[test]
fn difference_to_torchvision_fast_processors_is_at_most_one_step() {
    // transformers 5.23's AutoImageProcessor picks these torchvision
    // processors by default; we follow the PIL ones. One uint8 step after
    // normalizing with std 0.5 is 1/255/0.5.
    let step = 1.0 / 255.0 / 0.5;
    let img = rgb_png();
    let vit = preprocess(&img, &PreprocessConfig::vit_defaults(224)).expect("vit");
    let deit = preprocess(&img, &PreprocessConfig::deit_defaults(224)).expect("deit");
    let vit24 = preprocess(&img, &PreprocessConfig::vit_defaults(24)).expect("vit24");
    let deit22_cfg = PreprocessConfig {
        resize: Some(Resize::Exact {
            height: 25,
            width: 25,
        }),
        crop: Some((22, 22)),
        ..PreprocessConfig::deit_defaults(22)
    };
    let deit22 = preprocess(&img, &deit22_cfg).expect("deit22");
    let deit22_exif = preprocess(&ref_image("decoded/exif_rot6.jpg"), &deit22_cfg).expect("exif");
    for (ours, name, stride) in [
        (&vit, "pv/vit_fast_224_s11/rgb", 11),
        (&deit, "pv/deit_fast_224_s11/rgb", 11),
        (&vit24, "pv/vit_fast_24/rgb", 1),
        (&deit22, "pv/deit_fast_25_22/rgb", 1),
        (&deit22_exif, "pv/deit_fast_25_22/exif", 1),
    ] {
        let d = compare_pv(ours, name, stride);
        assert!(d.max <= step + TOL, "{name}: {}", d.max);
    }
}

// ---------------------------------------------------------------------------
// timm.

fn timm_deit_tiny_cfg() -> serde_json::Value {
    serde_json::from_slice(&fixture("timm_deit_tiny_pretrained_cfg.json")).expect("timm cfg json")
}

#[test]
fn timm_eval_transform_parity() {
    let img = rgb_png();
    let real = timm_deit_tiny_cfg();
    let cfg = PreprocessConfig::from_timm_pretrained_cfg(&real).expect("timm cfg");
    assert_eq!(cfg.resize, Some(Resize::ShortestEdge(248)));
    assert_eq!(cfg.crop, Some((224, 224)));
    assert_eq!(cfg.resample, Resample::Bicubic);
    assert_eq!(cfg.mean, IMAGENET_DEFAULT_MEAN);
    assert_eq!(cfg.std, IMAGENET_DEFAULT_STD);
    assert_eq!(cfg.crop_offset, CropOffset::RoundHalfEven);
    let out = preprocess(&img, &cfg).expect("preprocess");
    assert!(compare_pv(&out, "pv/timm_deit_tiny_224_s11/rgb", 11).max <= TOL);

    let mut pct875 = real.clone();
    pct875["crop_pct"] = json!(0.875);
    let cfg = PreprocessConfig::from_timm_pretrained_cfg(&pct875).expect("timm cfg");
    assert_eq!(cfg.resize, Some(Resize::ShortestEdge(256)));
    let out = preprocess(&img, &cfg).expect("preprocess");
    assert!(compare_pv(&out, "pv/timm_875_224_s11/rgb", 11).max <= TOL);

    // input 22, crop_pct 0.875: 320x240 -> 33x25, crop margins 11 and 3,
    // offsets round(5.5) = 6 and round(1.5) = 2 (floor would give 5 and 1).
    let mut small = real;
    small["input_size"] = json!([3, 22, 22]);
    small["crop_pct"] = json!(0.875);
    let cfg = PreprocessConfig::from_timm_pretrained_cfg(&small).expect("timm cfg");
    assert_eq!(cfg.resize, Some(Resize::ShortestEdge(25)));
    for (image, name) in [
        (img.clone(), "pv/timm_22/rgb"),
        (ref_image("decoded/exif_rot6.jpg"), "pv/timm_22/exif"),
    ] {
        let out = preprocess(&image, &cfg).expect("preprocess");
        assert!(compare_pv(&out, name, 1).max <= TOL, "{name}");
    }
    // The rounding matters here: transformers' floor offsets give other values.
    let floored = PreprocessConfig {
        crop_offset: CropOffset::Floor,
        ..cfg
    };
    let out = preprocess(&img, &floored).expect("preprocess");
    assert!(compare_pv(&out, "pv/timm_22/rgb", 1).max > 0.01);
}

#[test]
fn timm_cfg_variants() {
    // A timm config.json from the hub nests the pretrained_cfg.
    let nested = json!({
        "architecture": "deit_tiny_patch16_224",
        "num_classes": 1000,
        "pretrained_cfg": {"input_size": [3, 384, 384], "interpolation": "bilinear", "crop_pct": 1.0,
                            "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}
    });
    let cfg = PreprocessConfig::from_timm_pretrained_cfg(&nested).expect("nested");
    assert_eq!(cfg.resize, Some(Resize::ShortestEdge(384)));
    assert_eq!(cfg.crop, Some((384, 384)));
    assert_eq!(cfg.resample, Resample::Bilinear);
    assert_eq!(cfg.mean, IMAGENET_STANDARD_MEAN);
    assert_eq!(cfg.output_size(), Some((384, 384)));

    // Everything missing: timm's resolve_data_config defaults.
    let cfg = PreprocessConfig::from_timm_pretrained_cfg(&json!({})).expect("empty");
    assert_eq!(cfg.resize, Some(Resize::ShortestEdge(256)));
    assert_eq!(cfg.crop, Some((224, 224)));
    assert_eq!(cfg.resample, Resample::Bicubic);
    assert_eq!(cfg.mean, IMAGENET_DEFAULT_MEAN);
    assert_eq!(cfg.std, IMAGENET_DEFAULT_STD);

    let squash = json!({"input_size": [3, 224, 160], "crop_pct": 0.875, "crop_mode": "squash"});
    let cfg = PreprocessConfig::from_timm_pretrained_cfg(&squash).expect("squash");
    assert_eq!(
        cfg.resize,
        Some(Resize::Exact {
            height: 256,
            width: 182
        })
    );
    assert_eq!(cfg.crop, Some((224, 160)));

    for (bad, field) in [
        (json!({"crop_mode": "border"}), "crop_mode"),
        (json!({"input_size": [3, 224, 160]}), "crop_mode"),
        (json!({"input_size": [1, 224, 224]}), "input_size"),
        (json!({"interpolation": "random"}), "interpolation"),
        (json!({"crop_pct": -1.0}), "crop_pct"),
        (json!({"std": [0.2, 0.0, 0.2]}), "image_std"),
        (json!({"mean": [0.5, 0.5]}), "mean"),
        (json!([1, 2, 3]), "pretrained_cfg"),
    ] {
        match PreprocessConfig::from_timm_pretrained_cfg(&bad) {
            Err(e @ PreprocessError::InvalidConfig { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains(field), "{bad}: {msg}");
            }
            other => panic!("{bad}: expected InvalidConfig, got {other:?}"),
        }
    }
}

// ---------------------------------------------------------------------------
// Hugging Face preprocessor_config.json.

fn hf(json: &str, defaults: &PreprocessConfig) -> Result<PreprocessConfig, PreprocessError> {
    PreprocessConfig::from_hf_json(json.as_bytes(), defaults)
}

#[test]
fn hf_json_real_world_shapes() {
    let vit = PreprocessConfig::vit_defaults(224);
    let deit = PreprocessConfig::deit_defaults(224);

    // facebook/deit-tiny-patch16-224 (ViTFeatureExtractor style).
    let cfg = hf(
        r#"{"do_normalize": true, "do_resize": true, "feature_extractor_type": "ViTFeatureExtractor",
            "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "resample": 2, "size": 224}"#,
        &vit,
    )
    .expect("deit-tiny");
    assert_eq!(cfg, vit);
    assert_eq!(cfg.output_size(), Some((224, 224)));

    // DeiTImageProcessor with explicit sizes and ImageNet statistics.
    let cfg = hf(
        r#"{"crop_size": {"height": 224, "width": 224}, "do_center_crop": true, "do_normalize": true,
            "do_rescale": true, "do_resize": true, "image_mean": [0.485, 0.456, 0.406],
            "image_processor_type": "DeiTImageProcessor", "image_std": [0.229, 0.224, 0.225],
            "resample": 3, "rescale_factor": 0.00392156862745098,
            "size": {"height": 256, "width": 256}}"#,
        &deit,
    )
    .expect("deit processor");
    assert_eq!(
        cfg,
        PreprocessConfig {
            mean: IMAGENET_DEFAULT_MEAN,
            std: IMAGENET_DEFAULT_STD,
            ..PreprocessConfig::deit_defaults(224)
        }
    );

    // Old DeiTFeatureExtractor: integer size and crop_size.
    let cfg = hf(
        r#"{"crop_size": 224, "do_center_crop": true, "do_normalize": true, "do_resize": true,
            "feature_extractor_type": "DeiTFeatureExtractor", "image_mean": [0.485, 0.456, 0.406],
            "image_std": [0.229, 0.224, 0.225], "resample": 3, "size": 256}"#,
        &deit,
    )
    .expect("deit feature extractor");
    assert_eq!(cfg.crop, Some((224, 224)));
    assert_eq!(
        cfg.resize,
        Some(Resize::Exact {
            height: 256,
            width: 256
        })
    );

    // ViTImageProcessorFast at 384, everything else from the defaults.
    let cfg = hf(
        r#"{"image_processor_type": "ViTImageProcessorFast", "size": {"height": 384, "width": 384}}"#,
        &vit,
    )
    .expect("fast");
    assert_eq!(cfg, PreprocessConfig::vit_defaults(384));

    // shortest_edge + crop, flags off.
    let cfg = hf(
        r#"{"size": {"shortest_edge": 256}, "crop_size": {"height": 224, "width": 224},
            "do_center_crop": true, "do_normalize": false, "do_rescale": false, "resample": 1}"#,
        &vit,
    )
    .expect("shortest edge");
    assert_eq!(cfg.resize, Some(Resize::ShortestEdge(256)));
    assert_eq!(cfg.crop, Some((224, 224)));
    assert_eq!(cfg.resample, Resample::Lanczos);
    assert_eq!(cfg.rescale_factor, None);
    assert_eq!((cfg.mean, cfg.std), ([0.0; 3], [1.0; 3]));

    // A crop_size without do_center_crop on a ViT processor is ignored, as in
    // transformers (ViTImageProcessor has no center crop).
    let cfg = hf(r#"{"crop_size": 200, "size": 224}"#, &vit).expect("ignored crop");
    assert_eq!(cfg.crop, None);
    // do_center_crop false switches off the DeiT default crop; nulls count as missing.
    let cfg = hf(r#"{"do_center_crop": false, "size": null}"#, &deit).expect("no crop");
    assert_eq!(cfg.crop, None);
    assert_eq!(cfg.resize, deit.resize);
    // do_resize false.
    let cfg = hf(r#"{"do_resize": false}"#, &vit).expect("no resize");
    assert_eq!(cfg.resize, None);
    assert_eq!(cfg.output_size(), None);
    // Scalar mean/std broadcast.
    let cfg = hf(r#"{"image_mean": 0.5, "image_std": [0.25]}"#, &vit).expect("scalar stats");
    assert_eq!((cfg.mean, cfg.std), ([0.5; 3], [0.25; 3]));
    // Standard stats fill in when defaults do not normalize but the JSON does.
    let plain = PreprocessConfig {
        mean: [0.0; 3],
        std: [1.0; 3],
        ..vit.clone()
    };
    let cfg = hf(r#"{"do_normalize": true}"#, &plain).expect("standard stats");
    assert_eq!(
        (cfg.mean, cfg.std),
        (IMAGENET_STANDARD_MEAN, IMAGENET_STANDARD_STD)
    );
}

#[test]
fn hf_json_auto_picks_class_defaults() {
    // A DeiT processor that only states its statistics gets DeiT's resize and crop.
    let cfg = PreprocessConfig::from_hf_json_auto(
        br#"{"image_processor_type": "DeiTImageProcessorFast", "image_mean": [0.485, 0.456, 0.406],
             "image_std": [0.229, 0.224, 0.225]}"#,
        224,
    )
    .expect("deit");
    assert_eq!(
        cfg,
        PreprocessConfig {
            mean: IMAGENET_DEFAULT_MEAN,
            std: IMAGENET_DEFAULT_STD,
            ..PreprocessConfig::deit_defaults(224)
        }
    );
    let cfg = PreprocessConfig::from_hf_json_auto(
        br#"{"feature_extractor_type": "ViTFeatureExtractor"}"#,
        384,
    )
    .expect("vit");
    assert_eq!(cfg, PreprocessConfig::vit_defaults(384));
    assert!(matches!(
        PreprocessConfig::from_hf_json_auto(b"", 224),
        Err(PreprocessError::ConfigJson(_))
    ));
}

#[test]
fn hf_json_errors_name_the_problem() {
    let vit = PreprocessConfig::vit_defaults(224);
    let cases: [(&str, &str); 11] = [
        (r#"{"image_std": [0.5, 0, 0.5]}"#, "image_std"),
        (r#"{"size": 0}"#, "size"),
        (
            r#"{"size": 100, "do_center_crop": true, "crop_size": 224}"#,
            "crop_size",
        ),
        (r#"{"resample": 7}"#, "resample"),
        (
            r#"{"size": {"shortest_edge": 224, "longest_edge": 1333}}"#,
            "longest_edge",
        ),
        (r#"{"size": {"width": 224}}"#, "size"),
        (r#"{"do_resize": "yes"}"#, "do_resize"),
        (r#"{"image_mean": [0.5, 0.5]}"#, "image_mean"),
        (r#"{"crop_pct": 0.875}"#, "crop_pct"),
        (r#"{"do_center_crop": true}"#, "crop_size"),
        (r#"[1, 2]"#, "JSON object"),
    ];
    for (json, needle) in cases {
        match hf(json, &vit) {
            Err(e @ PreprocessError::InvalidConfig { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains(needle), "{json}: {msg}");
            }
            other => panic!("{json}: expected InvalidConfig, got {other:?}"),
        }
    }
    match hf("{not json", &vit) {
        Err(e @ PreprocessError::ConfigJson(_)) => {
            assert!(e.to_string().contains("not valid JSON"), "{e}");
        }
        other => panic!("expected ConfigJson, got {other:?}"),
    }
}

#[test]
fn config_validation_and_output_size() {
    let deit = PreprocessConfig::deit_defaults(224);
    assert_eq!(deit.output_size(), Some((224, 224)));
    assert_eq!(
        PreprocessConfig::deit_defaults(384).resize,
        Some(Resize::Exact {
            height: 438,
            width: 438
        })
    );
    let bad = PreprocessConfig {
        crop: Some((300, 300)),
        ..deit.clone()
    };
    let e = preprocess(&rgb_png(), &bad).expect_err("crop larger than resize");
    assert!(e.to_string().contains("crop_size"), "{e}");
    let bad = PreprocessConfig {
        rescale_factor: Some(f32::NAN),
        ..deit.clone()
    };
    assert!(matches!(
        bad.validate(),
        Err(PreprocessError::InvalidConfig { .. })
    ));
    // No resize, crop bigger than the image: a runtime error naming both sizes.
    let no_resize = PreprocessConfig {
        resize: None,
        crop: Some((100, 100)),
        ..deit
    };
    let tiny = RgbImage::new(50, 40);
    match preprocess(&tiny, &no_resize) {
        Err(e @ PreprocessError::CropTooLarge { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("100×100") && msg.contains("40×50"), "{msg}");
        }
        other => panic!("expected CropTooLarge, got {other:?}"),
    }
    let sliver = RgbImage::new(2000, 1);
    match preprocess(&sliver, &PreprocessConfig::deit_defaults(224)) {
        Ok(_) => {}
        Err(e) => panic!("exact resize of a sliver works: {e}"),
    }
    let shortest = PreprocessConfig {
        resize: Some(Resize::ShortestEdge(256)),
        ..PreprocessConfig::deit_defaults(224)
    };
    match preprocess(&sliver, &shortest) {
        Err(e @ PreprocessError::ExtremeAspectRatio { .. }) => {
            assert!(e.to_string().contains("2000×1"), "{e}");
        }
        other => panic!("expected ExtremeAspectRatio, got {other:?}"),
    }
    assert!(matches!(
        preprocess(&RgbImage::new(0, 5), &PreprocessConfig::vit_defaults(16)),
        Err(PreprocessError::NoPixels { .. })
    ));
}

#[test]
fn center_crop_offsets_follow_each_reference() {
    // A 1-row image whose pixel values are their x coordinate.
    let row = RgbImage::from_fn(12, 1, |x, _| image::Rgb([x as u8, 0, 0]));
    let first_x = |crop_w: u32, offset: CropOffset| {
        center_crop(&row, 1, crop_w, offset)
            .expect("crop")
            .get_pixel(0, 0)
            .0[0]
    };
    // margin 3: floor 1, round(1.5) = 2; margin 5: floor 2, round(2.5) = 2;
    // margin 7: floor 3, round(3.5) = 4; margin 2: both 1.
    assert_eq!(first_x(9, CropOffset::Floor), 1);
    assert_eq!(first_x(9, CropOffset::RoundHalfEven), 2);
    assert_eq!(first_x(7, CropOffset::Floor), 2);
    assert_eq!(first_x(7, CropOffset::RoundHalfEven), 2);
    assert_eq!(first_x(5, CropOffset::Floor), 3);
    assert_eq!(first_x(5, CropOffset::RoundHalfEven), 4);
    assert_eq!(first_x(10, CropOffset::RoundHalfEven), 1);
}

// ---------------------------------------------------------------------------
// Decoding.

#[test]
fn lossless_formats_decode_like_pillow() {
    for name in [
        "gray.png",
        "rgba.png",
        "rgb16.png",
        "gray16.png",
        "anim.gif",
        "lossless.webp",
        "tiny.png",
    ] {
        let ours = decode(&fixture(name), &DecodeLimits::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let want = ref_image(&format!("decoded/{name}"));
        let d = diff_u8(&ours, &want);
        assert_eq!(
            d.differing, 0,
            "{name}: {} samples differ, max {}",
            d.differing, d.max
        );
    }
}

#[test]
fn jpegs_decode_close_to_pillow() {
    // EXIF orientation 6: stored 48 wide, 64 tall; upright 64×48.
    let ours = exif_jpeg_decoded_by_us();
    let want = ref_image("decoded/exif_rot6.jpg");
    let d = diff_u8(&ours, &want);
    eprintln!("exif_rot6.jpg vs Pillow: max {}, mean {:.3}", d.max, d.mean);
    assert!(
        d.max <= 4.0 && d.mean <= 0.5,
        "max {} mean {}",
        d.max,
        d.mean
    );

    let ours = decode(&fixture("cmyk.jpg"), &DecodeLimits::default()).expect("cmyk");
    let want = ref_image("decoded/cmyk.jpg");
    let d = diff_u8(&ours, &want);
    eprintln!("cmyk.jpg vs Pillow: max {}, mean {:.3}", d.max, d.mean);
    assert!(
        d.max <= 8.0 && d.mean <= 1.5,
        "max {} mean {}",
        d.max,
        d.mean
    );
}

#[test]
fn preprocess_bytes_end_to_end() {
    let out = preprocess_bytes(
        &fixture("tiny.png"),
        &PreprocessConfig::vit_defaults(16),
        &DecodeLimits::default(),
    )
    .expect("tiny");
    assert_eq!((out.height, out.width), (16, 16));
    assert_eq!(out.pixel_values.len(), 3 * 16 * 16);
    // (200/255 - 0.5) / 0.5 etc., constant per channel.
    for (c, v) in [200.0_f32, 100.0, 50.0].into_iter().enumerate() {
        let want = ((v as f64 / 255.0) as f32 - 0.5) / 0.5;
        assert!(out.pixel_values[c * 256..(c + 1) * 256]
            .iter()
            .all(|&x| x == want));
    }
    let out = preprocess_bytes(
        &fixture("rgb.png"),
        &PreprocessConfig::vit_defaults(24),
        &DecodeLimits::default(),
    )
    .expect("rgb");
    assert!(compare_pv(&out, "pv/vit_pil_24/rgb", 1).max <= TOL);
}

// ---------------------------------------------------------------------------
// Malformed input.

fn expect_err(name: &str, bytes: &[u8]) -> PreprocessError {
    match decode(bytes, &DecodeLimits::default()) {
        Ok(img) => panic!("{name}: decoded a {:?} image", img.dimensions()),
        Err(e) => e,
    }
}

#[test]
fn malformed_files_give_specific_errors() {
    let e = expect_err("empty.bin", &fixture("empty.bin"));
    assert!(matches!(e, PreprocessError::Empty), "{e:?}");
    assert!(e.to_string().contains("empty"), "{e}");

    let e = expect_err("random.bin", &fixture("random.bin"));
    assert!(
        matches!(e, PreprocessError::UnrecognizedFormat { .. }),
        "{e:?}"
    );
    let msg = e.to_string();
    assert!(msg.contains("not an image vit-lens can read"), "{msg}");
    assert!(msg.contains("PNG, JPEG, WebP or GIF"), "{msg}");

    let e = expect_err("truncated.png", &fixture("truncated.png"));
    assert!(matches!(e, PreprocessError::Corrupt { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("PNG") && msg.contains("corrupt or truncated"),
        "{msg}"
    );

    // zune-jpeg would fill a cut-off scan with grey; we refuse like Pillow.
    for name in ["exif_rot6.jpg", "cmyk.jpg"] {
        let jpeg = fixture(name);
        for cut in [10, 300, jpeg.len() / 2, jpeg.len() - 2] {
            let e = expect_err(name, &jpeg[..cut]);
            assert!(
                matches!(e, PreprocessError::Corrupt { .. }),
                "{name}[..{cut}]: {e:?}"
            );
            let msg = e.to_string();
            assert!(msg.contains("JPEG") && msg.contains("truncated"), "{msg}");
        }
    }

    // A BMP signature: known format, not supported.
    let e = expect_err(
        "bmp",
        b"BM\x3e\x00\x00\x00\x00\x00\x00\x00\x3e\x00\x00\x00\x28\x00",
    );
    assert!(
        matches!(e, PreprocessError::UnsupportedFormat { .. }),
        "{e:?}"
    );
    assert!(e.to_string().contains("BMP"), "{e}");

    let e = preprocess_bytes(
        b"",
        &PreprocessConfig::vit_defaults(16),
        &DecodeLimits::default(),
    )
    .expect_err("empty bytes");
    assert!(matches!(e, PreprocessError::Empty));
}

#[test]
fn huge_dimensions_are_refused_before_allocating() {
    let bytes = fixture("huge_dims.png");
    LARGEST_ALLOC.with(|l| l.set(0));
    let start = Instant::now();
    let result = decode(&bytes, &DecodeLimits::default());
    let elapsed = start.elapsed();
    let largest = LARGEST_ALLOC.with(Cell::get);
    match result {
        Err(ref e @ PreprocessError::TooLarge { width, height, .. }) => {
            assert_eq!((width, height), (30000, 30000));
            let msg = e.to_string();
            assert!(msg.contains("30000×30000"), "{msg}");
            assert!(msg.contains("16384×16384"), "{msg}");
            assert!(msg.contains("scale it down"), "{msg}");
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    eprintln!("huge_dims.png refused in {elapsed:?}, largest allocation {largest} bytes");
    assert!(largest < 1 << 20, "allocated {largest} bytes");
    assert!(elapsed < Duration::from_secs(1), "took {elapsed:?}");
}

#[test]
fn custom_limits_apply() {
    let png = fixture("rgb.png");
    let narrow = DecodeLimits {
        max_width: 100,
        ..DecodeLimits::default()
    };
    assert!(matches!(
        decode(&png, &narrow),
        Err(PreprocessError::TooLarge {
            width: 320,
            height: 240,
            ..
        })
    ));
    let stingy = DecodeLimits {
        max_alloc_bytes: 100_000,
        ..DecodeLimits::default()
    };
    match decode(&png, &stingy) {
        Err(e @ PreprocessError::TooMuchMemory { .. }) => {
            assert!(e.to_string().contains("MiB"), "{e}");
        }
        other => panic!("expected TooMuchMemory, got {other:?}"),
    }
}

/// CRC-32 (IEEE) as PNG chunks use it.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A PNG whose header claims `width`×`height` 8-bit RGB pixels; the pixel data is a stub.
fn png_header_only(width: u32, height: u32) -> Vec<u8> {
    let chunk = |kind: &[u8], data: &[u8]| {
        let mut out = (data.len() as u32).to_be_bytes().to_vec();
        let body: Vec<u8> = kind.iter().chain(data).copied().collect();
        out.extend(&body);
        out.extend(crc32(&body).to_be_bytes());
        out
    };
    let mut ihdr = width.to_be_bytes().to_vec();
    ihdr.extend(height.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    let mut png = vec![0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];
    png.extend(chunk(b"IHDR", &ihdr));
    png.extend(chunk(
        b"IDAT",
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    ));
    png.extend(chunk(b"IEND", &[]));
    png
}

#[test]
fn oversized_rgb_png_names_its_size() {
    // The PNG decoder itself refuses 30000×30000 RGB (2.7 GB) while reading the header; the
    // message must still say how large the image is and what the limit is.
    let e = decode(&png_header_only(30000, 30000), &DecodeLimits::default())
        .expect_err("2.7 GB of pixels");
    let msg = e.to_string();
    assert!(
        matches!(
            e,
            PreprocessError::TooLarge {
                width: 30000,
                height: 30000,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(
        msg.contains("30000×30000") && msg.contains("scale it down"),
        "{msg}"
    );
    // Within the side limit but over the memory limit: the memory error, with the size.
    let e = decode(&png_header_only(16000, 16000), &DecodeLimits::default())
        .expect_err("768 MB of pixels");
    assert!(
        matches!(
            e,
            PreprocessError::TooMuchMemory {
                width: 16000,
                height: 16000,
                ..
            }
        ),
        "{e:?}"
    );
}

/// Statistics that would divide by (almost) zero, wash every pixel out or overflow f32 are
/// refused by name; the values real processors use pass.
#[test]
fn normalization_statistics_have_sane_ranges() {
    let vit = PreprocessConfig::vit_defaults(224);
    for (json, field) in [
        (r#"{"image_std": [1e-40, 0.5, 0.5]}"#, "image_std"),
        (r#"{"image_std": [1e-9, 0.5, 0.5]}"#, "image_std"),
        (r#"{"image_std": [1e9, 0.5, 0.5]}"#, "image_std"),
        (r#"{"image_mean": [1e30, 0.5, 0.5]}"#, "image_mean"),
        (r#"{"rescale_factor": 0}"#, "rescale_factor"),
        (r#"{"rescale_factor": 1e-9}"#, "rescale_factor"),
        (r#"{"rescale_factor": 255}"#, "rescale_factor"),
    ] {
        match hf(json, &vit) {
            Err(e @ PreprocessError::InvalidConfig { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains(field), "{json}: {msg}");
            }
            other => panic!("{json}: expected InvalidConfig, got {other:?}"),
        }
    }
    for json in [
        r#"{"image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]}"#,
        r#"{"do_rescale": false, "image_mean": [123.675, 116.28, 103.53], "image_std": [58.395, 57.12, 57.375]}"#,
        r#"{"rescale_factor": 1.0}"#,
    ] {
        hf(json, &vit).unwrap_or_else(|e| panic!("{json}: {e}"));
    }
}
