//! Teaching mode: tokens, attention explorer, the ViT paper's Fig. 7, a tour of the forward
//! pass and the model card, all from the loaded model and the current image; projector mode
//! and the keyboard-shortcut overlay.

use std::sync::Arc;

use leptos::prelude::*;
use wasm_bindgen::JsCast;

use super::{draw_rgba, Ctx};
use crate::analysis::{query_attention, HeadFusion};
use crate::app::protocol::Request;
use crate::app::teach_view::{
    component_rgba, format_count, format_shape, format_values, patch_at, peaks_at_self,
    similarity_grid_rgba, strip_rgba, top_entries, TeachView,
};
use crate::app::view::{MapKind, StoredInference, ViewOptions};
use crate::teach::{ImageStats, Teaching};

/// Values shown per token in the tokens view.
const TOKEN_VALUES: usize = 8;

/// Asks the worker for teaching statistics whenever teaching mode is on and the model or the
/// image changed since the last answer.
pub(super) fn ask_for_teaching(ctx: Ctx) {
    Effect::new(move |_| {
        if !ctx.teach_mode.get() {
            return;
        }
        let Some(source) = ctx.model.with(|m| m.as_ref().map(|m| m.source.clone())) else {
            return;
        };
        let id = ctx.result.with(|r| r.as_ref().map(|r| r.id));
        let key = (id, source);
        if ctx
            .teaching_asked
            .with_value(|asked| asked.as_ref() == Some(&key))
        {
            return;
        }
        ctx.teaching_asked.set_value(Some(key));
        ctx.post(&Request::Inspect { id }, Vec::new());
    });
}

/// Keyboard shortcuts of teaching and projector mode; true when the key was used.
pub(super) fn on_key(ctx: Ctx, key: &str) -> bool {
    let in_tour =
        ctx.teach_mode.get_untracked() && ctx.teach_view.get_untracked() == TeachView::Tour;
    match key {
        "?" => ctx.help.update(|h| *h = !*h),
        "Escape" => {
            if ctx.help.get_untracked() {
                ctx.help.set(false);
            } else if ctx.projector.get_untracked() {
                ctx.projector.set(false);
            } else {
                return false;
            }
        }
        "t" | "T" => ctx.teach_mode.update(|t| *t = !*t),
        "p" | "P" => ctx.projector.update(|p| *p = !*p),
        "1" | "2" | "3" | "4" | "5" if ctx.teach_mode.get_untracked() => {
            let i = key.parse::<usize>().unwrap_or(1) - 1;
            ctx.teach_view
                .set(TeachView::ALL[i.min(TeachView::ALL.len() - 1)]);
        }
        "ArrowLeft" | "PageUp" if in_tour => tour_step(ctx, -1),
        "ArrowRight" | "PageDown" | " " if in_tour => tour_step(ctx, 1),
        _ => return false,
    }
    true
}

fn tour_len(ctx: Ctx) -> usize {
    ctx.teaching.with_untracked(|t| {
        t.as_ref()
            .and_then(|(_, t)| t.image.as_ref())
            .map_or(0, |i| i.steps.len())
    })
}

fn tour_step(ctx: Ctx, delta: isize) {
    let n = tour_len(ctx);
    if n == 0 {
        return;
    }
    ctx.tour_step
        .update(|s| *s = (*s as isize + delta).clamp(0, n as isize - 1) as usize);
}

/// The page's origin, e.g. `http://127.0.0.1:8080`.
fn page_origin() -> String {
    web_sys::window()
        .and_then(|w| w.location().origin().ok())
        .unwrap_or_default()
}

fn context_2d(canvas: &web_sys::HtmlCanvasElement) -> Option<web_sys::CanvasRenderingContext2d> {
    canvas.get_context("2d").ok()??.dyn_into().ok()
}

/// The image statistics of the current result, when the worker has answered for it.
fn current_image(ctx: Ctx) -> Option<(Arc<StoredInference>, Arc<Teaching>)> {
    let result = ctx.result.get()?;
    let (id, teaching) = ctx.teaching.get()?;
    (id == Some(result.id) && teaching.image.is_some()).then_some((result, teaching))
}

