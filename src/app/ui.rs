//! The page: model picker, image input, predictions, heatmap and its controls.
//!
//! All inference happens in the worker; the page keeps the last result and re-renders the
//! heatmap from it whenever a control moves.

use std::collections::HashMap;
use std::sync::Arc;

use js_sys::{Array, Float32Array, Uint8Array};
use leptos::prelude::*;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{AbortController, MessageEvent, Worker};

use super::hub::{
    format_bytes, parse_model_ref, Remote, CONFIG_FILE, DEFAULT_HUB, EMBEDDED_BASE,
    PREPROCESSOR_FILE, PRESETS, WEIGHTS_FILE,
};
use super::net::{blob_bytes, clear_cache, fetch_bytes, open_cache, FetchError};
use super::protocol::{BackendInfo, ErrorScope, ModelInfo, Reply, Request};
use super::teach_view::TeachView;
use super::view::{MapKind, StoredInference, ViewOptions};
use crate::analysis::HeadFusion;
use crate::engine::BackendChoice;
use crate::render::Colormap;
use crate::teach::Teaching;

mod teach;

/// Images above this size are refused before they are read.
const MAX_IMAGE_FILE_BYTES: f64 = 64.0 * 1024.0 * 1024.0;
/// Model-picker value of the embedded default model.
const EMBEDDED_KEY: &str = "embedded";
const CUSTOM_KEY: &str = "custom";
const LOCAL_KEY: &str = "local";

/// Mounts the app on `<body>`.
pub fn mount() {
    console_error_panic_hook::set_once();
    register_service_worker();
    leptos::mount::mount_to_body(App);
}

/// The service worker (`sw.js`) keeps the page and the built-in model available offline.
/// Browsers without one (or pages not served from a secure origin) simply go without.
fn register_service_worker() {
    let Some(window) = web_sys::window() else {
        return;
    };
    let container = window.navigator().service_worker();
    let promise = container.register("./sw.js");
    // Before mounting, Leptos' executor is not set up yet: use wasm-bindgen's.
    wasm_bindgen_futures::spawn_local(async move {
        if let Err(e) = wasm_bindgen_futures::JsFuture::from(promise).await {
            web_sys::console::warn_2(&"vit-lens: no offline support".into(), &e);
        }
    });
}

#[derive(Clone, Debug, PartialEq)]
struct Download {
    what: String,
    file: String,
    loaded: f64,
    total: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
struct Sample {
    file: String,
    label: String,
}

#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
struct SampleIndex {
    samples: Vec<Sample>,
}

fn now_ms() -> f64 {
    web_sys::window()
        .and_then(|w| w.performance())
        .map_or_else(js_sys::Date::now, |p| p.now())
}

fn query_param(name: &str) -> Option<String> {
    let search = web_sys::window()?.location().search().ok()?;
    let params = web_sys::UrlSearchParams::new_with_str(&search).ok()?;
    params.get(name).filter(|v| !v.trim().is_empty())
}

fn send(worker: &Worker, request: &Request, buffers: Vec<Vec<u8>>) -> Result<(), String> {
    let json = serde_json::to_string(request).map_err(|e| e.to_string())?;
    let buffers: Array = buffers
        .iter()
        .map(|b| JsValue::from(Uint8Array::from(b.as_slice()).buffer()))
        .collect();
    let message = Array::of2(&JsValue::from_str(&json), &buffers);
    worker
        .post_message_with_transfer(&message, &buffers)
        .map_err(|e| format!("could not reach the inference worker: {e:?}"))
}

/// A request and its buffers, waiting for the worker.
type Outgoing = (Request, Vec<Vec<u8>>);

/// Rollouts of one result (keyed by its address) for one fusion and discard ratio.
struct RolloutCache {
    result: usize,
    fusion: HeadFusion,
    discard: f32,
    maps: Arc<Vec<Vec<f32>>>,
}

/// Everything the page's controls and handlers share. Signals are `Copy`, so is this.
#[derive(Clone, Copy)]
struct Ctx {
    worker: StoredValue<Option<Worker>, LocalStorage>,
    /// Requests made before the worker said it is alive (messages sent earlier are lost
    /// while its wasm instantiates).
    outbox: StoredValue<Option<Vec<Outgoing>>>,
    hub: StoredValue<String>,
    model: RwSignal<Option<ModelInfo>>,
    engine_backend: RwSignal<Option<BackendInfo>>,
    /// The picker value of the model that is loaded.
    model_key: RwSignal<String>,
    /// The picker value of the model being loaded.
    pending_key: StoredValue<String>,
    picker: RwSignal<String>,
    status: RwSignal<String>,
    loading_model: RwSignal<bool>,
    classifying: RwSignal<bool>,
    download: RwSignal<Option<Download>>,
    abort: StoredValue<Option<AbortController>, LocalStorage>,
    error: RwSignal<Option<String>>,
    notice: RwSignal<Option<String>>,
    result: RwSignal<Option<Arc<StoredInference>>>,
    /// The last image's name and bytes, re-run when the model or backend changes.
    last_image: StoredValue<Option<(String, Arc<Vec<u8>>)>>,
    pending: StoredValue<HashMap<u64, (String, f64)>>,
    next_id: StoredValue<u64>,
    backend_choice: RwSignal<BackendChoice>,
    layer: RwSignal<usize>,
    map_kind: RwSignal<MapKind>,
    fusion: RwSignal<HeadFusion>,
    discard: RwSignal<f32>,
    opacity: RwSignal<f32>,
    colormap: RwSignal<Colormap>,
    rollout_ms: RwSignal<f64>,
    /// When the user handed over the image now being drawn.
    started_at: StoredValue<Option<f64>>,
    /// From the user's drop (or click) to the heatmap on screen, ms.
    total_ms: RwSignal<Option<f64>>,
    /// Where the loaded model came from (hub repo or folder URL), for the model card.
    model_url: RwSignal<Option<String>>,
    pending_url: StoredValue<Option<String>>,
    /// Classify (heatmap) or Teach (the teaching views).
    teach_mode: RwSignal<bool>,
    teach_view: RwSignal<TeachView>,
    /// The teaching statistics and the result id they describe (None: model only).
    teaching: RwSignal<Option<(Option<u64>, Arc<Teaching>)>>,
    /// The last Inspect request (result id, model source), so each is asked once.
    teaching_asked: StoredValue<Option<(Option<u64>, String)>>,
    teaching_error: RwSignal<Option<String>>,
    tour_step: RwSignal<usize>,
    projector: RwSignal<bool>,
    help: RwSignal<bool>,
}

impl Ctx {
    fn new() -> Self {
        let backend_choice = query_param("backend")
            .and_then(|b| b.parse().ok())
            .unwrap_or_default();
        Self {
            worker: StoredValue::new_local(None),
            outbox: StoredValue::new(Some(Vec::new())),
            hub: StoredValue::new(query_param("hub").unwrap_or_else(|| DEFAULT_HUB.to_string())),
            model: RwSignal::new(None),
            engine_backend: RwSignal::new(None),
            model_key: RwSignal::new(EMBEDDED_KEY.to_string()),
            pending_key: StoredValue::new(EMBEDDED_KEY.to_string()),
            picker: RwSignal::new(EMBEDDED_KEY.to_string()),
            status: RwSignal::new("Starting…".to_string()),
            loading_model: RwSignal::new(true),
            classifying: RwSignal::new(false),
            download: RwSignal::new(None),
            abort: StoredValue::new_local(None),
            error: RwSignal::new(None),
            notice: RwSignal::new(None),
            result: RwSignal::new(None),
            last_image: StoredValue::new(None),
            pending: StoredValue::new(HashMap::new()),
            next_id: StoredValue::new(1),
            backend_choice: RwSignal::new(backend_choice),
            layer: RwSignal::new(1),
            map_kind: RwSignal::new(MapKind::Rollout),
            fusion: RwSignal::new(HeadFusion::Mean),
            discard: RwSignal::new(0.0),
            opacity: RwSignal::new(0.6),
            colormap: RwSignal::new(Colormap::Turbo),
            rollout_ms: RwSignal::new(0.0),
            started_at: StoredValue::new(None),
            total_ms: RwSignal::new(None),
            model_url: RwSignal::new(None),
            pending_url: StoredValue::new(None),
            teach_mode: RwSignal::new(query_param("teach").is_some()),
            teach_view: RwSignal::new(TeachView::Tokens),
            teaching: RwSignal::new(None),
            teaching_asked: StoredValue::new(None),
            teaching_error: RwSignal::new(None),
            tour_step: RwSignal::new(0),
            projector: RwSignal::new(query_param("projector").is_some()),
            help: RwSignal::new(false),
        }
    }

