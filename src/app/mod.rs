//! The web app: a Leptos page (UI thread) and an inference worker, talking through
//! [`protocol`]. [`hub`] and [`view`] are plain Rust and tested natively; the rest exists
//! only on wasm32.

pub mod hub;
pub mod protocol;
pub mod teach_view;
pub mod view;

#[cfg(target_arch = "wasm32")]
mod net;
#[cfg(target_arch = "wasm32")]
mod ui;
#[cfg(target_arch = "wasm32")]
mod worker;

#[cfg(target_arch = "wasm32")]
pub use ui::mount;
#[cfg(target_arch = "wasm32")]
pub use worker::run as run_worker;
