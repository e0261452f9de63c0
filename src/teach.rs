//! Teaching statistics, computed from the loaded checkpoint and one image's forward pass:
//!
//! - what the model learned, as in Fig. 7 of the ViT paper (Dosovitskiy et al. 2020):
//!   the principal components of the patch-embedding filters ([`filter_pca`]) and the
//!   cosine similarity of the position embeddings ([`position_similarity`]);
//! - what it does with an image: the mean attention distance of every head
//!   ([`mean_attention_distance`]) and the forward pass as a list of steps with shapes and
//!   real values ([`inspect_image`]).
//!
//! The app's teaching views and `vit-lens teach` both show a [`Teaching`], so the numbers on
//! the page and on the command line are the same computation.

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::analysis::{softmax, LayerAttention};
use crate::checkpoint::{Checkpoint, WeightTensor};
use crate::model::{ModelError, Stage, VisionTransformer};

/// How many principal components of the patch-embedding filters are reported (the paper
/// shows 28).
pub const FILTER_COMPONENTS: usize = 28;

/// How many values of a step's focus row are reported.
pub const STEP_VALUES: usize = 6;

#[derive(Debug, thiserror::Error)]
pub enum TeachError {
    #[error("{what} has shape {shape:?}; expected {expected}")]
    Shape {
        what: &'static str,
        shape: Vec<usize>,
        expected: String,
    },
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("tensor computation failed: {0}")]
    Candle(#[from] candle_core::Error),
}

/// The principal components of the patch-embedding filters.
///
/// Each of the `hidden` filters (channels × patch × patch weights of the patch-embedding
/// convolution) is one sample; the samples are centred (the mean filter subtracted) and the
/// components are the unit-length directions of largest variance, largest first. A component's
/// sign is arbitrary; here its largest-magnitude entry is positive.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FilterPca {
    pub channels: usize,
    pub patch_size: usize,
    /// Each `channels × patch × patch` values, channel-major like the filters.
    pub components: Vec<Vec<f32>>,
    /// The fraction of the total variance along each component.
    pub explained_variance_ratio: Vec<f32>,
}

/// `weight`: the patch-embedding convolution, (hidden, channels, patch, patch). Returns at
/// most `k` components (fewer when the filters span fewer dimensions).
pub fn filter_pca(weight: &WeightTensor, k: usize) -> Result<FilterPca, TeachError> {
    let (d, channels, patch) = match weight.shape.as_slice() {
        &[d, c, p, q]
            if p == q && d > 0 && c > 0 && p > 0 && weight.data.len() == d * c * p * q =>
        {
            (d, c, p)
        }
        other => {
            return Err(TeachError::Shape {
                what: "the patch-embedding weight",
                shape: other.to_vec(),
                expected: "(hidden, channels, patch, patch)".into(),
            })
        }
    };
    let f = channels * patch * patch;
    // Centred samples, f64: (d, f).
    let mut x: Vec<f64> = weight.data.iter().map(|&v| f64::from(v)).collect();
    for col in 0..f {
        let mean = (0..d).map(|r| x[r * f + col]).sum::<f64>() / d as f64;
        for r in 0..d {
            x[r * f + col] -= mean;
        }
    }
    let total: f64 = x.iter().map(|v| v * v).sum();
    // Eigen-decompose the smaller of the two Gram matrices.
    let (values, vectors, n) = if d <= f {
        let mut g = vec![0.0; d * d];
        for i in 0..d {
            for j in i..d {
                let dot: f64 = (0..f).map(|c| x[i * f + c] * x[j * f + c]).sum();
                g[i * d + j] = dot;
                g[j * d + i] = dot;
            }
        }
        let (values, vectors) = symmetric_eigen(g, d);
        (values, vectors, d)
    } else {
        let mut g = vec![0.0; f * f];
        for i in 0..f {
            for j in i..f {
                let dot: f64 = (0..d).map(|r| x[r * f + i] * x[r * f + j]).sum();
                g[i * f + j] = dot;
                g[j * f + i] = dot;
            }
        }
        let (values, vectors) = symmetric_eigen(g, f);
        (values, vectors, f)
    };
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| values[b].total_cmp(&values[a]));
    let mut components = Vec::new();
    let mut explained = Vec::new();
    for &i in order.iter().take(k) {
        let lambda = values[i];
        // Directions with no variance (rank-deficient filters) are not components.
        if lambda.is_nan() || lambda <= total * 1e-12 {
            break;
        }
        let mut component: Vec<f64> = if d <= f {
            // v = Xᵀu / ‖Xᵀu‖ for an eigenvector u of X·Xᵀ.
            let u: Vec<f64> = (0..d).map(|r| vectors[r * n + i]).collect();
            (0..f)
                .map(|c| (0..d).map(|r| x[r * f + c] * u[r]).sum())
                .collect()
        } else {
            (0..f).map(|c| vectors[c * n + i]).collect()
        };
        let norm = component.iter().map(|v| v * v).sum::<f64>().sqrt();
        let peak = component
            .iter()
            .copied()
            .max_by(|a, b| a.abs().total_cmp(&b.abs()))
            .unwrap_or(0.0);
        let sign = if peak < 0.0 { -1.0 } else { 1.0 };
        for v in &mut component {
            *v *= sign / norm;
        }
        components.push(component.into_iter().map(|v| v as f32).collect());
        explained.push((lambda / total) as f32);
    }
    Ok(FilterPca {
        channels,
        patch_size: patch,
        components,
        explained_variance_ratio: explained,
    })
}