    fn fail(&self, message: impl Into<String>) {
        self.error.set(Some(message.into()));
    }

    fn post(&self, request: &Request, buffers: Vec<Vec<u8>>) {
        let mut buffers = Some(buffers);
        self.outbox.update_value(|outbox| {
            if let Some(outbox) = outbox {
                outbox.push((request.clone(), buffers.take().unwrap_or_default()));
            }
        });
        let Some(buffers) = buffers else { return };
        let sent = self.worker.with_value(|w| match w {
            Some(worker) => send(worker, request, buffers),
            None => Err("The inference worker is not running; reload the page.".to_string()),
        });
        if let Err(e) = sent {
            self.fail(e);
        }
    }

    /// Sends an image to the worker; `started` is when the user handed it over.
    fn classify(&self, name: String, bytes: Arc<Vec<u8>>, started: f64) {
        if self.model.get_untracked().is_none() && !self.loading_model.get_untracked() {
            self.fail("No model is loaded. Pick one in the model menu first.");
            return;
        }
        let id = self.next_id.get_value();
        self.next_id.set_value(id + 1);
        self.pending
            .update_value(|p| drop(p.insert(id, (name.clone(), started))));
        self.last_image.set_value(Some((name, bytes.clone())));
        self.classifying.set(true);
        self.post(&Request::Classify { id }, vec![bytes.as_ref().clone()]);
    }

    fn rerun_last_image(&self) {
        if let Some((name, bytes)) = self.last_image.get_value() {
            self.classify(name, bytes, now_ms());
        }
    }

    /// Reads a user's file: a checkpoint part, or an image to classify.
    fn take_image_blob(&self, name: String, blob: web_sys::Blob, started: f64) {
        let size = blob.size();
        if size > MAX_IMAGE_FILE_BYTES {
            self.fail(format!(
                "{name} is {} — too large. Use an image under {}.",
                format_bytes(size),
                format_bytes(MAX_IMAGE_FILE_BYTES)
            ));
            return;
        }
        if size == 0.0 {
            self.fail(format!(
                "{name} is empty. Choose an image file (PNG, JPEG, WebP or GIF)."
            ));
            return;
        }
        let ctx = *self;
        leptos::task::spawn_local(async move {
            match blob_bytes(&blob).await {
                Ok(bytes) => ctx.classify(name, Arc::new(bytes), started),
                Err(e) => ctx.fail(format!("{name}: {e}")),
            }
        });
    }

