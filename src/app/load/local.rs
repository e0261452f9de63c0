//! Models from files on the user's computer: `config.json`, a `.safetensors` file and
//! optionally `preprocessor_config.json`, picked or dropped together.

use leptos::prelude::*;

use super::Loader;
use crate::app::hub::{CONFIG_FILE, PREPROCESSOR_FILE};
use crate::app::net::blob_bytes;
use crate::app::state::LOCAL_KEY;

/// Whether a file the user handed over is part of a checkpoint rather than an image.
pub(super) fn is_model_file(file: &web_sys::File) -> bool {
    file.name().ends_with(".safetensors") || file.name().ends_with(".json")
}

/// Whether a file holds a checkpoint's weights.
pub(super) fn is_weights_file(file: &web_sys::File) -> bool {
    file.name().ends_with(".safetensors")
}

impl Loader {
    /// Loads a checkpoint from files the user picked or dropped.
    pub fn load_local(&self, files: Vec<web_sys::File>) {
        let notices = self.state.notices;
        let find = |name: &str| files.iter().find(|f| f.name() == name).cloned();
        let weights = files.iter().find(|f| is_weights_file(f)).cloned();
        let (Some(config), Some(weights)) = (find(CONFIG_FILE), weights) else {
            self.restore_picker();
            notices.fail(
                "A local model needs config.json and a .safetensors file (and optionally preprocessor_config.json): select them together.",
            );
            return;
        };
        let preprocessor = find(PREPROCESSOR_FILE);
        let loader = *self;
        let source = format!("local files ({})", weights.name());
        notices.error.set(None);
        leptos::task::spawn_local(async move {
            let read = async {
                let c = blob_bytes(&config).await?;
                let w = blob_bytes(&weights).await?;
                let p = match preprocessor {
                    Some(p) => Some(blob_bytes(&p).await?),
                    None => None,
                };
                Ok::<_, String>((c, w, p))
            };
            match read.await {
                Ok((c, w, p)) => loader.submit_model(LOCAL_KEY.to_string(), source, c, w, p),
                Err(e) => {
                    loader.restore_picker();
                    notices.fail(e);
                }
            }
        });
    }
}
