//! The web app: a Leptos page (UI thread) and an inference worker, talking through
//! [`protocol`]. [`hub`], [`protocol`], [`view`] and [`teach_view`] are plain Rust and tested
//! natively; the rest exists only on wasm32:
//!
//! - `state`: the page's state, a few small structs of signals given through the context;
//! - `client`: the page's side of the worker (start it, send requests, take replies);
//! - `load`: models (remote hub or URL, local files) and images (files, samples) into the
//!   worker;
//! - `net`: downloads with progress, cancellation and the Cache API; `dom`: canvas, clock and
//!   file-list helpers;
//! - `ui`: the components, one per file;
//! - `worker`: the inference worker itself.
//!
//! Dependencies run one way: `ui` → `load` → `client` → `state`.

pub mod hub;
pub mod protocol;
pub mod teach_view;
pub mod view;

#[cfg(target_arch = "wasm32")]
mod client;
#[cfg(target_arch = "wasm32")]
mod dom;
#[cfg(target_arch = "wasm32")]
mod explain_client;
#[cfg(target_arch = "wasm32")]
mod explain_state;
#[cfg(target_arch = "wasm32")]
mod explain_worker;
#[cfg(target_arch = "wasm32")]
mod load;
#[cfg(target_arch = "wasm32")]
mod net;
#[cfg(target_arch = "wasm32")]
mod state;
#[cfg(target_arch = "wasm32")]
mod ui;
#[cfg(target_arch = "wasm32")]
mod worker;

#[cfg(target_arch = "wasm32")]
pub use ui::mount;
#[cfg(target_arch = "wasm32")]
pub use worker::run as run_worker;
