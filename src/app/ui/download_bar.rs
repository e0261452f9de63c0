//! The progress row: a model download (with Cancel), or what the worker is doing while a
//! model loads; above it, the question before a download from another host.

use leptos::prelude::*;

use super::host_confirm::HostConfirm;
use crate::app::hub::format_bytes;
use crate::app::load::Loader;
use crate::app::state::{ModelState, Notices};

/// Shown while a model downloads or loads.
#[component]
pub fn DownloadBar() -> impl IntoView {
    let model = expect_context::<ModelState>();
    let notices = expect_context::<Notices>();
    let loader = expect_context::<Loader>();
    view! {
        <HostConfirm/>
        <Show when=move || notices.download.with(|d| d.is_some()) || model.loading.get()>
            <div class="progress-row">
                {move || match notices.download.get() {
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
                            <button class="ghost" data-testid="download-cancel" on:click=move |_| loader.cancel_download()>"Cancel"</button>
                        }.into_any()
                    }
                    None => view! {
                        <span class="spinner"></span>
                        <span class="progress-text" data-testid="model-status">{move || notices.status.get()}</span>
                    }.into_any(),
                }}
            </div>
        </Show>
    }
}
