//! The page's state: a few small structs of signals, each given to the components through
//! Leptos' context (`provide_context` in the app, `expect_context` where it is read).
//!
//! - [`ModelState`]: which model is loaded or loading, on which backend;
//! - [`ResultState`]: the current classification and its timings;
//! - [`Heatmap`]: the heatmap controls, one [`ViewOptions`];
//! - [`TeachState`]: teaching mode, its views, projector mode and the shortcut overlay;
//! - [`Notices`]: errors, notices, status lines and download progress.
//!
//! Signals are `Copy`, and so is every struct here. What changes them (the worker client,
//! the model loaders) lives in [`super::client`] and [`super::load`].

use std::sync::Arc;

use leptos::prelude::*;

use super::dom::query_param;
use super::hub::{check_hub_url, Remote, DEFAULT_HUB};
use super::protocol::{BackendInfo, ModelInfo};
use super::teach_view::TeachView;
use super::view::{StoredInference, ViewOptions};
use crate::engine::BackendChoice;
use crate::teach::Teaching;

/// Model-picker value of the embedded default model.
pub const EMBEDDED_KEY: &str = "embedded";
/// Model-picker value of a hub repo or URL the user types.
pub const CUSTOM_KEY: &str = "custom";
/// Model-picker value of checkpoint files from the user's computer.
pub const LOCAL_KEY: &str = "local";

/// The model: loaded, being loaded, and the backend it runs on.
#[derive(Clone, Copy)]
pub struct ModelState {
    /// The hub base URL (`?hub=` overrides the default).
    pub hub: StoredValue<String>,
    /// The loaded model, once the worker has built its engine.
    pub info: RwSignal<Option<ModelInfo>>,
    /// The backend the loaded model's engine runs on.
    pub backend: RwSignal<Option<BackendInfo>>,
    /// The backend the user asked for.
    pub backend_choice: RwSignal<BackendChoice>,
    /// A model is being read or its engine built.
    pub loading: RwSignal<bool>,
    /// The picker value of the model that is loaded.
    pub key: RwSignal<String>,
    /// The picker value on screen (it runs ahead of `key` while a model loads).
    pub picker: RwSignal<String>,
    /// Where the loaded model came from (hub repo or folder URL), for the model card.
    pub url: RwSignal<Option<String>>,
    /// A model on another host, waiting for the user to allow the download.
    pub confirm: RwSignal<Option<HostConfirm>>,
}

/// A model the page downloads only once the user confirms its host: one from a host that is
/// neither the page's own nor the configured hub.
#[derive(Clone, Debug, PartialEq)]
pub struct HostConfirm {
    /// Its model-picker value.
    pub key: String,
    pub remote: Remote,
    /// The origin the files would come from (`https://host`).
    pub host: String,
}

/// The current classification.
#[derive(Clone, Copy)]
pub struct ResultState {
    /// The last image the worker classified.
    pub current: RwSignal<Option<Arc<StoredInference>>>,
    /// An image is with the worker.
    pub classifying: RwSignal<bool>,
    /// The last rollout computation, ms.
    pub rollout_ms: RwSignal<f64>,
    /// When the user handed over the image now being drawn.
    pub started_at: StoredValue<Option<f64>>,
    /// From the user's drop (or click) to the heatmap on screen, ms.
    pub total_ms: RwSignal<Option<f64>>,
}

/// The heatmap controls.
#[derive(Clone, Copy)]
pub struct Heatmap {
    /// Map kind, layer, head fusion, discard ratio, opacity and colormap.
    pub options: RwSignal<ViewOptions>,
}

/// Teaching mode and the presentation aids that go with it.
#[derive(Clone, Copy)]
pub struct TeachState {
    /// Classify (heatmap) or Teach (the teaching views).
    pub on: RwSignal<bool>,
    /// The teaching view on screen.
    pub view: RwSignal<TeachView>,
    /// The teaching statistics and the result id they describe (None: model only).
    pub teaching: RwSignal<Option<(Option<u64>, Arc<Teaching>)>>,
    /// The last Inspect request (result id, model source), so each is asked once.
    pub asked: StoredValue<Option<(Option<u64>, String)>>,
    /// Why the worker could not compute the statistics.
    pub error: RwSignal<Option<String>>,
    /// The step of the forward-pass tour on screen.
    pub tour_step: RwSignal<usize>,
    /// Projector mode: large type, full-screen heatmap.
    pub projector: RwSignal<bool>,
    /// The keyboard-shortcut overlay is open.
    pub help: RwSignal<bool>,
}

