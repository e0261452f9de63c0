//! What the model does when parts of it are taken away, measured with batched forward
//! passes: occlusion (one patch token dropped at a time), head knockout (heads' outputs
//! zeroed) and faithfulness curves (patches deleted or inserted in the order a map ranks
//! them; Petsiuk et al., "RISE", BMVC 2018, with tokens dropped instead of pixels greyed).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::network::{Embedded, ExplainModel};
use super::ExplainError;
use crate::analysis::softmax;

/// Points after the start of each faithfulness curve, by default: step `k` of 16 deletes
/// (or keeps) `round(k·N/16)` patches, so a curve has 17 points.
pub const DEFAULT_CURVE_STEPS: usize = 16;

/// Seed of the random order every faithfulness comparison includes as a baseline.
pub const DEFAULT_RANDOM_SEED: u64 = 2021;

/// One attention head: `layer` and `head`, both 0-based.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct HeadId {
    pub layer: usize,
    pub head: usize,
}

/// What to change in one forward pass: which patches the model sees and which heads are off.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Intervention {
    /// Patch indices (row-major on the patch grid) the model runs on, each with its own
    /// position embedding; `None` keeps every patch. The prefix tokens are always kept.
    pub kept_patches: Option<Vec<usize>>,
    /// Heads whose output (their slice of the attention context) is zeroed before the output
    /// projection.
    pub heads_off: Vec<HeadId>,
}

impl Intervention {
    /// Every patch but `dropped`.
    pub fn drop_patches(patches: usize, dropped: &[usize]) -> Self {
        let mut keep = vec![true; patches];
        dropped
            .iter()
            .filter(|&&p| p < patches)
            .for_each(|&p| keep[p] = false);
        Self {
            kept_patches: Some((0..patches).filter(|&p| keep[p]).collect()),
            heads_off: Vec::new(),
        }
    }

    /// Only `kept` patches (in any order; the model sees them in ascending order).
    pub fn keep_patches(kept: &[usize]) -> Self {
        let mut kept = kept.to_vec();
        kept.sort_unstable();
        kept.dedup();
        Self {
            kept_patches: Some(kept),
            heads_off: Vec::new(),
        }
    }

    /// All patches, `heads` zeroed.
    pub fn knock_out(heads: &[HeadId]) -> Self {
        Self {
            kept_patches: None,
            heads_off: heads.to_vec(),
        }
    }
}

/// One head's effect on the class score.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct HeadEffect {
    pub layer: usize,
    pub head: usize,
    /// y_c with every head on minus y_c with this head off (logits): positive when the head
    /// supports the class.
    pub effect: f32,
}

/// Every head's single-head knockout effect.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HeadEffects {
    /// `[layer][head]` effect, as in [`HeadEffect::effect`].
    pub effects: Vec<Vec<f32>>,
    /// Every head, the largest effect first (ties: lower layer, then lower head first).
    pub ranking: Vec<HeadEffect>,
}

/// Deletion and insertion curves of p_c for one patch order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaithfulnessCurve {
    /// Which map ranked the patches (`rollout`, `chefer`, `grad_rollout`, `occlusion`,
    /// `random`).
    pub order: String,
    /// p_c after deleting the first round(k·N/steps) patches of the order, k = 0..=steps.
    pub deletion: Vec<f32>,
    /// p_c with only the prefix tokens and the first round(k·N/steps) patches, k = 0..=steps.
    pub insertion: Vec<f32>,
    /// Trapezoid areas under the curves over x = k/steps in [0, 1]: low is good for
    /// deletion, high for insertion.
    pub deletion_auc: f32,
    pub insertion_auc: f32,
}

