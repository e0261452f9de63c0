//! Vision Transformer (ViT, Dosovitskiy et al. 2020, "An Image is Worth 16x16 Words") and
//! DeiT (Touvron et al. 2021, "Training data-efficient image transformers & distillation
//! through attention") in candle, for the CPU.
//!
//! It mirrors transformers' `ViTForImageClassification` / `DeiTForImageClassification[WithTeacher]`
//! and timm's `VisionTransformer` / `VisionTransformerDistilled` in eval mode: pre-norm encoder
//! blocks, GELU MLP, the class token (and for DeiT the distillation token) read by the head(s).
//! Unlike those, [`VisionTransformer::forward_with_attention`] returns the attention
//! probabilities of every layer as values, because rollout needs them.
//!
//! Weights come from a [`Checkpoint`] in either layout; linear weights are transposed once
//! at load so every projection is a plain row-major GEMM.

use candle_core::{DType, Device, Module, Tensor};

use super::gemm::PackedLinear;
use super::ops::{
    BiasActivation, BiasResidual, FusedAttention, LayerNormOp, PackedMatmul, PackedMatmulResidual,
    Softmax,
};
use super::simd::Gelu;
use crate::checkpoint::{Activation, Checkpoint, Linear, ModelConfig, Norm, WeightTensor};
use crate::geometry::{Geometry, GeometryError, PositionTable};

/// Why a forward pass failed.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("invalid model input: {0}")]
    Input(String),
    #[error("tensor computation failed: {0}")]
    Candle(#[from] candle_core::Error),
    #[error(
        "the model computed values that are not finite numbers {at}: its weights overflow f32 \
         on this input; check the checkpoint (re-export it from a model that works) or try \
         another image"
    )]
    NonFinite { at: String },
}

/// Whether every value of `xs` is a finite number (one pass over a layer's output: cheap next
/// to the layer itself).
fn all_finite(xs: &Tensor) -> candle_core::Result<bool> {
    Ok(xs
        .flatten_all()?
        .to_vec1::<f32>()?
        .iter()
        .all(|v| v.is_finite()))
}

impl From<GeometryError> for ModelError {
    fn from(e: GeometryError) -> Self {
        ModelError::Input(e.to_string())
    }
}

fn tensor(w: &WeightTensor, device: &Device) -> candle_core::Result<Tensor> {
    Tensor::from_slice(&w.data, w.shape.as_slice(), device)
}

/// A linear layer: packed for the AVX-512 kernel where the CPU has it, else a transposed
/// weight (in, out) for candle's matmul.
#[derive(Clone, Debug)]
enum Dense {
    Packed(PackedLinear),
    Candle {
        weight_t: Tensor,
        bias: Option<Tensor>,
    },
}

impl Dense {
    fn new(l: &Linear, packed: bool, device: &Device) -> candle_core::Result<Self> {
        Self::from_parts(
            &l.weight.data,
            l.out_features(),
            l.in_features(),
            l.bias.as_ref(),
            packed,
            device,
        )
    }

    /// weight: (out, in) row-major.
    fn from_parts(
        weight: &[f32],
        out: usize,
        inp: usize,
        bias: Option<&WeightTensor>,
        packed: bool,
        device: &Device,
    ) -> candle_core::Result<Self> {
        if packed {
            return Ok(Dense::Packed(PackedLinear::new(
                weight,
                out,
                inp,
                bias.map(|b| b.data.as_slice()),
            )));
        }
        Ok(Dense::Candle {
            weight_t: Tensor::from_slice(weight, (out, inp), device)?
                .t()?
                .contiguous()?,
            bias: bias.map(|b| tensor(b, device)).transpose()?,
        })
    }

    /// residual + xs·W + b, with the bias and the residual added in the same pass.
    /// xs (rows, in); residual (…, out) with `rows` elements before the last dimension.
    fn forward_residual(&self, xs: &Tensor, residual: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Dense::Packed(w) => {
                xs.apply_op2_no_bwd(&residual.contiguous()?, &PackedMatmulResidual(w))
            }
            Dense::Candle { weight_t, bias } => {
                let ys = xs.matmul(weight_t)?.reshape(residual.shape())?;
                match bias {
                    Some(b) => ys.apply_op3_no_bwd(b, residual, &BiasResidual),
                    None => ys + residual,
                }
            }
        }
    }

    /// gelu(xs·W + b), with the bias and the activation in one pass over the output.
    fn forward_gelu(&self, xs: &Tensor, gelu: Gelu) -> candle_core::Result<Tensor> {
        match self {
            Dense::Packed(w) => xs.apply_op1_no_bwd(&PackedMatmul {
                weight: w,
                gelu: Some(gelu),
            }),
            Dense::Candle { weight_t, bias } => {
                let ys = xs.matmul(weight_t)?;
                let zeros;
                let bias = match bias {
                    Some(b) => b,
                    None => {
                        zeros = Tensor::zeros(ys.dim(1)?, DType::F32, ys.device())?;
                        &zeros
                    }
                };
                ys.apply_op2_no_bwd(bias, &BiasActivation(Some(gelu)))
            }
        }
    }
}

