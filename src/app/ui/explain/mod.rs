//! Explain mode: why the model chose a class, and what if parts were taken away. Three
//! class-specific maps per layer, the logit lens, then (from a second, slower request) the
//! occlusion map, the heads that matter and faithfulness curves. The worker computes all of
//! it on the CPU with [`crate::explain`].

mod interventions;
mod lens;
mod map;
mod what_if;

use std::sync::Arc;

use leptos::prelude::*;

use self::interventions::{Faithfulness, HeadRanking};
use self::lens::LensTable;
use self::map::MapCanvas;
use self::what_if::WhatIfPanel;
use crate::app::explain_state::{answers, ExplainState};
use crate::app::state::{Heatmap, ModelState, ResultState};
use crate::engine::Backend;
use crate::explain::Explanation;

/// The explanation in `slot` when it answers the current image and class.
fn current(
    result: ResultState,
    explain: ExplainState,
    slot: RwSignal<Option<(u64, Arc<Explanation>)>>,
) -> Option<Arc<Explanation>> {
    let (id, top1) = result.current.with(|r| {
        r.as_ref()
            .and_then(|r| r.top.first().map(|p| (r.id, p.index)))
    })?;
    let class = explain.class_for(id, top1);
    slot.with(|s| answers(s, id, class).then(|| s.as_ref().map(|(_, e)| e.clone())))
        .flatten()
}

/// The class a typed index or name means.
fn parse_class(text: &str, labels: &[String]) -> Option<usize> {
    let text = text.trim();
    match text.parse::<usize>() {
        Ok(k) => (k < labels.len()).then_some(k),
        Err(_) => labels
            .iter()
            .position(|l| l.eq_ignore_ascii_case(text))
            .or_else(|| {
                let lower = text.to_lowercase();
                labels
                    .iter()
                    .position(|l| !lower.is_empty() && l.to_lowercase().contains(&lower))
            }),
    }
}

/// The Explain panel.
#[component]
pub fn ExplainPanel() -> impl IntoView {
    let result = expect_context::<ResultState>();
    let explain = expect_context::<ExplainState>();
    let model = expect_context::<ModelState>();
    let options = expect_context::<Heatmap>().options;
    let maps = Memo::new(move |_| current(result, explain, explain.maps));
    let extra = Memo::new(move |_| current(result, explain, explain.interventions));
    let layer = move || options.with(|o| o.layer);
    let pick = move |get: fn(&Explanation) -> &Vec<Vec<f32>>| {
        Signal::derive(move || {
            let e = maps.get()?;
            let maps = get(&e);
            let l = layer().clamp(1, maps.len().max(1));
            maps.get(l - 1).cloned().map(Arc::new)
        })
    };
    let rollout = pick(|e| &e.rollout);
    let chefer = pick(|e| &e.chefer);
    let grad = pick(|e| &e.grad_rollout);
    let occlusion = Signal::derive(move || extra.get()?.occlusion.clone().map(Arc::new));
    let on_gpu = move || {
        model
            .backend
            .with(|b| b.as_ref().is_some_and(|b| b.backend == Backend::Gpu))
    };
    let typed = RwSignal::new(String::new());
    let choose = move |_| {
        let labels = model
            .info
            .with_untracked(|m| m.as_ref().map(|m| m.labels.clone()))
            .unwrap_or_default();
        let id = result.current.with_untracked(|r| r.as_ref().map(|r| r.id));
        match (id, parse_class(&typed.get_untracked(), &labels)) {
            (Some(id), Some(class)) => {
                explain.error.set(None);
                explain.picked.set(Some((id, class)));
            }
            (None, _) => explain.error.set(Some("Classify an image first.".into())),
            (_, None) => explain.error.set(Some(format!(
                "No class “{}”: type an index from 0 to {} or part of a class name.",
                typed.get_untracked(),
                labels.len().saturating_sub(1)
            ))),
        }
    };
    let heading = move || {
        maps.get().map(|e| {
            format!(
                "Class {} · {} · probability {:.1} % · maps up to layer {}",
                e.class,
                e.label,
                e.prob * 100.0,
                layer()
            )
        })
    };
    view! {
        <section class="card explain" data-testid="view-explain"
            data-class=move || maps.get().map(|e| e.class.to_string())
            data-layer=layer>
            <header class="explain-head">
                <h2>"Why this class"</h2>
                <p class="explain-class" data-testid="explain-class">
                    {move || heading().unwrap_or_else(|| {
                        if result.current.with(Option::is_none) { "Classify an image to explain it.".to_string() } else { "Computing…".to_string() }
                    })}
                </p>
                <p class="muted">
                    "Click a class in the top 5, or type one: "
                    <input class="class-input" data-testid="explain-class-input" placeholder="index or name"
                        prop:value=move || typed.get()
                        on:input=move |ev| typed.set(event_target_value(&ev))
                        on:keydown=move |ev| if ev.key() == "Enter" { choose(()) } />
                    <button class="ghost" data-testid="explain-class-go" on:click=move |_| choose(())>"Explain"</button>
                </p>
                <Show when=on_gpu>
                    <p class="muted" data-testid="explain-cpu">"The explanations are computed on the CPU (the classification ran on WebGPU)."</p>
                </Show>
                {move || explain.error.get().map(|e| view! { <p class="error-text" data-testid="explain-error">{e}</p> })}
            </header>
            <div class="explain-maps">
                <MapCanvas title="Attention rollout" testid="map-rollout" values=rollout
                    about="Attention multiplied through the layers, heads averaged, the same for every class (Abnar & Zuidema, 2020): where the CLS token's information comes from."/>
                <MapCanvas title="Chefer relevance" testid="map-chefer" values=chefer
                    about="Attention weighted by its gradient for this class, positive parts only, accumulated layer by layer (Chefer, Gur & Wolf, ICCV 2021, “Generic Attention-model Explainability”): bright patches push this class up."/>
                <MapCanvas title="Gradient rollout" testid="map-grad-rollout" values=grad
                    about="Rollout of gradient-weighted attention: the rollout of attention kept only where it raises this class's score."/>
            </div>
            {move || maps.get().map(|e| view! { <LensTable explanation=e/> })}
            <h3>"What if"</h3>
            <div class="explain-maps">
                <MapCanvas title="Occlusion" testid="map-occlusion" values=occlusion
                    about="Each patch token dropped in turn: how much the class probability falls without it. Bright patches are ones the model needs."/>
            </div>
            <WhatIfPanel/>
            {move || extra.get().map(|e| view! {
                <div class="explain-what-if">
                    <HeadRanking explanation=e.clone()/>
                    <Faithfulness explanation=e/>
                </div>
            })}
        </section>
    }
}