impl ExplainModel {
    /// Logits (classes,) for every intervention, run in batches of at most `batch_size`
    /// passes that see the same number of tokens.
    pub fn run(
        &self,
        embedded: &Embedded,
        interventions: &[Intervention],
        batch_size: usize,
    ) -> Result<Vec<Vec<f32>>, ExplainError> {
        let cfg = &self.config;
        let (d, layers, heads) = (cfg.hidden_size, cfg.num_layers, cfg.num_heads);
        let patches = embedded.patches();
        let prefix = embedded.prefix_tokens;
        // Token ids each pass runs on.
        let token_lists = interventions
            .iter()
            .map(|iv| {
                let mut ids: Vec<usize> = (0..prefix).collect();
                match &iv.kept_patches {
                    None => ids.extend(prefix..prefix + patches),
                    Some(kept) => {
                        for &p in kept {
                            if p >= patches {
                                return Err(ExplainError::PatchOutOfRange { patch: p, patches });
                            }
                            ids.push(prefix + p);
                        }
                    }
                }
                for h in &iv.heads_off {
                    if h.layer >= layers || h.head >= heads {
                        return Err(ExplainError::HeadOutOfRange {
                            layer: h.layer,
                            head: h.head,
                            layers,
                            heads,
                        });
                    }
                }
                Ok(ids)
            })
            .collect::<Result<Vec<_>, ExplainError>>()?;
        // Group passes by token count so each batch is one rectangular tensor.
        let mut order: Vec<usize> = (0..interventions.len()).collect();
        order.sort_by_key(|&i| (token_lists[i].len(), i));
        let mut results = vec![Vec::new(); interventions.len()];
        let batch_size = batch_size.max(1);
        let mut start = 0;
        while start < order.len() {
            let len = token_lists[order[start]].len();
            let mut end = start;
            while end < order.len()
                && end - start < batch_size
                && token_lists[order[end]].len() == len
            {
                end += 1;
            }
            let members = &order[start..end];
            let mut x = Vec::with_capacity(members.len() * len * d);
            for &i in members {
                for &t in &token_lists[i] {
                    x.extend_from_slice(&embedded.tokens[t * d..(t + 1) * d]);
                }
            }
            let mask = members
                .iter()
                .any(|&i| !interventions[i].heads_off.is_empty())
                .then(|| {
                    let mut mask = vec![1.0f32; members.len() * layers * heads];
                    for (b, &i) in members.iter().enumerate() {
                        for h in &interventions[i].heads_off {
                            mask[(b * layers + h.layer) * heads + h.head] = 0.0;
                        }
                    }
                    mask
                });
            let logits = self.forward(x, members.len(), len, mask.as_deref(), None)?;
            let classes = cfg.num_classes;
            for (b, &i) in members.iter().enumerate() {
                results[i] = logits[b * classes..(b + 1) * classes].to_vec();
            }
            start = end;
        }
        Ok(results)
    }

    /// Logits (classes,) with `heads` zeroed (all patches kept).
    pub fn knockout(
        &self,
        embedded: &Embedded,
        heads: &[HeadId],
    ) -> Result<Vec<f32>, ExplainError> {
        let mut logits = self.run(embedded, &[Intervention::knock_out(heads)], 1)?;
        logits
            .pop()
            .ok_or_else(|| ExplainError::Model("no logits came back".into()))
    }

    /// `occlusion[i]` = p_c(all patches) − p_c(patch i dropped), softmax probabilities, for
    /// every patch (N values), `batch_size` passes at a time.
    pub fn occlusion(
        &self,
        embedded: &Embedded,
        class: usize,
        batch_size: usize,
    ) -> Result<Vec<f32>, ExplainError> {
        self.check_class(class)?;
        let n = embedded.patches();
        let mut passes = vec![Intervention::default()];
        passes.extend((0..n).map(|i| Intervention::drop_patches(n, &[i])));
        let probs = self.class_probs(embedded, &passes, class, batch_size)?;
        Ok(probs[1..].iter().map(|p| probs[0] - p).collect())
    }