impl Module for Dense {
    /// (rows, in) → (rows, out)
    fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Dense::Packed(w) => xs.contiguous()?.apply_op1_no_bwd(&PackedMatmul {
                weight: w,
                gelu: None,
            }),
            Dense::Candle { weight_t, bias } => {
                let ys = xs.matmul(weight_t)?;
                match bias {
                    Some(b) => ys.apply_op2_no_bwd(b, &BiasActivation(None)),
                    None => Ok(ys),
                }
            }
        }
    }
}

#[derive(Clone, Debug)]
struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f32,
}

impl LayerNorm {
    fn new(n: &Norm, eps: f64, device: &Device) -> candle_core::Result<Self> {
        Ok(Self {
            weight: tensor(&n.weight, device)?,
            bias: tensor(&n.bias, device)?,
            eps: eps as f32,
        })
    }
}

impl Module for LayerNorm {
    fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        xs.contiguous()?
            .apply_op3_no_bwd(&self.weight, &self.bias, &LayerNormOp { eps: self.eps })
    }
}

/// transformers `ViTLayer` / timm `Block`.
#[derive(Clone, Debug)]
struct Block {
    norm1: LayerNorm,
    qkv: Dense,
    proj: Dense,
    norm2: LayerNorm,
    fc1: Dense,
    fc2: Dense,
    num_heads: usize,
    activation: Activation,
}

impl Block {
    /// xs: (batch, tokens, hidden) → (same, attention probabilities (batch, heads, tokens, tokens)).
    /// `record` sees the block's intermediate tensors (layer `layer`), each (batch, tokens, hidden).
    fn forward(
        &self,
        xs: &Tensor,
        layer: usize,
        record: &mut Recorder<'_>,
    ) -> candle_core::Result<(Tensor, Tensor)> {
        let (b, t, d) = xs.dims3()?;
        let h = self.num_heads;
        let dh = d / h;

        let normed = self.norm1.forward(xs)?;
        record(Stage::Norm1(layer), &normed)?;
        let normed = normed.reshape((b * t, d))?;
        let qkv = self.qkv.forward(&normed)?; // (batch·tokens, 3·hidden)
        let (context, probs) = if matches!(self.qkv, Dense::Packed(_)) {
            // Per head straight from the qkv rows: no transposes, scores never leave the block.
            let fused = qkv.apply_op1_no_bwd(&FusedAttention {
                batch: b,
                tokens: t,
                heads: h,
                head_dim: dh,
            })?;
            let context_len = b * t * d;
            (
                fused.narrow(0, 0, context_len)?.reshape((b * t, d))?,
                fused
                    .narrow(0, context_len, b * h * t * t)?
                    .reshape((b, h, t, t))?,
            )
        } else {
            let qkv = qkv
                .reshape((b, t, 3, h, dh))?
                .permute((2, 0, 3, 1, 4))?
                .contiguous()?; // (3, batch, heads, tokens, head_dim)
                                // dh is a power of two in every ViT, so scaling q is exact and cheaper than scaling scores.
            let q = (qkv.get(0)? * (1.0 / (dh as f64).sqrt()))?;
            let k = qkv.get(1)?;
            let v = qkv.get(2)?;
            let scores = q.matmul(&k.t()?)?; // (batch, heads, tokens, tokens)
            let probs = scores.apply_op1_no_bwd(&Softmax)?;
            let context = probs
                .matmul(&v)? // (batch, heads, tokens, head_dim)
                .transpose(1, 2)?
                .reshape((b * t, d))?;
            (context, probs)
        };
        let xs = self.proj.forward_residual(&context, xs)?;
        record(Stage::AttentionResidual(layer), &xs)?;

        let normed = self.norm2.forward(&xs)?;
        record(Stage::Norm2(layer), &normed)?;
        let normed = normed.reshape((b * t, d))?;
        let gelu = match self.activation {
            Activation::GeluErf => Gelu::Erf,
            Activation::GeluTanh => Gelu::Tanh,
        };
        let hidden = self.fc1.forward_gelu(&normed, gelu)?;
        let xs = self.fc2.forward_residual(&hidden, &xs)?;
        record(Stage::MlpResidual(layer), &xs)?;
        Ok((xs, probs))
    }
}