/// Eigenvalues and eigenvectors of a symmetric `n × n` matrix (row-major) by cyclic Jacobi
/// rotations. Returns (values, vectors) with eigenvector `i` in column `i` of `vectors`.
fn symmetric_eigen(mut a: Vec<f64>, n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut v = vec![0.0; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    let scale: f64 = a.iter().map(|x| x * x).sum::<f64>().max(f64::MIN_POSITIVE);
    for _sweep in 0..64 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * n + j] * a[i * n + j])
            .sum();
        if off <= scale * 1e-28 {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq.abs() <= f64::MIN_POSITIVE {
                    continue;
                }
                let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (akp, akq) = (a[k * n + p], a[k * n + q]);
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[p * n + k], a[q * n + k]);
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (v[k * n + p], v[k * n + q]);
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..n).map(|i| a[i * n + i]).collect(), v)
}

/// Cosine similarity between the position embeddings of every pair of patches, at the
/// checkpoint's native grid.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PositionSimilarity {
    pub grid_rows: usize,
    pub grid_cols: usize,
    /// (patches, patches), row-major; patches in raster order.
    pub values: Vec<f32>,
}

/// `pos_embed`: (tokens, hidden) with `prefix_tokens` rows before the patches, which lie on a
/// `grid`.
pub fn position_similarity(
    pos_embed: &WeightTensor,
    prefix_tokens: usize,
    grid: (usize, usize),
) -> Result<PositionSimilarity, TeachError> {
    let patches = grid.0 * grid.1;
    let hidden = match pos_embed.shape.as_slice() {
        &[t, h] | &[1, t, h]
            if t == prefix_tokens + patches && h > 0 && pos_embed.data.len() == t * h =>
        {
            h
        }
        other => {
            return Err(TeachError::Shape {
                what: "the position embeddings",
                shape: other.to_vec(),
                expected: format!(
                    "({} tokens, hidden) for a {}×{} grid",
                    prefix_tokens + patches,
                    grid.0,
                    grid.1
                ),
            })
        }
    };
    let rows: Vec<&[f32]> = pos_embed.data[prefix_tokens * hidden..]
        .chunks_exact(hidden)
        .collect();
    let norms: Vec<f64> = rows
        .iter()
        .map(|r| {
            r.iter()
                .map(|&v| f64::from(v) * f64::from(v))
                .sum::<f64>()
                .sqrt()
        })
        .collect();
    let mut values = vec![0.0f32; patches * patches];
    for i in 0..patches {
        for j in i..patches {
            let dot: f64 = rows[i]
                .iter()
                .zip(rows[j])
                .map(|(&a, &b)| f64::from(a) * f64::from(b))
                .sum();
            let denom = norms[i] * norms[j];
            let cos = if denom > 0.0 { dot / denom } else { 0.0 } as f32;
            values[i * patches + j] = cos;
            values[j * patches + i] = cos;
        }
    }
    Ok(PositionSimilarity {
        grid_rows: grid.0,
        grid_cols: grid.1,
        values,
    })
}

