//! The model menu: the built-in model, hub presets, any hub repo or URL, or local files.

use leptos::prelude::*;

use crate::app::dom::files_of;
use crate::app::hub::{parse_model_ref, Remote, PRESETS};
use crate::app::load::Loader;
use crate::app::state::{ModelState, Notices, CUSTOM_KEY, EMBEDDED_KEY, LOCAL_KEY};

/// Picks the model; the custom entry opens a field for a repo id or URL, the local entry a
/// file dialog.
#[component]
pub fn ModelPicker() -> impl IntoView {
    let model = expect_context::<ModelState>();
    let notices = expect_context::<Notices>();
    let loader = expect_context::<Loader>();
    let custom_text = RwSignal::new(String::new());
    let model_input = NodeRef::<leptos::html::Input>::new();
    let on_pick = move |ev: leptos::ev::Event| {
        let value = event_target_value(&ev);
        model.picker.set(value.clone());
        match value.as_str() {
            EMBEDDED_KEY => loader.load_embedded(),
            CUSTOM_KEY => {}
            LOCAL_KEY => {
                if let Some(input) = model_input.get() {
                    input.click();
                }
            }
            repo => {
                let remote = Remote::hub(&model.hub.get_value(), repo);
                loader.load_remote(value.clone(), remote, true);
            }
        }
    };
    let load_custom =
        move || match parse_model_ref(&custom_text.get_untracked(), &model.hub.get_value()) {
            Ok(remote) => loader.load_model_ref(CUSTOM_KEY.to_string(), remote),
            Err(e) => notices.fail(e),
        };
    view! {
        <label class="field">
            <span>"Model"</span>
            <select data-testid="model-select" on:change=on_pick prop:value=move || model.picker.get()>
                <option value=EMBEDDED_KEY>"Shapes ViT (built in, offline)"</option>
                <optgroup label="Hugging Face hub">
                    {PRESETS
                        .iter()
                        .map(|p| view! { <option value=p.repo>{p.title}</option> })
                        .collect_view()}
                </optgroup>
                <option value=CUSTOM_KEY>"Other hub repo or URL…"</option>
                <option value=LOCAL_KEY>"Files on this computer…"</option>
            </select>
        </label>
        <Show when=move || model.picker.get() == CUSTOM_KEY>
            <form class="custom" on:submit=move |ev| { ev.prevent_default(); load_custom(); }>
                <input
                    data-testid="model-url"
                    type="text"
                    placeholder="owner/name, owner/name@rev or https://…"
                    prop:value=move || custom_text.get()
                    on:input=move |ev| custom_text.set(event_target_value(&ev))
                />
                <button type="submit" data-testid="model-load">"Load"</button>
            </form>
        </Show>
        <input
            class="hidden-input"
            data-testid="model-file-input"
            type="file"
            multiple=true
            accept=".json,.safetensors"
            node_ref=model_input
            on:change=move |ev| {
                let input = event_target::<web_sys::HtmlInputElement>(&ev);
                loader.load_local(files_of(input.files()));
                input.set_value("");
            }
        />
    }
}