    /// Files from a drop or a file input: checkpoint files load a model, anything else is
    /// classified (the first file).
    fn take_files(&self, files: Vec<web_sys::File>, started: f64) {
        if files.is_empty() {
            self.fail("Nothing to open: drop an image file (PNG, JPEG, WebP or GIF).");
            return;
        }
        let is_model_file =
            |f: &web_sys::File| f.name().ends_with(".safetensors") || f.name().ends_with(".json");
        if files.iter().any(|f| f.name().ends_with(".safetensors")) {
            self.load_local(files.into_iter().filter(is_model_file).collect());
            return;
        }
        let file = files.into_iter().next().expect("not empty");
        self.take_image_blob(file.name(), file.into(), started);
    }

    fn cancel_download(&self) {
        if let Some(ctrl) = self.abort.get_value() {
            ctrl.abort();
        }
    }

    /// Loads a remote model: downloads its files (with progress, cancel and the cache),
    /// then hands them to the worker.
    fn load_remote(&self, key: String, remote: Remote, use_cache: bool) {
        self.cancel_download();
        let Ok(ctrl) = AbortController::new() else {
            self.fail("This browser cannot run downloads (no AbortController).");
            return;
        };
        let signal = ctrl.signal();
        self.abort.set_value(Some(ctrl));
        let ctx = *self;
        let what = if key == EMBEDDED_KEY {
            "the built-in model".to_string()
        } else {
            remote.display()
        };
        self.pending_url.set_value(Some(match &remote {
            Remote::Hub { hub, repo, .. } => format!("{hub}/{repo}"),
            Remote::Folder { base } => base.clone(),
        }));
        self.error.set(None);
        self.notice.set(None);
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
                    ctx.download.set(Some(Download {
                        what: what.clone(),
                        file: file.to_string(),
                        loaded,
                        total,
                    }));
                };
                match fetch_bytes(&url, &signal, cache.as_ref(), optional, &mut progress).await {
                    Ok(bytes) => files.push(bytes),
                    Err(e) => {
                        ctx.download.set(None);
                        ctx.picker.set(ctx.model_key.get_untracked());
                        match e {
                            FetchError::Cancelled => ctx.notice.set(Some(format!(
                                "Download of {what} cancelled; the current model stays loaded."
                            ))),
                            e => ctx.fail(format!("Could not load {what}: {e}")),
                        }
                        return;
                    }
                }
            }
            ctx.download.set(None);
            let mut it = files.into_iter();
            let config = it.next().flatten().unwrap_or_default();
            let weights = it.next().flatten().unwrap_or_default();
            let preprocessor = it.next().flatten();
            ctx.submit_model(key, what, config, weights, preprocessor);
        });
    }

    fn submit_model(
        &self,
        key: String,
        source: String,
        config: Vec<u8>,
        weights: Vec<u8>,
        preprocessor: Option<Vec<u8>>,
    ) {
        self.pending_key.set_value(key);
        self.loading_model.set(true);
        self.status.set(format!("Reading {source}…"));
        let request = Request::LoadModel {
            source,
            backend: self.backend_choice.get_untracked(),
            has_preprocessor: preprocessor.is_some(),
        };
        let mut buffers = vec![config, weights];
        buffers.extend(preprocessor);
        self.post(&request, buffers);
    }

    /// Loads a checkpoint from files the user picked or dropped.
    fn load_local(&self, files: Vec<web_sys::File>) {
        let find = |name: &str| files.iter().find(|f| f.name() == name).cloned();
        let weights = files
            .iter()
            .find(|f| f.name().ends_with(".safetensors"))
            .cloned();
        let (Some(config), Some(weights)) = (find(CONFIG_FILE), weights) else {
            self.picker.set(self.model_key.get_untracked());
            self.fail(
                "A local model needs config.json and a .safetensors file (and optionally preprocessor_config.json): select them together.",
            );
            return;
        };
        let preprocessor = find(PREPROCESSOR_FILE);
        let ctx = *self;
        let source = format!("local files ({})", weights.name());
        self.error.set(None);
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
                Ok((c, w, p)) => ctx.submit_model(LOCAL_KEY.to_string(), source, c, w, p),
                Err(e) => {
                    ctx.picker.set(ctx.model_key.get_untracked());
                    ctx.fail(e);
                }
            }
        });
    }

    fn on_reply(&self, reply: Reply, buffers: Array) {
        match reply {
            Reply::Alive => {
                let waiting = self.outbox.try_update_value(Option::take).flatten();
                for (request, buffers) in waiting.unwrap_or_default() {
                    self.post(&request, buffers);
                }
            }
            Reply::Status { message } => self.status.set(message),
            Reply::Ready { model, backend } => {
                let layers = model.layers;
                let changed_model = self.model.with_untracked(|m| {
                    m.as_ref().map(|m| (&m.source, m.layers)) != Some((&model.source, layers))
                });
                if changed_model {
                    self.model_url.set(self.pending_url.get_value());
                    self.teaching.set(None);
                    self.teaching_asked.set_value(None);
                }
                self.model.set(Some(model));
                self.engine_backend.set(Some(backend));
                self.loading_model.set(false);
                self.status.set(String::new());
                let key = self.pending_key.get_value();
                self.model_key.set(key.clone());
                self.picker.set(key);
                if changed_model {
                    self.layer.set(layers.max(1));
                    if let MapKind::ClsAttention { head: Some(_) } = self.map_kind.get_untracked() {
                        self.map_kind.set(MapKind::ClsAttention { head: None });
                    }
                }
                self.rerun_last_image();
            }
            Reply::Result(meta) => {
                let (name, started) = self
                    .pending
                    .try_update_value(|p| p.remove(&meta.id))
                    .flatten()
                    .unwrap_or_else(|| ("image".to_string(), now_ms()));
                self.classifying.set(false);
                let crop = Uint8Array::new(&buffers.get(0)).to_vec();
                let logits = Float32Array::new(&buffers.get(1)).to_vec();
                let attention = Float32Array::new(&buffers.get(2)).to_vec();
                let labels = self
                    .model
                    .with_untracked(|m| m.as_ref().map(|m| m.labels.clone()))
                    .unwrap_or_default();
                match StoredInference::from_parts(name, &meta, crop, &logits, &attention, &labels) {
                    Ok(stored) => {
                        let layers = stored.layers();
                        if self.layer.get_untracked() > layers || self.layer.get_untracked() == 0 {
                            self.layer.set(layers);
                        }
                        self.error.set(None);
                        self.started_at.set_value(Some(started));
                        self.result.set(Some(Arc::new(stored)));
                    }
                    Err(e) => self.fail(format!("The worker sent a malformed result: {e}")),
                }
            }
            Reply::Teaching { id, teaching } => {
                self.status.set(String::new());
                self.teaching_error.set(None);
                self.teaching.set(Some((id, Arc::from(teaching))));
            }
            Reply::Error { scope, message, id } => {
                if let Some(id) = id {
                    self.pending.update_value(|p| drop(p.remove(&id)));
                    self.classifying.set(false);
                }
                match scope {
                    ErrorScope::Model => {
                        self.loading_model.set(false);
                        self.status.set(String::new());
                        self.picker.set(self.model_key.get_untracked());
                    }
                    ErrorScope::Backend => {
                        if let Some(b) = self.engine_backend.get_untracked() {
                            self.backend_choice.set(match b.backend {
                                crate::engine::Backend::Cpu => BackendChoice::Cpu,
                                crate::engine::Backend::Gpu => BackendChoice::Gpu,
                            });
                        }
                    }
                    ErrorScope::Teaching => {
                        self.status.set(String::new());
                        self.teaching_error.set(Some(message));
                        return;
                    }
                    ErrorScope::Image | ErrorScope::Worker => {}
                }
                self.fail(message);
            }
        }
    }
}