/// Mean attention distance of each head of one layer, in pixels: for every patch query, the
/// distance between patch centres weighted by its attention to the other patches (the row
/// restricted to patch keys and renormalized, so attention to the prefix tokens does not count
/// as "near"), averaged over the patch queries.
pub fn mean_attention_distance(
    layer: &LayerAttention,
    grid: (usize, usize),
    prefix_tokens: usize,
    patch_size: usize,
) -> Result<Vec<f32>, TeachError> {
    let patches = grid.0 * grid.1;
    if layer.tokens != prefix_tokens + patches || patches == 0 {
        return Err(TeachError::Shape {
            what: "the attention",
            shape: vec![layer.heads, layer.tokens, layer.tokens],
            expected: format!(
                "{} tokens ({prefix_tokens} prefix + a {}×{} grid)",
                prefix_tokens + patches,
                grid.0,
                grid.1
            ),
        });
    }
    let cols = grid.1;
    let distance: Vec<f64> = (0..patches * patches)
        .map(|ij| {
            let (i, j) = (ij / patches, ij % patches);
            let dy = (i / cols) as f64 - (j / cols) as f64;
            let dx = (i % cols) as f64 - (j % cols) as f64;
            (dx * dx + dy * dy).sqrt() * patch_size as f64
        })
        .collect();
    Ok((0..layer.heads)
        .map(|h| {
            let mut sum = 0.0;
            for q in 0..patches {
                let row = &layer.row(h, prefix_tokens + q)[prefix_tokens..];
                let mass: f64 = row.iter().map(|&a| f64::from(a)).sum();
                if mass > 0.0 {
                    let weighted: f64 = row
                        .iter()
                        .zip(&distance[q * patches..(q + 1) * patches])
                        .map(|(&a, &dist)| f64::from(a) * dist)
                        .sum();
                    sum += weighted / mass;
                }
            }
            (sum / patches as f64) as f32
        })
        .collect())
}

/// The model card: geometry and size of the loaded checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    pub architecture: String,
    /// "transformers" or "timm".
    pub layout: String,
    pub stored_dtype: String,
    pub image_size: usize,
    pub patch_size: usize,
    pub channels: usize,
    pub grid: usize,
    pub patches: usize,
    pub prefix_tokens: usize,
    pub tokens: usize,
    pub layers: usize,
    pub heads: usize,
    pub head_dim: usize,
    pub hidden_size: usize,
    pub mlp_size: usize,
    pub classes: usize,
    pub parameters: usize,
    /// Floating-point operations per image at the native resolution (2 per multiply-add).
    pub flops: u64,
}

impl ModelCard {
    pub fn of(checkpoint: &Checkpoint) -> Self {
        let c = &checkpoint.config;
        Self {
            architecture: checkpoint.architecture.clone(),
            layout: checkpoint.layout.to_string(),
            stored_dtype: checkpoint.stored_dtype.to_string(),
            image_size: c.image_size,
            patch_size: c.patch_size,
            channels: c.num_channels,
            grid: c.patch_grid(),
            patches: c.patch_grid() * c.patch_grid(),
            prefix_tokens: c.prefix_tokens(),
            tokens: c.tokens(),
            layers: c.num_layers,
            heads: c.num_heads,
            head_dim: c.head_dim(),
            hidden_size: c.hidden_size,
            mlp_size: c.intermediate_size,
            classes: c.num_classes,
            parameters: checkpoint.parameter_count(),
            flops: 2 * c.macs(),
        }
    }
}

/// What the checkpoint itself shows, independent of any image.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelStats {
    pub card: ModelCard,
    pub filter_pca: FilterPca,
    pub position_similarity: PositionSimilarity,
}

/// Card, filter components and position similarity of a checkpoint.
pub fn model_stats(checkpoint: &Checkpoint) -> Result<ModelStats, TeachError> {
    let c = &checkpoint.config;
    let w = &checkpoint.weights;
    let filters = WeightTensor::new(
        vec![c.hidden_size, c.num_channels, c.patch_size, c.patch_size],
        w.patch_embed.weight.data.clone(),
    );
    Ok(ModelStats {
        card: ModelCard::of(checkpoint),
        filter_pca: filter_pca(&filters, FILTER_COMPONENTS)?,
        position_similarity: position_similarity(
            &w.pos_embed,
            c.prefix_tokens(),
            (c.patch_grid(), c.patch_grid()),
        )?,
    })
}