    /// Every head's single-head knockout effect on y_c, and the heads ranked by it.
    pub fn head_effects(
        &self,
        embedded: &Embedded,
        class: usize,
        batch_size: usize,
    ) -> Result<HeadEffects, ExplainError> {
        self.check_class(class)?;
        let (layers, heads) = (self.config.num_layers, self.config.num_heads);
        let mut passes = vec![Intervention::default()];
        for layer in 0..layers {
            for head in 0..heads {
                passes.push(Intervention::knock_out(&[HeadId { layer, head }]));
            }
        }
        let logits = self.run(embedded, &passes, batch_size)?;
        let full = logits[0][class];
        let effects: Vec<Vec<f32>> = logits[1..]
            .chunks(heads)
            .map(|layer| layer.iter().map(|l| full - l[class]).collect())
            .collect();
        let mut ranking: Vec<HeadEffect> = effects
            .iter()
            .enumerate()
            .flat_map(|(layer, row)| {
                row.iter()
                    .enumerate()
                    .map(move |(head, &effect)| HeadEffect {
                        layer,
                        head,
                        effect,
                    })
            })
            .collect();
        ranking.sort_by(|a, b| {
            b.effect
                .total_cmp(&a.effect)
                .then(a.layer.cmp(&b.layer))
                .then(a.head.cmp(&b.head))
        });
        Ok(HeadEffects { effects, ranking })
    }

    /// Deletion and insertion curves of p_c for each named patch order (each a permutation
    /// of `0..N`, most important first), `steps + 1` points each. Passes shared between
    /// curves (all patches, no patches, equal sets) run once.
    pub fn faithfulness(
        &self,
        embedded: &Embedded,
        class: usize,
        orders: &[(String, Vec<usize>)],
        steps: usize,
        batch_size: usize,
    ) -> Result<Vec<FaithfulnessCurve>, ExplainError> {
        self.check_class(class)?;
        let n = embedded.patches();
        if steps == 0 {
            return Err(ExplainError::Options(
                "faithfulness curves need at least one step".into(),
            ));
        }
        for (name, order) in orders {
            let mut seen = vec![false; n];
            let is_permutation = order.len() == n
                && order
                    .iter()
                    .all(|&p| p < n && !std::mem::replace(&mut seen[p], true));
            if !is_permutation {
                return Err(ExplainError::Options(format!(
                    "the `{name}` order is not a permutation of the {n} patches"
                )));
            }
        }
        // One pass per distinct set of kept patches.
        let mut passes: Vec<Intervention> = Vec::new();
        let mut index: HashMap<Vec<usize>, usize> = HashMap::new();
        let mut pass_of = |mut kept: Vec<usize>| {
            kept.sort_unstable();
            let next = passes.len();
            *index.entry(kept.clone()).or_insert_with(|| {
                passes.push(Intervention {
                    kept_patches: Some(kept),
                    heads_off: Vec::new(),
                });
                next
            })
        };
        let counts: Vec<usize> = (0..=steps).map(|k| step_count(k, n, steps)).collect();
        let plan: Vec<(Vec<usize>, Vec<usize>)> = orders
            .iter()
            .map(|(_, order)| {
                let deletion = counts
                    .iter()
                    .map(|&c| pass_of(order[c..].to_vec()))
                    .collect();
                let insertion = counts
                    .iter()
                    .map(|&c| pass_of(order[..c].to_vec()))
                    .collect();
                (deletion, insertion)
            })
            .collect();
        let probs = self.class_probs(embedded, &passes, class, batch_size)?;
        Ok(orders
            .iter()
            .zip(plan)
            .map(|((name, _), (deletion, insertion))| {
                let deletion: Vec<f32> = deletion.iter().map(|&i| probs[i]).collect();
                let insertion: Vec<f32> = insertion.iter().map(|&i| probs[i]).collect();
                FaithfulnessCurve {
                    order: name.clone(),
                    deletion_auc: trapezoid(&deletion),
                    insertion_auc: trapezoid(&insertion),
                    deletion,
                    insertion,
                }
            })
            .collect())
    }

