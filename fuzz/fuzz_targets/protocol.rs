//! Messages between the page and the worker: the JSON of a `Request` or `Reply`, `0xFF`, then
//! bytes that stand for the transferred buffers. A `Result` reply goes through the page's own
//! checks (`ResultMeta::check_buffers`, `StoredInference::from_parts`) and, when accepted, on
//! to the heatmaps the page draws from it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    vit_lens_fuzz::protocol(data);
});