/// The image statistics a teaching from [`current_image`] carries.
fn image_stats(teaching: &Teaching) -> Option<&ImageStats> {
    teaching.image.as_ref()
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

/// The crop the model saw, as opaque RGBA for a canvas.
pub(super) fn crop_rgba(result: &StoredInference) -> Vec<u8> {
    result
        .crop
        .pixels()
        .flat_map(|p| [p.0[0], p.0[1], p.0[2], 255])
        .collect()
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

#[component]
pub(super) fn ModeBar(ctx: Ctx) -> impl IntoView {
    view! {
        <nav class="modebar">
            <div class="toggle" role="group">
                <button class:on=move || !ctx.teach_mode.get() data-testid="mode-classify"
                    on:click=move |_| ctx.teach_mode.set(false)>"Classify"</button>
                <button class:on=move || ctx.teach_mode.get() data-testid="mode-teach"
                    on:click=move |_| ctx.teach_mode.set(true)>"Teach"</button>
            </div>
            <button class="ghost" data-testid="projector-toggle" class:on=move || ctx.projector.get()
                on:click=move |_| ctx.projector.update(|p| *p = !*p)>"Projector (P)"</button>
            <button class="ghost" data-testid="help-toggle" on:click=move |_| ctx.help.update(|h| *h = !*h)>"Shortcuts (?)"</button>
        </nav>
    }
}

#[component]
pub(super) fn Shortcuts(ctx: Ctx) -> impl IntoView {
    let keys = [
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
    view! {
        <Show when=move || ctx.help.get()>
            <div class="overlay" data-testid="shortcuts" role="dialog" aria-label="Keyboard shortcuts"
                on:click=move |_| ctx.help.set(false)>
                <div class="overlay-card">
                    <h2>"Keyboard shortcuts"</h2>
                    <dl>
                        {keys.iter().map(|(k, what)| view! { <dt><kbd>{*k}</kbd></dt><dd>{*what}</dd> }).collect_view()}
                    </dl>
                    <p class="muted">"Click anywhere or press Esc to close."</p>
                </div>
            </div>
        </Show>
    }
}

#[component]
pub(super) fn TeachPanel(ctx: Ctx) -> impl IntoView {
    let tabs = TeachView::ALL
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            view! {
                <button class:on=move || ctx.teach_view.get() == v
                    data-testid=format!("teach-tab-{}", v.id())
                    on:click=move |_| ctx.teach_view.set(v)>
                    {format!("{} · {}", i + 1, v.title())}
                </button>
            }
        })
        .collect_view();
    let has_model = move || ctx.model.with(|m| m.is_some());
    let waiting = move || has_model() && ctx.teaching.with(|t| t.is_none());
    view! {
        <section class="teach" data-testid="teach-panel">
            <nav class="teach-tabs">{tabs}</nav>
            {move || ctx.teaching_error.get().map(|e| view! { <p class="banner error">{e}</p> })}
            <Show when=move || !has_model()>
                <p class="muted">"No model is loaded yet: wait for the built-in one, or pick one in the model menu."</p>
            </Show>
            <Show when=waiting>
                <p class="muted"><span class="spinner"></span>"Computing the teaching views…"</p>
            </Show>
            <Show when=move || has_model() && !waiting()>
                {move || match ctx.teach_view.get() {
                    TeachView::Tokens => view! { <TokensView ctx=ctx/> }.into_any(),
                    TeachView::Attention => view! { <AttentionView ctx=ctx/> }.into_any(),
                    TeachView::Figure7 => view! { <Figure7View ctx=ctx/> }.into_any(),
                    TeachView::Tour => view! { <TourView ctx=ctx/> }.into_any(),
                    TeachView::Card => view! { <CardView ctx=ctx/> }.into_any(),
                }}
            </Show>
        </section>
    }
}

/// What a view that needs the current image's statistics shows without them: a request is on
/// its way when there is an image, else the way to give one.
fn need_image(ctx: Ctx) -> impl IntoView {
    let has_image = ctx.result.with_untracked(|r| r.is_some());
    let text = if has_image {
        "Computing this image's statistics…"
    } else {
        "Drop an image, paste one or pick a sample below: this view shows what the model does with it."
    };
    view! { <p class="muted need-image">{text}</p> }
}

#[component]
fn TokensView(ctx: Ctx) -> impl IntoView {
    let canvas = NodeRef::<leptos::html::Canvas>::new();
    let strip = NodeRef::<leptos::html::Canvas>::new();
    let selected = RwSignal::new(0usize);
    Effect::new(move |_| {
        let Some((result, teaching)) = current_image(ctx) else {
            return;
        };
        let Some(image) = image_stats(&teaching) else {
            return;
        };
        let p = selected.get();
        if let Some(c) = canvas.get() {
            draw_patch_grid(&c, &result, &crop_rgba(&result), Some(p));
        }
        if let (Some(c), Some(row)) = (
            strip.get(),
            image
                .patch_embeddings
                .chunks_exact(image.hidden_size.max(1))
                .nth(p),
        ) {
            draw_rgba(&c, row.len() as u32, 1, &strip_rgba(row));
        }
    });
    move || {
        let Some((result, teaching)) = current_image(ctx) else {
            return need_image(ctx).into_any();
        };
        let Some(image) = image_stats(&teaching) else {
            return need_image(ctx).into_any();
        };
        let card = &teaching.model.card;
        let (rows, cols) = (image.grid_rows, image.grid_cols);
        let patches = rows * cols;
        let tokens = image.prefix_tokens + patches;
        let prefix_words = if image.prefix_tokens == 2 {
            "CLS + distillation"
        } else {
            "CLS"
        };
        let p = selected.get().min(patches.saturating_sub(1));
        let row: Vec<f32> = image
            .patch_embeddings
            .chunks_exact(image.hidden_size.max(1))
            .nth(p)
            .map(<[f32]>::to_vec)
            .unwrap_or_default();
        let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        let first: Vec<f32> = row.iter().take(TOKEN_VALUES).copied().collect();
        let grid = result.grid;
        view! {
            <div class="teach-view" data-testid="view-tokens">
                <p class="lead" data-testid="tokens-summary" data-patches=patches data-tokens=tokens
                    data-grid-rows=rows data-grid-cols=cols data-patch-size=card.patch_size>
                    {format!(
                        "{}×{} crop → {rows}×{cols} = {patches} patches of {}×{} pixels, + {} ({}) = {tokens} tokens of width {}.",
                        result.crop.width(), result.crop.height(), card.patch_size, card.patch_size,
                        image.prefix_tokens, prefix_words, image.hidden_size
                    )}
                </p>
                <div class="teach-row">
                    <canvas class="teach-canvas pointer" node_ref=canvas data-testid="tokens-canvas"
                        on:mousemove=move |ev| { if let Some(p) = patch_under(&ev, grid) { selected.set(p) } }
                        on:click=move |ev| { if let Some(p) = patch_under(&ev, grid) { selected.set(p) } }></canvas>
                    <div class="teach-info" data-testid="token-info" data-patch-index=p
                        data-token-index=image.prefix_tokens + p data-values=format_values(&first)
                        data-norm=format!("{norm:.6}")>
                        <h3>{format!("Patch ({}, {}) → token #{} of {tokens}", p / cols + 1, p % cols + 1, image.prefix_tokens + p)}</h3>
                        <p class="muted">"Its linear embedding, one colour per value (blue < 0 < red):"</p>
                        <canvas class="strip" node_ref=strip data-testid="token-strip"></canvas>
                        <p class="mono">{format!("[{}, …]  ({} values)", format_values(&first), row.len())}</p>
                        <p class="mono">{format!("‖x‖ = {norm:.4}")}</p>
                        <p class="muted">"Hover or click a patch. Token 0 is the CLS token: it has no patch; the classifier reads it at the end."</p>
                    </div>
                </div>
            </div>
        }
        .into_any()
    }
}

#[component]
fn AttentionView(ctx: Ctx) -> impl IntoView {
    let layer = RwSignal::new(0usize);
    let head = RwSignal::<Option<usize>>::new(None);
    // Query token: 0 = CLS, else prefix + patch.
    let query = RwSignal::new(0usize);
    let canvas = NodeRef::<leptos::html::Canvas>::new();
    let layers = move || ctx.result.with(|r| r.as_ref().map_or(0, |r| r.layers()));
    let heads = move || ctx.result.with(|r| r.as_ref().map_or(0, |r| r.heads()));
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
        opacity: ctx.opacity.get(),
        colormap: ctx.colormap.get(),
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
        let Some(r) = ctx.result.get() else { return };
        let (l, h, q) = (layer.get(), head.get(), query.get());
        if let (Some(c), Ok(map)) = (canvas.get(), map_of(&r, l, h, q)) {
            draw(&c, &r, &map, q, l);
        }
    });
    move || {
        let Some(r) = ctx.result.get() else {
            return need_image(ctx).into_any();
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

#[component]
fn Figure7View(ctx: Ctx) -> impl IntoView {
    let pca_canvas = NodeRef::<leptos::html::Canvas>::new();
    let sim_canvas = NodeRef::<leptos::html::Canvas>::new();
    let sim_selected = RwSignal::new(0usize);
    const SCALE: usize = 3;
    const SHEET_COLS: usize = 7;
    const CELL: usize = 2;
    const GAP: usize = 2;
    Effect::new(move |_| {
        let Some((_, teaching)) = ctx.teaching.get() else {
            return;
        };
        let pca = &teaching.model.filter_pca;
        if let Some(c) = pca_canvas.get() {
            let p = pca.patch_size;
            let tile = p * SCALE + 4;
            let n = pca.components.len();
            let rows = n.div_ceil(SHEET_COLS).max(1);
            let (w, h) = (SHEET_COLS * tile, rows * tile);
            let mut sheet = vec![0u8; w * h * 4];
            for (k, comp) in pca.components.iter().enumerate() {
                let rgba = component_rgba(comp, pca.channels, p);
                let (x0, y0) = ((k % SHEET_COLS) * tile + 2, (k / SHEET_COLS) * tile + 2);
                for y in 0..p * SCALE {
                    for x in 0..p * SCALE {
                        let src = ((y / SCALE) * p + x / SCALE) * 4;
                        let dst = ((y0 + y) * w + x0 + x) * 4;
                        sheet[dst..dst + 4].copy_from_slice(&rgba[src..src + 4]);
                    }
                }
            }
            draw_rgba(&c, w as u32, h as u32, &sheet);
        }
        if let Some(c) = sim_canvas.get() {
            let sim = &teaching.model.position_similarity;
            let (w, h, rgba) = similarity_grid_rgba(sim, CELL, GAP, ctx.colormap.get());
            draw_rgba(&c, w, h, &rgba);
            if let Some(g) = context_2d(&c) {
                let s = sim_selected.get();
                let tile = (sim.grid_cols * CELL + GAP) as f64;
                g.set_stroke_style_str("#ffffff");
                g.set_line_width(1.5);
                g.stroke_rect(
                    (s % sim.grid_cols) as f64 * tile - 1.0,
                    (s / sim.grid_cols) as f64 * tile - 1.0,
                    tile - GAP as f64 + 2.0,
                    tile - GAP as f64 + 2.0,
                );
            }
        }
    });
    move || {
        let Some((_, teaching)) = ctx.teaching.get() else {
            return ().into_any();
        };
        let pca = &teaching.model.filter_pca;
        let sim = &teaching.model.position_similarity;
        let card = &teaching.model.card;
        let patches = sim.grid_rows * sim.grid_cols;
        let peaks = peaks_at_self(sim);
        let s = sim_selected.get().min(patches.saturating_sub(1));
        let row = &sim.values[s * patches..(s + 1) * patches];
        let row_min = row.iter().copied().fold(f32::INFINITY, f32::min);
        let best_other = (0..patches)
            .filter(|&j| j != s)
            .max_by(|&a, &b| row[a].total_cmp(&row[b]));
        let sim_grid = (sim.grid_rows, sim.grid_cols);
        let explained: f32 = pca.explained_variance_ratio.iter().sum();
        let distances = ctx.teaching.with(|t| {
            t.as_ref()
                .and_then(|(id, t)| {
                    let current = ctx.result.with(|r| r.as_ref().map(|r| r.id));
                    (*id == current && current.is_some())
                        .then(|| t.image.clone())
                        .flatten()
                })
                .map(|i| i.attention_distance)
        });
        view! {
            <div class="teach-view fig7" data-testid="view-fig7">
                <div class="fig7-panel">
                    <h3>"(a) Patch-embedding filters: first principal components"</h3>
                    <canvas class="pixelated" node_ref=pca_canvas data-testid="pca-sheet" data-components=pca.components.len()></canvas>
                    <p class="muted" data-testid="pca-variance" data-values=format_values(&pca.explained_variance_ratio)>
                        {format!("{} components of the {} filters ({}×{}×{} weights each), {:.1} % of their variance; component 1 explains {:.1} %.",
                            pca.components.len(), card.hidden_size, pca.channels, pca.patch_size, pca.patch_size,
                            explained * 100.0, pca.explained_variance_ratio.first().copied().unwrap_or(0.0) * 100.0)}
                    </p>
                </div>
                <div class="fig7-panel">
                    <h3>"(b) Position-embedding similarity"</h3>
                    <canvas class="pointer" node_ref=sim_canvas data-testid="pos-sim" data-patches=patches data-peaks-at-self=peaks
                        data-selected=s data-row-min=format!("{row_min:.6}")
                        data-best-other=best_other.map(|j| j.to_string()).unwrap_or_default()
                        on:mousemove=move |ev| { if let Some(p) = patch_under(&ev, sim_grid) { sim_selected.set(p) } }></canvas>
                    <p class="muted">{format!(
                        "Tile (r, c) shows how similar patch (r, c)'s position embedding is to every patch's (cosine similarity; each tile's colours run from its own minimum to 1). {peaks} of {patches} tiles peak at their own position. Patch ({}, {}): most similar other patch {}, least similar {:.3}.",
                        s / sim.grid_cols + 1, s % sim.grid_cols + 1,
                        best_other.map(|j| format!("({}, {}) at {:.3}", j / sim.grid_cols + 1, j % sim.grid_cols + 1, row[j])).unwrap_or_default(),
                        row_min
                    )}</p>
                </div>
                <div class="fig7-panel">
                    <h3>"(c) Mean attention distance (this image)"</h3>
                    {match distances {
                        None => need_image(ctx).into_any(),
                        Some(d) => distance_plot(&d, card.image_size).into_any(),
                    }}
                </div>
            </div>
        }
        .into_any()
    }
}

/// Scatter plot: one dot per head, x = layer, y = mean attention distance in pixels.
fn distance_plot(distances: &[Vec<f32>], image_size: usize) -> impl IntoView {
    let (w, h) = (440.0f64, 260.0f64);
    let (left, right, top, bottom) = (48.0, 12.0, 26.0, 36.0);
    let layers = distances.len().max(1);
    let max_value = distances.iter().flatten().copied().fold(0.0f32, f32::max) as f64;
    let y_max = ((max_value.max(image_size as f64 / 2.0)) / 20.0).ceil() * 20.0;
    let x_of = |l: usize, h_: usize, heads: usize| {
        let spread = if heads > 1 {
            (h_ as f64 / (heads - 1) as f64 - 0.5) * 0.4
        } else {
            0.0
        };
        left + (l as f64 + 0.5 + spread) / layers as f64 * (w - left - right)
    };
    let y_of = |v: f64| top + (1.0 - v / y_max) * (h - top - bottom);
    let ticks: Vec<f64> = (0..=4).map(|i| y_max * i as f64 / 4.0).collect();
    let colors = [
        "#4fc3f7", "#ffb74d", "#e57373", "#81c784", "#ba68c8", "#fff176",
    ];
    view! {
        <svg class="scatter" data-testid="distance-plot" viewBox=format!("0 0 {w} {h}") width=w height=h role="img"
            aria-label="Mean attention distance per head and layer">
            {ticks.iter().map(|&t| view! {
                <line x1=left x2=w - right y1=y_of(t) y2=y_of(t) class="gridline"/>
                <text x=left - 6.0 y=y_of(t) + 4.0 text-anchor="end" class="tick">{format!("{t:.0}")}</text>
            }).collect_view()}
            {(0..layers).map(|l| view! {
                <text x=x_of(l, 0, 1) y=h - 18.0 text-anchor="middle" class="tick">{(l + 1).to_string()}</text>
            }).collect_view()}
            <text x=(left + w - right) / 2.0 y=h - 2.0 text-anchor="middle" class="axis">"layer"</text>
            <text x=left - 6.0 y=14.0 text-anchor="end" class="axis">"px"</text>
            {distances.iter().enumerate().flat_map(|(l, heads)| {
                let n = heads.len();
                heads.iter().enumerate().map(move |(hh, &v)| view! {
                    <circle cx=x_of(l, hh, n) cy=y_of(v as f64) r="5" fill=colors[hh % colors.len()]
                        data-testid="distance-point" data-layer=l + 1 data-head=hh + 1 data-value=format!("{v:.6}")>
                        <title>{format!("layer {}, head {}: {v:.1} px", l + 1, hh + 1)}</title>
                    </circle>
                }).collect::<Vec<_>>()
            }).collect_view()}
        </svg>
    }
}

#[component]
fn TourView(ctx: Ctx) -> impl IntoView {
    let canvas = NodeRef::<leptos::html::Canvas>::new();
    Effect::new(move |_| {
        let Some((result, teaching)) = current_image(ctx) else {
            return;
        };
        let Some(image) = image_stats(&teaching) else {
            return;
        };
        let i = ctx.tour_step.get().min(image.steps.len().saturating_sub(1));
        let Some(step) = image.steps.get(i) else {
            return;
        };
        let Some(c) = canvas.get() else { return };
        match step.layer {
            Some(l) => {
                let opts = ViewOptions {
                    layer: l,
                    kind: MapKind::ClsAttention { head: None },
                    fusion: HeadFusion::Mean,
                    discard_ratio: 0.0,
                    opacity: ctx.opacity.get(),
                    colormap: ctx.colormap.get(),
                };
                if let Ok(img) = result
                    .map(&opts, &[])
                    .and_then(|m| result.render(&opts, &m))
                {
                    draw_rgba(&c, img.width(), img.height(), img.as_raw());
                }
            }
            None if step.key == "pixels" => {
                draw_rgba(
                    &c,
                    result.crop.width(),
                    result.crop.height(),
                    &crop_rgba(&result),
                );
            }
            None => draw_patch_grid(&c, &result, &crop_rgba(&result), None),
        }
    });
    move || {
        let Some((result, teaching)) = current_image(ctx) else {
            return need_image(ctx).into_any();
        };
        let Some(image) = image_stats(&teaching) else {
            return need_image(ctx).into_any();
        };
        let n = image.steps.len();
        let i = ctx.tour_step.get().min(n.saturating_sub(1));
        let Some(step) = image.steps.get(i).cloned() else {
            return need_image(ctx).into_any();
        };
        let picture = match (step.layer, step.key.as_str()) {
            (Some(l), _) => format!("Layer {l}: the CLS token's attention (mean of heads)"),
            (None, "pixels") => "The crop the model sees".to_string(),
            _ => "The crop and its patch grid".to_string(),
        };
        let top = (step.key == "probabilities").then(|| result.top.clone());
        let pipeline = [
            ("pixels", "image"),
            ("patches", "patches"),
            ("patch_embedding", "linear"),
            ("embeddings", "+CLS +pos"),
            ("layer", "L × block"),
            ("final_norm", "LN"),
            ("logits", "head"),
            ("probabilities", "softmax"),
        ];
        let stage_of = |key: &str| {
            if key.starts_with("layer") {
                "layer".to_string()
            } else {
                key.to_string()
            }
        };
        let here = stage_of(&step.key);
        view! {
            <div class="teach-view" data-testid="view-tour">
                <ol class="pipeline">
                    {pipeline.iter().map(|(k, label)| view! { <li class:on=here == *k>{*label}</li> }).collect_view()}
                </ol>
                <div class="teach-controls">
                    <button data-testid="tour-prev" disabled={i == 0} on:click=move |_| tour_step(ctx, -1)>"← Previous"</button>
                    <span data-testid="tour-position" data-index=i data-count=n>{format!("Step {} of {n}", i + 1)}</span>
                    <button class="primary" data-testid="tour-next" disabled={i + 1 >= n} on:click=move |_| tour_step(ctx, 1)>"Next →"</button>
                </div>
                <div class="teach-row">
                    <figure>
                        <canvas class="teach-canvas" node_ref=canvas></canvas>
                        <figcaption>{picture}</figcaption>
                    </figure>
                    <div class="teach-info" data-testid="tour-step" data-key=step.key.clone() data-shape=format_shape(&step.shape)
                        data-values=format_values(&step.values) data-row-norm=format!("{:.6}", step.row_norm)
                        data-mean-row-norm=format!("{:.6}", step.mean_row_norm)>
                        <h3>{step.title.clone()}</h3>
                        <p>{step.explanation.clone()}</p>
                        <dl class="facts">
                            <dt>"shape"</dt><dd class="mono">{format_shape(&step.shape)}</dd>
                            <dt>{step.row_label.clone()}</dt><dd class="mono">{format!("[{}, …]", format_values(&step.values))}</dd>
                            <dt>"its norm"</dt><dd class="mono">{format!("{:.4}", step.row_norm)}</dd>
                            <dt>"mean norm over rows"</dt><dd class="mono">{format!("{:.4}", step.mean_row_norm)}</dd>
                            <dt>"range"</dt><dd class="mono">{format!("{:.4} … {:.4}", step.min, step.max)}</dd>
                        </dl>
                        {top.map(|top| view! {
                            <ol class="mono">{top.into_iter().map(|p| view! { <li>{format!("{}: {:.2} %", p.label, p.prob * 100.0)}</li> }).collect_view()}</ol>
                        })}
                        <p class="muted">"← / → or the buttons step through the forward pass."</p>
                    </div>
                </div>
            </div>
        }
        .into_any()
    }
}

#[component]
fn CardView(ctx: Ctx) -> impl IntoView {
    move || {
        let Some((_, teaching)) = ctx.teaching.get() else {
            return ().into_any();
        };
        let c = teaching.model.card.clone();
        let source = ctx
            .model
            .with(|m| m.as_ref().map(|m| m.source.clone()))
            .unwrap_or_default();
        let url = ctx.model_url.get();
        let rows: Vec<(&str, &str, String, String)> = vec![
            (
                "architecture",
                "Architecture",
                c.architecture.clone(),
                c.architecture.clone(),
            ),
            (
                "layout",
                "Checkpoint layout",
                c.layout.clone(),
                c.layout.clone(),
            ),
            (
                "stored_dtype",
                "Stored dtype",
                c.stored_dtype.clone(),
                c.stored_dtype.clone(),
            ),
            (
                "image_size",
                "Input",
                format!("{0}×{0} px, {1} channels", c.image_size, c.channels),
                c.image_size.to_string(),
            ),
            (
                "patch_size",
                "Patch",
                format!("{0}×{0} px", c.patch_size),
                c.patch_size.to_string(),
            ),
            (
                "patches",
                "Patch grid",
                format!("{0}×{0} = {1} patches", c.grid, c.patches),
                c.patches.to_string(),
            ),
            (
                "tokens",
                "Tokens",
                format!(
                    "{} patches + {} prefix = {}",
                    c.patches, c.prefix_tokens, c.tokens
                ),
                c.tokens.to_string(),
            ),
            (
                "layers",
                "Encoder layers",
                c.layers.to_string(),
                c.layers.to_string(),
            ),
            (
                "heads",
                "Heads × head width",
                format!("{} × {}", c.heads, c.head_dim),
                c.heads.to_string(),
            ),
            (
                "hidden_size",
                "Width (hidden size)",
                c.hidden_size.to_string(),
                c.hidden_size.to_string(),
            ),
            (
                "mlp_size",
                "MLP width",
                c.mlp_size.to_string(),
                c.mlp_size.to_string(),
            ),
            (
                "classes",
                "Classes",
                c.classes.to_string(),
                c.classes.to_string(),
            ),
            (
                "parameters",
                "Parameters",
                format!("{} ({})", format_count(c.parameters as u64), c.parameters),
                c.parameters.to_string(),
            ),
            (
                "flops",
                "FLOPs per image",
                format!("{} (2 × multiply-adds)", format_count(c.flops)),
                c.flops.to_string(),
            ),
        ];
        view! {
            <div class="teach-view" data-testid="view-card">
                <table class="card-table">
                    <tbody>
                        <tr data-testid="card-field" data-field="source" data-value=source.clone()>
                            <th>"Source"</th>
                            <td>
                                {source.clone()}
                                {url.map(|u| {
                                    let link = if u.starts_with("http") { u.clone() } else { format!("{}/{u}", page_origin()) };
                                    view! { " · " <a href=link.clone() target="_blank" rel="noopener" data-testid="card-url">{link.clone()}</a> }
                                })}
                            </td>
                        </tr>
                        {rows.into_iter().map(|(field, label, shown, raw)| view! {
                            <tr data-testid="card-field" data-field=field data-value=raw>
                                <th>{label}</th><td>{shown}</td>
                            </tr>
                        }).collect_view()}
                    </tbody>
                </table>
            </div>
        }
        .into_any()
    }
}