fn start_worker(ctx: Ctx) {
    let worker = match Worker::new("./vit-lens-worker_loader.js") {
        Ok(w) => w,
        Err(e) => {
            ctx.fail(format!(
                "Could not start the inference worker ({e:?}). This browser may block Web Workers."
            ));
            return;
        }
    };
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
        let data: Array = match event.data().dyn_into() {
            Ok(a) => a,
            Err(_) => return,
        };
        let Some(json) = data.get(0).as_string() else {
            return;
        };
        match serde_json::from_str::<Reply>(&json) {
            Ok(reply) => ctx.on_reply(reply, Array::from(&data.get(1))),
            Err(e) => ctx.fail(format!("The worker sent an unreadable message: {e}")),
        }
    });
    worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    on_message.forget();
    let on_error =
        Closure::<dyn FnMut(web_sys::ErrorEvent)>::new(move |event: web_sys::ErrorEvent| {
            ctx.loading_model.set(false);
            ctx.classifying.set(false);
            ctx.fail(format!(
                "The inference worker stopped: {}. Reload the page to start it again.",
                event.message()
            ));
        });
    worker.set_onerror(Some(on_error.as_ref().unchecked_ref()));
    on_error.forget();
    ctx.worker.set_value(Some(worker));
}

fn files_of(list: Option<web_sys::FileList>) -> Vec<web_sys::File> {
    let Some(list) = list else { return Vec::new() };
    (0..list.length()).filter_map(|i| list.get(i)).collect()
}

/// Draws RGBA pixels on a canvas, resizing it to the image.
fn draw_rgba(canvas: &web_sys::HtmlCanvasElement, width: u32, height: u32, rgba: &[u8]) {
    if canvas.width() != width {
        canvas.set_width(width);
    }
    if canvas.height() != height {
        canvas.set_height(height);
    }
    let Ok(Some(ctx)) = canvas.get_context("2d") else {
        return;
    };
    let Ok(ctx) = ctx.dyn_into::<web_sys::CanvasRenderingContext2d>() else {
        return;
    };
    let data = web_sys::ImageData::new_with_u8_clamped_array_and_sh(
        wasm_bindgen::Clamped(rgba),
        width,
        height,
    );
    if let Ok(data) = data {
        let _ = ctx.put_image_data(&data, 0.0, 0.0);
    }
}

