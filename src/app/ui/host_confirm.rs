//! The question asked before a model is downloaded from a host that is neither the page's
//! own nor the configured hub: a link's `?model=` or a URL typed into the model box.

use leptos::prelude::*;

use crate::app::load::Loader;
use crate::app::state::ModelState;

/// "Download from HOST" or keep what is loaded, while a model waits for confirmation.
#[component]
pub fn HostConfirm() -> impl IntoView {
    let model = expect_context::<ModelState>();
    let loader = expect_context::<Loader>();
    view! {
        {move || model.confirm.get().map(|c| {
            let what = c.remote.display();
            let host = c.host.clone();
            view! {
                <div class="banner confirm" data-testid="host-confirm" data-host=host.clone()>
                    <span>
                        {format!("{what} is on {host}, which is neither this page's server nor the model hub. Download it from there?")}
                    </span>
                    <button data-testid="host-confirm-yes" on:click=move |_| loader.confirm_host()>
                        {format!("Download from {host}")}
                    </button>
                    <button class="ghost" data-testid="host-confirm-no" on:click=move |_| loader.decline_host()>
                        "Don't download"
                    </button>
                </div>
            }
        })}
    }
}
