//! The logit lens: the classifier read after every layer.

use std::sync::Arc;

use leptos::prelude::*;

use crate::explain::Explanation;

/// Per layer, the five classes the classifier would pick if the network stopped there.
#[component]
pub fn LensTable(explanation: Arc<Explanation>) -> impl IntoView {
    let class = explanation.class;
    let rows = explanation
        .logit_lens
        .iter()
        .enumerate()
        .map(|(l, layer)| {
            let cells = layer
                .top
                .iter()
                .map(|p| {
                    view! {
                        <td class:picked=p.index == class data-index=p.index data-prob=p.prob.to_string()>
                            {format!("{} {:.1} %", p.label, p.prob * 100.0)}
                        </td>
                    }
                })
                .collect_view();
            view! {
                <tr data-testid="lens-layer" data-layer=l + 1 data-class-prob=layer.class_prob.to_string()>
                    <th>{format!("after layer {}", l + 1)}</th>
                    <td class="num">{format!("{:.1} %", layer.class_prob * 100.0)}</td>
                    {cells}
                </tr>
            }
        })
        .collect_view();
    view! {
        <section class="explain-lens" data-testid="logit-lens">
            <h3>"Logit lens"</h3>
            <p class="muted">
                "The model's final norm and classifier applied after each layer, as if the network stopped there "
                "(nostalgebraist, 2020): where the answer forms. The last row is the model's own output."
            </p>
            <table class="lens">
                <thead><tr><th>"layer"</th><th>{format!("p({})", explanation.label)}</th><th colspan="5">"top 5"</th></tr></thead>
                <tbody>{rows}</tbody>
            </table>
        </section>
    }
}
