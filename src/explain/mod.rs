//! Why this class, and what if: class-specific explanations of one image, and what the model
//! does when parts of the input or of the model are taken away.
//!
//! Everything runs on [`ExplainModel`], a forward pass of its own read from the
//! [`Checkpoint`] (CPU, candle matrix products) with a hand-written backward pass:
//!
//! * **Gradients** — ∂y_c/∂A_l, the class score's derivative by every layer's attention
//!   probabilities ([`ExplainModel::attention_gradients`]); y_c is the logit before softmax,
//!   for a distilled DeiT the mean of the two heads' logits, as at inference.
//! * **Class-specific maps**, per layer: [`chefer`] (Chefer, Gur & Wolf, ICCV 2021) and
//!   [`grad_rollout`]; the class-agnostic attention rollout comes from
//!   [`crate::analysis::rollout`].
//! * **Logit lens** ([`ExplainModel::logit_lens`]): the classifier read after every layer.
//! * **Interventions**, batched: [`ExplainModel::occlusion`] (drop one patch token at a
//!   time), [`ExplainModel::knockout`] and [`ExplainModel::head_effects`] (zero heads'
//!   outputs), [`ExplainModel::faithfulness`] (deletion / insertion curves).
//!
//! [`explain`] does all of it for one image and returns one serializable [`Explanation`]; the
//! CLI and the web worker share it. Maps cover the patch tokens only, row-major on the patch
//! grid, `N = tokens − prefix_tokens` values; "up to layer l" maps come as `[L][N]`.

mod backward;
mod interventions;
mod lens;
mod maps;
mod network;
mod ops;
mod what_if;

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::analysis::{rollout, softmax, top_k, AnalysisError, HeadFusion, LayerAttention};
use crate::analysis::{Prediction, RolloutOptions};
use crate::checkpoint::Checkpoint;

pub use backward::AttentionGradient;
pub use interventions::{
    order_by_map, random_order, step_count, trapezoid, FaithfulnessCurve, HeadEffect, HeadEffects,
    HeadId, Intervention, SplitMix64, DEFAULT_CURVE_STEPS, DEFAULT_RANDOM_SEED,
};
pub use lens::LensLayer;
pub use maps::{chefer, grad_rollout};
pub use network::{Embedded, ExplainModel, Trace};

/// Why an explanation could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    #[error("{0}")]
    Input(String),
    #[error("the model cannot be explained: {0}")]
    Model(String),
    #[error("class {class} does not exist: the model has {classes} classes; pick one from 0 to {}", classes.saturating_sub(1))]
    ClassOutOfRange { class: usize, classes: usize },
    #[error("patch {patch} does not exist: the image has {patches} patches; pick from 0 to {}", patches.saturating_sub(1))]
    PatchOutOfRange { patch: usize, patches: usize },
    #[error("head {head} of layer {layer} does not exist: the model has {layers} layers of {heads} heads; pick a head below those")]
    HeadOutOfRange {
        layer: usize,
        head: usize,
        layers: usize,
        heads: usize,
    },
    #[error("explanation options: {0}")]
    Options(String),
    #[error(transparent)]
    Analysis(#[from] AnalysisError),
    #[error("tensor computation failed: {0}")]
    Tensor(#[from] candle_core::Error),
}

/// What [`explain`] computes, and how.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ExplainOptions {
    /// Head fusion of the plain attention rollout.
    pub head_fusion: HeadFusion,
    /// Discard ratio in [0, 1) of the plain rollout and of the gradient rollout.
    pub discard_ratio: f32,
    /// How many classes the predictions and each logit-lens layer list.
    pub top_k: usize,
    /// Compute the occlusion map (one pass per patch).
    pub occlusion: bool,
    /// Rank heads by their single-head knockout effect (one pass per head).
    pub head_effects: bool,
    /// Deletion and insertion curves for every map's order and a random one.
    pub faithfulness: bool,
    /// Steps of each faithfulness curve (points = steps + 1).
    pub curve_steps: usize,
    /// Seed of the random baseline order ([`random_order`]).
    pub random_seed: u64,
    /// Forward passes per batch in the interventions. On one CPU core a DeiT-Ti pass costs
    /// the same in batches of 1 to 4 and more in larger ones (the attention buffers outgrow
    /// the cache), so the default is 4.
    pub batch_size: usize,
}

impl Default for ExplainOptions {
    fn default() -> Self {
        Self {
            head_fusion: HeadFusion::Mean,
            discard_ratio: 0.0,
            top_k: 5,
            occlusion: true,
            head_effects: true,
            faithfulness: true,
            curve_steps: DEFAULT_CURVE_STEPS,
            random_seed: DEFAULT_RANDOM_SEED,
            batch_size: 4,
        }
    }
}

