//! The forward-pass tour: one step at a time from pixels to probabilities, with the shape
//! and values of what each step makes.

use leptos::prelude::*;

use super::{current_image, draw_patch_grid, heatmap_look, need_image, step_tour};
use crate::analysis::HeadFusion;
use crate::app::dom::draw_rgba;
use crate::app::state::{Heatmap, ResultState, TeachState};
use crate::app::teach_view::{format_shape, format_values};
use crate::app::view::{MapKind, ViewOptions};
use crate::teach::TourStage;

/// The tour: the pipeline, the step's picture, and its numbers.
#[component]
pub fn TourView() -> impl IntoView {
    let results = expect_context::<ResultState>();
    let teach = expect_context::<TeachState>();
    let look = heatmap_look(expect_context::<Heatmap>());
    let canvas = NodeRef::<leptos::html::Canvas>::new();
    Effect::new(move |_| {
        let Some((result, teaching)) = current_image(results, teach) else {
            return;
        };
        let Some(image) = teaching.image.as_ref() else {
            return;
        };
        let i = teach
            .tour_step
            .get()
            .min(image.steps.len().saturating_sub(1));
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
                    opacity: look.get().0,
                    colormap: look.get().1,
                };
                if let Ok(img) = result
                    .map(&opts, &[])
                    .and_then(|m| result.render(&opts, &m))
                {
                    draw_rgba(&c, img.width(), img.height(), img.as_raw());
                }
            }
            None if step.stage == TourStage::Pixels => {
                draw_rgba(
                    &c,
                    result.crop.width(),
                    result.crop.height(),
                    &result.crop_rgba(),
                );
            }
            None => draw_patch_grid(&c, &result, &result.crop_rgba(), None),
        }
    });
    move || {
        let Some((result, teaching)) = current_image(results, teach) else {
            return need_image(results).into_any();
        };
        let Some(image) = teaching.image.as_ref() else {
            return need_image(results).into_any();
        };
        let n = image.steps.len();
        let i = teach.tour_step.get().min(n.saturating_sub(1));
        let Some(step) = image.steps.get(i).cloned() else {
            return need_image(results).into_any();
        };
        let picture = match (step.layer, step.stage) {
            (Some(l), _) => format!("Layer {l}: the CLS token's attention (mean of heads)"),
            (None, TourStage::Pixels) => "The crop the model sees".to_string(),
            _ => "The crop and its patch grid".to_string(),
        };
        let top = (step.stage == TourStage::Probabilities).then(|| result.top.clone());
        // The pipeline strip: `None` stands for every step inside an encoder block.
        let pipeline = [
            (Some(TourStage::Pixels), "image"),
            (Some(TourStage::Patches), "patches"),
            (Some(TourStage::PatchEmbedding), "linear"),
            (Some(TourStage::Embeddings), "+CLS +pos"),
            (None, "L × block"),
            (Some(TourStage::FinalNorm), "LN"),
            (Some(TourStage::Logits), "head"),
            (Some(TourStage::Probabilities), "softmax"),
        ];
        let here = step.layer.is_none().then_some(step.stage);
        view! {
            <div class="teach-view" data-testid="view-tour">
                <ol class="pipeline">
                    {pipeline.iter().map(|(k, label)| view! { <li class:on=here == *k>{*label}</li> }).collect_view()}
                </ol>
                <div class="teach-controls">
                    <button data-testid="tour-prev" disabled={i == 0} on:click=move |_| step_tour(teach, -1)>"← Previous"</button>
                    <span data-testid="tour-position" data-index=i data-count=n>{format!("Step {} of {n}", i + 1)}</span>
                    <button class="primary" data-testid="tour-next" disabled={i + 1 >= n} on:click=move |_| step_tour(teach, 1)>"Next →"</button>
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
