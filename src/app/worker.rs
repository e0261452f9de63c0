//! The inference worker. It owns the checkpoint and the engine, takes [`Request`]s one at a
//! time in arrival order, and answers with [`Reply`]s. A failed request leaves the loaded
//! model and engine as they were.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use js_sys::{Array, ArrayBuffer, Float32Array, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{DedicatedWorkerGlobalScope, MessageEvent};

use super::protocol::{BackendInfo, ErrorScope, ModelInfo, Reply, Request, ResultMeta};
use crate::checkpoint::{Checkpoint, CheckpointFiles};
use crate::engine::{BackendChoice, Engine, EngineOptions};
use crate::model::VisionTransformer;
use crate::preprocess::{preprocess_bytes, DecodeLimits, Preprocessed};
use crate::teach::{inspect_image, model_stats, ModelStats, Teaching};

struct Loaded {
    checkpoint: Checkpoint,
    info: ModelInfo,
    engine: Engine,
    backend: BackendInfo,
    /// The latest classified image's model input, for the teaching views.
    last_input: Option<(u64, Preprocessed)>,
    /// A CPU copy of the model for the teaching views' step-by-step forward pass, built on
    /// first use.
    teacher: Option<VisionTransformer>,
    model_stats: Option<ModelStats>,
    /// The explanation views' CPU model, built on first use.
    explainer: Option<crate::explain::ExplainModel>,
}

#[derive(Default)]
struct State {
    queue: VecDeque<(Request, Vec<ArrayBuffer>)>,
    running: bool,
    loaded: Option<Loaded>,
}

fn scope() -> DedicatedWorkerGlobalScope {
    js_sys::global().unchecked_into()
}

fn now_ms() -> f64 {
    scope()
        .performance()
        .map_or_else(js_sys::Date::now, |p| p.now())
}

fn post(reply: &Reply, buffers: &[JsValue]) {
    let json = serde_json::to_string(reply).unwrap_or_else(|e| {
        let fallback = Reply::Error {
            scope: ErrorScope::Worker,
            message: format!("The worker could not encode its reply: {e}"),
            id: None,
        };
        serde_json::to_string(&fallback).unwrap_or_default()
    });
    let message = Array::of2(
        &JsValue::from_str(&json),
        &buffers.iter().collect::<Array>(),
    );
    let transfer: Array = buffers.iter().collect();
    if let Err(e) = scope().post_message_with_transfer(&message, &transfer) {
        web_sys::console::error_2(&"vit-lens worker: postMessage failed".into(), &e);
    }
}

thread_local! {
    /// What the worker is doing, in words, for the message a panic sends.
    static DOING: RefCell<String> = const { RefCell::new(String::new()) };
}

fn set_doing(what: String) {
    DOING.with(|d| {
        if let Ok(mut d) = d.try_borrow_mut() {
            *d = what;
        }
    });
}

/// A panic aborts the wasm instance: before it does, tell the page what happened so it can
/// start a new worker (and log it to the console as usual).
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        console_error_panic_hook::hook(info);
        let doing = DOING
            .with(|d| d.try_borrow().map(|d| d.clone()).ok())
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| "working".to_string());
        let what = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_string());
        let place = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        post_error(
            ErrorScope::Crashed,
            format!("The inference worker crashed while {doing} ({what}{place})."),
            None,
        );
    }));
}

fn post_error(scope_: ErrorScope, message: String, id: Option<u64>) {
    post(
        &Reply::Error {
            scope: scope_,
            message,
            id,
        },
        &[],
    );
}

/// Starts the worker: installs the message handler and says it is alive.
pub fn run() {
    install_panic_hook();
    // The worker's wasm memory, for diagnostics (`self.vitLensMemory.buffer.byteLength`).
    let _ = js_sys::Reflect::set(
        &scope(),
        &JsValue::from_str("vitLensMemory"),
        &wasm_bindgen::memory(),
    );
    let state = Rc::new(RefCell::new(State::default()));
    let on_message =
        Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
            match decode(&event.data()) {
                Ok(item) => {
                    state.borrow_mut().queue.push_back(item);
                    let start = {
                        let mut s = state.borrow_mut();
                        !std::mem::replace(&mut s.running, true)
                    };
                    if start {
                        wasm_bindgen_futures::spawn_local(drain(state.clone()));
                    }
                }
                Err(message) => post_error(ErrorScope::Worker, message, None),
            }
        });
    scope().set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    on_message.forget();
    post(&Reply::Alive, &[]);
}

