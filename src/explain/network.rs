//! The ViT / DeiT forward pass that explanations run on: read straight from a [`Checkpoint`],
//! batched over sequences of any subset of an image's tokens (each keeps its own position
//! embedding), with a per-head gain on the attention context before the output projection
//! (0 knocks a head out), and, for one image, a tape of the activations the backward pass
//! needs.
//!
//! It computes what transformers' `ViTForImageClassification` / `DeiTForImageClassification*`
//! and timm's `VisionTransformer[Distilled]` compute in eval mode (pre-norm blocks, exact or
//! tanh GELU, logits from CLS — averaged with the distillation head's for distilled DeiT), at
//! the checkpoint's native resolution.

use super::ops::{layer_norm, matmul, softmax_rows, Gelu};
use super::ExplainError;
use crate::checkpoint::{Activation, Checkpoint, Classifier, Linear, ModelConfig, Norm};
use candle_core::{Device, Tensor};

/// A linear layer `y = x·Wᵀ + b`: `weight` (out, in) as PyTorch stores it, `bias` (out,).
#[derive(Clone, Debug)]
pub(super) struct Dense {
    pub weight: Tensor,
    pub bias: Option<Vec<f32>>,
    pub out: usize,
    pub inp: usize,
}

impl Dense {
    fn new(l: &Linear, device: &Device) -> Result<Self, ExplainError> {
        Self::from_parts(
            &l.weight.data,
            l.out_features(),
            l.in_features(),
            l.bias.as_ref().map(|b| b.data.clone()),
            device,
        )
    }

    fn from_parts(
        weight: &[f32],
        out: usize,
        inp: usize,
        bias: Option<Vec<f32>>,
        device: &Device,
    ) -> Result<Self, ExplainError> {
        Ok(Self {
            weight: Tensor::from_slice(weight, (out, inp), device)?,
            bias,
            out,
            inp,
        })
    }

    /// x (rows, in) → x·Wᵀ + b (rows, out).
    pub fn forward(&self, x: Vec<f32>, rows: usize) -> Result<Vec<f32>, ExplainError> {
        let mut y = matmul(x, (1, rows, self.inp), &self.weight.t()?)?;
        if let Some(bias) = &self.bias {
            for row in y.chunks_exact_mut(self.out) {
                row.iter_mut().zip(bias).for_each(|(v, b)| *v += b);
            }
        }
        Ok(y)
    }

    /// The gradient to the input: dy (rows, out) → dy·W (rows, in).
    pub fn backward(&self, dy: Vec<f32>, rows: usize) -> Result<Vec<f32>, ExplainError> {
        matmul(dy, (1, rows, self.out), &self.weight)
    }

    /// Row `index` of W: (in,).
    pub fn weight_row(&self, index: usize) -> Result<Vec<f32>, ExplainError> {
        Ok(self.weight.get(index)?.to_vec1::<f32>()?)
    }
}

/// A LayerNorm's `gamma` and `beta`, each (hidden,).
#[derive(Clone, Debug)]
pub(super) struct Affine {
    pub gamma: Vec<f32>,
    pub beta: Vec<f32>,
}

impl From<&Norm> for Affine {
    fn from(n: &Norm) -> Self {
        Self {
            gamma: n.weight.data.clone(),
            beta: n.bias.data.clone(),
        }
    }
}

/// One pre-norm encoder block.
#[derive(Clone, Debug)]
pub(super) struct Block {
    pub norm1: Affine,
    /// (3·hidden, hidden): query rows, then key rows, then value rows.
    pub qkv: Dense,
    pub proj: Dense,
    pub norm2: Affine,
    pub fc1: Dense,
    pub fc2: Dense,
}

/// The tokens of one image before the encoder: prefix token(s) and patch embeddings, each
/// with its position embedding added.
#[derive(Clone, Debug)]
pub struct Embedded {
    /// (tokens, hidden), row-major: CLS, [distillation token,] then the patches row-major.
    pub tokens: Vec<f32>,
    /// (rows, cols) of patches.
    pub patch_grid: (usize, usize),
    pub prefix_tokens: usize,
}

