//! Pure functions on one image's inference: attention rollout, per-query
//! attention, softmax and top-k.
//!
//! Everything here works on plain slices (no tensors), so it runs the same
//! natively and in wasm32.
//!
//! Token layout: every attention matrix is over `tokens = prefix_tokens +
//! patches` tokens, the prefix (CLS, and for distilled DeiT the distillation
//! token) first, then the patches in row-major patch-grid order. Maps returned
//! here cover the patch tokens only, in that order.

mod localization;
mod rollout;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use localization::{localize, Localization, PixelMask};
pub use rollout::rollout;

/// What went wrong in an analysis function.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum AnalysisError {
    /// A layer with no heads or no tokens.
    #[error(
        "attention needs at least one head and one token, found {heads} heads and {tokens} tokens"
    )]
    EmptyAttention { heads: usize, tokens: usize },
    /// `data.len()` is not `heads * tokens * tokens`.
    #[error(
        "wrong attention data length for {heads} heads of {tokens}x{tokens} tokens: \
         expected {expected} values, found {found}"
    )]
    DataLength {
        heads: usize,
        tokens: usize,
        expected: usize,
        found: usize,
    },
    /// An attention value that is NaN, infinite or negative.
    #[error("attention value {value} at flat index {index} is not a finite non-negative number")]
    InvalidValue { index: usize, value: f32 },
    /// A head index `>= heads`.
    #[error("head {head} out of range: the layer has {heads} heads")]
    HeadOutOfRange { head: usize, heads: usize },
    /// A query token index `>= tokens`.
    #[error("query token {query} out of range: the layer has {tokens} tokens")]
    QueryOutOfRange { query: usize, tokens: usize },
    /// A rollout `start_token >= tokens`.
    #[error("start token {start_token} out of range: the layers have {tokens} tokens")]
    StartTokenOutOfRange { start_token: usize, tokens: usize },
    /// A discard ratio outside `[0, 1)` (or NaN).
    #[error("discard ratio {0} outside [0, 1)")]
    DiscardRatio(f32),
    /// `prefix_tokens >= tokens`: no patch tokens would be left.
    #[error("prefix_tokens ({prefix_tokens}) must be less than tokens ({tokens})")]
    PrefixTokens { prefix_tokens: usize, tokens: usize },
    /// Layers with different token counts.
    #[error(
        "layers disagree in size: layer {layer} has {found} tokens but layer 0 has {expected}"
    )]
    LayerMismatch {
        layer: usize,
        expected: usize,
        found: usize,
    },
    /// An empty list of layers.
    #[error("no layers: rollout needs at least one layer of attention")]
    NoLayers,
    /// A head-fusion name that is not one of the choices.
    #[error("unknown head fusion {0:?}: expected one of mean, max, min")]
    UnknownHeadFusion(String),
    /// A mask whose pixel count is not height × width, or smaller than the patch grid.
    #[error("mask of {height}x{width} pixels with {found} values does not fit")]
    MaskSize {
        height: usize,
        width: usize,
        found: usize,
    },
    /// A patch map whose length is not the grid's size.
    #[error("map has {found} values but the patch grid has {expected}")]
    MapLength { expected: usize, found: usize },
}

/// One image's attention probabilities for one layer.
///
/// `data` has shape `(heads, tokens, tokens)`, row-major: the value at
/// `(head, query, key)` is `data[(head * tokens + query) * tokens + key]`,
/// and each `(head, query)` row sums to 1 (up to rounding; not checked).
#[derive(Clone, Debug, PartialEq)]
pub struct LayerAttention {
    pub heads: usize,
    pub tokens: usize,
    pub data: Vec<f32>,
}