fn decode(data: &JsValue) -> Result<(Request, Vec<ArrayBuffer>), String> {
    let array: &Array = data
        .dyn_ref()
        .ok_or("a message to the worker must be [json, buffers]")?;
    let json = array
        .get(0)
        .as_string()
        .ok_or("a message to the worker must start with its JSON")?;
    let request: Request =
        serde_json::from_str(&json).map_err(|e| format!("unreadable request: {e}"))?;
    let buffers = Array::from(&array.get(1))
        .iter()
        .map(|b| b.dyn_into::<ArrayBuffer>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| "request buffers must be ArrayBuffers".to_string())?;
    Ok((request, buffers))
}

async fn drain(state: Rc<RefCell<State>>) {
    loop {
        let next = state.borrow_mut().queue.pop_front();
        let Some((request, buffers)) = next else {
            state.borrow_mut().running = false;
            return;
        };
        set_doing(describe(&request));
        let loaded = state.borrow_mut().loaded.take();
        let loaded = handle(request, buffers, loaded).await;
        state.borrow_mut().loaded = loaded;
        set_doing(String::new());
    }
}

/// A request in words, for the message a panic sends.
fn describe(request: &Request) -> String {
    match request {
        Request::LoadModel { source, .. } => format!("loading {source}"),
        Request::SetBackend { backend } => format!("switching to the {backend:?} backend"),
        Request::Classify { .. } => "classifying an image".to_string(),
        Request::Inspect { .. } => "computing the teaching views".to_string(),
        Request::Explain { .. } => "explaining the prediction".to_string(),
        Request::WhatIf { .. } => "running the image with patches hidden or heads off".to_string(),
    }
}

fn bytes(buffer: Option<&ArrayBuffer>) -> Vec<u8> {
    buffer
        .map(|b| Uint8Array::new(b).to_vec())
        .unwrap_or_default()
}

