//! The heatmap controls: map kind, layer, head, head fusion, discard ratio, opacity and
//! colormap, all in one [`ViewOptions`](crate::app::view::ViewOptions) signal.

use leptos::prelude::*;

use crate::analysis::HeadFusion;
use crate::app::state::{Heatmap, ModelState, ResultState};
use crate::app::view::MapKind;
use crate::render::Colormap;

/// The heatmap's controls.
#[component]
pub fn Controls() -> impl IntoView {
    let result = expect_context::<ResultState>();
    let model = expect_context::<ModelState>();
    let options = expect_context::<Heatmap>().options;
    let layers = move || {
        result
            .current
            .with(|r| r.as_ref().map(|r| r.layers()))
            .or_else(|| model.info.with(|m| m.as_ref().map(|m| m.card.layers)))
            .unwrap_or(1)
    };
    let heads = move || {
        result
            .current
            .with(|r| r.as_ref().map(|r| r.heads()))
            .or_else(|| model.info.with(|m| m.as_ref().map(|m| m.card.heads)))
            .unwrap_or(1)
    };
    let layer = move || options.with(|o| o.layer);
    let is_rollout = move || options.with(|o| o.kind == MapKind::Rollout);
    let set_kind = move |kind: MapKind| options.update(|o| o.kind = kind);
    view! {
        <section class="card controls">
            <h2>"Heatmap"</h2>
            <div class="toggle" role="group">
                <button class:on=is_rollout data-testid="mode-rollout"
                    on:click=move |_| set_kind(MapKind::Rollout)>"Rollout"</button>
                <button class:on=move || !is_rollout() data-testid="mode-attention"
                    on:click=move |_| set_kind(MapKind::ClsAttention { head: None })>"CLS attention"</button>
            </div>
            <label class="slider">
                <span>{move || if is_rollout() { format!("Up to layer {} of {}", layer(), layers()) } else { format!("Layer {} of {}", layer(), layers()) }}</span>
                <input type="range" data-testid="layer-slider" min="1" max=move || layers().to_string()
                    step="1" prop:value=move || layer().to_string()
                    on:input=move |ev| {
                        if let Ok(v) = event_target_value(&ev).parse::<usize>() {
                            let n = layers();
                            options.update(|o| o.layer = v.clamp(1, n));
                        }
                    } />
            </label>
            <Show when=move || !is_rollout()>
                <label class="field">
                    <span>"Head"</span>
                    <select data-testid="head-select" on:change=move |ev| {
                        let v = event_target_value(&ev);
                        set_kind(MapKind::ClsAttention { head: v.parse::<usize>().ok() });
                    }>
                        <option value="fused">"all heads, fused"</option>
                        {move || (0..heads()).map(|h| view! { <option value=h.to_string()>{format!("head {}", h + 1)}</option> }).collect_view()}
                    </select>
                </label>
            </Show>
            <label class="field">
                <span>"Head fusion"</span>
                <select data-testid="head-fusion" on:change=move |ev| {
                    if let Ok(f) = event_target_value(&ev).parse::<HeadFusion>() { options.update(|o| o.fusion = f) }
                } prop:value=move || options.with(|o| o.fusion.name())>
                    {HeadFusion::ALL.iter().map(|f| view! { <option value=f.name()>{f.name()}</option> }).collect_view()}
                </select>
            </label>
            <label class="slider">
                <span>{move || format!("Discard lowest {:.0} %", options.with(|o| o.discard_ratio) * 100.0)}</span>
                <input type="range" data-testid="discard-ratio" min="0" max="0.95" step="0.05"
                    prop:value=move || options.with(|o| o.discard_ratio.to_string())
                    on:input=move |ev| { if let Ok(v) = event_target_value(&ev).parse::<f32>() { options.update(|o| o.discard_ratio = v.clamp(0.0, 0.95)) } } />
            </label>
            <label class="slider">
                <span>{move || format!("Opacity {:.0} %", options.with(|o| o.opacity) * 100.0)}</span>
                <input type="range" data-testid="opacity" min="0" max="1" step="0.05"
                    prop:value=move || options.with(|o| o.opacity.to_string())
                    on:input=move |ev| { if let Ok(v) = event_target_value(&ev).parse::<f32>() { options.update(|o| o.opacity = v.clamp(0.0, 1.0)) } } />
            </label>
            <label class="field">
                <span>"Colormap"</span>
                <select data-testid="colormap" on:change=move |ev| {
                    if let Ok(c) = event_target_value(&ev).parse::<Colormap>() { options.update(|o| o.colormap = c) }
                } prop:value=move || options.with(|o| o.colormap.name())>
                    {Colormap::ALL.iter().map(|c| view! { <option value=c.name()>{c.name()}</option> }).collect_view()}
                </select>
            </label>
            <p class="hint">"← / → step through the layers."</p>
        </section>
    }
}
