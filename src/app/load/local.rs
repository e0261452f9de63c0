//! Models from files on the user's computer: `config.json`, a `.safetensors` file and
//! optionally `preprocessor_config.json`, picked or dropped together.

use leptos::prelude::*;

use std::sync::Arc;

use super::Loader;
use crate::app::client::ModelFiles;
use crate::app::hub::{format_bytes, CONFIG_FILE, PREPROCESSOR_FILE};
use crate::app::net::{blob_bytes, MAX_JSON_BYTES, MAX_WEIGHTS_BYTES};
use crate::app::state::LOCAL_KEY;

/// The bytes of a file the user picked, refused unread when it is over `max_bytes`.
async fn capped_bytes(file: &web_sys::File, max_bytes: f64) -> Result<Vec<u8>, String> {
    if file.size() > max_bytes {
        return Err(format!(
            "{} is {}, more than the {} this page accepts for that file.",
            file.name(),
            format_bytes(file.size()),
            format_bytes(max_bytes)
        ));
    }
    blob_bytes(file).await
}

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
                let c = capped_bytes(&config, MAX_JSON_BYTES).await?;
                let w = capped_bytes(&weights, MAX_WEIGHTS_BYTES).await?;
                let p = match preprocessor {
                    Some(p) => Some(capped_bytes(&p, MAX_JSON_BYTES).await?),
                    None => None,
                };
                Ok::<_, String>((c, w, p))
            };
            match read.await {
                Ok((c, w, p)) => loader.submit_model(ModelFiles {
                    key: LOCAL_KEY.to_string(),
                    source,
                    url: None,
                    config: Arc::new(c),
                    weights: Arc::new(w),
                    preprocessor: p.map(Arc::new),
                    to_cache: Vec::new(),
                }),
                Err(e) => {
                    loader.restore_picker();
                    notices.fail(e);
                }
            }
        });
    }
}