impl LayerAttention {
    /// Wraps `data` of shape `(heads, tokens, tokens)`.
    ///
    /// Fails if `heads` or `tokens` is 0, if the length is not
    /// `heads * tokens * tokens`, or if a value is NaN, infinite or negative.
    pub fn new(heads: usize, tokens: usize, data: Vec<f32>) -> Result<Self, AnalysisError> {
        if heads == 0 || tokens == 0 {
            return Err(AnalysisError::EmptyAttention { heads, tokens });
        }
        let expected = heads.saturating_mul(tokens).saturating_mul(tokens);
        if data.len() != expected {
            return Err(AnalysisError::DataLength {
                heads,
                tokens,
                expected,
                found: data.len(),
            });
        }
        // A branch-free pass first (it vectorizes); look for the culprit only on failure.
        let valid = |v: &f32| v.is_finite() & (*v >= 0.0);
        if !data.iter().fold(true, |all, v| all & valid(v)) {
            if let Some((index, &value)) = data.iter().enumerate().find(|(_, v)| !valid(v)) {
                return Err(AnalysisError::InvalidValue { index, value });
            }
        }
        Ok(Self {
            heads,
            tokens,
            data,
        })
    }

    /// The attention of `query` to `key` in `head`.
    ///
    /// # Panics
    /// If `head >= heads`, `query >= tokens` or `key >= tokens`, like slice
    /// indexing.
    pub fn get(&self, head: usize, query: usize, key: usize) -> f32 {
        assert!(
            key < self.tokens,
            "key {key} out of range ({} tokens)",
            self.tokens
        );
        self.row(head, query)[key]
    }

    /// The attention row of `query` in `head`: `tokens` values over the keys.
    ///
    /// # Panics
    /// If `head >= heads` or `query >= tokens`, like slice indexing.
    pub fn row(&self, head: usize, query: usize) -> &[f32] {
        assert!(
            head < self.heads,
            "head {head} out of range ({} heads)",
            self.heads
        );
        assert!(
            query < self.tokens,
            "query {query} out of range ({} tokens)",
            self.tokens
        );
        let start = (head * self.tokens + query) * self.tokens;
        &self.data[start..start + self.tokens]
    }

    /// All heads' `(tokens, tokens)` planes, one slice of `tokens²` values each.
    fn head_planes(&self) -> impl Iterator<Item = &[f32]> {
        self.data.chunks_exact(self.tokens * self.tokens)
    }
}

/// How to fuse the heads of a layer into one attention matrix: the
/// element-wise mean, maximum or minimum over heads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HeadFusion {
    #[default]
    Mean,
    Max,
    Min,
}

impl HeadFusion {
    /// Every fusion, in display order.
    pub const ALL: [HeadFusion; 3] = [HeadFusion::Mean, HeadFusion::Max, HeadFusion::Min];

    /// The lowercase name: `"mean"`, `"max"` or `"min"`.
    pub fn name(self) -> &'static str {
        match self {
            HeadFusion::Mean => "mean",
            HeadFusion::Max => "max",
            HeadFusion::Min => "min",
        }
    }

    /// Fuses equally long per-head rows (or planes) element-wise into `out`
    /// (resized to their length), in f64.
    fn fuse<'a>(self, mut heads: impl Iterator<Item = &'a [f32]>, out: &mut Vec<f64>) {
        out.clear();
        let Some(first) = heads.next() else {
            return;
        };
        out.extend(first.iter().map(|&v| f64::from(v)));
        let mut count = 1usize;
        for head in heads {
            count += 1;
            let pairs = out.iter_mut().zip(head);
            match self {
                HeadFusion::Mean => pairs.for_each(|(o, &v)| *o += f64::from(v)),
                HeadFusion::Max => pairs.for_each(|(o, &v)| *o = o.max(f64::from(v))),
                HeadFusion::Min => pairs.for_each(|(o, &v)| *o = o.min(f64::from(v))),
            }
        }
        if self == HeadFusion::Mean && count > 1 {
            let count = count as f64;
            out.iter_mut().for_each(|o| *o /= count);
        }
    }
}

impl fmt::Display for HeadFusion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for HeadFusion {
    type Err = AnalysisError;

    /// Parses `"mean"`, `"max"` or `"min"` (ASCII case-insensitive, surrounding
    /// whitespace ignored).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let trimmed = s.trim();
        HeadFusion::ALL
            .into_iter()
            .find(|fusion| fusion.name().eq_ignore_ascii_case(trimmed))
            .ok_or_else(|| AnalysisError::UnknownHeadFusion(s.to_owned()))
    }
}