impl Embedded {
    pub fn patches(&self) -> usize {
        self.patch_grid.0 * self.patch_grid.1
    }
}

/// What one layer's backward pass needs from its forward pass (one image, `T` tokens).
#[derive(Clone, Debug)]
pub(super) struct LayerTape {
    /// LayerNorm-1 output before its affine part, (T, hidden), and 1/σ per token, (T,).
    pub normed1: Vec<f32>,
    pub rstd1: Vec<f32>,
    /// Query (already scaled by 1/√head_dim), key and value, each (heads, T, head_dim).
    pub q: Tensor,
    pub k: Tensor,
    pub v: Tensor,
    /// Attention probabilities, (heads, T, T).
    pub probs: Vec<f32>,
    pub normed2: Vec<f32>,
    pub rstd2: Vec<f32>,
    /// fc1 output before the GELU, (T, mlp).
    pub pre_gelu: Vec<f32>,
}

/// One image's traced forward pass.
#[derive(Clone, Debug)]
pub struct Trace {
    /// (classes,)
    pub logits: Vec<f32>,
    /// Per layer, the prefix tokens' hidden state after the layer, (prefix_tokens, hidden):
    /// what the logit lens reads.
    pub prefix_hidden: Vec<Vec<f32>>,
    pub(super) layers: Vec<LayerTape>,
    /// The final LayerNorm of the prefix rows: x̂ (prefix_tokens, hidden) and 1/σ.
    pub(super) final_normed: Vec<f32>,
    pub(super) final_rstd: Vec<f32>,
    pub(super) tokens: usize,
}

impl Trace {
    /// Layer `l`'s attention probabilities, (heads, tokens, tokens) row-major.
    pub fn attention(&self, layer: usize) -> Option<&[f32]> {
        self.layers.get(layer).map(|t| t.probs.as_slice())
    }

    pub fn tokens(&self) -> usize {
        self.tokens
    }
}

/// A checkpoint's weights laid out for [`ExplainModel`]'s forward and backward passes.
#[derive(Clone, Debug)]
pub struct ExplainModel {
    pub(super) config: ModelConfig,
    pub(super) labels: Vec<String>,
    /// (hidden, channels·patch·patch): the patch convolution as a linear layer.
    patch_embed: Dense,
    /// (prefix_tokens, hidden)
    prefix: Vec<f32>,
    /// (tokens, hidden) at the native grid.
    pos_embed: Vec<f32>,
    pub(super) blocks: Vec<Block>,
    pub(super) norm: Affine,
    pub(super) head: Dense,
    pub(super) head_dist: Option<Dense>,
    pub(super) eps: f32,
    pub(super) gelu: Gelu,
    device: Device,
}

