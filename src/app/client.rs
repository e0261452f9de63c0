//! The page's side of the inference worker: starts it, sends it [`Request`]s (holding them
//! until the worker says it is alive), and turns its [`Reply`]s into page state.
//!
//! The worker can die (a panic, or running out of memory): the page then starts a new one,
//! loads the last model the worker accepted into it (the page keeps those files) and keeps
//! the result on screen. What was in flight when it died is dropped, never sent again.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use js_sys::{Array, Float32Array, Uint8Array};
use leptos::prelude::*;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{MessageEvent, Worker};

use super::dom::now_ms;
use super::net::{store_in_cache, CacheEntry};
use super::protocol::{ErrorScope, Reply, Request};
use super::state::AppState;
use super::view::{MapKind, StoredInference};
use crate::engine::{Backend, BackendChoice};

/// The script Trunk writes to start the worker's wasm.
const WORKER_SCRIPT: &str = "./vit-lens-worker_loader.js";

/// More crashes than this within [`CRASH_WINDOW_MS`] and the page stops restarting the
/// worker by itself.
const MAX_CRASHES: usize = 3;
const CRASH_WINDOW_MS: f64 = 60_000.0;

/// A request and its buffers, waiting for the worker.
type Outgoing = (Request, Vec<Arc<Vec<u8>>>);

/// A checkpoint's files as handed to the worker, kept until it answers and, once it accepted
/// them, as the model to load again into a new worker.
#[derive(Clone, Debug)]
pub struct ModelFiles {
    /// The model-picker value.
    pub key: String,
    /// Where it came from, in words.
    pub source: String,
    /// Its hub repo or folder URL, for the model card.
    pub url: Option<String>,
    pub config: Arc<Vec<u8>>,
    pub weights: Arc<Vec<u8>>,
    pub preprocessor: Option<Arc<Vec<u8>>>,
    /// Downloaded files to put in the model cache once the worker accepts the model.
    pub to_cache: Vec<CacheEntry>,
}

impl ModelFiles {
    fn request(&self, backend: BackendChoice) -> Outgoing {
        let mut buffers = vec![self.config.clone(), self.weights.clone()];
        buffers.extend(self.preprocessor.clone());
        let request = Request::LoadModel {
            source: self.source.clone(),
            backend,
            has_preprocessor: self.preprocessor.is_some(),
        };
        (request, buffers)
    }
}

/// An image with the worker.
#[derive(Clone)]
struct PendingImage {
    name: String,
    /// When the user handed it over.
    started: f64,
    bytes: Arc<Vec<u8>>,
}

/// The worker and what the page remembers of its requests. `Copy`: every field is a handle.
#[derive(Clone, Copy)]
pub struct Client {
    state: AppState,
    worker: StoredValue<Option<Worker>, LocalStorage>,
    /// Counts the workers started; replies and events of an older one are ignored.
    generation: StoredValue<u64>,
    /// Requests made before the worker said it is alive (messages sent earlier are lost
    /// while its wasm instantiates); `None` once it has.
    outbox: StoredValue<Option<Vec<Outgoing>>>,
    /// Classify requests in flight, by id.
    pending: StoredValue<HashMap<u64, PendingImage>>,
    next_id: StoredValue<u64>,
    /// The last image the worker classified, run again when the model or backend changes.
    /// An image it rejected never lands here.
    last_image: StoredValue<Option<(String, Arc<Vec<u8>>)>>,
    /// Models sent and not answered yet, in order (the worker answers them in order).
    loads: StoredValue<VecDeque<ModelFiles>>,
    /// The last model the worker accepted.
    good_model: StoredValue<Option<ModelFiles>>,
    /// When the worker crashed lately.
    crashes: StoredValue<Vec<f64>>,
    /// The next `Ready` follows a restart: it runs no image again.
    restarted: StoredValue<bool>,
}

