//! The explanation views' state, given through the context like the others in
//! [`super::state`]. What fills it lives in [`super::explain_client`].

use std::sync::Arc;

use leptos::prelude::*;

use crate::analysis::Prediction;
use crate::explain::Explanation;

/// One explanation request: the image (its result id), the class, and whether it asks for
/// the interventions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExplainKey {
    pub id: u64,
    pub class: usize,
    pub interventions: bool,
}

/// Explain mode, the class it explains and the worker's answers.
#[derive(Clone, Copy)]
pub struct ExplainState {
    /// The Explain mode is on screen.
    pub on: RwSignal<bool>,
    /// The class picked for a result id; the result's top-1 otherwise.
    pub picked: RwSignal<Option<(u64, usize)>>,
    /// The maps and logit lens, with the result id they describe.
    pub maps: RwSignal<Option<(u64, Arc<Explanation>)>>,
    /// The interventions (occlusion, head effects, faithfulness), with their result id.
    pub interventions: RwSignal<Option<(u64, Arc<Explanation>)>>,
    /// A request is with the worker (at most one at a time).
    pub in_flight: RwSignal<bool>,
    /// The last request sent, so each is asked once.
    pub asked: StoredValue<Option<ExplainKey>>,
    /// Why the worker could not explain.
    pub error: RwSignal<Option<String>>,
    /// Patches (row-major on the grid) the user hid, sorted.
    pub hidden: RwSignal<Vec<usize>>,
    /// Heads (layer, head), 0-based, the user switched off, sorted.
    pub heads_off: RwSignal<Vec<(usize, usize)>>,
    /// The worker's last what-if answer.
    pub what_if: RwSignal<Option<WhatIf>>,
    /// A what-if request is with the worker.
    pub what_if_in_flight: RwSignal<bool>,
    /// The last what-if request sent.
    pub what_if_asked: StoredValue<Option<WhatIfKey>>,
}

/// What a what-if request asks: result id, hidden patches, heads off.
pub type WhatIfKey = (u64, Vec<usize>, Vec<(usize, usize)>);

/// A what-if answer: what was asked, and the top classes then.
#[derive(Clone, Debug, PartialEq)]
pub struct WhatIf {
    pub key: WhatIfKey,
    pub predictions: Vec<Prediction>,
}

impl Default for ExplainState {
    fn default() -> Self {
        Self::new()
    }
}

impl ExplainState {
    pub fn new() -> Self {
        Self {
            on: RwSignal::new(false),
            picked: RwSignal::new(None),
            maps: RwSignal::new(None),
            interventions: RwSignal::new(None),
            in_flight: RwSignal::new(false),
            asked: StoredValue::new(None),
            error: RwSignal::new(None),
            hidden: RwSignal::new(Vec::new()),
            heads_off: RwSignal::new(Vec::new()),
            what_if: RwSignal::new(None),
            what_if_in_flight: RwSignal::new(false),
            what_if_asked: StoredValue::new(None),
        }
    }

    /// The class explained for result `id` whose top-1 is `top1`.
    pub fn class_for(&self, id: u64, top1: usize) -> usize {
        self.picked
            .get()
            .filter(|(picked, _)| *picked == id)
            .map_or(top1, |(_, class)| class)
    }
}

/// Adds `item` to the sorted `list`, or takes it out if it is there.
pub fn toggle<T: Ord>(list: &mut Vec<T>, item: T) {
    match list.binary_search(&item) {
        Ok(i) => drop(list.remove(i)),
        Err(i) => list.insert(i, item),
    }
}

/// Whether `answer` explains `class` for result `id`.
pub fn answers(answer: &Option<(u64, Arc<Explanation>)>, id: u64, class: usize) -> bool {
    answer
        .as_ref()
        .is_some_and(|(i, e)| *i == id && e.class == class)
}
