//! Any bytes as `model.safetensors`: `read_safetensors` must answer with tensors or an error.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    vit_lens_fuzz::safetensors(data);
});
