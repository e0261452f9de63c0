//! A checkpoint run end to end on the CPU, as the CLI and the web app's worker do: load it
//! (same input cut as the `checkpoint` target), build the CPU engine, preprocess a small image
//! with the checkpoint's own preprocessing, and run one forward pass.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vit_lens::checkpoint::{Checkpoint, CheckpointFiles};
use vit_lens::engine::{BackendChoice, Engine};
use vit_lens::preprocess::{preprocess_bytes, DecodeLimits};
use vit_lens_fuzz::checkpoint_parts;

/// A 1×1 RGB PNG; the checkpoint's preprocessing resizes it to the model's input.
const IMAGE: &[u8] = include_bytes!("../../tests/fixtures/images/tiny.png");

fuzz_target!(|data: &[u8]| {
    let parts = checkpoint_parts(data);
    let files = CheckpointFiles {
        config_json: parts.config_json,
        preprocessor_config_json: parts.preprocessor_config_json,
        safetensors: parts.safetensors,
    };
    let Ok(checkpoint) = Checkpoint::from_bytes(files) else {
        return;
    };
    let Ok(engine) = vit_lens::gpu::block_on(Engine::new(&checkpoint, BackendChoice::Cpu)) else {
        return;
    };
    let Ok(image) = preprocess_bytes(IMAGE, &checkpoint.preprocess, &DecodeLimits::default())
    else {
        return;
    };
    if let Ok(result) = engine.infer(&image) {
        assert_eq!(result.attentions.len(), checkpoint.config.num_layers);
    }
});