#[component]
fn App() -> impl IntoView {
    let ctx = Ctx::new();
    start_worker(ctx);
    // The built-in model, served beside the page: works with no network.
    ctx.load_remote(
        EMBEDDED_KEY.to_string(),
        Remote::Folder {
            base: EMBEDDED_BASE.to_string(),
        },
        false,
    );
    if let Some(model) = query_param("model") {
        if let Ok(remote) = parse_model_ref(&model, &ctx.hub.get_value()) {
            let key = PRESETS
                .iter()
                .find(|p| p.repo == model)
                .map_or(CUSTOM_KEY.to_string(), |p| p.repo.to_string());
            ctx.load_remote(key, remote, true);
        }
    }

    // Drop anywhere, paste anywhere, ←/→ for the layer.
    let drag_over = RwSignal::new(false);
    let _ = window_event_listener(leptos::ev::dragover, move |ev| {
        ev.prevent_default();
        drag_over.set(true);
    });
    let _ = window_event_listener(leptos::ev::dragleave, move |_| drag_over.set(false));
    let _ = window_event_listener(leptos::ev::drop, move |ev| {
        ev.prevent_default();
        drag_over.set(false);
        let started = now_ms();
        let files = files_of(ev.data_transfer().and_then(|d| d.files()));
        ctx.take_files(files, started);
    });
    let _ = window_event_listener(leptos::ev::paste, move |ev| {
        let files = files_of(ev.clipboard_data().and_then(|d| d.files()));
        if let Some(file) = files.into_iter().next() {
            ev.prevent_default();
            ctx.take_image_blob("pasted image".to_string(), file.into(), now_ms());
        }
    });
    let _ = window_event_listener(leptos::ev::keydown, move |ev| {
        let typing = ev
            .target()
            .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
            .is_some_and(|el| matches!(el.tag_name().as_str(), "INPUT" | "SELECT" | "TEXTAREA"));
        if typing || ev.ctrl_key() || ev.meta_key() || ev.alt_key() {
            return;
        }
        if teach::on_key(ctx, &ev.key()) {
            ev.prevent_default();
            return;
        }
        let layers = ctx
            .result
            .with_untracked(|r| r.as_ref().map_or(0, |r| r.layers()));
        if layers == 0 {
            return;
        }
        match ev.key().as_str() {
            "ArrowLeft" => ctx.layer.update(|l| *l = l.saturating_sub(1).max(1)),
            "ArrowRight" => ctx.layer.update(|l| *l = (*l + 1).min(layers)),
            _ => return,
        }
        ev.prevent_default();
    });

    teach::ask_for_teaching(ctx);
    view! {
        <div class="app" class:dragging=move || drag_over.get() class:projector=move || ctx.projector.get()>
            <Header ctx=ctx/>
            <DownloadBar ctx=ctx/>
            <ErrorBanner ctx=ctx/>
            <teach::ModeBar ctx=ctx/>
            <main class="main">
                <div class="left">
                    <div class:hidden=move || ctx.teach_mode.get()>
                        <Stage ctx=ctx/>
                    </div>
                    <Show when=move || ctx.teach_mode.get()>
                        <teach::TeachPanel ctx=ctx/>
                    </Show>
                    <Samples ctx=ctx/>
                </div>
                <aside class="side">
                    <Predictions ctx=ctx/>
                    <Controls ctx=ctx/>
                    <Timings ctx=ctx/>
                </aside>
            </main>
            <teach::Shortcuts ctx=ctx/>
            <footer class="footer">
                "Images stay on this device: they are decoded and classified inside this page. "
                "Only model files are downloaded, from the page itself or the model host you pick."
            </footer>
        </div>
    }
}

#[component]
fn Header(ctx: Ctx) -> impl IntoView {
    let custom_text = RwSignal::new(String::new());
    let model_input = NodeRef::<leptos::html::Input>::new();
    let on_pick = move |ev: leptos::ev::Event| {
        let value = event_target_value(&ev);
        ctx.picker.set(value.clone());
        match value.as_str() {
            EMBEDDED_KEY => ctx.load_remote(
                value,
                Remote::Folder {
                    base: EMBEDDED_BASE.to_string(),
                },
                false,
            ),
            CUSTOM_KEY => {}
            LOCAL_KEY => {
                if let Some(input) = model_input.get() {
                    input.click();
                }
            }
            repo => {
                let remote = Remote::hub(&ctx.hub.get_value(), repo);
                ctx.load_remote(value.clone(), remote, true);
            }
        }
    };
    let load_custom =
        move || match parse_model_ref(&custom_text.get_untracked(), &ctx.hub.get_value()) {
            Ok(remote) => ctx.load_remote(CUSTOM_KEY.to_string(), remote, true),
            Err(e) => ctx.fail(e),
        };
    let on_backend = move |ev: leptos::ev::Event| {
        let Ok(choice) = event_target_value(&ev).parse::<BackendChoice>() else {
            return;
        };
        ctx.backend_choice.set(choice);
        if ctx.model.get_untracked().is_some() {
            ctx.status.set("Switching backend…".to_string());
            ctx.loading_model.set(true);
            ctx.post(&Request::SetBackend { backend: choice }, Vec::new());
        }
    };
    let clear = move |_| {
        leptos::task::spawn_local(async move {
            match clear_cache().await {
                Ok(n) => ctx.notice.set(Some(format!(
                    "Cleared {n} cached model file{}.",
                    if n == 1 { "" } else { "s" }
                ))),
                Err(e) => ctx.fail(e),
            }
        });
    };
    let backend_label = move || {
        ctx.result
            .with(|r| r.as_ref().map(|r| r.backend.label.clone()))
            .or_else(|| {
                ctx.engine_backend
                    .with(|b| b.as_ref().map(|b| b.label.clone()))
            })
            .unwrap_or_else(|| "starting…".to_string())
    };
    let fallback = move || {
        ctx.engine_backend
            .with(|b| b.as_ref().and_then(|b| b.fallback_reason.clone()))
            .map(|r| format!("No WebGPU: {r}"))
    };
    view! {
        <header class="header">
            <div class="brand">
                <span class="logo">"vit-lens"</span>
                <span class="tagline">"watch a Vision Transformer look"</span>
            </div>
            <div class="pickers">
                <label class="field">
                    <span>"Model"</span>
                    <select data-testid="model-select" on:change=on_pick prop:value=move || ctx.picker.get()>
                        <option value=EMBEDDED_KEY>"Shapes ViT (built in, offline)"</option>
                        <optgroup label="Hugging Face hub">
                            {PRESETS
                                .iter()
                                .map(|p| view! { <option value=p.repo>{p.title}</option> })
                                .collect_view()}
                        </optgroup>
                        <option value=CUSTOM_KEY>"Other hub repo or URL…"</option>
                        <option value=LOCAL_KEY>"Files on this computer…"</option>
                    </select>
                </label>
                <Show when=move || ctx.picker.get() == CUSTOM_KEY>
                    <form class="custom" on:submit=move |ev| { ev.prevent_default(); load_custom(); }>
                        <input
                            data-testid="model-url"
                            type="text"
                            placeholder="owner/name, owner/name@rev or https://…"
                            prop:value=move || custom_text.get()
                            on:input=move |ev| custom_text.set(event_target_value(&ev))
                        />
                        <button type="submit" data-testid="model-load">"Load"</button>
                    </form>
                </Show>
                <input
                    class="hidden-input"
                    data-testid="model-file-input"
                    type="file"
                    multiple=true
                    accept=".json,.safetensors"
                    node_ref=model_input
                    on:change=move |ev| {
                        let input = event_target::<web_sys::HtmlInputElement>(&ev);
                        ctx.load_local(files_of(input.files()));
                        input.set_value("");
                    }
                />
                <label class="field">
                    <span>"Backend"</span>
                    <select
                        data-testid="backend-select"
                        on:change=on_backend
                        prop:value=move || match ctx.backend_choice.get() {
                            BackendChoice::Auto => "auto",
                            BackendChoice::Gpu => "gpu",
                            BackendChoice::Cpu => "cpu",
                        }
                    >
                        <option value="auto">"Automatic"</option>
                        <option value="gpu">"WebGPU"</option>
                        <option value="cpu">"CPU (wasm SIMD)"</option>
                    </select>
                </label>
                <div class="backend" title=fallback>
                    <span class="dot"></span>
                    <span data-testid="backend">{backend_label}</span>
                </div>
                <button class="ghost" data-testid="clear-cache" on:click=clear>"Clear model cache"</button>
            </div>
        </header>
    }
}

