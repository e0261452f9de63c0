//! "What it learned", after Fig. 7 of the ViT paper: principal components of the patch
//! embedding filters, position-embedding similarity, and mean attention distance per head.

use leptos::prelude::*;

use super::{need_image, patch_under};
use crate::app::dom::{context_2d, draw_rgba};
use crate::app::state::{Heatmap, ResultState, TeachState};
use crate::app::teach_view::{component_rgba, format_values, peaks_at_self, similarity_grid_rgba};

/// The three panels of the paper's Fig. 7 for the loaded model (the third for the current
/// image).
#[component]
pub fn Figure7View() -> impl IntoView {
    let results = expect_context::<ResultState>();
    let teach = expect_context::<TeachState>();
    let heatmap = expect_context::<Heatmap>();
    let colormap = Memo::new(move |_| heatmap.options.with(|o| o.colormap));
    let pca_canvas = NodeRef::<leptos::html::Canvas>::new();
    let sim_canvas = NodeRef::<leptos::html::Canvas>::new();
    let sim_selected = RwSignal::new(0usize);
    const SCALE: usize = 3;
    const SHEET_COLS: usize = 7;
    const CELL: usize = 2;
    const GAP: usize = 2;
    Effect::new(move |_| {
        let Some((_, teaching)) = teach.teaching.get() else {
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
            let (w, h, rgba) = similarity_grid_rgba(sim, CELL, GAP, colormap.get());
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
        let Some((_, teaching)) = teach.teaching.get() else {
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
        let distances = teach.teaching.with(|t| {
            t.as_ref()
                .and_then(|(id, t)| {
                    let current = results.current.with(|r| r.as_ref().map(|r| r.id));
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
                        None => need_image(results).into_any(),
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