/// Posts one message: the request's JSON and its buffers, transferred (as copies: the page
/// keeps its own).
fn send(worker: &Worker, request: &Request, buffers: &[Arc<Vec<u8>>]) -> Result<(), String> {
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

impl Client {
    /// Starts the worker; its replies update `state`.
    pub fn start(state: AppState) -> Self {
        let client = Self {
            state,
            worker: StoredValue::new_local(None),
            generation: StoredValue::new(0),
            outbox: StoredValue::new(Some(Vec::new())),
            pending: StoredValue::new(HashMap::new()),
            next_id: StoredValue::new(1),
            last_image: StoredValue::new(None),
            loads: StoredValue::new(VecDeque::new()),
            good_model: StoredValue::new(None),
            crashes: StoredValue::new(Vec::new()),
            restarted: StoredValue::new(false),
        };
        client.spawn();
        client
    }

    /// The page state this client updates.
    pub fn state(&self) -> AppState {
        self.state
    }

    fn spawn(&self) {
        let client = *self;
        let notices = self.state.notices;
        let generation = self.generation.get_value() + 1;
        self.generation.set_value(generation);
        self.outbox.set_value(Some(Vec::new()));
        let worker = match Worker::new(WORKER_SCRIPT) {
            Ok(w) => w,
            Err(e) => {
                notices.fail(format!(
                    "Could not start the inference worker ({e:?}). This browser may block Web Workers."
                ));
                return;
            }
        };
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
            if client.generation.get_value() != generation {
                return;
            }
            let data: Array = match event.data().dyn_into() {
                Ok(a) => a,
                Err(_) => return,
            };
            let Some(json) = data.get(0).as_string() else {
                return;
            };
            match serde_json::from_str::<Reply>(&json) {
                Ok(reply) => client.on_reply(reply, Array::from(&data.get(1))),
                Err(e) => notices.fail(format!("The worker sent an unreadable message: {e}")),
            }
        });
        worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        on_message.forget();
        let on_error =
            Closure::<dyn FnMut(web_sys::ErrorEvent)>::new(move |event: web_sys::ErrorEvent| {
                if client.generation.get_value() != generation {
                    return;
                }
                event.prevent_default();
                let message = event.message();
                let message = if message.is_empty() {
                    "it stopped without saying why".to_string()
                } else {
                    message
                };
                client.on_crash(format!("The inference worker stopped ({message})."));
            });
        worker.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        on_error.forget();
        self.worker.set_value(Some(worker));
    }

    /// The worker died: start a new one with the last model it accepted, drop what was in
    /// flight (it may be what killed it) and keep the result on screen.
    fn on_crash(&self, what: String) {
        let AppState {
            model,
            result,
            notices,
            ..
        } = self.state;
        if let Some(worker) = self.worker.try_update_value(Option::take).flatten() {
            worker.terminate();
        }
        self.generation.update_value(|g| *g += 1);
        let now = now_ms();
        let crashes = self
            .crashes
            .try_update_value(|c| {
                c.retain(|t| now - *t < CRASH_WINDOW_MS);
                c.push(now);
                c.len()
            })
            .unwrap_or(1);
        let dropped = self
            .pending
            .try_update_value(std::mem::take)
            .unwrap_or_default();
        let lost_loads = self
            .loads
            .try_update_value(std::mem::take)
            .unwrap_or_default();
        result.classifying.set(false);
        notices.download.set(None);
        let lost = match (dropped.is_empty(), lost_loads.back()) {
            (_, Some(load)) => format!(" {} was not loaded.", load.source),
            (false, None) => " The image it was working on was not classified.".to_string(),
            (true, None) => String::new(),
        };
        if crashes > MAX_CRASHES {
            model.loading.set(false);
            model.info.set(None);
            model.backend.set(None);
            notices.status.set(String::new());
            notices.fail(format!(
                "{what}{lost} It crashed {crashes} times within a minute, so it was not started again: reload the page."
            ));
            return;
        }
        self.spawn();
        match self.good_model.get_value() {
            Some(good) => {
                self.restarted.set_value(true);
                model.loading.set(true);
                notices
                    .status
                    .set(format!("Restarting the worker with {}…", good.source));
                let (request, buffers) = good.request(model.backend_choice.get_untracked());
                self.loads.update_value(|l| l.push_back(good.clone()));
                self.post(&request, buffers);
                notices.fail(format!(
                    "{what}{lost} It was restarted with {}; the previous result stays.",
                    good.source
                ));
            }
            None => {
                model.loading.set(false);
                model.info.set(None);
                notices.status.set(String::new());
                notices.fail(format!(
                    "{what}{lost} It was restarted; pick a model in the model menu."
                ));
            }
        }
        model.picker.set(model.key.get_untracked());
    }

    /// Sends a request, or keeps it until the worker is alive.
    pub(super) fn post(&self, request: &Request, buffers: Vec<Arc<Vec<u8>>>) {
        let mut buffers = Some(buffers);
        self.outbox.update_value(|outbox| {
            if let Some(outbox) = outbox {
                outbox.push((request.clone(), buffers.take().unwrap_or_default()));
            }
        });
        let Some(buffers) = buffers else { return };
        let sent = self.worker.with_value(|w| match w {
            Some(worker) => send(worker, request, &buffers),
            None => Err("The inference worker is not running; reload the page.".to_string()),
        });
        if let Err(e) = sent {
            self.state.notices.fail(e);
        }
    }

    /// Hands a checkpoint's files to the worker; they become the page's model when it
    /// accepts them.
    pub fn load_model(&self, files: ModelFiles) {
        let model = self.state.model;
        model.loading.set(true);
        self.state
            .notices
            .status
            .set(format!("Reading {}…", files.source));
        let (request, buffers) = files.request(model.backend_choice.get_untracked());
        self.loads.update_value(|l| l.push_back(files));
        self.post(&request, buffers);
    }

    /// Rebuilds the loaded model's engine on `choice` (remembered for the next model when
    /// none is loaded yet).
    pub fn set_backend(&self, choice: BackendChoice) {
        let model = self.state.model;
        model.backend_choice.set(choice);
        if model.info.get_untracked().is_some() {
            self.state
                .notices
                .status
                .set("Switching backend…".to_string());
            model.loading.set(true);
            self.post(&Request::SetBackend { backend: choice }, Vec::new());
        }
    }

    /// Sends an image to the worker; `started` is when the user handed it over.
    pub fn classify(&self, name: String, bytes: Arc<Vec<u8>>, started: f64) {
        let model = self.state.model;
        if model.info.get_untracked().is_none() && !model.loading.get_untracked() {
            self.state
                .notices
                .fail("No model is loaded. Pick one in the model menu first.");
            return;
        }
        let id = self.next_id.get_value();
        self.next_id.set_value(id + 1);
        let image = PendingImage {
            name,
            started,
            bytes: bytes.clone(),
        };
        self.pending.update_value(|p| drop(p.insert(id, image)));
        self.state.result.classifying.set(true);
        self.post(&Request::Classify { id }, vec![bytes]);
    }

    /// Runs the last classified image again (on a new model or backend), unless images are
    /// already on their way: the worker answers those with the new model anyway.
    fn rerun_last_image(&self) {
        if !self.pending.with_value(HashMap::is_empty) {
            return;
        }
        if let Some((name, bytes)) = self.last_image.get_value() {
            self.classify(name, bytes, now_ms());
        }
    }

    /// An image was answered (a result or an error): it is no longer in flight.
    fn image_done(&self, id: u64) -> Option<PendingImage> {
        let image = self.pending.try_update_value(|p| p.remove(&id)).flatten();
        let busy = !self.pending.with_value(HashMap::is_empty);
        self.state.result.classifying.set(busy);
        image
    }

    /// Asks the worker for teaching statistics whenever teaching mode is on and the model or
    /// the image changed since the last answer. Call it once, inside the app's owner.
    pub fn ask_for_teaching(&self) {
        let client = *self;
        let AppState {
            model,
            result,
            teach,
            ..
        } = self.state;
        Effect::new(move |_| {
            if !teach.on.get() {
                return;
            }
            let Some(source) = model.info.with(|m| m.as_ref().map(|m| m.source.clone())) else {
                return;
            };
            let id = result.current.with(|r| r.as_ref().map(|r| r.id));
            let key = (id, source);
            if teach.asked.with_value(|asked| asked.as_ref() == Some(&key)) {
                return;
            }
            teach.asked.set_value(Some(key));
            client.post(&Request::Inspect { id }, Vec::new());
        });
    }

    fn on_reply(&self, reply: Reply, buffers: Array) {
        let AppState {
            model,
            result,
            heatmap,
            teach,
            notices,
            explain,
        } = self.state;
        match reply {
            Reply::Alive => {
                let waiting = self.outbox.try_update_value(Option::take).flatten();
                for (request, buffers) in waiting.unwrap_or_default() {
                    self.post(&request, buffers);
                }
            }
            Reply::Status { message } => notices.status.set(message),
            Reply::Ready {
                model: info,
                backend,
                answers_load,
            } => {
                let layers = info.card.layers;
                let changed_model = model.info.with_untracked(|m| {
                    m.as_ref().map(|m| (&m.source, m.card.layers)) != Some((&info.source, layers))
                });
                if answers_load {
                    if let Some(files) = self.loads.try_update_value(VecDeque::pop_front).flatten()
                    {
                        model.url.set(files.url.clone());
                        model.key.set(files.key.clone());
                        model.picker.set(files.key.clone());
                        let entries = files.to_cache.clone();
                        if !entries.is_empty() {
                            leptos::task::spawn_local(store_in_cache(entries));
                        }
                        self.good_model.set_value(Some(ModelFiles {
                            to_cache: Vec::new(),
                            ..files
                        }));
                    }
                }
                if changed_model {
                    teach.teaching.set(None);
                    teach.asked.set_value(None);
                }
                model.info.set(Some(info));
                model.backend.set(Some(backend));
                let still_loading = !self.loads.with_value(VecDeque::is_empty);
                model.loading.set(still_loading);
                if !still_loading {
                    notices.status.set(String::new());
                }
                if changed_model {
                    heatmap.options.update(|o| {
                        o.layer = layers.max(1);
                        if let MapKind::ClsAttention { head: Some(_) } = o.kind {
                            o.kind = MapKind::ClsAttention { head: None };
                        }
                    });
                }
                let restarted = self.restarted.try_update_value(std::mem::take);
                if restarted != Some(true) {
                    self.rerun_last_image();
                }
            }
            Reply::Result(meta) => {
                let Some(image) = self.image_done(meta.id) else {
                    return;
                };
                let crop = Uint8Array::new(&buffers.get(0)).to_vec();
                let logits = Float32Array::new(&buffers.get(1)).to_vec();
                let attention = Float32Array::new(&buffers.get(2)).to_vec();
                let labels = model
                    .info
                    .with_untracked(|m| m.as_ref().map(|m| m.labels.clone()))
                    .unwrap_or_default();
                let name = image.name.clone();
                match StoredInference::from_parts(name, &meta, crop, &logits, &attention, &labels) {
                    Ok(stored) => {
                        let layers = stored.layers();
                        let layer = heatmap.options.with_untracked(|o| o.layer);
                        if layer > layers || layer == 0 {
                            heatmap.options.update(|o| o.layer = layers);
                        }
                        notices.error.set(None);
                        self.last_image.set_value(Some((image.name, image.bytes)));
                        result.started_at.set_value(Some(image.started));
                        result.current.set(Some(Arc::new(stored)));
                    }
                    Err(e) => notices.fail(format!("The worker sent a malformed result: {e}")),
                }
            }
            Reply::Teaching { id, teaching } => {
                notices.status.set(String::new());
                teach.error.set(None);
                teach.teaching.set(Some((id, Arc::from(teaching))));
            }
            Reply::Explanation {
                id,
                interventions,
                explanation,
            } => self.on_explanation(explain, id, interventions, explanation),
            Reply::WhatIf {
                id,
                hidden_patches,
                heads_off,
                predictions,
            } => self.on_what_if(explain, id, hidden_patches, heads_off, predictions),
            Reply::Error { scope, message, id } => {
                if let Some(id) = id {
                    self.image_done(id);
                }
                match scope {
                    ErrorScope::Crashed => {
                        self.on_crash(message);
                        return;
                    }
                    ErrorScope::Model => {
                        self.loads.update_value(|l| drop(l.pop_front()));
                        let still_loading = !self.loads.with_value(VecDeque::is_empty);
                        model.loading.set(still_loading);
                        if !still_loading {
                            notices.status.set(String::new());
                        }
                        model.picker.set(model.key.get_untracked());
                    }
                    ErrorScope::Backend => {
                        if let Some(b) = model.backend.get_untracked() {
                            model.backend_choice.set(match b.backend {
                                Backend::Cpu => BackendChoice::Cpu,
                                Backend::Gpu => BackendChoice::Gpu,
                            });
                        }
                    }
                    ErrorScope::Teaching => {
                        notices.status.set(String::new());
                        teach.error.set(Some(message));
                        return;
                    }
                    ErrorScope::Explain => {
                        self.on_explain_error(explain, message);
                        return;
                    }
                    ErrorScope::Image | ErrorScope::Worker => {}
                }
                notices.fail(message);
            }
        }
    }
}
