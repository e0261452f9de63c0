//! The tokens view: the crop cut into patches, and the linear embedding of the patch under
//! the pointer.

use leptos::prelude::*;

use super::{current_image, draw_patch_grid, need_image, patch_under};
use crate::app::dom::draw_rgba;
use crate::app::state::{ResultState, TeachState};
use crate::app::teach_view::{format_values, strip_rgba};

/// Values shown per token in the tokens view.
const TOKEN_VALUES: usize = 8;

/// The crop's patch grid and the embedding of the patch under the pointer.
#[component]
pub fn TokensView() -> impl IntoView {
    let results = expect_context::<ResultState>();
    let teach = expect_context::<TeachState>();
    let canvas = NodeRef::<leptos::html::Canvas>::new();
    let strip = NodeRef::<leptos::html::Canvas>::new();
    let selected = RwSignal::new(0usize);
    Effect::new(move |_| {
        let Some((result, teaching)) = current_image(results, teach) else {
            return;
        };
        let Some(image) = teaching.image.as_ref() else {
            return;
        };
        let p = selected.get();
        if let Some(c) = canvas.get() {
            draw_patch_grid(&c, &result, &result.crop_rgba(), Some(p));
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
        let Some((result, teaching)) = current_image(results, teach) else {
            return need_image(results).into_any();
        };
        let Some(image) = teaching.image.as_ref() else {
            return need_image(results).into_any();
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
