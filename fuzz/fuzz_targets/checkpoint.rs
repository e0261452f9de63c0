//! A whole checkpoint from one input (see `vit_lens_fuzz::checkpoint_parts` for the cut):
//! `Checkpoint::from_bytes` must load it or say why not, and what it loads must be usable.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    vit_lens_fuzz::checkpoint(data);
});
