//! The model card: where the loaded model came from and its geometry and size.

use leptos::prelude::*;

use crate::app::dom::page_origin;
use crate::app::state::{ModelState, TeachState};
use crate::app::teach_view::format_count;

/// Source, architecture, geometry and size of the loaded model, one row per fact (each row
/// carries its raw value for tests).
#[component]
pub fn CardView() -> impl IntoView {
    let teach = expect_context::<TeachState>();
    let model = expect_context::<ModelState>();
    move || {
        let Some((_, teaching)) = teach.teaching.get() else {
            return ().into_any();
        };
        let c = teaching.model.card.clone();
        let source = model
            .info
            .with(|m| m.as_ref().map(|m| m.source.clone()))
            .unwrap_or_default();
        let url = model.url.get();
        let rows: Vec<(&str, &str, String, String)> = vec![
            (
                "architecture",
                "Architecture",
                c.architecture.clone(),
                c.architecture.clone(),
            ),
            (
                "layout",
                "Checkpoint layout",
                c.layout.clone(),
                c.layout.clone(),
            ),
            (
                "stored_dtype",
                "Stored dtype",
                c.stored_dtype.clone(),
                c.stored_dtype.clone(),
            ),
            (
                "image_size",
                "Input",
                format!("{0}×{0} px, {1} channels", c.image_size, c.channels),
                c.image_size.to_string(),
            ),
            (
                "patch_size",
                "Patch",
                format!("{0}×{0} px", c.patch_size),
                c.patch_size.to_string(),
            ),
            (
                "patches",
                "Patch grid",
                format!("{0}×{0} = {1} patches", c.grid, c.patches),
                c.patches.to_string(),
            ),
            (
                "tokens",
                "Tokens",
                format!(
                    "{} patches + {} prefix = {}",
                    c.patches, c.prefix_tokens, c.tokens
                ),
                c.tokens.to_string(),
            ),
            (
                "layers",
                "Encoder layers",
                c.layers.to_string(),
                c.layers.to_string(),
            ),
            (
                "heads",
                "Heads × head width",
                format!("{} × {}", c.heads, c.head_dim),
                c.heads.to_string(),
            ),
            (
                "hidden_size",
                "Width (hidden size)",
                c.hidden_size.to_string(),
                c.hidden_size.to_string(),
            ),
            (
                "mlp_size",
                "MLP width",
                c.mlp_size.to_string(),
                c.mlp_size.to_string(),
            ),
            (
                "classes",
                "Classes",
                c.classes.to_string(),
                c.classes.to_string(),
            ),
            (
                "parameters",
                "Parameters",
                format!("{} ({})", format_count(c.parameters as u64), c.parameters),
                c.parameters.to_string(),
            ),
            (
                "flops",
                "FLOPs per image",
                format!("{} (2 × multiply-adds)", format_count(c.flops)),
                c.flops.to_string(),
            ),
        ];
        view! {
            <div class="teach-view" data-testid="view-card">
                <table class="card-table">
                    <tbody>
                        <tr data-testid="card-field" data-field="source" data-value=source.clone()>
                            <th>"Source"</th>
                            <td>
                                {source.clone()}
                                {url.map(|u| {
                                    let link = if u.starts_with("http") { u.clone() } else { format!("{}/{u}", page_origin()) };
                                    view! { " · " <a href=link.clone() target="_blank" rel="noopener" data-testid="card-url">{link.clone()}</a> }
                                })}
                            </td>
                        </tr>
                        {rows.into_iter().map(|(field, label, shown, raw)| view! {
                            <tr data-testid="card-field" data-field=field data-value=raw>
                                <th>{label}</th><td>{shown}</td>
                            </tr>
                        }).collect_view()}
                    </tbody>
                </table>
            </div>
        }
        .into_any()
    }
}
