//! A preprocessor configuration and an image file: `preprocessor_config.json` (or a timm
//! `pretrained_cfg`), `0xFF`, then the image bytes. Every configuration that parses is applied
//! to the image with the limits the app and the CLI use.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    vit_lens_fuzz::preprocess(data);
});
