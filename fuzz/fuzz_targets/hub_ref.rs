//! What a user types into the model box: the model reference, then optionally a newline and
//! the hub it is resolved against (the default hub otherwise).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vit_lens::app::hub::{
    parse_model_ref, Remote, CONFIG_FILE, DEFAULT_HUB, PREPROCESSOR_FILE, WEIGHTS_FILE,
};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (input, hub) = text.split_once('\n').unwrap_or((text, DEFAULT_HUB));
    if let Ok(remote) = parse_model_ref(input, hub) {
        for file in [CONFIG_FILE, WEIGHTS_FILE, PREPROCESSOR_FILE] {
            let _ = remote.file_url(file);
        }
        let _ = (remote.display(), remote.origin());
        if let Remote::Hub { hub, repo, .. } = &remote {
            let _ = Remote::hub(hub, repo).file_url(CONFIG_FILE);
        }
    }
});