/// Runs one request; returns what is loaded afterwards.
async fn handle(
    request: Request,
    buffers: Vec<ArrayBuffer>,
    loaded: Option<Loaded>,
) -> Option<Loaded> {
    match request {
        Request::LoadModel {
            source,
            backend,
            has_preprocessor,
        } => {
            let config = bytes(buffers.first());
            let weights = bytes(buffers.get(1));
            let preprocessor = has_preprocessor.then(|| bytes(buffers.get(2)));
            let files = CheckpointFiles {
                config_json: &config,
                preprocessor_config_json: preprocessor.as_deref(),
                safetensors: &weights,
            };
            let checkpoint = match Checkpoint::from_bytes(files) {
                Ok(c) => c,
                Err(e) => {
                    post_error(
                        ErrorScope::Model,
                        format!("{source} is not a usable ViT checkpoint: {e}"),
                        None,
                    );
                    return loaded;
                }
            };
            drop(weights);
            let info = ModelInfo::of(&checkpoint, &source);
            match build_engine(&checkpoint, backend).await {
                Ok((engine, backend)) => {
                    post(
                        &Reply::Ready {
                            model: info.clone(),
                            backend: backend.clone(),
                            answers_load: true,
                        },
                        &[],
                    );
                    Some(Loaded {
                        checkpoint,
                        info,
                        engine,
                        backend,
                        last_input: None,
                        teacher: None,
                        model_stats: None,
                        explainer: None,
                    })
                }
                Err(message) => {
                    post_error(ErrorScope::Model, message, None);
                    loaded
                }
            }
        }
        Request::SetBackend { backend } => {
            let mut current = model_or_say(loaded, ErrorScope::Backend, None)?;
            match build_engine(&current.checkpoint, backend).await {
                Ok((engine, info)) => {
                    current.engine = engine;
                    current.backend = info;
                }
                Err(message) => post_error(ErrorScope::Backend, message, None),
            }
            post(
                &Reply::Ready {
                    model: current.info.clone(),
                    backend: current.backend.clone(),
                    answers_load: false,
                },
                &[],
            );
            Some(current)
        }
        Request::Classify { id } => {
            let current = model_or_say(loaded, ErrorScope::Image, Some(id))?;
            let image = bytes(buffers.first());
            let mut current = current;
            let gpu_error = match classify(&current, id, &image).await {
                Ok(input) => {
                    if input.is_some() {
                        current.last_input = input.map(|pre| (id, pre));
                    }
                    return Some(current);
                }
                Err(e) => e,
            };
            // The GPU failed mid-run (device lost, out of memory): continue on the CPU with
            // the same checkpoint, run this image again there, and say so.
            match Engine::cpu(&current.checkpoint) {
                Ok(engine) => {
                    current.engine = engine;
                    current.backend = BackendInfo::cpu(Some(format!(
                        "WebGPU failed during inference: {gpu_error}"
                    )));
                    post(
                        &Reply::Ready {
                            model: current.info.clone(),
                            backend: current.backend.clone(),
                            answers_load: false,
                        },
                        &[],
                    );
                    if let Ok(Some(pre)) = classify(&current, id, &image).await {
                        current.last_input = Some((id, pre));
                    }
                    post_error(
                        ErrorScope::Backend,
                        format!(
                            "WebGPU failed ({gpu_error}); vit-lens switched to the CPU and ran the image there."
                        ),
                        None,
                    );
                }
                Err(e) => post_error(
                    ErrorScope::Backend,
                    format!("WebGPU failed ({gpu_error}) and the CPU engine could not start: {e}"),
                    Some(id),
                ),
            }
            Some(current)
        }
        Request::Inspect { id } => {
            let mut current = model_or_say(loaded, ErrorScope::Teaching, None)?;
            post(
                &Reply::Status {
                    message: "Computing the teaching views…".into(),
                },
                &[],
            );
            match inspect(&mut current, id) {
                Ok(teaching) => post(
                    &Reply::Teaching {
                        id,
                        teaching: Box::new(teaching),
                    },
                    &[],
                ),
                Err(e) => post_error(
                    ErrorScope::Teaching,
                    format!("The teaching views could not be computed: {e}"),
                    None,
                ),
            }
            Some(current)
        }
        Request::Explain {
            id,
            class,
            interventions,
        } => {
            let mut current = model_or_say(loaded, ErrorScope::Explain, None)?;
            answer_explain(&mut current, id, class, interventions);
            Some(current)
        }
        Request::WhatIf {
            id,
            hidden_patches,
            heads_off,
        } => {
            let mut current = model_or_say(loaded, ErrorScope::Explain, None)?;
            let last = current.last_input.as_ref();
            let answer = super::explain_worker::what_if(
                &mut current.explainer,
                &current.checkpoint,
                last,
                id,
                hidden_patches,
                heads_off,
            );
            match answer {
                Ok(reply) => post(&reply, &[]),
                Err(e) => post_error(ErrorScope::Explain, format!("What if: {e}"), None),
            }
            Some(current)
        }
    }
}

/// The loaded model, or `None` after telling the page, in `scope`, that there is none yet.
fn model_or_say(loaded: Option<Loaded>, scope: ErrorScope, id: Option<u64>) -> Option<Loaded> {
    if loaded.is_none() {
        let message = "No model is loaded yet; wait for it or pick one.".to_string();
        post_error(scope, message, id);
    }
    loaded
}

/// Posts the explanation of image `id` (see [`super::explain_worker`]).
fn answer_explain(current: &mut Loaded, id: u64, class: Option<usize>, interventions: bool) {
    post(
        &Reply::Status {
            message: "Computing the explanation…".into(),
        },
        &[],
    );
    let last = current.last_input.as_ref();
    let answer = super::explain_worker::explain(
        &mut current.explainer,
        &current.checkpoint,
        last,
        id,
        class,
        interventions,
    );
    match answer {
        Ok(reply) => post(&reply, &[]),
        Err(e) => post_error(
            ErrorScope::Explain,
            format!("The explanation could not be computed: {e}"),
            None,
        ),
    }
}

