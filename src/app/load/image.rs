//! Images from the user: dropped, pasted or chosen files. A drop of checkpoint files loads a
//! model instead.

use std::sync::Arc;

use super::local::{is_model_file, is_weights_file};
use super::Loader;
use crate::app::hub::format_bytes;
use crate::app::net::blob_bytes;

/// Images above this size are refused before they are read.
const MAX_IMAGE_FILE_BYTES: f64 = 64.0 * 1024.0 * 1024.0;

impl Loader {
    /// Reads an image the user handed over at `started` and classifies it.
    pub fn take_image_blob(&self, name: String, blob: web_sys::Blob, started: f64) {
        let notices = self.state.notices;
        let size = blob.size();
        if size > MAX_IMAGE_FILE_BYTES {
            notices.fail(format!(
                "{name} is {} — too large. Use an image under {}.",
                format_bytes(size),
                format_bytes(MAX_IMAGE_FILE_BYTES)
            ));
            return;
        }
        if size == 0.0 {
            notices.fail(format!(
                "{name} is empty. Choose an image file (PNG, JPEG, WebP or GIF)."
            ));
            return;
        }
        let client = self.client;
        leptos::task::spawn_local(async move {
            match blob_bytes(&blob).await {
                Ok(bytes) => client.classify(name, Arc::new(bytes), started),
                Err(e) => notices.fail(format!("{name}: {e}")),
            }
        });
    }

    /// Files from a drop or a file input: checkpoint files load a model, anything else is
    /// classified (the first file).
    pub fn take_files(&self, files: Vec<web_sys::File>, started: f64) {
        if files.iter().any(is_weights_file) {
            self.load_local(files.into_iter().filter(is_model_file).collect());
            return;
        }
        let Some(file) = files.into_iter().next() else {
            self.state
                .notices
                .fail("Nothing to open: drop an image file (PNG, JPEG, WebP or GIF).");
            return;
        };
        self.take_image_blob(file.name(), file.into(), started);
    }
}
