//! The attention explorer: where one query token (CLS or any patch) looks in one layer, for
//! the mean of the heads or one head, with every head side by side.

use leptos::prelude::*;

use super::{draw_patch_grid, heatmap_look, need_image, patch_under};
use crate::analysis::{query_attention, HeadFusion};
use crate::app::state::{Heatmap, ResultState};
use crate::app::teach_view::{format_values, top_entries};
use crate::app::view::{MapKind, StoredInference, ViewOptions};

/// One layer's attention from one query token, per head and fused.
#[component]
pub fn AttentionView() -> impl IntoView {
    let results = expect_context::<ResultState>();
    let look = heatmap_look(expect_context::<Heatmap>());
    let layer = RwSignal::new(0usize);
    let head = RwSignal::<Option<usize>>::new(None);
    // Query token: 0 = CLS, else prefix + patch.
    let query = RwSignal::new(0usize);
    let canvas = NodeRef::<leptos::html::Canvas>::new();
    let layers = move || {
        results
            .current
            .with(|r| r.as_ref().map_or(0, |r| r.layers()))
    };
    let heads = move || {
        results
            .current
            .with(|r| r.as_ref().map_or(0, |r| r.heads()))
    };
    Effect::new(move |_| {
        let l = layers();
        if l > 0 && (layer.get_untracked() == 0 || layer.get_untracked() > l) {
            layer.set(l);
        }
    });
    let opts = move |l: usize| ViewOptions {
        layer: l,
        kind: MapKind::ClsAttention { head: None },
        fusion: HeadFusion::Mean,
        discard_ratio: 0.0,
        opacity: look.get().0,
        colormap: look.get().1,
    };
    let map_of = move |r: &StoredInference, l: usize, h: Option<usize>, q: usize| {
        r.attentions
            .get(l.wrapping_sub(1))
            .ok_or_else(|| "no such layer".to_string())
            .and_then(|a| {
                query_attention(a, h, HeadFusion::Mean, q, r.prefix_tokens)
                    .map_err(|e| e.to_string())
            })
    };
    let draw = move |c: &web_sys::HtmlCanvasElement,
                     r: &StoredInference,
                     map: &[f32],
                     q: usize,
                     l: usize| {
        if let Ok(img) = r.render(&opts(l), map) {
            let selected = q.checked_sub(r.prefix_tokens);
            draw_patch_grid(c, r, img.as_raw(), selected);
        }
    };
    Effect::new(move |_| {
        let Some(r) = results.current.get() else {
            return;
        };
        let (l, h, q) = (layer.get(), head.get(), query.get());
        if let (Some(c), Ok(map)) = (canvas.get(), map_of(&r, l, h, q)) {
            draw(&c, &r, &map, q, l);
        }
    });
    move || {
        let Some(r) = results.current.get() else {
            return need_image(results).into_any();
        };
        let (l, h, q) = (layer.get(), head.get(), query.get());
        let grid = r.grid;
        let prefix = r.prefix_tokens;
        let map = map_of(&r, l, h, q).unwrap_or_default();
        let top = top_entries(&map, 5);
        let top_values: Vec<f32> = top.iter().map(|t| t.1).collect();
        let top_indices: Vec<String> = top.iter().map(|t| t.0.to_string()).collect();
        let to_patches: f32 = map.iter().sum();
        let query_name = if q < prefix {
            if q == 0 {
                "the CLS token".to_string()
            } else {
                "the distillation token".to_string()
            }
        } else {
            let p = q - prefix;
            format!(
                "patch ({}, {}) (token #{q})",
                p / grid.1 + 1,
                p % grid.1 + 1
            )
        };
        let head_name = h.map_or("mean of all heads".to_string(), |h| {
            format!("head {}", h + 1)
        });
        let multiples = (0..heads())
            .map(|hh| {
                let small = NodeRef::<leptos::html::Canvas>::new();
                let r2 = r.clone();
                Effect::new(move |_| {
                    let (l, q) = (layer.get(), query.get());
                    if let (Some(c), Ok(map)) = (small.get(), map_of(&r2, l, Some(hh), q)) {
                        draw(&c, &r2, &map, q, l);
                    }
                });
                view! {
                    <figure class="multiple" class:on=move || head.get() == Some(hh)
                        on:click=move |_| head.set(Some(hh))>
                        <canvas node_ref=small data-testid="head-multiple" data-head=hh></canvas>
                        <figcaption>{format!("head {}", hh + 1)}</figcaption>
                    </figure>
                }
            })
            .collect_view();
        view! {
            <div class="teach-view" data-testid="view-attention" data-layer=l data-head=h.map_or("mean".to_string(), |h| h.to_string()) data-query=q>
                <div class="teach-controls">
                    <label class="field"><span>"Layer"</span>
                        <select data-testid="attention-layer" prop:value=l.to_string()
                            on:change=move |ev| { if let Ok(v) = event_target_value(&ev).parse() { layer.set(v) } }>
                            {(1..=layers()).map(|i| view! { <option value=i.to_string()>{format!("layer {i}")}</option> }).collect_view()}
                        </select>
                    </label>
                    <label class="field"><span>"Head"</span>
                        <select data-testid="attention-head" prop:value=h.map_or("mean".to_string(), |h| h.to_string())
                            on:change=move |ev| head.set(event_target_value(&ev).parse().ok())>
                            <option value="mean">"mean of heads"</option>
                            {(0..heads()).map(|i| view! { <option value=i.to_string()>{format!("head {}", i + 1)}</option> }).collect_view()}
                        </select>
                    </label>
                    <button data-testid="query-cls" class:on=q == 0 on:click=move |_| query.set(0)>"Query: CLS"</button>
                </div>
                <div class="teach-row">
                    <canvas class="teach-canvas pointer" node_ref=canvas data-testid="attention-canvas"
                        on:mousemove=move |ev| { if let Some(p) = patch_under(&ev, grid) { query.set(prefix + p) } }
                        on:click=move |ev| { if let Some(p) = patch_under(&ev, grid) { query.set(prefix + p) } }></canvas>
                    <div class="teach-info">
                        <h3>{format!("Layer {l}, {head_name}: where {query_name} looks")}</h3>
                        <p>{format!("{:.1} % of its attention goes to patches, the rest to the prefix token(s).", to_patches * 100.0)}</p>
                        <p class="muted">"Most attended patches:"</p>
                        <ol class="mono" data-testid="attention-top" data-values=format_values(&top_values) data-indices=top_indices.join(",")>
                            {top.iter().map(|(i, v)| view! { <li>{format!("patch ({}, {}): {:.4}", i / grid.1 + 1, i % grid.1 + 1, v)}</li> }).collect_view()}
                        </ol>
                        <p class="muted">"Hover or click a patch to make it the query."</p>
                    </div>
                </div>
                <h3>{format!("Every head of layer {l}, same query")}</h3>
                <div class="multiples">{multiples}</div>
            </div>
        }
        .into_any()
    }
}
