//! The page's side of the inference worker: starts it, sends it [`Request`]s (holding them
//! until the worker says it is alive), and turns its [`Reply`]s into page state.

use std::collections::HashMap;
use std::sync::Arc;

use js_sys::{Array, Float32Array, Uint8Array};
use leptos::prelude::*;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{MessageEvent, Worker};

use super::dom::now_ms;
use super::protocol::{ErrorScope, Reply, Request};
use super::state::AppState;
use super::view::{MapKind, StoredInference};
use crate::engine::{Backend, BackendChoice};

/// The script Trunk writes to start the worker's wasm.
const WORKER_SCRIPT: &str = "./vit-lens-worker_loader.js";

/// A request and its buffers, waiting for the worker.
type Outgoing = (Request, Vec<Vec<u8>>);

/// The worker and what the page remembers of its requests. `Copy`: every field is a handle.
#[derive(Clone, Copy)]
pub struct Client {
    state: AppState,
    worker: StoredValue<Option<Worker>, LocalStorage>,
    /// Requests made before the worker said it is alive (messages sent earlier are lost
    /// while its wasm instantiates); `None` once it has.
    outbox: StoredValue<Option<Vec<Outgoing>>>,
    /// Classify requests in flight: id → (image name, when the user handed it over).
    pending: StoredValue<HashMap<u64, (String, f64)>>,
    next_id: StoredValue<u64>,
    /// The last image's name and bytes, run again when the model or backend changes.
    last_image: StoredValue<Option<(String, Arc<Vec<u8>>)>>,
}

/// Posts one message: the request's JSON and its buffers, transferred.
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

impl Client {
    /// Starts the worker; its replies update `state`.
    pub fn start(state: AppState) -> Self {
        let client = Self {
            state,
            worker: StoredValue::new_local(None),
            outbox: StoredValue::new(Some(Vec::new())),
            pending: StoredValue::new(HashMap::new()),
            next_id: StoredValue::new(1),
            last_image: StoredValue::new(None),
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
        let (model, result) = (self.state.model, self.state.result);
        let on_error =
            Closure::<dyn FnMut(web_sys::ErrorEvent)>::new(move |event: web_sys::ErrorEvent| {
                model.loading.set(false);
                result.classifying.set(false);
                notices.fail(format!(
                    "The inference worker stopped: {}. Reload the page to start it again.",
                    event.message()
                ));
            });
        worker.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        on_error.forget();
        self.worker.set_value(Some(worker));
    }

    /// Sends a request, or keeps it until the worker is alive.
    pub fn post(&self, request: &Request, buffers: Vec<Vec<u8>>) {
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
            self.state.notices.fail(e);
        }
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
        self.pending
            .update_value(|p| drop(p.insert(id, (name.clone(), started))));
        self.last_image.set_value(Some((name, bytes.clone())));
        self.state.result.classifying.set(true);
        self.post(&Request::Classify { id }, vec![bytes.as_ref().clone()]);
    }

    fn rerun_last_image(&self) {
        if let Some((name, bytes)) = self.last_image.get_value() {
            self.classify(name, bytes, now_ms());
        }
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
            } => {
                let layers = info.card.layers;
                let changed_model = model.info.with_untracked(|m| {
                    m.as_ref().map(|m| (&m.source, m.card.layers)) != Some((&info.source, layers))
                });
                if changed_model {
                    model.url.set(model.pending_url.get_value());
                    teach.teaching.set(None);
                    teach.asked.set_value(None);
                }
                model.info.set(Some(info));
                model.backend.set(Some(backend));
                model.loading.set(false);
                notices.status.set(String::new());
                let key = model.pending_key.get_value();
                model.key.set(key.clone());
                model.picker.set(key);
                if changed_model {
                    heatmap.options.update(|o| {
                        o.layer = layers.max(1);
                        if let MapKind::ClsAttention { head: Some(_) } = o.kind {
                            o.kind = MapKind::ClsAttention { head: None };
                        }
                    });
                }
                self.rerun_last_image();
            }
            Reply::Result(meta) => {
                let (name, started) = self
                    .pending
                    .try_update_value(|p| p.remove(&meta.id))
                    .flatten()
                    .unwrap_or_else(|| ("image".to_string(), now_ms()));
                result.classifying.set(false);
                let crop = Uint8Array::new(&buffers.get(0)).to_vec();
                let logits = Float32Array::new(&buffers.get(1)).to_vec();
                let attention = Float32Array::new(&buffers.get(2)).to_vec();
                let labels = model
                    .info
                    .with_untracked(|m| m.as_ref().map(|m| m.labels.clone()))
                    .unwrap_or_default();
                match StoredInference::from_parts(name, &meta, crop, &logits, &attention, &labels) {
                    Ok(stored) => {
                        let layers = stored.layers();
                        let layer = heatmap.options.with_untracked(|o| o.layer);
                        if layer > layers || layer == 0 {
                            heatmap.options.update(|o| o.layer = layers);
                        }
                        notices.error.set(None);
                        result.started_at.set_value(Some(started));
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
                    self.pending.update_value(|p| drop(p.remove(&id)));
                    result.classifying.set(false);
                }
                match scope {
                    ErrorScope::Model => {
                        model.loading.set(false);
                        notices.status.set(String::new());
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