/// One step of the forward pass with the values it produced for the current image.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TourStep {
    /// Stable name: `pixels`, `patches`, `patch_embedding`, `embeddings`,
    /// `layer{l}.{norm1,attention,attention_residual,norm2,mlp,mlp_residual}` (l from 1),
    /// `final_norm`, `logits`, `probabilities`.
    pub key: String,
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

/// Everything the teaching views show.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Teaching {
    pub model: ModelStats,
    pub image: Option<ImageStats>,
}

fn step_text(stage: &str) -> (&'static str, &'static str) {
    match stage {
        "pixels" => ("Image", "The crop, resized and normalized per channel: three planes of numbers are all the model sees."),
        "patches" => ("Patches", "The image cut into non-overlapping P×P squares, each flattened to one vector of C·P·P pixel values."),
        "patch_embedding" => ("Linear embedding", "One shared linear map (a stride-P convolution) turns every patch into a token of the model's width."),
        "embeddings" => ("+ CLS + position", "A learned CLS token is put in front, and a learned position embedding is added to every token."),
        "norm1" => ("LayerNorm", "Each token is normalized to zero mean and unit variance, then scaled and shifted."),
        "attention" => ("Multi-head self-attention", "Every token mixes in the values of the tokens it attends to, separately in each head."),
        "attention_residual" => ("+ residual", "The attention output is added to the block's input: the residual stream carries information forward."),
        "norm2" => ("LayerNorm", "The residual stream is normalized again before the MLP."),
        "mlp" => ("MLP", "Two linear layers with a GELU in between process each token on its own (width ×4, then back)."),
        "mlp_residual" => ("+ residual", "The MLP output is added back: this is the block's output and the next block's input."),
        "final_norm" => ("Final LayerNorm", "The CLS token's final state is normalized; only the prefix tokens reach the classifier."),
        "logits" => ("Classifier head", "A linear layer maps the normalized CLS token to one score (logit) per class."),
        _ => ("Softmax", "Softmax turns the logits into probabilities that sum to 1."),
    }
}

