//! A whole checkpoint from one input (see `vit_lens_fuzz::checkpoint_parts` for the cut):
//! `Checkpoint::from_bytes` must load it or say why not, and what it loads must be usable.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vit_lens::checkpoint::{Checkpoint, CheckpointFiles};
use vit_lens_fuzz::checkpoint_parts;

fuzz_target!(|data: &[u8]| {
    let parts = checkpoint_parts(data);
    let files = CheckpointFiles {
        config_json: parts.config_json,
        preprocessor_config_json: parts.preprocessor_config_json,
        safetensors: parts.safetensors,
    };
    if let Ok(checkpoint) = Checkpoint::from_bytes(files) {
        // What the page and the CLI show right after loading.
        let config = &checkpoint.config;
        let _ = (config.tokens(), config.head_dim(), config.macs());
        let _ = checkpoint.parameter_count();
        let _ = checkpoint.preprocess.output_size();
        let _ = vit_lens::app::protocol::ModelInfo::of(&checkpoint, "fuzz");
    }
});
