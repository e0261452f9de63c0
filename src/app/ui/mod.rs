//! The page's components, one per file: [`app::App`] lays them out and gives them the
//! page's state through the context.

mod app;
mod backend_picker;
mod controls;
mod download_bar;
mod error_banner;
mod explain;
mod header;
mod host_confirm;
mod mode_bar;
mod model_picker;
mod predictions;
mod samples;
mod shortcuts;
mod stage;
mod teach;
mod timings;
mod window_input;

/// Mounts the app on `<body>`.
pub fn mount() {
    console_error_panic_hook::set_once();
    register_service_worker();
    leptos::mount::mount_to_body(app::App);
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
