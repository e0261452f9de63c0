//! What if: hide patches by clicking the crop, switch heads off, and see the top classes
//! the model gives then (the worker runs it again on the CPU).

use leptos::prelude::*;

use crate::app::dom::draw_rgba;
use crate::app::explain_state::{toggle, ExplainState};
use crate::app::state::{ModelState, ResultState};

/// The crop with the hidden patches greyed, as RGBA.
fn greyed(rgba: &mut [u8], size: (u32, u32), grid: (usize, usize), hidden: &[usize]) {
    let (w, h) = (size.0 as usize, size.1 as usize);
    let (rows, cols) = grid;
    if rows == 0 || cols == 0 {
        return;
    }
    for y in 0..h {
        for x in 0..w {
            let patch = (y * rows / h) * cols + x * cols / w;
            if hidden.binary_search(&patch).is_ok() {
                let i = (y * w + x) * 4;
                if let Some(px) = rgba.get_mut(i..i + 3) {
                    px.iter_mut().for_each(|v| *v = *v / 5 + 40);
                }
            }
        }
    }
}

/// The what-if controls and the top classes they lead to.
#[component]
pub fn WhatIfPanel() -> impl IntoView {
    let result = expect_context::<ResultState>();
    let explain = expect_context::<ExplainState>();
    let model = expect_context::<ModelState>();
    let canvas = NodeRef::<leptos::html::Canvas>::new();
    Effect::new(move |_| {
        let Some(current) = result.current.get() else {
            return;
        };
        let hidden = explain.hidden.get();
        let mut rgba = current.crop_rgba();
        let size = current.crop.dimensions();
        greyed(&mut rgba, size, current.grid, &hidden);
        if let Some(canvas) = canvas.get() {
            draw_rgba(&canvas, size.0, size.1, &rgba);
        }
    });
    let on_click = move |ev: web_sys::MouseEvent| {
        let Some(c) = canvas.get() else { return };
        let Some((rows, cols)) = result
            .current
            .with_untracked(|r| r.as_ref().map(|r| r.grid))
        else {
            return;
        };
        let (w, h) = (
            c.client_width().max(1) as f64,
            c.client_height().max(1) as f64,
        );
        let col = ((ev.offset_x() as f64 / w) * cols as f64).floor() as usize;
        let row = ((ev.offset_y() as f64 / h) * rows as f64).floor() as usize;
        if row < rows && col < cols {
            explain
                .hidden
                .update(|hidden| toggle(hidden, row * cols + col));
        }
    };
    let heads = move || {
        model
            .info
            .with(|m| m.as_ref().map_or((0, 0), |m| (m.card.layers, m.card.heads)))
    };
    let toggles = move || {
        let (layers, heads) = heads();
        (0..layers)
            .map(|l| {
                let buttons = (0..heads)
                    .map(|h| {
                        view! {
                            <button class="head-toggle" data-testid="head-toggle" data-layer=l data-head=h
                                class:off=move || explain.heads_off.with(|o| o.binary_search(&(l, h)).is_ok())
                                on:click=move |_| explain.heads_off.update(|o| toggle(o, (l, h)))>
                                {format!("H{}", h + 1)}
                            </button>
                        }
                    })
                    .collect_view();
                view! { <div class="head-row"><span class="muted">{format!("layer {}", l + 1)}</span>{buttons}</div> }
            })
            .collect_view()
    };
    let changed =
        move || explain.hidden.with(|h| !h.is_empty()) || explain.heads_off.with(|h| !h.is_empty());
    let answer = move || {
        let id = result.current.with(|r| r.as_ref().map(|r| r.id))?;
        let key = (id, explain.hidden.get(), explain.heads_off.get());
        explain.what_if.with(|w| {
            w.as_ref()
                .filter(|w| w.key == key)
                .map(|w| w.predictions.clone())
        })
    };
    view! {
        <section class="what-if" data-testid="what-if"
            data-hidden=move || explain.hidden.with(|h| h.len())
            data-heads-off=move || explain.heads_off.with(|h| h.len())>
            <h3>"Take parts away"</h3>
            <p class="muted">
                "Click patches of the crop to hide them (their tokens are dropped, not painted over) and switch heads off "
                "(their output zeroed); the model runs again on the CPU and the top classes below follow."
            </p>
            <div class="what-if-row">
                <canvas class="what-if-canvas" data-testid="what-if-canvas" node_ref=canvas width="224" height="224"
                    on:click=on_click></canvas>
                <div class="what-if-side">
                    <div class="heads">{toggles}</div>
                    <button class="ghost" data-testid="what-if-reset" on:click=move |_| {
                        explain.hidden.set(Vec::new());
                        explain.heads_off.set(Vec::new());
                    }>"Reset"</button>
                    <div data-testid="what-if-result">
                        {move || {
                            if !changed() {
                                return view! { <p class="muted">"Nothing taken away: the prediction is the model's own."</p> }.into_any();
                            }
                            match answer() {
                                None => view! { <p class="muted"><span class="spinner"></span>" Running…"</p> }.into_any(),
                                Some(preds) => preds
                                    .into_iter()
                                    .map(|p| view! {
                                        <div class="what-if-pred" data-testid="what-if-prediction" data-index=p.index data-prob=p.prob.to_string()>
                                            <span>{p.label.clone()}</span>
                                            <span class="num">{format!("{:.1} %", p.prob * 100.0)}</span>
                                        </div>
                                    })
                                    .collect_view()
                                    .into_any(),
                            }
                        }}
                    </div>
                </div>
            </div>
        </section>
    }
}
