//! What the model does when parts of the input or of the model are taken away: head
//! knockout effects and faithfulness curves (the occlusion map is drawn with the others).

use std::sync::Arc;

use leptos::prelude::*;

use crate::explain::Explanation;

/// The ten heads whose removal lowers the class score most.
#[component]
pub fn HeadRanking(explanation: Arc<Explanation>) -> impl IntoView {
    let rows = explanation
        .head_effects
        .iter()
        .flat_map(|h| h.ranking.iter().take(10))
        .map(|h| {
            view! {
                <tr data-testid="head-effect" data-layer=h.layer data-head=h.head data-effect=h.effect.to_string()>
                    <td>{format!("layer {}, head {}", h.layer + 1, h.head + 1)}</td>
                    <td class="num">{format!("{:+.3}", h.effect)}</td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <section class="explain-heads">
            <h3>"Heads that matter"</h3>
            <p class="muted">"Each head switched off alone (its output zeroed): how much the class logit drops. Large drops mark heads the decision leans on; negative ones, heads that argue against it."</p>
            <table class="lens"><tbody>{rows}</tbody></table>
        </section>
    }
}

/// Deletion and insertion areas of every map's patch order.
#[component]
pub fn Faithfulness(explanation: Arc<Explanation>) -> impl IntoView {
    let rows = explanation
        .faithfulness
        .iter()
        .flatten()
        .map(|c| {
            view! {
                <tr data-testid="faithfulness" data-order=c.order.clone()
                    data-deletion=c.deletion_auc.to_string() data-insertion=c.insertion_auc.to_string()>
                    <td>{c.order.clone()}</td>
                    <td class="num">{format!("{:.3}", c.deletion_auc)}</td>
                    <td class="num">{format!("{:.3}", c.insertion_auc)}</td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <section class="explain-faith">
            <h3>"Faithfulness"</h3>
            <p class="muted">
                "Patches removed (deletion) or restored (insertion) in the order each map ranks them, most relevant first, "
                "and the area under the class probability curve (Petsiuk et al., 2018). A faithful map has a low deletion "
                "and a high insertion area; random order is the baseline."
            </p>
            <table class="lens">
                <thead><tr><th>"order"</th><th>"deletion AUC ↓"</th><th>"insertion AUC ↑"</th></tr></thead>
                <tbody>{rows}</tbody>
            </table>
        </section>
    }
}