#[component]
fn DownloadBar(ctx: Ctx) -> impl IntoView {
    view! {
        <Show when=move || ctx.download.with(|d| d.is_some()) || ctx.loading_model.get()>
            <div class="progress-row">
                {move || match ctx.download.get() {
                    Some(d) => {
                        let text = match d.total {
                            Some(t) => format!("Downloading {} — {}: {} of {}", d.what, d.file, format_bytes(d.loaded), format_bytes(t)),
                            None => format!("Downloading {} — {}: {}", d.what, d.file, format_bytes(d.loaded)),
                        };
                        view! {
                            <progress
                                data-testid="download-progress"
                                data-loaded=d.loaded
                                max=d.total.unwrap_or(0.0).max(1.0)
                                value=d.total.map(|_| d.loaded)
                            ></progress>
                            <span class="progress-text">{text}</span>
                            <button class="ghost" data-testid="download-cancel" on:click=move |_| ctx.cancel_download()>"Cancel"</button>
                        }.into_any()
                    }
                    None => view! {
                        <span class="spinner"></span>
                        <span class="progress-text" data-testid="model-status">{move || ctx.status.get()}</span>
                    }.into_any(),
                }}
            </div>
        </Show>
    }
}

#[component]
fn ErrorBanner(ctx: Ctx) -> impl IntoView {
    view! {
        <Show when=move || ctx.error.with(|e| e.is_some())>
            <div class="banner error" role="alert" data-testid="error">
                <span>{move || ctx.error.get().unwrap_or_default()}</span>
                <button class="ghost" on:click=move |_| ctx.error.set(None)>"Dismiss"</button>
            </div>
        </Show>
        <Show when=move || ctx.notice.with(|e| e.is_some())>
            <div class="banner notice" data-testid="notice">
                <span>{move || ctx.notice.get().unwrap_or_default()}</span>
                <button class="ghost" on:click=move |_| ctx.notice.set(None)>"OK"</button>
            </div>
        </Show>
    }
}