/// A point in the forward pass whose tensor [`VisionTransformer::forward_recorded`] shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// The normalized input, (batch, channels, height, width).
    Pixels,
    /// The input cut into flattened patches, (batch, patches, channels·patch·patch), each
    /// patch channel-major (all red values, then green, then blue) as the convolution reads it.
    Patches,
    /// The linear patch embedding, (batch, patches, hidden).
    PatchEmbedding,
    /// Prefix token(s) prepended and position embeddings added, (batch, tokens, hidden):
    /// the encoder's input.
    Embeddings,
    /// LayerNorm before attention in layer l, (batch, tokens, hidden).
    Norm1(usize),
    /// The residual stream after attention: input + MHSA(LN(input)).
    AttentionResidual(usize),
    /// LayerNorm before the MLP.
    Norm2(usize),
    /// The residual stream after the MLP: the block's output.
    MlpResidual(usize),
    /// The final LayerNorm of the prefix tokens, (batch, prefix tokens, hidden).
    FinalNorm,
    /// Classifier output, (batch, classes).
    Logits,
}

/// Receives each [`Stage`]'s tensor during a forward pass.
pub type Recorder<'a> = dyn FnMut(Stage, &Tensor) -> candle_core::Result<()> + 'a;

/// Choices of CPU kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuOptions {
    /// Use the packed AVX-512 GEMM for dense layers where the CPU has AVX-512F (else candle's
    /// matmul). On by default; off to compare the two paths.
    pub packed_gemm: bool,
}

impl Default for CpuOptions {
    fn default() -> Self {
        Self { packed_gemm: true }
    }
}

/// A ViT / DeiT image classifier on candle's CPU backend.
#[derive(Clone, Debug)]
pub struct VisionTransformer {
    cfg: ModelConfig,
    /// Patch embedding as a GEMM: (channels·patch·patch, hidden).
    patch_embed: Dense,
    /// (prefix_tokens, hidden): CLS, then the distillation token if any.
    prefix: Tensor,
    /// Position embeddings per patch grid, each (1, tokens, hidden).
    positions: PositionTable<Tensor>,
    blocks: Vec<Block>,
    norm: LayerNorm,
    head: Dense,
    head_dist: Option<Dense>,
    device: Device,
}

impl VisionTransformer {
    pub fn new(checkpoint: &Checkpoint, device: &Device) -> Result<Self, ModelError> {
        Self::with_options(checkpoint, device, CpuOptions::default())
    }

