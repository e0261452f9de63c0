//! The header: the app's name, the model and backend pickers, and the cache button.

use leptos::prelude::*;

use super::backend_picker::BackendPicker;
use super::model_picker::ModelPicker;
use crate::app::load::Loader;

/// The page's header.
#[component]
pub fn Header() -> impl IntoView {
    let loader = expect_context::<Loader>();
    view! {
        <header class="header">
            <div class="brand">
                <span class="logo">"vit-lens"</span>
                <span class="tagline">"watch a Vision Transformer look"</span>
            </div>
            <div class="pickers">
                <ModelPicker/>
                <BackendPicker/>
                <button class="ghost" data-testid="clear-cache" on:click=move |_| loader.clear_cache()>"Clear model cache"</button>
            </div>
        </header>
    }
}
