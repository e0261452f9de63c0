//! The two key layouts mapped onto one typed set of weights.
//!
//! transformers keeps query, key and value as three `Linear`s; timm keeps one fused `qkv`.
//! [`VitWeights`] stores the fused form (rows: all query outputs, then key, then value),
//! which is what both forward passes want: one GEMM for the three projections.

use std::collections::HashMap;

use super::{CheckpointError, Classifier, Layout, ModelConfig, RawWeights, WeightTensor};

/// A `Linear` layer as PyTorch stores it: `weight` (out, in), `bias` (out).
#[derive(Clone, Debug, PartialEq)]
pub struct Linear {
    pub weight: WeightTensor,
    pub bias: Option<WeightTensor>,
}

impl Linear {
    pub fn out_features(&self) -> usize {
        self.weight.shape[0]
    }

    pub fn in_features(&self) -> usize {
        self.weight.shape[1]
    }
}

/// A `LayerNorm`'s affine parameters, each (hidden,).
#[derive(Clone, Debug, PartialEq)]
pub struct Norm {
    pub weight: WeightTensor,
    pub bias: WeightTensor,
}

/// One encoder block (pre-norm): x + attn(norm1(x)), then + mlp(norm2(·)).
#[derive(Clone, Debug, PartialEq)]
pub struct BlockWeights {
    pub norm1: Norm,
    /// (3·hidden, hidden): query rows, then key rows, then value rows.
    pub qkv: Linear,
    pub proj: Linear,
    pub norm2: Norm,
    pub fc1: Linear,
    pub fc2: Linear,
}

/// Every weight of a ViT / DeiT, f32.
#[derive(Clone, Debug, PartialEq)]
pub struct VitWeights {
    /// Conv weight (hidden, channels, patch, patch) and bias (hidden,).
    pub patch_embed: Linear,
    /// (hidden,)
    pub cls_token: WeightTensor,
    /// (hidden,), DeiT only.
    pub dist_token: Option<WeightTensor>,
    /// (tokens, hidden) at the native grid, prefix tokens first.
    pub pos_embed: WeightTensor,
    pub blocks: Vec<BlockWeights>,
    pub norm: Norm,
    /// (classes, hidden) on the CLS token.
    pub head: Linear,
    /// (classes, hidden) on the distillation token, distilled DeiT only.
    pub head_dist: Option<Linear>,
}

impl VitWeights {
    pub fn parameter_count(&self) -> usize {
        fn linear(l: &Linear) -> usize {
            l.weight.len() + l.bias.as_ref().map_or(0, WeightTensor::len)
        }
        fn norm(n: &Norm) -> usize {
            n.weight.len() + n.bias.len()
        }
        let blocks: usize = self
            .blocks
            .iter()
            .map(|b| {
                norm(&b.norm1)
                    + linear(&b.qkv)
                    + linear(&b.proj)
                    + norm(&b.norm2)
                    + linear(&b.fc1)
                    + linear(&b.fc2)
            })
            .sum();
        linear(&self.patch_embed)
            + self.cls_token.len()
            + self.dist_token.as_ref().map_or(0, WeightTensor::len)
            + self.pos_embed.len()
            + blocks
            + norm(&self.norm)
            + linear(&self.head)
            + self.head_dist.as_ref().map_or(0, linear)
    }
}

/// Which layout the tensor names follow.
pub(super) fn detect(raw: &RawWeights) -> Result<Layout, CheckpointError> {
    let names = || raw.tensors.keys();
    if names().any(|k| k.starts_with("vit.") || k.starts_with("deit.")) {
        Ok(Layout::Transformers)
    } else if names().any(|k| k.starts_with("blocks.") || k == "pos_embed") {
        Ok(Layout::Timm)
    } else {
        let mut sample: Vec<&String> = names().collect();
        sample.sort();
        sample.truncate(3);
        Err(CheckpointError::UnknownArchitecture(format!(
            "(the weights are neither transformers' `vit.*`/`deit.*` nor timm's `blocks.*`; first tensor names: {sample:?})"
        )))
    }
}

