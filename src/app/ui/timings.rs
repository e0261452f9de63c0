//! How long the current result took, and a line about the loaded model.

use leptos::prelude::*;

use crate::app::state::{ModelState, ResultState};

/// Timings of the current result (also as `data-*` attributes for tests) and the model line.
#[component]
pub fn Timings() -> impl IntoView {
    let result = expect_context::<ResultState>();
    let model = expect_context::<ModelState>();
    view! {
        <section class="card timings" data-testid="timings"
            data-total-ms=move || result.total_ms.get().map(|t| format!("{t:.1}"))
            data-forward-ms=move || result.current.with(|r| r.as_ref().map(|r| format!("{:.1}", r.forward_ms)))>
            <h2>"Timings"</h2>
            {move || result.current.with(|r| match r {
                None => view! { <p class="muted">"—"</p> }.into_any(),
                Some(r) => view! {
                    <dl>
                        <dt>"decode + preprocess"</dt><dd>{format!("{:.0} ms", r.preprocess_ms)}</dd>
                        <dt>"forward"</dt><dd>{format!("{:.0} ms", r.forward_ms)}</dd>
                        <dt>"rollout"</dt><dd>{move || format!("{:.1} ms", result.rollout_ms.get())}</dd>
                        <dt>"drop → heatmap"</dt><dd>{move || result.total_ms.get().map(|t| format!("{t:.0} ms")).unwrap_or_default()}</dd>
                    </dl>
                }.into_any(),
            })}
            <p class="model-line">{move || model.info.with(|m| m.as_ref().map(|m| format!(
                "{} · {} layers · {} heads · {} tokens · {:.1} M params · {}",
                m.source, m.card.layers, m.card.heads, m.card.tokens, m.card.parameters as f64 / 1e6, m.card.stored_dtype
            )))}</p>
        </section>
    }
}