/// Options of [`rollout`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RolloutOptions {
    /// How heads are fused in each layer.
    pub head_fusion: HeadFusion,
    /// Fraction in `[0, 1)` of the smallest fused attention entries zeroed per
    /// layer (entry (0,0) is always kept).
    pub discard_ratio: f32,
    /// The token whose rollout row is read: 0 = CLS, 1 = distillation token
    /// of a distilled DeiT.
    pub start_token: usize,
}

impl Default for RolloutOptions {
    /// Mean fusion, no discard, read from the CLS token.
    fn default() -> Self {
        Self {
            head_fusion: HeadFusion::Mean,
            discard_ratio: 0.0,
            start_token: 0,
        }
    }
}

/// Raw attention of token `query` in one layer, over the patch columns only.
///
/// `head` picks one head; `None` fuses all heads with `fusion` (ignored when
/// `head` is `Some`). Returns `tokens - prefix_tokens` values: the row
/// `query` restricted to key columns `prefix_tokens..tokens`, not
/// renormalized.
pub fn query_attention(
    layer: &LayerAttention,
    head: Option<usize>,
    fusion: HeadFusion,
    query: usize,
    prefix_tokens: usize,
) -> Result<Vec<f32>, AnalysisError> {
    let tokens = layer.tokens;
    if query >= tokens {
        return Err(AnalysisError::QueryOutOfRange { query, tokens });
    }
    if prefix_tokens >= tokens {
        return Err(AnalysisError::PrefixTokens {
            prefix_tokens,
            tokens,
        });
    }
    match head {
        Some(head) => {
            if head >= layer.heads {
                return Err(AnalysisError::HeadOutOfRange {
                    head,
                    heads: layer.heads,
                });
            }
            Ok(layer.row(head, query)[prefix_tokens..].to_vec())
        }
        None => {
            let mut fused = Vec::with_capacity(tokens);
            fusion.fuse((0..layer.heads).map(|h| layer.row(h, query)), &mut fused);
            Ok(fused[prefix_tokens..].iter().map(|&v| v as f32).collect())
        }
    }
}

/// Softmax of `logits`, computed in f64 after subtracting the maximum (so
/// large logits do not overflow), returned as f32.
///
/// The result sums to 1 up to f32 rounding; an empty input gives an empty
/// output. Logits are expected to be finite: a NaN or `+inf` logit, or all
/// logits `-inf`, gives NaN outputs.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits
        .iter()
        .fold(f64::NEG_INFINITY, |m, &v| m.max(f64::from(v)));
    let exps: Vec<f64> = logits.iter().map(|&v| (f64::from(v) - max).exp()).collect();
    let sum: f64 = exps.iter().sum();
    exps.iter().map(|&e| (e / sum) as f32).collect()
}

/// One class of a [`top_k`] answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// Class index into the logits.
    pub index: usize,
    /// Human-readable class name.
    pub label: String,
    /// Probability of the class.
    pub prob: f32,
}

/// The `k` most probable classes, most probable first.
///
/// Ties are broken by lower class index; NaN probabilities rank last.
/// `labels[i]` names class `i`; classes past the end of `labels` are named
/// `"class {i}"`. Returns `min(k, probs.len())` predictions.
pub fn top_k(probs: &[f32], labels: &[String], k: usize) -> Vec<Prediction> {
    let rank_value = |i: usize| {
        let p = probs[i];
        if p.is_nan() {
            f32::NEG_INFINITY
        } else {
            p
        }
    };
    let mut order: Vec<usize> = (0..probs.len()).collect();
    order.sort_by(|&a, &b| {
        rank_value(b)
            .partial_cmp(&rank_value(a))
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(a.cmp(&b))
    });
    order
        .into_iter()
        .take(k)
        .map(|index| Prediction {
            index,
            label: labels
                .get(index)
                .cloned()
                .unwrap_or_else(|| format!("class {index}")),
            prob: probs[index],
        })
        .collect()
}
