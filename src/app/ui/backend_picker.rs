//! The backend menu (automatic, WebGPU, CPU) and the label of the backend that runs.

use leptos::prelude::*;

use crate::app::client::Client;
use crate::app::state::{ModelState, ResultState};
use crate::engine::BackendChoice;

/// Picks the backend and shows which one runs (with why WebGPU was not used, if so).
#[component]
pub fn BackendPicker() -> impl IntoView {
    let model = expect_context::<ModelState>();
    let result = expect_context::<ResultState>();
    let client = expect_context::<Client>();
    let on_backend = move |ev: leptos::ev::Event| {
        if let Ok(choice) = event_target_value(&ev).parse::<BackendChoice>() {
            client.set_backend(choice);
        }
    };
    let backend_label = move || {
        result
            .current
            .with(|r| r.as_ref().map(|r| r.backend.label.clone()))
            .or_else(|| model.backend.with(|b| b.as_ref().map(|b| b.label.clone())))
            .unwrap_or_else(|| "starting…".to_string())
    };
    let fallback = move || {
        model
            .backend
            .with(|b| b.as_ref().and_then(|b| b.fallback_reason.clone()))
            .map(|r| format!("No WebGPU: {r}"))
    };
    view! {
        <label class="field">
            <span>"Backend"</span>
            <select
                data-testid="backend-select"
                on:change=on_backend
                prop:value=move || match model.backend_choice.get() {
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
    }
}
