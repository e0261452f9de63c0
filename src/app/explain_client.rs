//! Explanation requests: while Explain mode is on, asks the worker for the maps and logit
//! lens of the current image and class, then for the interventions; one request at a time,
//! and a newer wish replaces any older one not sent yet.

use std::sync::Arc;

use leptos::prelude::*;

use super::client::Client;
use super::explain_state::{answers, ExplainKey, ExplainState};
use super::protocol::Request;
use crate::explain::Explanation;

impl Client {
    /// Keeps the explanation views fed. Call it once, inside the app's owner.
    pub fn ask_for_explanations(&self, explain: ExplainState) {
        let client = *self;
        let result = self.state().result;
        Effect::new(move |_| {
            if !explain.on.get() || explain.in_flight.get() {
                return;
            }
            let Some((id, top1)) = result.current.with(|r| {
                r.as_ref()
                    .and_then(|r| r.top.first().map(|p| (r.id, p.index)))
            }) else {
                return;
            };
            let class = explain.class_for(id, top1);
            let have_maps = explain.maps.with(|m| answers(m, id, class));
            let have_interventions = explain.interventions.with(|m| answers(m, id, class));
            if have_maps && have_interventions {
                return;
            }
            let key = ExplainKey {
                id,
                class,
                interventions: have_maps,
            };
            if explain.asked.get_value() == Some(key) {
                return;
            }
            explain.asked.set_value(Some(key));
            explain.in_flight.set(true);
            client.post(
                &Request::Explain {
                    id,
                    class: Some(class),
                    interventions: key.interventions,
                },
                Vec::new(),
            );
        });
    }

    /// Takes the worker's explanation of result `id`.
    pub fn on_explanation(
        &self,
        explain: ExplainState,
        id: u64,
        interventions: bool,
        explanation: Box<Explanation>,
    ) {
        self.state().notices.status.set(String::new());
        explain.error.set(None);
        let answer = Some((id, Arc::from(explanation)));
        if interventions {
            explain.interventions.set(answer);
        } else {
            explain.maps.set(answer);
        }
        explain.in_flight.set(false);
    }

    /// Takes the worker's reason for not explaining.
    pub fn on_explain_error(&self, explain: ExplainState, message: String) {
        self.state().notices.status.set(String::new());
        explain.error.set(Some(message));
        explain.in_flight.set(false);
    }
}
