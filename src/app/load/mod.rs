//! Getting things into the page: models (downloaded from the page itself, a hub or a URL,
//! or read from the user's files) and images (dropped, pasted, chosen, or a sample). What
//! is read goes to the inference worker through the [`Client`].

mod image;
mod local;
mod remote;
mod samples;

use leptos::prelude::*;
use web_sys::AbortController;

use super::client::Client;
use super::protocol::Request;
use super::state::AppState;

pub use samples::{sample_index, Sample, SAMPLES_DIR};

/// Loads models and images. `Copy`: every field is a handle.
#[derive(Clone, Copy)]
pub struct Loader {
    client: Client,
    state: AppState,
    /// Cancels the model download in progress.
    abort: StoredValue<Option<AbortController>, LocalStorage>,
}

impl Loader {
    pub fn new(client: Client) -> Self {
        Self {
            client,
            state: client.state(),
            abort: StoredValue::new_local(None),
        }
    }

    /// Hands a checkpoint's files to the worker; `key` is its model-picker value and
    /// `source` where it came from, in words.
    fn submit_model(
        &self,
        key: String,
        source: String,
        config: Vec<u8>,
        weights: Vec<u8>,
        preprocessor: Option<Vec<u8>>,
    ) {
        let model = self.state.model;
        model.pending_key.set_value(key);
        model.loading.set(true);
        self.state.notices.status.set(format!("Reading {source}…"));
        let request = Request::LoadModel {
            source,
            backend: model.backend_choice.get_untracked(),
            has_preprocessor: preprocessor.is_some(),
        };
        let mut buffers = vec![config, weights];
        buffers.extend(preprocessor);
        self.client.post(&request, buffers);
    }

    /// A load that did not happen: the picker shows the loaded model again.
    fn restore_picker(&self) {
        let model = self.state.model;
        model.picker.set(model.key.get_untracked());
    }
}
