//! Input anywhere on the page: drop a file, paste an image, and the keyboard shortcuts
//! (←/→ for the layer; the teaching and projector keys).

use leptos::prelude::*;
use wasm_bindgen::JsCast;

use super::teach::step_tour;
use crate::app::dom::{files_of, now_ms};
use crate::app::load::Loader;
use crate::app::state::{AppState, Heatmap, ResultState, TeachState};
use crate::app::teach_view::TeachView;

/// Listens to drops, pastes and keys on the window; the signal is true while a file is
/// dragged over the page.
pub fn listen_to_window(loader: Loader, state: AppState) -> RwSignal<bool> {
    let drag_over = RwSignal::new(false);
    let _ = window_event_listener(leptos::ev::dragover, move |ev| {
        ev.prevent_default();
        drag_over.set(true);
    });
    let _ = window_event_listener(leptos::ev::dragleave, move |_| drag_over.set(false));
    let _ = window_event_listener(leptos::ev::drop, move |ev| {
        ev.prevent_default();
        drag_over.set(false);
        let started = now_ms();
        let files = files_of(ev.data_transfer().and_then(|d| d.files()));
        loader.take_files(files, started);
    });
    let _ = window_event_listener(leptos::ev::paste, move |ev| {
        let files = files_of(ev.clipboard_data().and_then(|d| d.files()));
        if let Some(file) = files.into_iter().next() {
            ev.prevent_default();
            loader.take_image_blob("pasted image".to_string(), file.into(), now_ms());
        }
    });
    let _ = window_event_listener(leptos::ev::keydown, move |ev| {
        let typing = ev
            .target()
            .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
            .is_some_and(|el| matches!(el.tag_name().as_str(), "INPUT" | "SELECT" | "TEXTAREA"));
        if typing || ev.ctrl_key() || ev.meta_key() || ev.alt_key() {
            return;
        }
        let key = ev.key();
        if teaching_key(state.teach, &key) || layer_key(state.result, state.heatmap, &key) {
            ev.prevent_default();
        }
    });
    drag_over
}

/// Keyboard shortcuts of teaching and projector mode; true when the key was used.
fn teaching_key(teach: TeachState, key: &str) -> bool {
    let in_tour = teach.on.get_untracked() && teach.view.get_untracked() == TeachView::Tour;
    match key {
        "?" => teach.help.update(|h| *h = !*h),
        "Escape" => {
            if teach.help.get_untracked() {
                teach.help.set(false);
            } else if teach.projector.get_untracked() {
                teach.projector.set(false);
            } else {
                return false;
            }
        }
        "t" | "T" => teach.on.update(|t| *t = !*t),
        "p" | "P" => teach.projector.update(|p| *p = !*p),
        "1" | "2" | "3" | "4" | "5" if teach.on.get_untracked() => {
            let i = key.parse::<usize>().unwrap_or(1) - 1;
            teach
                .view
                .set(TeachView::ALL[i.min(TeachView::ALL.len() - 1)]);
        }
        "ArrowLeft" | "PageUp" if in_tour => step_tour(teach, -1),
        "ArrowRight" | "PageDown" | " " if in_tour => step_tour(teach, 1),
        _ => return false,
    }
    true
}

/// ← / → step the heatmap's layer when there is a result; true when the key was used.
fn layer_key(result: ResultState, heatmap: Heatmap, key: &str) -> bool {
    let layers = result
        .current
        .with_untracked(|r| r.as_ref().map_or(0, |r| r.layers()));
    if layers == 0 {
        return false;
    }
    match key {
        "ArrowLeft" => heatmap
            .options
            .update(|o| o.layer = o.layer.saturating_sub(1).max(1)),
        "ArrowRight" => heatmap
            .options
            .update(|o| o.layer = (o.layer + 1).min(layers)),
        _ => return false,
    }
    true
}