/// Summarizes a tensor whose last dimensions form `rows × row_len` values.
fn summarize(
    key: String,
    stage: &str,
    layer: Option<usize>,
    shape: Vec<usize>,
    data: &[f32],
    row_len: usize,
    row_label: &str,
) -> TourStep {
    let (title, explanation) = step_text(stage);
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
        key,
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
        match stage {
            Stage::Pixels => {
                let plane = dims.iter().skip(1).product::<usize>();
                steps.push(summarize(
                    "pixels".into(),
                    "pixels",
                    None,
                    dims,
                    &data,
                    plane,
                    "red channel (top-left pixels first)",
                ));
            }
            Stage::Patches => steps.push(summarize(
                "patches".into(),
                "patches",
                None,
                dims,
                &data,
                row_len,
                "patch 0 (top-left; red values first)",
            )),
            Stage::PatchEmbedding => {
                steps.push(summarize(
                    "patch_embedding".into(),
                    "patch_embedding",
                    None,
                    dims,
                    &data,
                    row_len,
                    "patch 0 (top-left)",
                ));
                patch_embeddings = data;
            }
            Stage::Embeddings => {
                steps.push(summarize(
                    "embeddings".into(),
                    "embeddings",
                    None,
                    dims,
                    &data,
                    row_len,
                    token_label,
                ));
                stream = Some(t.clone());
            }
            Stage::Norm1(l) | Stage::Norm2(l) => {
                let name = if matches!(stage, Stage::Norm1(_)) {
                    "norm1"
                } else {
                    "norm2"
                };
                steps.push(summarize(
                    format!("layer{}.{name}", l + 1),
                    name,
                    Some(l + 1),
                    dims,
                    &data,
                    row_len,
                    token_label,
                ));
            }
            Stage::AttentionResidual(l) | Stage::MlpResidual(l) => {
                let (branch, sum) = if matches!(stage, Stage::AttentionResidual(_)) {
                    ("attention", "attention_residual")
                } else {
                    ("mlp", "mlp_residual")
                };
                // The branch's own output is what it added to the residual stream.
                if let Some(before) = &stream {
                    let delta = (t - before)?.flatten_all()?.to_vec1::<f32>()?;
                    steps.push(summarize(
                        format!("layer{}.{branch}", l + 1),
                        branch,
                        Some(l + 1),
                        dims.clone(),
                        &delta,
                        row_len,
                        token_label,
                    ));
                }
                steps.push(summarize(
                    format!("layer{}.{sum}", l + 1),
                    sum,
                    Some(l + 1),
                    dims,
                    &data,
                    row_len,
                    token_label,
                ));
                stream = Some(t.clone());
            }
            Stage::FinalNorm => steps.push(summarize(
                "final_norm".into(),
                "final_norm",
                None,
                dims,
                &data,
                row_len,
                token_label,
            )),
            Stage::Logits => {
                steps.push(summarize(
                    "logits".into(),
                    "logits",
                    None,
                    dims,
                    &data,
                    row_len,
                    "class scores (class 0 first)",
                ));
                logits = data;
            }
        }
        Ok(())
    };
    let (_, attentions) = model.forward_recorded(pixels, &mut record)?;
    let probs = softmax(&logits);
    steps.push(summarize(
        "probabilities".into(),
        "probabilities",
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

/// Model statistics, and the image's when `pixels` is given: what `vit-lens teach` prints and
/// the app's teaching views show.
pub fn teaching(
    checkpoint: &Checkpoint,
    model: &VisionTransformer,
    pixels: Option<&Tensor>,
) -> Result<Teaching, TeachError> {
    Ok(Teaching {
        model: model_stats(checkpoint)?,
        image: pixels.map(|p| inspect_image(model, p)).transpose()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jacobi_diagonalizes_a_known_matrix() {
        // Eigenvalues of [[2,1,0],[1,2,1],[0,1,2]] are 2-√2, 2, 2+√2.
        let (mut values, vectors) =
            symmetric_eigen(vec![2.0, 1.0, 0.0, 1.0, 2.0, 1.0, 0.0, 1.0, 2.0], 3);
        let a = [[2.0, 1.0, 0.0], [1.0, 2.0, 1.0], [0.0, 1.0, 2.0]];
        for i in 0..3 {
            // A·v = λ·v for every returned pair.
            for r in 0..3 {
                let av: f64 = (0..3).map(|c| a[r][c] * vectors[c * 3 + i]).sum();
                assert!((av - values[i] * vectors[r * 3 + i]).abs() < 1e-12);
            }
        }
        values.sort_by(f64::total_cmp);
        let s = 2f64.sqrt();
        for (got, want) in values.iter().zip([2.0 - s, 2.0, 2.0 + s]) {
            assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        }
    }

    #[test]
    fn distance_of_uniform_and_local_attention() {
        // 2×2 grid, no prefix: a head attending only to itself has distance 0; a uniform head
        // averages 0, p, p and p√2 over the keys of every query.
        let p = 16;
        let mut data = vec![0.0f32; 2 * 16];
        for q in 0..4 {
            data[q * 4 + q] = 1.0;
            for k in 0..4 {
                data[16 + q * 4 + k] = 0.25;
            }
        }
        let layer = LayerAttention::new(2, 4, data).unwrap();
        let d = mean_attention_distance(&layer, (2, 2), 0, p).unwrap();
        assert_eq!(d[0], 0.0);
        let want = (2.0 * 16.0 + 16.0 * 2f32.sqrt()) / 4.0;
        assert!((d[1] - want).abs() < 1e-4, "{} vs {want}", d[1]);
        assert!(mean_attention_distance(&layer, (3, 2), 0, p).is_err());
    }

    #[test]
    fn rejects_bad_shapes() {
        let w = WeightTensor::new(vec![4, 3, 2], vec![0.0; 24]);
        assert!(filter_pca(&w, 3).is_err());
        let pos = WeightTensor::new(vec![5, 2], vec![1.0; 10]);
        assert!(position_similarity(&pos, 1, (2, 2)).is_ok());
        assert!(position_similarity(&pos, 0, (2, 2)).is_err());
    }
}
