//! The keyboard-shortcut overlay (the keys themselves are handled in `window_input`).

use leptos::prelude::*;

use crate::app::state::TeachState;

/// Every shortcut, with what it does.
const KEYS: [(&str, &str); 7] = [
    (
        "← / →",
        "previous / next layer; in the tour, previous / next step",
    ),
    ("T", "switch between Classify and Teach"),
    (
        "1 – 5",
        "teaching views: tokens, attention, what it learned, tour, model card",
    ),
    ("P", "projector mode: large type, full-screen heatmap"),
    ("Ctrl+V", "classify the image on the clipboard"),
    ("?", "show or hide this list"),
    ("Esc", "close this list, leave projector mode"),
];

/// The list of shortcuts, over the page while `?` has opened it.
#[component]
pub fn Shortcuts() -> impl IntoView {
    let teach = expect_context::<TeachState>();
    view! {
        <Show when=move || teach.help.get()>
            <div class="overlay" data-testid="shortcuts" role="dialog" aria-label="Keyboard shortcuts"
                on:click=move |_| teach.help.set(false)>
                <div class="overlay-card">
                    <h2>"Keyboard shortcuts"</h2>
                    <dl>
                        {KEYS.iter().map(|(k, what)| view! { <dt><kbd>{*k}</kbd></dt><dd>{*what}</dd> }).collect_view()}
                    </dl>
                    <p class="muted">"Click anywhere or press Esc to close."</p>
                </div>
            </div>
        </Show>
    }
}