/// Takes tensors out of the file by name, checking each shape.
struct Taker<'a> {
    tensors: &'a HashMap<String, WeightTensor>,
}

impl Taker<'_> {
    fn get(&self, name: &str, expected: &[usize]) -> Result<WeightTensor, CheckpointError> {
        let t = self
            .tensors
            .get(name)
            .ok_or_else(|| CheckpointError::MissingTensor(name.to_string()))?;
        // Size-1 dimensions are layout noise (`cls_token` is (1, 1, D) or (1, D)); compare without them.
        let squeeze = |s: &[usize]| s.iter().copied().filter(|&d| d != 1).collect::<Vec<_>>();
        if squeeze(&t.shape) != squeeze(expected) {
            return Err(CheckpointError::ShapeMismatch {
                tensor: name.to_string(),
                expected: expected.to_vec(),
                found: t.shape.clone(),
            });
        }
        Ok(WeightTensor::new(expected.to_vec(), t.data.clone()))
    }

    fn linear(
        &self,
        prefix: &str,
        out: usize,
        inp: usize,
        bias: bool,
    ) -> Result<Linear, CheckpointError> {
        Ok(Linear {
            weight: self.get(&format!("{prefix}.weight"), &[out, inp])?,
            bias: if bias {
                Some(self.get(&format!("{prefix}.bias"), &[out])?)
            } else {
                if self.tensors.contains_key(&format!("{prefix}.bias")) {
                    return Err(CheckpointError::ConfigMismatch(format!(
                        "the config says there is no bias but `{prefix}.bias` exists (qkv_bias?)"
                    )));
                }
                None
            },
        })
    }

    fn norm(&self, prefix: &str, d: usize) -> Result<Norm, CheckpointError> {
        Ok(Norm {
            weight: self.get(&format!("{prefix}.weight"), &[d])?,
            bias: self.get(&format!("{prefix}.bias"), &[d])?,
        })
    }
}

/// Concatenates the rows of query, key and value into one fused projection.
fn fuse_qkv(q: Linear, k: Linear, v: Linear) -> Linear {
    let (out, inp) = (q.out_features(), q.in_features());
    let weight = [q.weight.data, k.weight.data, v.weight.data].concat();
    let bias = match (q.bias, k.bias, v.bias) {
        (Some(qb), Some(kb), Some(vb)) => Some(WeightTensor::new(
            vec![3 * out],
            [qb.data, kb.data, vb.data].concat(),
        )),
        _ => None,
    };
    Linear {
        weight: WeightTensor::new(vec![3 * out, inp], weight),
        bias,
    }
}

