//! Teaching mode: tokens, attention explorer, the ViT paper's Fig. 7, a tour of the forward
//! pass and the model card, all from the loaded model and the current image. One view per
//! file; this module holds the panel that switches between them and what they share.

mod attention;
mod card;
mod figure7;
mod tokens;
mod tour;

use std::sync::Arc;

use leptos::prelude::*;
use wasm_bindgen::JsCast;

use self::attention::AttentionView;
use self::card::CardView;
use self::figure7::Figure7View;
use self::tokens::TokensView;
use self::tour::TourView;
use crate::app::dom::{context_2d, draw_rgba};
use crate::app::state::{Heatmap, ModelState, ResultState, TeachState};
use crate::app::teach_view::{patch_at, TeachView};
use crate::app::view::StoredInference;
use crate::render::Colormap;
use crate::teach::Teaching;

/// Moves the forward-pass tour `delta` steps, staying within its steps.
pub(super) fn step_tour(teach: TeachState, delta: isize) {
    let n = teach.teaching.with_untracked(|t| {
        t.as_ref()
            .and_then(|(_, t)| t.image.as_ref())
            .map_or(0, |i| i.steps.len())
    });
    if n == 0 {
        return;
    }
    teach
        .tour_step
        .update(|s| *s = (*s as isize + delta).clamp(0, n as isize - 1) as usize);
}

/// The current result and its teaching statistics, when the worker has answered for it.
fn current_image(
    result: ResultState,
    teach: TeachState,
) -> Option<(Arc<StoredInference>, Arc<Teaching>)> {
    let current = result.current.get()?;
    let (id, teaching) = teach.teaching.get()?;
    (id == Some(current.id) && teaching.image.is_some()).then_some((current, teaching))
}

/// The heatmap's opacity and colormap, which the teaching pictures share; changes of the
/// other heatmap controls do not redraw them.
fn heatmap_look(heatmap: Heatmap) -> Memo<(f32, Colormap)> {
    Memo::new(move |_| heatmap.options.with(|o| (o.opacity, o.colormap)))
}

/// The crop with its patch grid, and one patch outlined.
fn draw_patch_grid(
    canvas: &web_sys::HtmlCanvasElement,
    result: &StoredInference,
    rgba: &[u8],
    selected: Option<usize>,
) {
    let (w, h) = (result.crop.width(), result.crop.height());
    draw_rgba(canvas, w, h, rgba);
    let Some(g) = context_2d(canvas) else { return };
    let (rows, cols) = result.grid;
    let (cw, ch) = (w as f64 / cols as f64, h as f64 / rows as f64);
    g.set_stroke_style_str("rgba(255,255,255,0.55)");
    g.set_line_width(1.0);
    g.begin_path();
    for c in 1..cols {
        g.move_to(c as f64 * cw, 0.0);
        g.line_to(c as f64 * cw, h as f64);
    }
    for r in 1..rows {
        g.move_to(0.0, r as f64 * ch);
        g.line_to(w as f64, r as f64 * ch);
    }
    g.stroke();
    if let Some(p) = selected {
        g.set_stroke_style_str("#ffd400");
        g.set_line_width(3.0);
        g.stroke_rect(
            (p % cols) as f64 * cw + 1.5,
            (p / cols) as f64 * ch + 1.5,
            cw - 3.0,
            ch - 3.0,
        );
    }
}

/// The patch under a mouse event on `canvas`, which shows a picture of `grid` patches.
fn patch_under(ev: &web_sys::MouseEvent, grid: (usize, usize)) -> Option<usize> {
    let el: web_sys::Element = ev.current_target()?.dyn_into().ok()?;
    patch_at(
        f64::from(ev.offset_x()),
        f64::from(ev.offset_y()),
        f64::from(el.client_width()),
        f64::from(el.client_height()),
        grid,
    )
}

/// What a view that needs the current image's statistics shows without them: a request is on
/// its way when there is an image, else the way to give one.
fn need_image(result: ResultState) -> impl IntoView {
    let has_image = result.current.with_untracked(|r| r.is_some());
    let text = if has_image {
        "Computing this image's statistics…"
    } else {
        "Drop an image, paste one or pick a sample below: this view shows what the model does with it."
    };
    view! { <p class="muted need-image">{text}</p> }
}

/// The teaching panel: the view tabs and the chosen view.
#[component]
pub fn TeachPanel() -> impl IntoView {
    let teach = expect_context::<TeachState>();
    let model = expect_context::<ModelState>();
    let tabs = TeachView::ALL
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            view! {
                <button class:on=move || teach.view.get() == v
                    data-testid=format!("teach-tab-{}", v.id())
                    on:click=move |_| teach.view.set(v)>
                    {format!("{} · {}", i + 1, v.title())}
                </button>
            }
        })
        .collect_view();
    let has_model = move || model.info.with(|m| m.is_some());
    let waiting = move || has_model() && teach.teaching.with(|t| t.is_none());
    view! {
        <section class="teach" data-testid="teach-panel">
            <nav class="teach-tabs">{tabs}</nav>
            {move || teach.error.get().map(|e| view! { <p class="banner error">{e}</p> })}
            <Show when=move || !has_model()>
                <p class="muted">"No model is loaded yet: wait for the built-in one, or pick one in the model menu."</p>
            </Show>
            <Show when=waiting>
                <p class="muted"><span class="spinner"></span>"Computing the teaching views…"</p>
            </Show>
            <Show when=move || has_model() && !waiting()>
                {move || match teach.view.get() {
                    TeachView::Tokens => view! { <TokensView/> }.into_any(),
                    TeachView::Attention => view! { <AttentionView/> }.into_any(),
                    TeachView::Figure7 => view! { <Figure7View/> }.into_any(),
                    TeachView::Tour => view! { <TourView/> }.into_any(),
                    TeachView::Card => view! { <CardView/> }.into_any(),
                }}
            </Show>
        </section>
    }
}
