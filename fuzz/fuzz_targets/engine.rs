//! A checkpoint run end to end on the CPU, as the CLI and the web app's worker do: load it
//! (same input cut as the `checkpoint` target), build the CPU engine, preprocess a small image
//! with the checkpoint's own preprocessing, and run one forward pass.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    vit_lens_fuzz::engine(data);
});