/// A download in progress.
#[derive(Clone, Debug, PartialEq)]
pub struct Download {
    /// The model, in words ("the built-in model", a repo id).
    pub what: String,
    pub file: String,
    /// Bytes so far.
    pub loaded: f64,
    /// Bytes in all, when the server says.
    pub total: Option<f64>,
}

/// What the page tells the user beside the results.
#[derive(Clone, Copy)]
pub struct Notices {
    /// The error banner.
    pub error: RwSignal<Option<String>>,
    /// The notice banner (things that went as asked, e.g. a cancelled download).
    pub notice: RwSignal<Option<String>>,
    /// What the worker is doing while a model loads.
    pub status: RwSignal<String>,
    pub download: RwSignal<Option<Download>>,
}

impl Notices {
    /// Shows `message` in the error banner.
    pub fn fail(&self, message: impl Into<String>) {
        self.error.set(Some(message.into()));
    }
}

/// All of the page's state, for the code that drives it (the worker client, the loaders);
/// components take the part they need from the context.
#[derive(Clone, Copy)]
pub struct AppState {
    pub model: ModelState,
    pub result: ResultState,
    pub heatmap: Heatmap,
    pub teach: TeachState,
    pub notices: Notices,
    pub explain: super::explain_state::ExplainState,
}

impl AppState {
    /// The state of a freshly opened page; `?backend=`, `?hub=`, `?teach` and `?projector`
    /// set where it starts.
    pub fn new() -> Self {
        let backend_choice = query_param("backend")
            .and_then(|b| b.parse().ok())
            .unwrap_or_default();
        // `?hub=` must be an absolute http(s) address; anything else keeps the default hub.
        let (hub, hub_error) = match query_param("hub").map(|h| check_hub_url(&h)) {
            None => (DEFAULT_HUB.to_string(), None),
            Some(Ok(hub)) => (hub, None),
            Some(Err(e)) => (
                DEFAULT_HUB.to_string(),
                Some(format!(
                    "?hub= is ignored ({e}); models load from {DEFAULT_HUB}"
                )),
            ),
        };
        Self {
            model: ModelState {
                hub: StoredValue::new(hub),
                info: RwSignal::new(None),
                backend: RwSignal::new(None),
                backend_choice: RwSignal::new(backend_choice),
                loading: RwSignal::new(true),
                key: RwSignal::new(EMBEDDED_KEY.to_string()),
                picker: RwSignal::new(EMBEDDED_KEY.to_string()),
                url: RwSignal::new(None),
                confirm: RwSignal::new(None),
            },
            result: ResultState {
                current: RwSignal::new(None),
                classifying: RwSignal::new(false),
                rollout_ms: RwSignal::new(0.0),
                started_at: StoredValue::new(None),
                total_ms: RwSignal::new(None),
            },
            heatmap: Heatmap {
                options: RwSignal::new(ViewOptions::default()),
            },
            teach: TeachState {
                on: RwSignal::new(query_param("teach").is_some()),
                view: RwSignal::new(TeachView::Tokens),
                teaching: RwSignal::new(None),
                asked: StoredValue::new(None),
                error: RwSignal::new(None),
                tour_step: RwSignal::new(0),
                projector: RwSignal::new(query_param("projector").is_some()),
                help: RwSignal::new(false),
            },
            notices: Notices {
                error: RwSignal::new(hub_error),
                notice: RwSignal::new(None),
                status: RwSignal::new("Starting…".to_string()),
                download: RwSignal::new(None),
            },
            explain: super::explain_state::ExplainState::new(),
        }
    }

    /// Gives every part to the components below the current owner.
    pub fn provide(&self) {
        provide_context(self.model);
        provide_context(self.result);
        provide_context(self.heatmap);
        provide_context(self.teach);
        provide_context(self.notices);
        provide_context(self.explain);
    }
}