/// Everything [`explain`] found about one image and one class.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    /// The explained class: the one asked for, or the model's top-1.
    pub class: usize,
    pub label: String,
    /// y_c, the class's logit (distilled DeiT: the mean of both heads).
    pub logit: f32,
    pub prob: f32,
    /// The model's top-k.
    pub predictions: Vec<Prediction>,
    /// (rows, cols) of patches; maps are row-major over it.
    pub patch_grid: (usize, usize),
    pub prefix_tokens: usize,
    /// Attention rollout up to each layer, `[L][N]` (class-agnostic).
    pub rollout: Vec<Vec<f32>>,
    /// Chefer et al.'s relevance up to each layer, `[L][N]`.
    pub chefer: Vec<Vec<f32>>,
    /// Gradient rollout up to each layer, `[L][N]`.
    pub grad_rollout: Vec<Vec<f32>>,
    /// The classifier read after each layer, `[L]`.
    pub logit_lens: Vec<LensLayer>,
    /// p_c(full) − p_c(patch i dropped), `[N]`.
    pub occlusion: Option<Vec<f32>>,
    pub head_effects: Option<HeadEffects>,
    /// One curve pair per order: rollout, chefer, grad_rollout, occlusion (when computed),
    /// random.
    pub faithfulness: Option<Vec<FaithfulnessCurve>>,
    pub random_seed: u64,
}

/// Explains `class` (the model's top-1 when `None`) for one preprocessed image `pixels`,
/// (1, channels, height, width) at the checkpoint's native size.
pub fn explain(
    checkpoint: &Checkpoint,
    pixels: &Tensor,
    class: Option<usize>,
    options: &ExplainOptions,
) -> Result<Explanation, ExplainError> {
    ExplainModel::new(checkpoint)?.explain(pixels, class, options)
}

impl ExplainModel {
    /// [`explain`] on a model prepared once (the weights are copied at [`ExplainModel::new`]).
    pub fn explain(
        &self,
        pixels: &Tensor,
        class: Option<usize>,
        options: &ExplainOptions,
    ) -> Result<Explanation, ExplainError> {
        if !(0.0..1.0).contains(&options.discard_ratio) {
            return Err(AnalysisError::DiscardRatio(options.discard_ratio).into());
        }
        let embedded = self.embed(pixels)?;
        let trace = self.trace(&embedded)?;
        let probs = softmax(&trace.logits);
        let predictions = top_k(&probs, &self.labels, options.top_k.max(1));
        let class = match class {
            Some(c) => {
                self.check_class(c)?;
                c
            }
            None => predictions
                .first()
                .map(|p| p.index)
                .ok_or_else(|| ExplainError::Model("the model has no classes".into()))?,
        };
        let prefix = embedded.prefix_tokens;
        let attentions = self.attentions(&trace)?;
        let gradients = self.attention_gradients(&trace, class)?;
        let rollout_maps = rollout(
            &attentions,
            prefix,
            &RolloutOptions {
                head_fusion: options.head_fusion,
                discard_ratio: options.discard_ratio,
                start_token: 0,
            },
        )?;
        let chefer_maps = chefer(&attentions, &gradients, prefix)?;
        let grad_maps = grad_rollout(&attentions, &gradients, prefix, options.discard_ratio)?;
        let logit_lens = self.logit_lens(&trace, class, options.top_k)?;

        let batch = options.batch_size.max(1);
        let occlusion = options
            .occlusion
            .then(|| self.occlusion(&embedded, class, batch))
            .transpose()?;
        let head_effects = options
            .head_effects
            .then(|| self.head_effects(&embedded, class, batch))
            .transpose()?;
        let faithfulness = if options.faithfulness {
            let last = |maps: &[Vec<f32>]| maps.last().map(|m| order_by_map(m));
            let mut orders: Vec<(String, Vec<usize>)> = [
                ("rollout", last(&rollout_maps)),
                ("chefer", last(&chefer_maps)),
                ("grad_rollout", last(&grad_maps)),
                ("occlusion", occlusion.as_deref().map(order_by_map)),
            ]
            .into_iter()
            .filter_map(|(name, order)| order.map(|o| (name.to_string(), o)))
            .collect();
            orders.push((
                "random".to_string(),
                random_order(embedded.patches(), options.random_seed),
            ));
            Some(self.faithfulness(&embedded, class, &orders, options.curve_steps, batch)?)
        } else {
            None
        };

        Ok(Explanation {
            class,
            label: self.labels[class].clone(),
            logit: trace.logits[class],
            prob: probs[class],
            predictions,
            patch_grid: embedded.patch_grid,
            prefix_tokens: prefix,
            rollout: rollout_maps,
            chefer: chefer_maps,
            grad_rollout: grad_maps,
            logit_lens,
            occlusion,
            head_effects,
            faithfulness,
            random_seed: options.random_seed,
        })
    }

    /// The traced pass's attention probabilities as [`LayerAttention`]s, in layer order.
    pub fn attentions(&self, trace: &Trace) -> Result<Vec<LayerAttention>, ExplainError> {
        (0..self.config.num_layers)
            .map(|l| {
                let data = trace
                    .attention(l)
                    .ok_or_else(|| ExplainError::Model(format!("layer {l} was not traced")))?;
                Ok(LayerAttention::new(
                    self.config.num_heads,
                    trace.tokens(),
                    data.to_vec(),
                )?)
            })
            .collect()
    }
}
