//! Any bytes as `model.safetensors`: `read_safetensors` must answer with tensors or an error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vit_lens::checkpoint::read_safetensors;

fuzz_target!(|data: &[u8]| {
    if let Ok(raw) = read_safetensors(data) {
        for tensor in raw.tensors.values() {
            assert_eq!(tensor.shape.iter().product::<usize>(), tensor.len());
        }
    }
});