impl ExplainModel {
    /// Copies the checkpoint's weights (already checked by the checkpoint loader) into
    /// candle tensors on the CPU.
    pub fn new(checkpoint: &Checkpoint) -> Result<Self, ExplainError> {
        let device = Device::Cpu;
        let cfg = checkpoint.config.clone();
        let w = &checkpoint.weights;
        let two_heads = cfg.classifier == Classifier::ClsAndDistillation;
        if two_heads != w.head_dist.is_some() {
            return Err(ExplainError::Model(
                "the checkpoint's classifier and its heads disagree (distillation head)".into(),
            ));
        }
        let patch_in = cfg.num_channels * cfg.patch_size * cfg.patch_size;
        let patch_embed = Dense::from_parts(
            &w.patch_embed.weight.data,
            cfg.hidden_size,
            patch_in,
            w.patch_embed.bias.as_ref().map(|b| b.data.clone()),
            &device,
        )?;
        let mut prefix = w.cls_token.data.clone();
        if let Some(dist) = &w.dist_token {
            prefix.extend_from_slice(&dist.data);
        }
        let blocks = w
            .blocks
            .iter()
            .map(|b| {
                Ok(Block {
                    norm1: Affine::from(&b.norm1),
                    qkv: Dense::new(&b.qkv, &device)?,
                    proj: Dense::new(&b.proj, &device)?,
                    norm2: Affine::from(&b.norm2),
                    fc1: Dense::new(&b.fc1, &device)?,
                    fc2: Dense::new(&b.fc2, &device)?,
                })
            })
            .collect::<Result<Vec<_>, ExplainError>>()?;
        let mut labels = checkpoint.labels.clone();
        labels.resize_with(cfg.num_classes.max(labels.len()), String::new);
        for (i, label) in labels.iter_mut().enumerate() {
            if label.is_empty() {
                *label = format!("class {i}");
            }
        }
        Ok(Self {
            labels,
            patch_embed,
            prefix,
            pos_embed: w.pos_embed.data.clone(),
            blocks,
            norm: Affine::from(&w.norm),
            head: Dense::new(&w.head, &device)?,
            head_dist: w
                .head_dist
                .as_ref()
                .map(|h| Dense::new(h, &device))
                .transpose()?,
            eps: cfg.layer_norm_eps as f32,
            gelu: match cfg.activation {
                Activation::GeluErf => Gelu::Erf,
                Activation::GeluTanh => Gelu::Tanh,
            },
            device,
            config: cfg,
        })
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Class names, one per class.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// Patch embedding, prefix tokens and position embeddings for one image.
    /// `pixels`: (1, channels, height, width) or (channels, height, width), normalized,
    /// at the checkpoint's native size (`image_size`² pixels).
    pub fn embed(&self, pixels: &Tensor) -> Result<Embedded, ExplainError> {
        let cfg = &self.config;
        let pixels = match pixels.rank() {
            4 if pixels.dim(0)? == 1 => pixels.squeeze(0)?,
            3 => pixels.clone(),
            _ => {
                return Err(ExplainError::Input(format!(
                    "pixels must be one image, (1, channels, height, width); got shape {:?}",
                    pixels.dims()
                )))
            }
        };
        let (c, height, width) = pixels.dims3()?;
        let size = cfg.image_size;
        if c != cfg.num_channels || height != size || width != size {
            return Err(ExplainError::Input(format!(
                "explanations run at the model's native input of {} channels × {size} × {size} \
                 pixels, but the image is {c} × {height} × {width}; preprocess it with the \
                 checkpoint's own settings",
                cfg.num_channels
            )));
        }
        let values = pixels
            .to_dtype(candle_core::DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let p = cfg.patch_size;
        let grid = size / p;
        let n = grid * grid;
        let patch_in = c * p * p;
        // Each patch as the convolution reads it: channel-major, then rows, then columns.
        let mut patches = vec![0.0f32; n * patch_in];
        for gy in 0..grid {
            for gx in 0..grid {
                let dst = &mut patches[(gy * grid + gx) * patch_in..][..patch_in];
                for ch in 0..c {
                    for py in 0..p {
                        let src = (ch * size + gy * p + py) * size + gx * p;
                        dst[(ch * p + py) * p..][..p].copy_from_slice(&values[src..src + p]);
                    }
                }
            }
        }
        let patch_tokens = self.patch_embed.forward(patches, n)?;
        let mut tokens = self.prefix.clone();
        tokens.extend_from_slice(&patch_tokens);
        if tokens.len() != self.pos_embed.len() {
            return Err(ExplainError::Model(format!(
                "{} position embedding values for {} token values",
                self.pos_embed.len(),
                tokens.len()
            )));
        }
        tokens
            .iter_mut()
            .zip(&self.pos_embed)
            .for_each(|(t, p)| *t += p);
        Ok(Embedded {
            tokens,
            patch_grid: (grid, grid),
            prefix_tokens: cfg.prefix_tokens(),
        })
    }

    /// The full forward pass of one image, keeping what [`Self::attention_gradients`] and the
    /// logit lens need.
    pub fn trace(&self, embedded: &Embedded) -> Result<Trace, ExplainError> {
        let d = self.config.hidden_size;
        let tokens = embedded.tokens.len() / d;
        let mut tape = Tape {
            layers: Vec::with_capacity(self.blocks.len()),
            prefix_hidden: Vec::with_capacity(self.blocks.len()),
            final_norm: None,
        };
        let logits = self.forward(embedded.tokens.clone(), 1, tokens, None, Some(&mut tape))?;
        let (final_normed, final_rstd) = tape
            .final_norm
            .ok_or_else(|| ExplainError::Model("the final LayerNorm was not recorded".into()))?;
        Ok(Trace {
            logits,
            prefix_hidden: tape.prefix_hidden,
            layers: tape.layers,
            final_normed,
            final_rstd,
            tokens,
        })
    }

    /// The encoder and classifier on `x` (batch, tokens, hidden), prefix tokens first in each
    /// sequence. `head_mask` (batch, layers, heads) scales each head's context (0 = off).
    /// Returns logits (batch, classes).
    pub(super) fn forward(
        &self,
        mut x: Vec<f32>,
        batch: usize,
        tokens: usize,
        head_mask: Option<&[f32]>,
        mut tape: Option<&mut Tape>,
    ) -> Result<Vec<f32>, ExplainError> {
        let cfg = &self.config;
        let (d, heads) = (cfg.hidden_size, cfg.num_heads);
        let dh = d / heads;
        let layers = self.blocks.len();
        let rows = batch * tokens;
        let prefix = cfg.prefix_tokens();
        let keep = tape.is_some();
        // Every ViT's head_dim is a power of two, so scaling q is exact.
        let scale = 1.0 / (dh as f32).sqrt();
        for (layer, blk) in self.blocks.iter().enumerate() {
            let mut n1 = x.clone();
            let saved1 = layer_norm(
                &mut n1,
                d,
                &blk.norm1.gamma,
                &blk.norm1.beta,
                self.eps,
                keep,
            );
            let qkv = blk.qkv.forward(n1, rows)?; // (rows, 3·hidden)
            let mut q = vec![0.0f32; rows * d];
            let mut k = vec![0.0f32; rows * d];
            let mut v = vec![0.0f32; rows * d];
            for b in 0..batch {
                for t in 0..tokens {
                    let src = &qkv[(b * tokens + t) * 3 * d..][..3 * d];
                    for h in 0..heads {
                        let dst = ((b * heads + h) * tokens + t) * dh;
                        let cols = h * dh..(h + 1) * dh;
                        q[dst..dst + dh]
                            .iter_mut()
                            .zip(&src[cols.clone()])
                            .for_each(|(o, s)| *o = s * scale);
                        k[dst..dst + dh].copy_from_slice(&src[d + cols.start..d + cols.end]);
                        v[dst..dst + dh]
                            .copy_from_slice(&src[2 * d + cols.start..2 * d + cols.end]);
                    }
                }
            }
            let dims = (batch * heads, tokens, dh);
            let q = Tensor::from_vec(q, dims, &self.device)?;
            let k = Tensor::from_vec(k, dims, &self.device)?;
            let v = Tensor::from_vec(v, dims, &self.device)?;
            let mut probs = q.matmul(&k.t()?)?.flatten_all()?.to_vec1::<f32>()?;
            softmax_rows(&mut probs, tokens);
            let probs = Tensor::from_vec(probs, (batch * heads, tokens, tokens), &self.device)?;
            let per_head = probs.matmul(&v)?.flatten_all()?.to_vec1::<f32>()?; // (B·H, T, dh)
            let mut context = vec![0.0f32; rows * d];
            for b in 0..batch {
                for h in 0..heads {
                    let gain = head_mask.map_or(1.0, |m| m[(b * layers + layer) * heads + h]);
                    if gain == 0.0 {
                        continue;
                    }
                    for t in 0..tokens {
                        let src = &per_head[((b * heads + h) * tokens + t) * dh..][..dh];
                        context[(b * tokens + t) * d + h * dh..][..dh]
                            .iter_mut()
                            .zip(src)
                            .for_each(|(o, s)| *o = s * gain);
                    }
                }
            }
            let attended = blk.proj.forward(context, rows)?;
            x.iter_mut().zip(&attended).for_each(|(a, b)| *a += b);

            let mut n2 = x.clone();
            let saved2 = layer_norm(
                &mut n2,
                d,
                &blk.norm2.gamma,
                &blk.norm2.beta,
                self.eps,
                keep,
            );
            let mut hidden = blk.fc1.forward(n2, rows)?;
            let pre_gelu = keep.then(|| hidden.clone());
            self.gelu.apply(&mut hidden);
            let out = blk.fc2.forward(hidden, rows)?;
            x.iter_mut().zip(&out).for_each(|(a, b)| *a += b);

            if let Some(tape) = tape.as_deref_mut() {
                let ((normed1, rstd1), (normed2, rstd2), pre_gelu) =
                    match (saved1, saved2, pre_gelu) {
                        (Some(a), Some(b), Some(c)) => (a, b, c),
                        _ => return Err(ExplainError::Model("activations not kept".into())),
                    };
                let probs = probs.flatten_all()?.to_vec1::<f32>()?;
                tape.layers.push(LayerTape {
                    normed1,
                    rstd1,
                    q,
                    k,
                    v,
                    probs,
                    normed2,
                    rstd2,
                    pre_gelu,
                });
                tape.prefix_hidden.push(x[..prefix * d].to_vec());
            }
        }
        let mut prefix_rows = Vec::with_capacity(batch * prefix * d);
        for b in 0..batch {
            prefix_rows.extend_from_slice(&x[b * tokens * d..][..prefix * d]);
        }
        let (logits, saved) = self.classify(prefix_rows, batch, keep)?;
        if let Some(tape) = tape {
            tape.final_norm = saved;
        }
        Ok(logits)
    }

    /// Final LayerNorm and classifier head(s) on the prefix tokens' hidden states
    /// (batch, prefix_tokens, hidden) → logits (batch, classes), and the LayerNorm's saved
    /// x̂ and 1/σ when `keep` is set.
    #[allow(clippy::type_complexity)]
    pub(super) fn classify(
        &self,
        mut prefix_rows: Vec<f32>,
        batch: usize,
        keep: bool,
    ) -> Result<(Vec<f32>, Option<(Vec<f32>, Vec<f32>)>), ExplainError> {
        let d = self.config.hidden_size;
        let prefix = self.config.prefix_tokens();
        let saved = layer_norm(
            &mut prefix_rows,
            d,
            &self.norm.gamma,
            &self.norm.beta,
            self.eps,
            keep,
        );
        let row = |b: usize, t: usize| &prefix_rows[(b * prefix + t) * d..][..d];
        let cls: Vec<f32> = (0..batch).flat_map(|b| row(b, 0).to_vec()).collect();
        let mut logits = self.head.forward(cls, batch)?;
        if let Some(head_dist) = &self.head_dist {
            let dist: Vec<f32> = (0..batch).flat_map(|b| row(b, 1).to_vec()).collect();
            let second = head_dist.forward(dist, batch)?;
            logits
                .iter_mut()
                .zip(&second)
                .for_each(|(a, b)| *a = 0.5 * (*a + b));
        }
        Ok((logits, saved))
    }
}

/// What a traced forward pass records.
pub(super) struct Tape {
    layers: Vec<LayerTape>,
    prefix_hidden: Vec<Vec<f32>>,
    final_norm: Option<(Vec<f32>, Vec<f32>)>,
}
