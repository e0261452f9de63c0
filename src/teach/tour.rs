//! The forward-pass tour: every step of one image's forward pass, with its shape and values.

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use super::distance::mean_attention_distance;
use super::{TeachError, STEP_VALUES};
use crate::analysis::{softmax, LayerAttention};
use crate::model::{ModelError, Stage, VisionTransformer};

/// One step of the forward pass with the values it produced for the current image.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TourStep {
    /// Stable name: `pixels`, `patches`, `patch_embedding`, `embeddings`,
    /// `layer{l}.{norm1,attention,attention_residual,norm2,mlp,mlp_residual}` (l from 1),
    /// `final_norm`, `logits`, `probabilities`.
    pub key: String,
    /// The computation shown; the key without the layer.
    pub stage: TourStage,
    pub title: String,
    pub explanation: String,
    /// Without the batch dimension.
    pub shape: Vec<usize>,
    /// The encoder layer (from 1) the step belongs to.
    pub layer: Option<usize>,
    /// Which row `values` and `row_norm` describe ("CLS token", "patch 0", "red channel").
    pub row_label: String,
    /// The first values of that row.
    pub values: Vec<f32>,
    /// L2 norm of that row.
    pub row_norm: f32,
    /// Mean L2 norm over all rows (tokens, patches or channels).
    pub mean_row_norm: f32,
    pub min: f32,
    pub max: f32,
}

/// What one image does in the model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImageStats {
    pub grid_rows: usize,
    pub grid_cols: usize,
    pub prefix_tokens: usize,
    pub steps: Vec<TourStep>,
    /// The linear patch embedding of every patch, (patches, hidden), row-major.
    pub patch_embeddings: Vec<f32>,
    pub hidden_size: usize,
    /// Mean attention distance in pixels, (layers, heads).
    pub attention_distance: Vec<Vec<f32>>,
    /// The CLS token's attention over the patches, (layers, heads, patches): its rows without
    /// the prefix-token columns, not renormalized.
    pub cls_attention: Vec<Vec<Vec<f32>>>,
}

/// Which computation a [`TourStep`] shows: the forward pass's [`Stage`]s, with the branches
/// of a block (attention, MLP) and the final softmax as steps of their own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TourStage {
    Pixels,
    Patches,
    PatchEmbedding,
    Embeddings,
    Norm1,
    Attention,
    AttentionResidual,
    Norm2,
    Mlp,
    MlpResidual,
    FinalNorm,
    Logits,
    Probabilities,
}

impl TourStage {
    /// The stage's part of a step's stable key (`layer{l}.` goes in front inside a block).
    pub fn name(self) -> &'static str {
        match self {
            TourStage::Pixels => "pixels",
            TourStage::Patches => "patches",
            TourStage::PatchEmbedding => "patch_embedding",
            TourStage::Embeddings => "embeddings",
            TourStage::Norm1 => "norm1",
            TourStage::Attention => "attention",
            TourStage::AttentionResidual => "attention_residual",
            TourStage::Norm2 => "norm2",
            TourStage::Mlp => "mlp",
            TourStage::MlpResidual => "mlp_residual",
            TourStage::FinalNorm => "final_norm",
            TourStage::Logits => "logits",
            TourStage::Probabilities => "probabilities",
        }
    }

    /// The step's title and its one-sentence explanation.
    pub fn text(self) -> (&'static str, &'static str) {
        match self {
            TourStage::Pixels => ("Image", "The crop, resized and normalized per channel: three planes of numbers are all the model sees."),
            TourStage::Patches => ("Patches", "The image cut into non-overlapping P×P squares, each flattened to one vector of C·P·P pixel values."),
            TourStage::PatchEmbedding => ("Linear embedding", "One shared linear map (a stride-P convolution) turns every patch into a token of the model's width."),
            TourStage::Embeddings => ("+ CLS + position", "A learned CLS token is put in front, and a learned position embedding is added to every token."),
            TourStage::Norm1 => ("LayerNorm", "Each token is normalized to zero mean and unit variance, then scaled and shifted."),
            TourStage::Attention => ("Multi-head self-attention", "Every token mixes in the values of the tokens it attends to, separately in each head."),
            TourStage::AttentionResidual => ("+ residual", "The attention output is added to the block's input: the residual stream carries information forward."),
            TourStage::Norm2 => ("LayerNorm", "The residual stream is normalized again before the MLP."),
            TourStage::Mlp => ("MLP", "Two linear layers with a GELU in between process each token on its own (width ×4, then back)."),
            TourStage::MlpResidual => ("+ residual", "The MLP output is added back: this is the block's output and the next block's input."),
            TourStage::FinalNorm => ("Final LayerNorm", "The CLS token's final state is normalized; only the prefix tokens reach the classifier."),
            TourStage::Logits => ("Classifier head", "A linear layer maps the normalized CLS token to one score (logit) per class."),
            TourStage::Probabilities => ("Softmax", "Softmax turns the logits into probabilities that sum to 1."),
        }
    }

    /// The step's stable key: the stage's name, inside a block prefixed by `layer{l}.`.
    pub fn key(self, layer: Option<usize>) -> String {
        match layer {
            Some(l) => format!("layer{l}.{}", self.name()),
            None => self.name().to_string(),
        }
    }
}