    /// p_c for each pass.
    fn class_probs(
        &self,
        embedded: &Embedded,
        passes: &[Intervention],
        class: usize,
        batch_size: usize,
    ) -> Result<Vec<f32>, ExplainError> {
        Ok(self
            .run(embedded, passes, batch_size)?
            .iter()
            .map(|logits| softmax(logits)[class])
            .collect())
    }

    pub(super) fn check_class(&self, class: usize) -> Result<(), ExplainError> {
        if class >= self.config.num_classes {
            return Err(ExplainError::ClassOutOfRange {
                class,
                classes: self.config.num_classes,
            });
        }
        Ok(())
    }
}

/// round(k·n/steps), halves rounded up, in integers.
pub fn step_count(k: usize, n: usize, steps: usize) -> usize {
    (2 * k * n + steps) / (2 * steps)
}

/// Area under `points` at x = 0, 1/(len−1), …, 1 by the trapezoid rule.
pub fn trapezoid(points: &[f32]) -> f32 {
    if points.len() < 2 {
        return 0.0;
    }
    let width = 1.0 / (points.len() - 1) as f64;
    let area: f64 = points
        .windows(2)
        .map(|w| 0.5 * (f64::from(w[0]) + f64::from(w[1])) * width)
        .sum();
    area as f32
}

/// Patch indices, the largest map value first (ties: lower index first; NaN last).
pub fn order_by_map(map: &[f32]) -> Vec<usize> {
    let key = |i: usize| {
        if map[i].is_nan() {
            f32::NEG_INFINITY
        } else {
            map[i]
        }
    };
    let mut order: Vec<usize> = (0..map.len()).collect();
    order.sort_by(|&a, &b| key(b).total_cmp(&key(a)).then(a.cmp(&b)));
    order
}

/// SplitMix64 (Steele, Lea & Flood, "Fast splittable pseudorandom number generators",
/// OOPSLA 2014): a 64-bit state advanced by the golden-ratio increment, then mixed.
#[derive(Clone, Debug)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// A random permutation of `0..n`: Fisher–Yates from the identity, for i = n−1 down to 1
/// swapping i with j = next_u64() mod (i + 1).
pub fn random_order(n: usize, seed: u64) -> Vec<usize> {
    let mut rng = SplitMix64::new(seed);
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_matches_the_published_sequence() {
        // First outputs for seed 1234567 (the reference implementation's test vector).
        let mut rng = SplitMix64::new(1_234_567);
        let expected = [
            6_457_827_717_110_365_317u64,
            3_203_168_211_198_807_973,
            9_817_491_932_198_370_423,
            4_593_380_528_125_082_431,
            16_408_922_859_458_223_821,
        ];
        for e in expected {
            assert_eq!(rng.next_u64(), e);
        }
    }

    #[test]
    fn random_order_is_a_seeded_permutation() {
        let a = random_order(196, 7);
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..196).collect::<Vec<_>>());
        assert_eq!(a, random_order(196, 7));
        assert_ne!(a, random_order(196, 8));
    }

    #[test]
    fn step_counts_round_half_up() {
        // 196 patches in 16 steps: k = 2 → 24.5 → 25; k = 16 → all.
        assert_eq!(step_count(2, 196, 16), 25);
        assert_eq!(step_count(1, 196, 16), 12); // 12.25
        assert_eq!(step_count(16, 196, 16), 196);
        assert_eq!(step_count(0, 196, 16), 0);
        assert_eq!(step_count(8, 16, 16), 8);
    }

    #[test]
    fn trapezoid_and_order() {
        assert!((trapezoid(&[1.0, 0.0]) - 0.5).abs() < 1e-7);
        assert!((trapezoid(&[0.0, 1.0, 1.0]) - 0.75).abs() < 1e-7);
        assert_eq!(order_by_map(&[0.1, f32::NAN, 0.5, 0.1]), vec![2, 0, 3, 1]);
    }
}
