//! The error and notice banners under the header.

use leptos::prelude::*;

use crate::app::state::Notices;

/// The current error (dismissable) and notice (acknowledgeable), when there are any.
#[component]
pub fn ErrorBanner() -> impl IntoView {
    let notices = expect_context::<Notices>();
    view! {
        <Show when=move || notices.error.with(|e| e.is_some())>
            <div class="banner error" role="alert" data-testid="error">
                <span>{move || notices.error.get().unwrap_or_default()}</span>
                <button class="ghost" on:click=move |_| notices.error.set(None)>"Dismiss"</button>
            </div>
        </Show>
        <Show when=move || notices.notice.with(|e| e.is_some())>
            <div class="banner notice" data-testid="notice">
                <span>{move || notices.notice.get().unwrap_or_default()}</span>
                <button class="ghost" on:click=move |_| notices.notice.set(None)>"OK"</button>
            </div>
        </Show>
    }
}