    pub fn with_options(
        checkpoint: &Checkpoint,
        device: &Device,
        options: CpuOptions,
    ) -> Result<Self, ModelError> {
        let packed = options.packed_gemm && device.is_cpu() && PackedLinear::available();
        let cfg = checkpoint.config.clone();
        let w = &checkpoint.weights;
        let d = cfg.hidden_size;
        let eps = cfg.layer_norm_eps;
        let patch_in = cfg.num_channels * cfg.patch_size * cfg.patch_size;
        // The conv weight (hidden, channels, p, p) read as (hidden, channels·p·p).
        let patch_embed = Dense::from_parts(
            &w.patch_embed.weight.data,
            d,
            patch_in,
            w.patch_embed.bias.as_ref(),
            packed,
            device,
        )?;
        let mut prefix_rows = w.cls_token.data.clone();
        if let Some(dist) = &w.dist_token {
            prefix_rows.extend_from_slice(&dist.data);
        }
        let prefix = Tensor::from_vec(prefix_rows, (cfg.prefix_tokens(), d), device)?;
        let blocks = w
            .blocks
            .iter()
            .map(|b| {
                Ok(Block {
                    norm1: LayerNorm::new(&b.norm1, eps, device)?,
                    qkv: Dense::new(&b.qkv, packed, device)?,
                    proj: Dense::new(&b.proj, packed, device)?,
                    norm2: LayerNorm::new(&b.norm2, eps, device)?,
                    fc1: Dense::new(&b.fc1, packed, device)?,
                    fc2: Dense::new(&b.fc2, packed, device)?,
                    num_heads: cfg.num_heads,
                    activation: cfg.activation,
                })
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Self {
            patch_embed,
            prefix,
            positions: PositionTable::new(&cfg, &w.pos_embed.data),
            blocks,
            norm: LayerNorm::new(&w.norm, eps, device)?,
            head: Dense::new(&w.head, packed, device)?,
            head_dist: w
                .head_dist
                .as_ref()
                .map(|h| Dense::new(h, packed, device))
                .transpose()?,
            device: device.clone(),
            cfg,
        })
    }

    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The patch grid (rows, cols) for an input of `height`×`width` pixels.
    pub fn patch_grid(&self, height: usize, width: usize) -> (usize, usize) {
        (height / self.cfg.patch_size, width / self.cfg.patch_size)
    }

    /// Position embeddings for a patch grid, (1, tokens, hidden): the stored ones at the native
    /// grid, bicubically resized (as transformers' `interpolate_pos_encoding`) otherwise.
    fn position_embeddings(&self, grid: (usize, usize)) -> candle_core::Result<Tensor> {
        let hidden = self.cfg.hidden_size;
        self.positions.get(grid, |values| {
            Tensor::from_slice(values, (1, values.len() / hidden, hidden), &self.device)
        })
    }

    /// pixels: (batch, channels, height, width), normalized.
    /// Returns logits (batch, classes) and every layer's attention probabilities, each
    /// (batch, heads, tokens, tokens).
    pub fn forward_with_attention(
        &self,
        pixels: &Tensor,
    ) -> Result<(Tensor, Vec<Tensor>), ModelError> {
        self.forward_recorded(pixels, &mut |_, _| Ok(()))
    }

    /// [`Self::forward_with_attention`], showing `record` the tensor of every [`Stage`] in order.
    pub fn forward_recorded(
        &self,
        pixels: &Tensor,
        record: &mut Recorder<'_>,
    ) -> Result<(Tensor, Vec<Tensor>), ModelError> {
        let (b, c, height, width) = pixels.dims4()?;
        let g = Geometry::of_input(&self.cfg, [b, c, height, width])?;
        let (p, d, n, (gh, gw)) = (g.patch, g.hidden, g.patches(), g.grid);

        // Patch embedding: a stride-p convolution is a GEMM over non-overlapping patches.
        let pixels = pixels.to_dtype(DType::F32)?;
        record(Stage::Pixels, &pixels)?;
        let patches = pixels
            .narrow(2, 0, gh * p)?
            .narrow(3, 0, gw * p)?
            .reshape((b, c, gh, p, gw, p))?
            .permute([0, 2, 4, 1, 3, 5])?
            .contiguous()?
            .reshape((b * n, c * p * p))?;
        record(Stage::Patches, &patches.reshape((b, n, c * p * p))?)?;
        let patch_tokens = self.patch_embed.forward(&patches)?.reshape((b, n, d))?;
        record(Stage::PatchEmbedding, &patch_tokens)?;
        let prefix = self.prefix.unsqueeze(0)?.broadcast_as((b, g.prefix, d))?;
        let mut xs = Tensor::cat(&[&prefix, &patch_tokens], 1)?
            .broadcast_add(&self.position_embeddings(g.grid)?)?;
        record(Stage::Embeddings, &xs)?;

        let mut attentions = Vec::with_capacity(self.blocks.len());
        for (layer, block) in self.blocks.iter().enumerate() {
            let (next, probs) = block.forward(&xs, layer, record)?;
            if !all_finite(&next)? {
                return Err(ModelError::NonFinite {
                    at: format!("in layer {} of {}", layer + 1, self.blocks.len()),
                });
            }
            xs = next;
            attentions.push(probs);
        }

        // Only the prefix tokens feed the heads; LayerNorm is per token, so normalize just those.
        let prefix_out = self
            .norm
            .forward(&xs.narrow(1, 0, g.prefix)?.contiguous()?)?;
        record(Stage::FinalNorm, &prefix_out)?;
        let cls = prefix_out.get_on_dim(1, 0)?;
        let logits = match (g.distilled, &self.head_dist) {
            (true, Some(head_dist)) => {
                let dist = prefix_out.get_on_dim(1, 1)?;
                ((self.head.forward(&cls)? + head_dist.forward(&dist)?)? * 0.5)?
            }
            _ => self.head.forward(&cls)?,
        };
        let logits = logits.contiguous()?;
        record(Stage::Logits, &logits)?;
        Ok((logits, attentions))
    }

    /// Logits only: (batch, classes).
    pub fn forward(&self, pixels: &Tensor) -> Result<Tensor, ModelError> {
        Ok(self.forward_with_attention(pixels)?.0)
    }
}