/// Summarizes a tensor whose last dimensions form `rows × row_len` values.
fn summarize(
    stage: TourStage,
    layer: Option<usize>,
    shape: Vec<usize>,
    data: &[f32],
    row_len: usize,
    row_label: &str,
) -> TourStep {
    let (title, explanation) = stage.text();
    let rows: Vec<&[f32]> = data.chunks_exact(row_len.max(1)).collect();
    let norm = |r: &[f32]| {
        r.iter()
            .map(|&v| f64::from(v) * f64::from(v))
            .sum::<f64>()
            .sqrt()
    };
    let mean_row_norm = rows.iter().map(|r| norm(r)).sum::<f64>() / rows.len().max(1) as f64;
    let first = rows.first().copied().unwrap_or(&[]);
    TourStep {
        key: stage.key(layer),
        stage,
        title: match layer {
            Some(l) => format!("Layer {l} · {title}"),
            None => title.to_string(),
        },
        explanation: explanation.to_string(),
        shape,
        layer,
        row_label: row_label.to_string(),
        values: first.iter().take(STEP_VALUES).copied().collect(),
        row_norm: norm(first) as f32,
        mean_row_norm: mean_row_norm as f32,
        min: data.iter().copied().fold(f32::INFINITY, f32::min),
        max: data.iter().copied().fold(f32::NEG_INFINITY, f32::max),
    }
}

/// Runs one image (`pixels`: (1, channels, height, width), normalized) through `model` on the
/// CPU and records every step of the forward pass.
pub fn inspect_image(model: &VisionTransformer, pixels: &Tensor) -> Result<ImageStats, TeachError> {
    let (batch, _, height, width) = pixels.dims4()?;
    if batch != 1 {
        return Err(TeachError::Shape {
            what: "the input",
            shape: pixels.dims().to_vec(),
            expected: "one image, (1, channels, height, width)".into(),
        });
    }
    let cfg = model.config().clone();
    let grid = model.patch_grid(height, width);
    let prefix = cfg.prefix_tokens();
    let mut steps = Vec::new();
    let mut patch_embeddings = Vec::new();
    let mut stream: Option<Tensor> = None;
    let mut logits = Vec::new();
    let mut record = |stage: Stage, t: &Tensor| -> candle_core::Result<()> {
        let dims = t.dims()[1..].to_vec();
        let row_len = *dims.last().unwrap_or(&1);
        let data = t.flatten_all()?.to_vec1::<f32>()?;
        let token_label = "CLS token";
        let step = match stage {
            Stage::Pixels => {
                let plane = dims.iter().skip(1).product::<usize>();
                let label = "red channel (top-left pixels first)";
                summarize(TourStage::Pixels, None, dims, &data, plane, label)
            }
            Stage::Patches => {
                let label = "patch 0 (top-left; red values first)";
                summarize(TourStage::Patches, None, dims, &data, row_len, label)
            }
            Stage::PatchEmbedding => {
                let label = "patch 0 (top-left)";
                let step = summarize(TourStage::PatchEmbedding, None, dims, &data, row_len, label);
                patch_embeddings = data;
                step
            }
            Stage::Embeddings => {
                stream = Some(t.clone());
                summarize(
                    TourStage::Embeddings,
                    None,
                    dims,
                    &data,
                    row_len,
                    token_label,
                )
            }
            Stage::Norm1(l) => summarize(
                TourStage::Norm1,
                Some(l + 1),
                dims,
                &data,
                row_len,
                token_label,
            ),
            Stage::Norm2(l) => summarize(
                TourStage::Norm2,
                Some(l + 1),
                dims,
                &data,
                row_len,
                token_label,
            ),
            Stage::AttentionResidual(l) | Stage::MlpResidual(l) => {
                let (branch, sum) = if matches!(stage, Stage::AttentionResidual(_)) {
                    (TourStage::Attention, TourStage::AttentionResidual)
                } else {
                    (TourStage::Mlp, TourStage::MlpResidual)
                };
                // The branch's own output is what it added to the residual stream.
                if let Some(before) = &stream {
                    let delta = (t - before)?.flatten_all()?.to_vec1::<f32>()?;
                    let layer = Some(l + 1);
                    steps.push(summarize(
                        branch,
                        layer,
                        dims.clone(),
                        &delta,
                        row_len,
                        token_label,
                    ));
                }
                stream = Some(t.clone());
                summarize(sum, Some(l + 1), dims, &data, row_len, token_label)
            }
            Stage::FinalNorm => summarize(
                TourStage::FinalNorm,
                None,
                dims,
                &data,
                row_len,
                token_label,
            ),
            Stage::Logits => {
                let label = "class scores (class 0 first)";
                let step = summarize(TourStage::Logits, None, dims, &data, row_len, label);
                logits = data;
                step
            }
        };
        steps.push(step);
        Ok(())
    };
    let (_, attentions) = model.forward_recorded(pixels, &mut record)?;
    let probs = softmax(&logits);
    steps.push(summarize(
        TourStage::Probabilities,
        None,
        vec![probs.len()],
        &probs,
        probs.len(),
        "class probabilities (class 0 first)",
    ));
    let mut attention_distance = Vec::with_capacity(attentions.len());
    let mut cls_attention = Vec::with_capacity(attentions.len());
    for layer in &attentions {
        let (_, heads, tokens, _) = layer.dims4()?;
        let data = layer.flatten_all()?.to_vec1::<f32>()?;
        let layer = LayerAttention::new(heads, tokens, data).map_err(|e| {
            TeachError::Model(ModelError::Input(format!("attention is not usable: {e}")))
        })?;
        attention_distance.push(mean_attention_distance(
            &layer,
            grid,
            prefix,
            cfg.patch_size,
        )?);
        cls_attention.push(
            (0..heads)
                .map(|h| layer.row(h, 0)[prefix..].to_vec())
                .collect(),
        );
    }
    Ok(ImageStats {
        grid_rows: grid.0,
        grid_cols: grid.1,
        prefix_tokens: prefix,
        steps,
        patch_embeddings,
        hidden_size: cfg.hidden_size,
        attention_distance,
        cls_attention,
    })
}
