//! What a user types into the model box: the model reference, then optionally a newline and
//! the hub it is resolved against (the default hub otherwise).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    vit_lens_fuzz::hub_ref(data);
});