#[component]
fn Stage(ctx: Ctx) -> impl IntoView {
    let heatmap = NodeRef::<leptos::html::Canvas>::new();
    let crop = NodeRef::<leptos::html::Canvas>::new();
    let file_input = NodeRef::<leptos::html::Input>::new();
    // Rollouts of the current result for the current fusion and discard ratio, all layers.
    let cache: StoredValue<Option<RolloutCache>> = StoredValue::new(None);

    Effect::new(move |_| {
        let Some(result) = ctx.result.get() else {
            return;
        };
        let opts = ViewOptions {
            layer: ctx.layer.get(),
            kind: ctx.map_kind.get(),
            fusion: ctx.fusion.get(),
            discard_ratio: ctx.discard.get(),
            opacity: ctx.opacity.get(),
            colormap: ctx.colormap.get(),
        };
        let key = Arc::as_ptr(&result) as usize;
        let cached = cache.with_value(|c| {
            c.as_ref()
                .filter(|c| {
                    c.result == key && c.fusion == opts.fusion && c.discard == opts.discard_ratio
                })
                .map(|c| c.maps.clone())
        });
        let rollouts = match cached {
            Some(r) => r,
            None => {
                let t0 = now_ms();
                match result.rollouts(opts.fusion, opts.discard_ratio) {
                    Ok(r) => {
                        ctx.rollout_ms.set(now_ms() - t0);
                        let r = Arc::new(r);
                        cache.set_value(Some(RolloutCache {
                            result: key,
                            fusion: opts.fusion,
                            discard: opts.discard_ratio,
                            maps: r.clone(),
                        }));
                        r
                    }
                    Err(e) => {
                        ctx.fail(e);
                        return;
                    }
                }
            }
        };
        let image = result
            .map(&opts, &rollouts)
            .and_then(|map| result.render(&opts, &map));
        match image {
            Ok(image) => {
                if let Some(canvas) = heatmap.get() {
                    draw_rgba(&canvas, image.width(), image.height(), image.as_raw());
                }
            }
            Err(e) => ctx.fail(e),
        }
        if let Some(started) = ctx.started_at.try_update_value(Option::take).flatten() {
            ctx.total_ms.set(Some(now_ms() - started));
        }
    });

    // The plain crop changes only with the result, not with the heatmap controls.
    Effect::new(move |_| {
        let Some(result) = ctx.result.get() else {
            return;
        };
        if let Some(canvas) = crop.get() {
            let rgba = teach::crop_rgba(&result);
            draw_rgba(&canvas, result.crop.width(), result.crop.height(), &rgba);
        }
    });

    let has_result = move || ctx.result.with(|r| r.is_some());
    let caption = move || {
        ctx.result.with(|r| {
            r.as_ref().map(|r| {
                let what = match ctx.map_kind.get() {
                    MapKind::Rollout => format!("Attention rollout, layers 1–{}", ctx.layer.get()),
                    MapKind::ClsAttention { head: None } => {
                        format!(
                            "CLS attention in layer {}, heads fused ({})",
                            ctx.layer.get(),
                            ctx.fusion.get()
                        )
                    }
                    MapKind::ClsAttention { head: Some(h) } => {
                        format!("CLS attention in layer {}, head {}", ctx.layer.get(), h + 1)
                    }
                };
                format!("{what} · {}", r.name)
            })
        })
    };
    view! {
        <section class="stage" data-testid="drop-zone">
            <div class="canvas-wrap" class:empty=move || !has_result()>
                <canvas
                    data-testid="heatmap"
                    class="heatmap"
                    node_ref=heatmap
                    width="224"
                    height="224"
                    class:hidden=move || !has_result()
                ></canvas>
                <Show when=move || !has_result()>
                    <div class="drop-hint">
                        <p class="big">"Drop an image here"</p>
                        <p>"or paste one (Ctrl+V), choose a file, or try a sample below"</p>
                    </div>
                </Show>
                <Show when=move || ctx.classifying.get()>
                    <div class="busy"><span class="spinner"></span>"Classifying…"</div>
                </Show>
            </div>
            <div class="stage-bar">
                <button class="primary" on:click=move |_| {
                    if let Some(input) = file_input.get() { input.click(); }
                }>"Choose an image…"</button>
                <input
                    class="hidden-input"
                    data-testid="file-input"
                    type="file"
                    accept="image/*"
                    node_ref=file_input
                    on:change=move |ev| {
                        let input = event_target::<web_sys::HtmlInputElement>(&ev);
                        ctx.take_files(files_of(input.files()), now_ms());
                        input.set_value("");
                    }
                />
                <span class="caption">{caption}</span>
                <figure class="crop" class:hidden=move || !has_result()>
                    <canvas node_ref=crop width="224" height="224"></canvas>
                    <figcaption>{move || {
                        ctx.result.with(|r| r.as_ref().map(|r| format!("what the model sees: {}×{}", r.crop.width(), r.crop.height())))
                    }}</figcaption>
                </figure>
            </div>
        </section>
    }
}

#[component]
fn Predictions(ctx: Ctx) -> impl IntoView {
    view! {
        <section class="card predictions">
            <h2>"Top 5"</h2>
            {move || {
                ctx.result.with(|r| match r {
                    None => view! { <p class="muted">"No image yet."</p> }.into_any(),
                    Some(r) => r
                        .top
                        .iter()
                        .enumerate()
                        .map(|(i, p)| {
                            let pct = p.prob * 100.0;
                            view! {
                                <div
                                    class="pred"
                                    class:first=i == 0
                                    data-testid="prediction"
                                    data-index=p.index
                                    data-label=p.label.clone()
                                    data-prob=p.prob.to_string()
                                >
                                    <div class="pred-text">
                                        <span class="pred-label">{p.label.clone()}</span>
                                        <span class="pred-prob">{format!("{pct:.1} %")}</span>
                                    </div>
                                    <div class="bar"><div class="fill" style:width=format!("{:.2}%", pct.clamp(0.0, 100.0))></div></div>
                                </div>
                            }
                        })
                        .collect_view()
                        .into_any(),
                })
            }}
        </section>
    }
}

