//! The stage: the heatmap over the crop the model saw, the drop hint, the file button and
//! the caption. Moving a control re-renders the heatmap from the stored result; only the
//! rollout is cached, per result, head fusion and discard ratio.

use std::sync::Arc;

use leptos::prelude::*;

use crate::analysis::HeadFusion;
use crate::app::dom::{draw_rgba, files_of, now_ms};
use crate::app::load::Loader;
use crate::app::state::{Heatmap, Notices, ResultState};
use crate::app::view::{MapKind, StoredInference, ViewOptions};

/// Rollouts of one result (keyed by its address) for one fusion and discard ratio.
struct RolloutCache {
    result: usize,
    fusion: HeadFusion,
    discard: f32,
    maps: Arc<Vec<Vec<f32>>>,
}

/// The rollouts of `result` for `opts`, from `cache` when it holds them; computing them
/// records how long it took in `result_state.rollout_ms`.
fn rollouts(
    cache: StoredValue<Option<RolloutCache>>,
    result_state: ResultState,
    result: &Arc<StoredInference>,
    opts: &ViewOptions,
) -> Result<Arc<Vec<Vec<f32>>>, String> {
    let key = Arc::as_ptr(result) as usize;
    let cached = cache.with_value(|c| {
        c.as_ref()
            .filter(|c| {
                c.result == key && c.fusion == opts.fusion && c.discard == opts.discard_ratio
            })
            .map(|c| c.maps.clone())
    });
    if let Some(maps) = cached {
        return Ok(maps);
    }
    let t0 = now_ms();
    let maps = Arc::new(result.rollouts(opts.fusion, opts.discard_ratio)?);
    result_state.rollout_ms.set(now_ms() - t0);
    cache.set_value(Some(RolloutCache {
        result: key,
        fusion: opts.fusion,
        discard: opts.discard_ratio,
        maps: maps.clone(),
    }));
    Ok(maps)
}

/// What the heatmap shows, in words.
fn describe(opts: &ViewOptions, name: &str) -> String {
    let what = match opts.kind {
        MapKind::Rollout => format!("Attention rollout, layers 1–{}", opts.layer),
        MapKind::ClsAttention { head: None } => format!(
            "CLS attention in layer {}, heads fused ({})",
            opts.layer, opts.fusion
        ),
        MapKind::ClsAttention { head: Some(h) } => {
            format!("CLS attention in layer {}, head {}", opts.layer, h + 1)
        }
    };
    format!("{what} · {name}")
}

/// The heatmap and the image input; drops anywhere on the page land here too.
#[component]
pub fn Stage() -> impl IntoView {
    let result = expect_context::<ResultState>();
    let options = expect_context::<Heatmap>().options;
    let notices = expect_context::<Notices>();
    let loader = expect_context::<Loader>();
    let heatmap = NodeRef::<leptos::html::Canvas>::new();
    let crop = NodeRef::<leptos::html::Canvas>::new();
    let file_input = NodeRef::<leptos::html::Input>::new();
    // Rollouts of the current result for the current fusion and discard ratio, all layers.
    let cache: StoredValue<Option<RolloutCache>> = StoredValue::new(None);

    Effect::new(move |_| {
        let Some(current) = result.current.get() else {
            return;
        };
        let opts = options.get();
        let maps = match rollouts(cache, result, &current, &opts) {
            Ok(maps) => maps,
            Err(e) => {
                notices.fail(e);
                return;
            }
        };
        let image = current
            .map(&opts, &maps)
            .and_then(|map| current.render(&opts, &map));
        match image {
            Ok(image) => {
                if let Some(canvas) = heatmap.get() {
                    draw_rgba(&canvas, image.width(), image.height(), image.as_raw());
                }
            }
            Err(e) => notices.fail(e),
        }
        if let Some(started) = result.started_at.try_update_value(Option::take).flatten() {
            result.total_ms.set(Some(now_ms() - started));
        }
    });

    // The plain crop changes only with the result, not with the heatmap controls.
    Effect::new(move |_| {
        let Some(current) = result.current.get() else {
            return;
        };
        if let Some(canvas) = crop.get() {
            let (w, h) = (current.crop.width(), current.crop.height());
            draw_rgba(&canvas, w, h, &current.crop_rgba());
        }
    });

    let has_result = move || result.current.with(|r| r.is_some());
    let caption = move || {
        result
            .current
            .with(|r| r.as_ref().map(|r| options.with(|o| describe(o, &r.name))))
    };
    view! {
        <section class="stage" data-testid="drop-zone">
            <div class="canvas-wrap" class:empty=move || !has_result()>
                <canvas
                    data-testid="heatmap"
                    class="heatmap"
                    node_ref=heatmap
                    width="224"
                    height="224"
                    class:hidden=move || !has_result()
                ></canvas>
                <Show when=move || !has_result()>
                    <div class="drop-hint">
                        <p class="big">"Drop an image here"</p>
                        <p>"or paste one (Ctrl+V), choose a file, or try a sample below"</p>
                    </div>
                </Show>
                <Show when=move || result.classifying.get()>
                    <div class="busy"><span class="spinner"></span>"Classifying…"</div>
                </Show>
            </div>
            <div class="stage-bar">
                <button class="primary" on:click=move |_| {
                    if let Some(input) = file_input.get() { input.click(); }
                }>"Choose an image…"</button>
                <input
                    class="hidden-input"
                    data-testid="file-input"
                    type="file"
                    accept="image/*"
                    node_ref=file_input
                    on:change=move |ev| {
                        let input = event_target::<web_sys::HtmlInputElement>(&ev);
                        loader.take_files(files_of(input.files()), now_ms());
                        input.set_value("");
                    }
                />
                <span class="caption">{caption}</span>
                <figure class="crop" class:hidden=move || !has_result()>
                    <canvas node_ref=crop width="224" height="224"></canvas>
                    <figcaption>{move || {
                        result.current.with(|r| r.as_ref().map(|r| format!("what the model sees: {}×{}", r.crop.width(), r.crop.height())))
                    }}</figcaption>
                </figure>
            </div>
        </section>
    }
}
