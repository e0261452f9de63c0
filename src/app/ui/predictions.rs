//! The top-5 classes of the current result; clicking one explains it in Explain mode.

use leptos::prelude::*;

use crate::app::explain_state::ExplainState;
use crate::app::state::ResultState;

/// The current result's five most likely classes, with bars.
#[component]
pub fn Predictions() -> impl IntoView {
    let result = expect_context::<ResultState>();
    let explain = expect_context::<ExplainState>();
    view! {
        <section class="card predictions">
            <h2>"Top 5"</h2>
            {move || {
                result.current.with(|r| match r {
                    None => view! { <p class="muted">"No image yet."</p> }.into_any(),
                    Some(r) => r
                        .top
                        .iter()
                        .enumerate()
                        .map(|(i, p)| {
                            let pct = p.prob * 100.0;
                            let (id, index) = (r.id, p.index);
                            let top1 = r.top.first().map_or(index, |t| t.index);
                            let picked = move || explain.on.get() && explain.class_for(id, top1) == index;
                            view! {
                                <div
                                    class="pred"
                                    class:first=i == 0
                                    class:picked=picked
                                    title="Explain this class"
                                    on:click=move |_| explain.picked.set(Some((id, index)))
                                    data-testid="prediction"
                                    data-index=p.index
                                    data-label=p.label.clone()
                                    data-prob=p.prob.to_string()
                                >
                                    <div class="pred-text">
                                        <span class="pred-label">{p.label.clone()}</span>
                                        <span class="pred-prob">{format!("{pct:.1} %")}</span>
                                    </div>
                                    <div class="bar"><div class="fill" style:width=format!("{:.2}%", pct.clamp(0.0, 100.0))></div></div>
                                </div>
                            }
                        })
                        .collect_view()
                        .into_any(),
                })
            }}
        </section>
    }
}