#[component]
fn Controls(ctx: Ctx) -> impl IntoView {
    let layers = move || {
        ctx.result
            .with(|r| r.as_ref().map(|r| r.layers()))
            .or_else(|| ctx.model.with(|m| m.as_ref().map(|m| m.layers)))
            .unwrap_or(1)
    };
    let heads = move || {
        ctx.result
            .with(|r| r.as_ref().map(|r| r.heads()))
            .or_else(|| ctx.model.with(|m| m.as_ref().map(|m| m.heads)))
            .unwrap_or(1)
    };
    let is_rollout = move || ctx.map_kind.get() == MapKind::Rollout;
    view! {
        <section class="card controls">
            <h2>"Heatmap"</h2>
            <div class="toggle" role="group">
                <button class:on=is_rollout data-testid="mode-rollout"
                    on:click=move |_| ctx.map_kind.set(MapKind::Rollout)>"Rollout"</button>
                <button class:on=move || !is_rollout() data-testid="mode-attention"
                    on:click=move |_| ctx.map_kind.set(MapKind::ClsAttention { head: None })>"CLS attention"</button>
            </div>
            <label class="slider">
                <span>{move || if is_rollout() { format!("Up to layer {} of {}", ctx.layer.get(), layers()) } else { format!("Layer {} of {}", ctx.layer.get(), layers()) }}</span>
                <input type="range" data-testid="layer-slider" min="1" max=move || layers().to_string()
                    step="1" prop:value=move || ctx.layer.get().to_string()
                    on:input=move |ev| { if let Ok(v) = event_target_value(&ev).parse::<usize>() { ctx.layer.set(v.clamp(1, layers())) } } />
            </label>
            <Show when=move || !is_rollout()>
                <label class="field">
                    <span>"Head"</span>
                    <select data-testid="head-select" on:change=move |ev| {
                        let v = event_target_value(&ev);
                        ctx.map_kind.set(MapKind::ClsAttention { head: v.parse::<usize>().ok() });
                    }>
                        <option value="fused">"all heads, fused"</option>
                        {move || (0..heads()).map(|h| view! { <option value=h.to_string()>{format!("head {}", h + 1)}</option> }).collect_view()}
                    </select>
                </label>
            </Show>
            <label class="field">
                <span>"Head fusion"</span>
                <select data-testid="head-fusion" on:change=move |ev| {
                    if let Ok(f) = event_target_value(&ev).parse::<HeadFusion>() { ctx.fusion.set(f) }
                } prop:value=move || ctx.fusion.get().name()>
                    {HeadFusion::ALL.iter().map(|f| view! { <option value=f.name()>{f.name()}</option> }).collect_view()}
                </select>
            </label>
            <label class="slider">
                <span>{move || format!("Discard lowest {:.0} %", ctx.discard.get() * 100.0)}</span>
                <input type="range" data-testid="discard-ratio" min="0" max="0.95" step="0.05"
                    prop:value=move || ctx.discard.get().to_string()
                    on:input=move |ev| { if let Ok(v) = event_target_value(&ev).parse::<f32>() { ctx.discard.set(v.clamp(0.0, 0.95)) } } />
            </label>
            <label class="slider">
                <span>{move || format!("Opacity {:.0} %", ctx.opacity.get() * 100.0)}</span>
                <input type="range" data-testid="opacity" min="0" max="1" step="0.05"
                    prop:value=move || ctx.opacity.get().to_string()
                    on:input=move |ev| { if let Ok(v) = event_target_value(&ev).parse::<f32>() { ctx.opacity.set(v.clamp(0.0, 1.0)) } } />
            </label>
            <label class="field">
                <span>"Colormap"</span>
                <select data-testid="colormap" on:change=move |ev| {
                    if let Ok(c) = event_target_value(&ev).parse::<Colormap>() { ctx.colormap.set(c) }
                } prop:value=move || ctx.colormap.get().name()>
                    {Colormap::ALL.iter().map(|c| view! { <option value=c.name()>{c.name()}</option> }).collect_view()}
                </select>
            </label>
            <p class="hint">"← / → step through the layers."</p>
        </section>
    }
}

#[component]
fn Timings(ctx: Ctx) -> impl IntoView {
    view! {
        <section class="card timings" data-testid="timings"
            data-total-ms=move || ctx.total_ms.get().map(|t| format!("{t:.1}"))
            data-forward-ms=move || ctx.result.with(|r| r.as_ref().map(|r| format!("{:.1}", r.forward_ms)))>
            <h2>"Timings"</h2>
            {move || ctx.result.with(|r| match r {
                None => view! { <p class="muted">"—"</p> }.into_any(),
                Some(r) => view! {
                    <dl>
                        <dt>"decode + preprocess"</dt><dd>{format!("{:.0} ms", r.preprocess_ms)}</dd>
                        <dt>"forward"</dt><dd>{format!("{:.0} ms", r.forward_ms)}</dd>
                        <dt>"rollout"</dt><dd>{move || format!("{:.1} ms", ctx.rollout_ms.get())}</dd>
                        <dt>"drop → heatmap"</dt><dd>{move || ctx.total_ms.get().map(|t| format!("{t:.0} ms")).unwrap_or_default()}</dd>
                    </dl>
                }.into_any(),
            })}
            <p class="model-line">{move || ctx.model.with(|m| m.as_ref().map(|m| format!(
                "{} · {} layers · {} heads · {} tokens · {:.1} M params · {}",
                m.source, m.layers, m.heads, m.tokens, m.parameters as f64 / 1e6, m.stored_dtype
            )))}</p>
        </section>
    }
}

#[component]
fn Samples(ctx: Ctx) -> impl IntoView {
    let samples = RwSignal::new(Vec::<Sample>::new());
    leptos::task::spawn_local(async move {
        let Some(window) = web_sys::window() else {
            return;
        };
        let Ok(response) = wasm_bindgen_futures::JsFuture::from(
            window.fetch_with_str("assets/samples/index.json"),
        )
        .await
        else {
            return;
        };
        let Ok(response) = response.dyn_into::<web_sys::Response>() else {
            return;
        };
        let Ok(text) = response.text() else { return };
        let Ok(text) = wasm_bindgen_futures::JsFuture::from(text).await else {
            return;
        };
        if let Some(index) = text
            .as_string()
            .and_then(|t| serde_json::from_str::<SampleIndex>(&t).ok())
        {
            samples.set(index.samples);
        }
    });
    let open = move |sample: Sample| {
        let started = now_ms();
        leptos::task::spawn_local(async move {
            let Ok(ctrl) = AbortController::new() else {
                return;
            };
            let url = format!("assets/samples/{}", sample.file);
            match fetch_bytes(&url, &ctrl.signal(), None, false, &mut |_, _| {}).await {
                Ok(Some(bytes)) => ctx.classify(sample.label.clone(), Arc::new(bytes), started),
                Ok(None) => {}
                Err(e) => ctx.fail(format!("Could not open the sample: {e}")),
            }
        });
    };
    view! {
        <section class="samples">
            <h2>"Samples"</h2>
            <div class="sample-row">
                {move || samples.get().into_iter().map(|s| {
                    let src = format!("assets/samples/{}", s.file);
                    let label = s.label.clone();
                    let s2 = s.clone();
                    view! {
                        <button class="sample" data-testid="sample" data-file=s.file.clone() title=label.clone() on:click=move |_| open(s2.clone())>
                            <img src=src alt=label.clone() draggable="true"/>
                            <span>{label.clone()}</span>
                        </button>
                    }
                }).collect_view()}
            </div>
            <p class="muted small">"Generated by scripts/shapes/shapes.py; part of vit-lens under its license."</p>
        </section>
    }
}
