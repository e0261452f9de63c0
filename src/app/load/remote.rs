//! Models downloaded from the page itself (the built-in one), a hub repo or a folder URL,
//! with progress, cancellation and the Cache API.

use leptos::prelude::*;
use web_sys::AbortController;

use super::Loader;
use crate::app::hub::{Remote, CONFIG_FILE, EMBEDDED_BASE, PREPROCESSOR_FILE, WEIGHTS_FILE};
use crate::app::net::{clear_cache, fetch_bytes, open_cache, FetchError};
use crate::app::state::{Download, EMBEDDED_KEY};

impl Loader {
    /// Loads the built-in model, served beside the page: works with no network.
    pub fn load_embedded(&self) {
        let remote = Remote::Folder {
            base: EMBEDDED_BASE.to_string(),
        };
        self.load_remote(EMBEDDED_KEY.to_string(), remote, false);
    }

    /// Stops the model download in progress, if any.
    pub fn cancel_download(&self) {
        if let Some(ctrl) = self.abort.get_value() {
            ctrl.abort();
        }
    }

    /// Deletes every downloaded model file from the cache and says how many there were.
    pub fn clear_cache(&self) {
        let notices = self.state.notices;
        leptos::task::spawn_local(async move {
            match clear_cache().await {
                Ok(n) => notices.notice.set(Some(format!(
                    "Cleared {n} cached model file{}.",
                    if n == 1 { "" } else { "s" }
                ))),
                Err(e) => notices.fail(e),
            }
        });
    }

    /// Loads a remote model: downloads its files (with progress, cancel and, when
    /// `use_cache`, the cache), then hands them to the worker. `key` is its picker value.
    pub fn load_remote(&self, key: String, remote: Remote, use_cache: bool) {
        let notices = self.state.notices;
        self.cancel_download();
        let Ok(ctrl) = AbortController::new() else {
            notices.fail("This browser cannot run downloads (no AbortController).");
            return;
        };
        let signal = ctrl.signal();
        self.abort.set_value(Some(ctrl));
        let loader = *self;
        let what = if key == EMBEDDED_KEY {
            "the built-in model".to_string()
        } else {
            remote.display()
        };
        self.state.model.pending_url.set_value(Some(match &remote {
            Remote::Hub { hub, repo, .. } => format!("{hub}/{repo}"),
            Remote::Folder { base } => base.clone(),
        }));
        notices.error.set(None);
        notices.notice.set(None);
        leptos::task::spawn_local(async move {
            let cache = if use_cache { open_cache().await } else { None };
            let mut files: Vec<Option<Vec<u8>>> = Vec::new();
            for (file, optional) in [
                (CONFIG_FILE, false),
                (WEIGHTS_FILE, false),
                (PREPROCESSOR_FILE, true),
            ] {
                let url = remote.file_url(file);
                let mut progress = |loaded: f64, total: Option<f64>| {
                    notices.download.set(Some(Download {
                        what: what.clone(),
                        file: file.to_string(),
                        loaded,
                        total,
                    }));
                };
                match fetch_bytes(&url, &signal, cache.as_ref(), optional, &mut progress).await {
                    Ok(bytes) => files.push(bytes),
                    Err(e) => {
                        notices.download.set(None);
                        loader.restore_picker();
                        match e {
                            FetchError::Cancelled => notices.notice.set(Some(format!(
                                "Download of {what} cancelled; the current model stays loaded."
                            ))),
                            e => notices.fail(format!("Could not load {what}: {e}")),
                        }
                        return;
                    }
                }
            }
            notices.download.set(None);
            let mut it = files.into_iter();
            let config = it.next().flatten().unwrap_or_default();
            let weights = it.next().flatten().unwrap_or_default();
            let preprocessor = it.next().flatten();
            loader.submit_model(key, what, config, weights, preprocessor);
        });
    }
}
