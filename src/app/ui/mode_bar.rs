//! The bar that switches between Classify, Explain and Teach, projector mode and the shortcut list.

use leptos::prelude::*;

use crate::app::explain_state::ExplainState;
use crate::app::state::TeachState;

/// Classify / Explain / Teach toggle, projector toggle and the shortcuts button.
#[component]
pub fn ModeBar() -> impl IntoView {
    let teach = expect_context::<TeachState>();
    let explain = expect_context::<ExplainState>();
    let explaining = move || explain.on.get() && !teach.on.get();
    view! {
        <nav class="modebar">
            <div class="toggle" role="group">
                <button class:on=move || !teach.on.get() && !explaining() data-testid="mode-classify"
                    on:click=move |_| { teach.on.set(false); explain.on.set(false); }>"Classify"</button>
                <button class:on=explaining data-testid="mode-explain"
                    on:click=move |_| { teach.on.set(false); explain.on.set(true); }>"Explain"</button>
                <button class:on=move || teach.on.get() data-testid="mode-teach"
                    on:click=move |_| { explain.on.set(false); teach.on.set(true); }>"Teach"</button>
            </div>
            <button class="ghost" data-testid="projector-toggle" class:on=move || teach.projector.get()
                on:click=move |_| teach.projector.update(|p| *p = !*p)>"Projector (P)"</button>
            <button class="ghost" data-testid="help-toggle" on:click=move |_| teach.help.update(|h| *h = !*h)>"Shortcuts (?)"</button>
        </nav>
    }
}
