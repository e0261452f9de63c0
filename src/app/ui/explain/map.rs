//! One explanation map laid over the crop, drawn like the heatmap.

use std::sync::Arc;

use leptos::prelude::*;

use crate::app::dom::draw_rgba;
use crate::app::state::{Heatmap, Notices, ResultState};

/// A map over the patch grid (row-major), drawn over the current crop with the heatmap's
/// colormap and opacity. Its values travel in `data-map` (comma-separated) for checking.
#[component]
pub fn MapCanvas(
    /// What the map is, as its caption.
    title: &'static str,
    /// One sentence on how to read it.
    about: &'static str,
    testid: &'static str,
    /// The map, when there is one.
    values: Signal<Option<Arc<Vec<f32>>>>,
) -> impl IntoView {
    let result = expect_context::<ResultState>();
    let options = expect_context::<Heatmap>().options;
    let notices = expect_context::<Notices>();
    let canvas = NodeRef::<leptos::html::Canvas>::new();
    Effect::new(move |_| {
        let (Some(current), Some(map)) = (result.current.get(), values.get()) else {
            return;
        };
        let opts = options.get();
        match current.render(&opts, &map) {
            Ok(image) => {
                if let Some(canvas) = canvas.get() {
                    draw_rgba(&canvas, image.width(), image.height(), image.as_raw());
                }
            }
            Err(e) => notices.fail(e),
        }
    });
    let data = move || {
        values.get().map(|v| {
            v.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join(",")
        })
    };
    view! {
        <figure class="explain-map" data-testid=testid data-map=data>
            <canvas node_ref=canvas width="224" height="224" class:hidden=move || values.with(Option::is_none)></canvas>
            <Show when=move || values.with(Option::is_none)>
                <div class="explain-wait"><span class="spinner"></span>"Computing…"</div>
            </Show>
            <figcaption><strong>{title}</strong>" "{about}</figcaption>
        </figure>
    }
}
