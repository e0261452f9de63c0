//! The page: creates its state, the worker client and the loaders, starts the built-in
//! model, and lays out every component.

use leptos::prelude::*;

use super::controls::Controls;
use super::download_bar::DownloadBar;
use super::error_banner::ErrorBanner;
use super::explain::ExplainPanel;
use super::header::Header;
use super::mode_bar::ModeBar;
use super::predictions::Predictions;
use super::samples::Samples;
use super::shortcuts::Shortcuts;
use super::stage::Stage;
use super::teach::TeachPanel;
use super::timings::Timings;
use super::window_input::listen_to_window;
use crate::app::client::Client;
use crate::app::load::Loader;
use crate::app::state::AppState;

/// The whole page.
#[component]
pub fn App() -> impl IntoView {
    let state = AppState::new();
    state.provide();
    let client = Client::start(state);
    let loader = Loader::new(client);
    provide_context(client);
    provide_context(loader);

    loader.load_at_start();
    let drag_over = listen_to_window(loader, state);
    client.ask_for_teaching();
    let explain = state.explain;
    client.ask_for_explanations(explain);
    client.ask_what_if(explain);

    let teach = state.teach;
    let explaining = move || explain.on.get() && !teach.on.get();
    view! {
        <div class="app" class:dragging=move || drag_over.get() class:projector=move || teach.projector.get()>
            <Header/>
            <DownloadBar/>
            <ErrorBanner/>
            <ModeBar/>
            <main class="main">
                <div class="left">
                    <div class:hidden=move || teach.on.get() || explaining()>
                        <Stage/>
                    </div>
                    <Show when=explaining>
                        <ExplainPanel/>
                    </Show>
                    <Show when=move || teach.on.get()>
                        <TeachPanel/>
                    </Show>
                    <Samples/>
                </div>
                <aside class="side">
                    <Predictions/>
                    <Controls/>
                    <Timings/>
                </aside>
            </main>
            <Shortcuts/>
            <footer class="footer">
                "Images stay on this device: they are decoded and classified inside this page. "
                "Only model files are downloaded, from the page itself or the model host you pick."
            </footer>
        </div>
    }
}