pub(super) fn map(
    raw: &RawWeights,
    layout: Layout,
    cfg: &ModelConfig,
) -> Result<VitWeights, CheckpointError> {
    let take = Taker {
        tensors: &raw.tensors,
    };
    let d = cfg.hidden_size;
    let m = cfg.intermediate_size;
    let p = cfg.patch_size;
    let c = cfg.num_channels;
    let k = cfg.num_classes;
    let tokens = cfg.tokens();
    let two_heads = cfg.classifier == Classifier::ClsAndDistillation;

    let weights = match layout {
        Layout::Transformers => {
            let root = if cfg.distillation_token {
                "deit"
            } else {
                "vit"
            };
            let e = format!("{root}.embeddings");
            let layer_norm = |i: usize| format!("{root}.encoder.layer.{i}.layernorm_before.weight");
            let present = (0..cfg.num_layers)
                .take_while(|&i| raw.tensors.contains_key(&layer_norm(i)))
                .count();
            if present < cfg.num_layers {
                return Err(CheckpointError::ConfigMismatch(format!(
                    "num_hidden_layers is {} but the weights have {present} layers (`{}` is missing)",
                    cfg.num_layers,
                    layer_norm(present)
                )));
            }
            let blocks = (0..cfg.num_layers)
                .map(|i| {
                    let l = format!("{root}.encoder.layer.{i}");
                    let att = format!("{l}.attention.attention");
                    Ok(BlockWeights {
                        norm1: take.norm(&format!("{l}.layernorm_before"), d)?,
                        qkv: fuse_qkv(
                            take.linear(&format!("{att}.query"), d, d, cfg.qkv_bias)?,
                            take.linear(&format!("{att}.key"), d, d, cfg.qkv_bias)?,
                            take.linear(&format!("{att}.value"), d, d, cfg.qkv_bias)?,
                        ),
                        proj: take.linear(&format!("{l}.attention.output.dense"), d, d, true)?,
                        norm2: take.norm(&format!("{l}.layernorm_after"), d)?,
                        fc1: take.linear(&format!("{l}.intermediate.dense"), m, d, true)?,
                        fc2: take.linear(&format!("{l}.output.dense"), d, m, true)?,
                    })
                })
                .collect::<Result<Vec<_>, CheckpointError>>()?;
            let extra = format!(
                "{root}.encoder.layer.{}.layernorm_before.weight",
                cfg.num_layers
            );
            if raw.tensors.contains_key(&extra) {
                return Err(CheckpointError::ConfigMismatch(format!(
                    "num_hidden_layers is {} but the weights have more layers (`{extra}` exists)",
                    cfg.num_layers
                )));
            }
            let (head, head_dist) = if two_heads {
                (
                    take.linear("cls_classifier", k, d, true)?,
                    Some(take.linear("distillation_classifier", k, d, true)?),
                )
            } else {
                (take.linear("classifier", k, d, true)?, None)
            };
            VitWeights {
                patch_embed: Linear {
                    weight: take.get(
                        &format!("{e}.patch_embeddings.projection.weight"),
                        &[d, c, p, p],
                    )?,
                    bias: Some(take.get(&format!("{e}.patch_embeddings.projection.bias"), &[d])?),
                },
                cls_token: take.get(&format!("{e}.cls_token"), &[d])?,
                dist_token: if cfg.distillation_token {
                    Some(take.get(&format!("{e}.distillation_token"), &[d])?)
                } else {
                    None
                },
                pos_embed: take.get(&format!("{e}.position_embeddings"), &[tokens, d])?,
                blocks,
                norm: take.norm(&format!("{root}.layernorm"), d)?,
                head,
                head_dist,
            }
        }
        Layout::Timm => {
            let blocks = (0..cfg.num_layers)
                .map(|i| {
                    let b = format!("blocks.{i}");
                    Ok(BlockWeights {
                        norm1: take.norm(&format!("{b}.norm1"), d)?,
                        qkv: take.linear(&format!("{b}.attn.qkv"), 3 * d, d, cfg.qkv_bias)?,
                        proj: take.linear(&format!("{b}.attn.proj"), d, d, true)?,
                        norm2: take.norm(&format!("{b}.norm2"), d)?,
                        fc1: take.linear(&format!("{b}.mlp.fc1"), m, d, true)?,
                        fc2: take.linear(&format!("{b}.mlp.fc2"), d, m, true)?,
                    })
                })
                .collect::<Result<Vec<_>, CheckpointError>>()?;
            VitWeights {
                patch_embed: Linear {
                    weight: take.get("patch_embed.proj.weight", &[d, c, p, p])?,
                    bias: Some(take.get("patch_embed.proj.bias", &[d])?),
                },
                cls_token: take.get("cls_token", &[d])?,
                dist_token: if cfg.distillation_token {
                    Some(take.get("dist_token", &[d])?)
                } else {
                    None
                },
                pos_embed: take.get("pos_embed", &[tokens, d])?,
                blocks,
                norm: take.norm("norm", d)?,
                head: take.linear("head", k, d, true)?,
                head_dist: if two_heads {
                    Some(take.linear("head_dist", k, d, true)?)
                } else {
                    None
                },
            }
        }
    };
    Ok(weights)
}
