//! Getting things into the page: models (downloaded from the page itself, a hub or a URL,
//! or read from the user's files) and images (dropped, pasted, chosen, or a sample). What
//! is read goes to the inference worker through the [`Client`].

mod image;
mod local;
mod remote;
mod samples;

use leptos::prelude::*;
use web_sys::AbortController;

use super::client::{Client, ModelFiles};
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

    /// Hands a checkpoint's files to the worker.
    fn submit_model(&self, files: ModelFiles) {
        self.client.load_model(files);
    }

    /// A load that did not happen: the picker shows the loaded model again.
    fn restore_picker(&self) {
        let model = self.state.model;
        model.picker.set(model.key.get_untracked());
    }
}
