//! A preprocessor configuration and an image file: `preprocessor_config.json` (or a timm
//! `pretrained_cfg`), `0xFF`, then the image bytes. Every configuration that parses is applied
//! to the image with the limits the app and the CLI use.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vit_lens::preprocess::{preprocess_bytes, DecodeLimits, PreprocessConfig};
use vit_lens_fuzz::split_once;

/// The model's `image_size` the Hugging Face processor defaults fall back to.
const IMAGE_SIZE: u32 = 224;

fuzz_target!(|data: &[u8]| {
    let (json, image) = split_once(data);
    let mut configs = Vec::new();
    if let Ok(cfg) = PreprocessConfig::from_hf_json_auto(json, IMAGE_SIZE) {
        configs.push(cfg);
    }
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(json) {
        if let Ok(cfg) = PreprocessConfig::from_timm_pretrained_cfg(&value) {
            configs.push(cfg);
        }
    }
    if configs.is_empty() {
        configs.push(PreprocessConfig::vit_defaults(IMAGE_SIZE));
    }
    for cfg in &configs {
        if let Ok(pre) = preprocess_bytes(image, cfg, &DecodeLimits::default()) {
            let (w, h) = (pre.width as usize, pre.height as usize);
            assert_eq!(pre.pixel_values.len(), 3 * w * h);
            assert_eq!(pre.crop.dimensions(), (pre.width, pre.height));
        }
    }
});
