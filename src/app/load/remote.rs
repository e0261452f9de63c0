//! Models downloaded from the page itself (the built-in one), a hub repo or a folder URL,
//! with progress, cancellation, size limits and the Cache API. A model from a host that is
//! neither the page's own nor the configured hub waits for the user to confirm that host.

use std::sync::Arc;

use leptos::prelude::*;
use web_sys::AbortController;

use super::Loader;
use crate::app::client::ModelFiles;
use crate::app::dom::{page_origin, query_param};
use crate::app::hub::{
    parse_model_ref, Remote, CONFIG_FILE, EMBEDDED_BASE, PREPROCESSOR_FILE, PRESETS, WEIGHTS_FILE,
};
use crate::app::net::{
    clear_cache, fetch_bytes, CacheEntry, CacheUse, FetchError, MAX_JSON_BYTES, MAX_WEIGHTS_BYTES,
};
use crate::app::state::{Download, HostConfirm, CUSTOM_KEY, EMBEDDED_KEY};

/// Whether `revision` names a commit (40 hex digits), whose files never change.
fn is_commit(revision: &str) -> bool {
    revision.len() == 40 && revision.chars().all(|c| c.is_ascii_hexdigit())
}

impl Loader {
    /// Loads the model the page starts with: `?model=` when it names one (the built-in
    /// model is then not downloaded at all), else the built-in model.
    pub fn load_at_start(&self) {
        // What the page found wrong with its address (`?hub=`) stays on screen.
        let notices = self.state.notices;
        let said = notices.error.get_untracked();
        self.start_model();
        if notices.error.with_untracked(Option::is_none) {
            notices.error.set(said);
        }
    }

    fn start_model(&self) {
        let Some(wanted) = query_param("model") else {
            self.load_embedded();
            return;
        };
        match parse_model_ref(&wanted, &self.state.model.hub.get_value()) {
            Ok(remote) => {
                let key = PRESETS
                    .iter()
                    .find(|p| p.repo == wanted)
                    .map_or(CUSTOM_KEY.to_string(), |p| p.repo.to_string());
                self.load_model_ref(key, remote);
            }
            Err(e) => {
                self.state.notices.fail(format!(
                    "?model= is ignored ({e}); the built-in model is loaded instead."
                ));
                self.load_embedded();
            }
        }
    }

    /// Loads a model the user (or the page's address) named: at once when it comes from the
    /// page's own origin or the configured hub, else once the user confirms its host.
    pub fn load_model_ref(&self, key: String, remote: Remote) {
        let model = self.state.model;
        let hub = Remote::Folder {
            base: model.hub.get_value(),
        };
        let trusted = match remote.origin() {
            None => true,
            Some(origin) => origin == page_origin() || Some(origin) == hub.origin(),
        };
        if trusted {
            model.confirm.set(None);
            self.load_remote(key, remote, true);
            return;
        }
        let host = remote.origin().unwrap_or_default();
        if model.info.get_untracked().is_none() {
            model.loading.set(false);
            self.state.notices.status.set(String::new());
        }
        model.confirm.set(Some(HostConfirm { key, remote, host }));
    }

    /// The user allowed the download waiting for confirmation.
    pub fn confirm_host(&self) {
        if let Some(c) = self.state.model.confirm.try_update(Option::take).flatten() {
            self.load_remote(c.key, c.remote, true);
        }
    }

    /// The user declined the download waiting for confirmation; with no model loaded, the
    /// built-in one is.
    pub fn decline_host(&self) {
        let model = self.state.model;
        model.confirm.set(None);
        self.restore_picker();
        if model.info.get_untracked().is_none() && !model.loading.get_untracked() {
            self.load_embedded();
        }
    }

    /// Loads the built-in model, served beside the page: works with no network.
    pub fn load_embedded(&self) {
        let remote = Remote::Folder {
            base: EMBEDDED_BASE.to_string(),
        };
        self.state.model.confirm.set(None);
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

    /// Loads a remote model: downloads its files (with progress, cancel, size limits and,
    /// when `use_cache`, the cache), then hands them to the worker. `key` is its picker
    /// value. Files are cached only once the worker accepted the model.
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
        let url = match &remote {
            Remote::Hub { hub, repo, .. } => format!("{hub}/{repo}"),
            Remote::Folder { base } => base.clone(),
        };
        let cache_use = match &remote {
            _ if !use_cache => CacheUse::None,
            Remote::Hub { revision, .. } if is_commit(revision) => CacheUse::Immutable,
            _ => CacheUse::Revalidate,
        };
        notices.error.set(None);
        notices.notice.set(None);
        leptos::task::spawn_local(async move {
            let mut files: Vec<Option<Arc<Vec<u8>>>> = Vec::new();
            let mut to_cache = Vec::new();
            for (file, optional, max_bytes) in [
                (CONFIG_FILE, false, MAX_JSON_BYTES),
                (WEIGHTS_FILE, false, MAX_WEIGHTS_BYTES),
                (PREPROCESSOR_FILE, true, MAX_JSON_BYTES),
            ] {
                let file_url = remote.file_url(file);
                let mut progress = |loaded: f64, total: Option<f64>| {
                    notices.download.set(Some(Download {
                        what: what.clone(),
                        file: file.to_string(),
                        loaded,
                        total,
                    }));
                };
                let fetched = fetch_bytes(
                    &file_url,
                    &signal,
                    cache_use,
                    optional,
                    max_bytes,
                    &mut progress,
                )
                .await;
                match fetched {
                    Ok(Some(fetched)) => {
                        let bytes = Arc::new(fetched.bytes);
                        if let Some(validators) = fetched.to_cache {
                            to_cache.push(CacheEntry {
                                url: file_url,
                                bytes: bytes.clone(),
                                validators,
                            });
                        }
                        files.push(Some(bytes));
                    }
                    Ok(None) => files.push(None),
                    Err(e) => {
                        notices.download.set(None);
                        loader.restore_picker();
                        match e {
                            FetchError::Cancelled => notices.notice.set(Some(format!(
                                "Download of {what} cancelled; the current model stays loaded."
                            ))),
                            e => notices.fail(format!("Could not load {what}: {e}")),
                        }
                        loader.after_failed_load();
                        return;
                    }
                }
            }
            notices.download.set(None);
            let mut it = files.into_iter();
            let config = it.next().flatten().unwrap_or_default();
            let weights = it.next().flatten().unwrap_or_default();
            let preprocessor = it.next().flatten();
            loader.submit_model(ModelFiles {
                key,
                source: what,
                url: Some(url),
                config,
                weights,
                preprocessor,
                to_cache,
            });
        });
    }

    /// A download failed: with no model loaded (the first one failed), the page stops
    /// saying it is loading one.
    fn after_failed_load(&self) {
        let model = self.state.model;
        if model.info.get_untracked().is_none() {
            model.loading.set(false);
            self.state.notices.status.set(String::new());
        }
    }
}