/// The teaching statistics of the loaded model, and of image `id` if it is the latest.
fn inspect(current: &mut Loaded, id: Option<u64>) -> Result<Teaching, String> {
    let checkpoint = &current.checkpoint;
    if current.model_stats.is_none() {
        current.model_stats = Some(model_stats(checkpoint).map_err(|e| e.to_string())?);
    }
    let input = match (id, &current.last_input) {
        (Some(id), Some((last, pre))) if *last == id => Some(pre),
        _ => None,
    };
    let image = match input {
        Some(pre) => {
            if current.teacher.is_none() {
                let device = candle_core::Device::Cpu;
                current.teacher =
                    Some(VisionTransformer::new(checkpoint, &device).map_err(|e| e.to_string())?);
            }
            let model = current.teacher.as_ref().ok_or("no CPU model")?;
            let pixels = candle_core::Tensor::from_slice(
                &pre.pixel_values,
                (
                    1,
                    checkpoint.config.num_channels,
                    pre.height as usize,
                    pre.width as usize,
                ),
                &candle_core::Device::Cpu,
            )
            .map_err(|e| e.to_string())?;
            Some(inspect_image(model, &pixels).map_err(|e| e.to_string())?)
        }
        None => None,
    };
    Ok(Teaching {
        model: current.model_stats.clone().ok_or("no model statistics")?,
        image,
    })
}

/// The app's automatic choice takes any WebGPU adapter the browser offers (software ones
/// included: the browser decided to expose it), and the CPU when there is none or it fails;
/// [`Engine::with_options`] makes that choice, as it does for the command line.
async fn build_engine(
    checkpoint: &Checkpoint,
    choice: BackendChoice,
) -> Result<(Engine, BackendInfo), String> {
    if choice != BackendChoice::Cpu {
        post(
            &Reply::Status {
                message: "Preparing WebGPU (compiling kernels, uploading weights)…".into(),
            },
            &[],
        );
    }
    let options = EngineOptions {
        allow_software_adapter: true,
        ..EngineOptions::default()
    };
    let engine = Engine::with_options(checkpoint, choice, options)
        .await
        .map_err(|e| match choice {
            BackendChoice::Gpu => {
                format!("WebGPU is not usable here: {e}. The CPU backend works everywhere.")
            }
            _ => e.to_string(),
        })?;
    let info = match engine.adapter() {
        Some(adapter) => BackendInfo::gpu(Some(adapter)),
        None => BackendInfo::cpu(engine.fallback_reason().map(str::to_string)),
    };
    Ok((engine, info))
}

/// Classifies one image and posts the result or the error. Returns the model input when it
/// succeeded, and the engine's error when the GPU backend failed, so the caller can fall
/// back to the CPU.
async fn classify(current: &Loaded, id: u64, image: &[u8]) -> Result<Option<Preprocessed>, String> {
    let t0 = now_ms();
    let limits = DecodeLimits::default();
    let pre = match preprocess_bytes(image, &current.checkpoint.preprocess, &limits) {
        Ok(p) => p,
        Err(e) => {
            post_error(ErrorScope::Image, e.to_string(), Some(id));
            return Ok(None);
        }
    };
    let t1 = now_ms();
    let out = match current.engine.infer_async(&pre).await {
        Ok(out) => out,
        Err(e) if current.backend.backend == crate::engine::Backend::Gpu => {
            return Err(e.to_string());
        }
        Err(e) => {
            let message = format!("Inference failed on {}: {e}.", current.backend.label);
            post_error(ErrorScope::Backend, message, Some(id));
            return Ok(None);
        }
    };
    let t2 = now_ms();
    let first = out.attentions.first();
    let heads = first.map_or(0, |a| a.heads);
    let tokens = first.map_or(0, |a| a.tokens);
    let meta = ResultMeta {
        id,
        crop_width: pre.width,
        crop_height: pre.height,
        layers: out.attentions.len(),
        heads,
        tokens,
        grid_rows: out.patch_grid.0,
        grid_cols: out.patch_grid.1,
        prefix_tokens: out.prefix_tokens,
        preprocess_ms: t1 - t0,
        forward_ms: t2 - t1,
        backend: current.backend.clone(),
    };
    let crop = Uint8Array::from(pre.crop.as_raw().as_slice()).buffer();
    let logits = Float32Array::from(out.logits.as_slice()).buffer();
    let attention = Float32Array::new_with_length((meta.layers * heads * tokens * tokens) as u32);
    let mut offset = 0u32;
    for layer in &out.attentions {
        let data = layer.data.as_slice();
        attention.set(&Float32Array::from(data), offset);
        offset += data.len() as u32;
    }
    post(
        &Reply::Result(meta),
        &[crop.into(), logits.into(), attention.buffer().into()],
    );
    Ok(Some(pre))
}
