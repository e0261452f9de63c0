//! Explanation requests: while Explain mode is on, asks the worker for the maps and logit
//! lens of the current image and class, then for the interventions; one request at a time,
//! and a newer wish replaces any older one not sent yet.

use std::sync::Arc;

use leptos::prelude::*;

use super::client::Client;
use super::explain_state::{answers, ExplainKey, ExplainState, WhatIf};
use super::protocol::Request;
use crate::analysis::Prediction;
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

    /// Asks for the top classes with the patches and heads the user took away, one request
    /// at a time. Call it once, inside the app's owner.
    pub fn ask_what_if(&self, explain: ExplainState) {
        let client = *self;
        let result = self.state().result;
        Effect::new(move |_| {
            if !explain.on.get() || explain.what_if_in_flight.get() {
                return;
            }
            let Some(id) = result.current.with(|r| r.as_ref().map(|r| r.id)) else {
                return;
            };
            let key = (id, explain.hidden.get(), explain.heads_off.get());
            if key.1.is_empty() && key.2.is_empty() {
                return;
            }
            let answered = explain
                .what_if
                .with(|w| w.as_ref().is_some_and(|w| w.key == key));
            if answered
                || explain
                    .what_if_asked
                    .with_value(|a| a.as_ref() == Some(&key))
            {
                return;
            }
            explain.what_if_asked.set_value(Some(key.clone()));
            explain.what_if_in_flight.set(true);
            let (id, hidden_patches, heads_off) = key;
            client.post(
                &Request::WhatIf {
                    id,
                    hidden_patches,
                    heads_off,
                },
                Vec::new(),
            );
        });
    }

    /// Takes the worker's what-if answer.
    pub fn on_what_if(
        &self,
        explain: ExplainState,
        id: u64,
        hidden: Vec<usize>,
        heads_off: Vec<(usize, usize)>,
        predictions: Vec<Prediction>,
    ) {
        explain.what_if.set(Some(WhatIf {
            key: (id, hidden, heads_off),
            predictions,
        }));
        explain.what_if_in_flight.set(false);
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
        explain.what_if_in_flight.set(false);
    }
}
