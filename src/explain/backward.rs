//! The backward pass from one class score to every layer's attention probabilities,
//! written out by hand (no autograd): classifier head(s), final LayerNorm, and per block,
//! last to first, the MLP (fc2, GELU, fc1, LayerNorm 2) and the attention (output
//! projection, P·V, softmax, q·kᵀ scaling, the q/k/v projection, LayerNorm 1), with the
//! residual stream carrying the gradient past both.
//!
//! Only gradients with respect to activations are formed, never with respect to weights,
//! and the pass stops at the first layer's attention probabilities.

use candle_core::Tensor;

use super::network::{ExplainModel, Trace};
use super::ops::{layer_norm_backward, softmax_backward};
use super::ExplainError;

/// ∂y_c/∂A_l for one layer: (heads, tokens, tokens) row-major, `data[(h·T + i)·T + j]` is
/// the derivative of the class score by the attention of query `i` to key `j` in head `h`.
#[derive(Clone, Debug, PartialEq)]
pub struct AttentionGradient {
    pub heads: usize,
    pub tokens: usize,
    pub data: Vec<f32>,
}

impl ExplainModel {
    /// The gradient of class `class`'s score y_c — the logit before softmax; for a distilled
    /// DeiT the mean of the CLS head's and the distillation head's logits — with respect to
    /// every layer's attention probabilities A_l, in forward layer order.
    pub fn attention_gradients(
        &self,
        trace: &Trace,
        class: usize,
    ) -> Result<Vec<AttentionGradient>, ExplainError> {
        let cfg = &self.config;
        if class >= cfg.num_classes {
            return Err(ExplainError::ClassOutOfRange {
                class,
                classes: cfg.num_classes,
            });
        }
        let (d, heads) = (cfg.hidden_size, cfg.num_heads);
        let dh = d / heads;
        let t = trace.tokens;
        let prefix = cfg.prefix_tokens();
        let scale = 1.0 / (dh as f32).sqrt();
        let device = self.head.weight.device();

        // Classifier head(s): y_c = W[c]·f_cls + b[c] (distilled: the mean of two heads).
        let mut d_final = vec![0.0f32; prefix * d];
        match &self.head_dist {
            None => d_final[..d].copy_from_slice(&self.head.weight_row(class)?),
            Some(head_dist) => {
                let cls = self.head.weight_row(class)?;
                let dist = head_dist.weight_row(class)?;
                d_final[..d]
                    .iter_mut()
                    .zip(&cls)
                    .for_each(|(o, w)| *o = 0.5 * w);
                d_final[d..2 * d]
                    .iter_mut()
                    .zip(&dist)
                    .for_each(|(o, w)| *o = 0.5 * w);
            }
        }
        let d_prefix = layer_norm_backward(
            &d_final,
            &trace.final_normed,
            &trace.final_rstd,
            &self.norm.gamma,
        );
        // The gradient on the residual stream, (T, hidden); only the prefix rows feed the heads.
        let mut dx = vec![0.0f32; t * d];
        dx[..prefix * d].copy_from_slice(&d_prefix);

        let mut grads = Vec::with_capacity(self.blocks.len());
        for (layer, (blk, tape)) in self.blocks.iter().zip(&trace.layers).enumerate().rev() {
            // MLP: x ← x + fc2(gelu(fc1(LN2(x)))).
            let mut d_hidden = blk.fc2.backward(dx.clone(), t)?; // (T, mlp)
            self.gelu.backward(&mut d_hidden, &tape.pre_gelu);
            let d_normed2 = blk.fc1.backward(d_hidden, t)?;
            let d_mid =
                layer_norm_backward(&d_normed2, &tape.normed2, &tape.rstd2, &blk.norm2.gamma);
            dx.iter_mut().zip(&d_mid).for_each(|(a, b)| *a += b);

            // Attention: x ← x + proj(concat_h(A_h · V_h)).
            let d_context = blk.proj.backward(dx.clone(), t)?; // (T, hidden), head-major columns
            let mut d_per_head = vec![0.0f32; t * d]; // (heads, T, head_dim)
            for h in 0..heads {
                for i in 0..t {
                    d_per_head[(h * t + i) * dh..][..dh]
                        .copy_from_slice(&d_context[i * d + h * dh..][..dh]);
                }
            }
            let d_per_head = Tensor::from_vec(d_per_head, (heads, t, dh), device)?;
            // ∂y/∂A_h = dContext_h · V_hᵀ.
            let d_probs = d_per_head
                .matmul(&tape.v.t()?)?
                .flatten_all()?
                .to_vec1::<f32>()?;
            if layer > 0 {
                let probs = Tensor::from_slice(&tape.probs, (heads, t, t), device)?;
                let d_v = probs
                    .t()?
                    .matmul(&d_per_head)?
                    .flatten_all()?
                    .to_vec1::<f32>()?;
                // Softmax, then scores = (q/√dh)·kᵀ.
                let d_scores = softmax_backward(&tape.probs, &d_probs, t);
                let d_scores = Tensor::from_vec(d_scores, (heads, t, t), device)?;
                let d_q = d_scores.matmul(&tape.k)?.flatten_all()?.to_vec1::<f32>()?;
                let d_k = d_scores
                    .t()?
                    .matmul(&tape.q)?
                    .flatten_all()?
                    .to_vec1::<f32>()?;
                let mut d_qkv = vec![0.0f32; t * 3 * d];
                for h in 0..heads {
                    for i in 0..t {
                        let src = (h * t + i) * dh;
                        let row = &mut d_qkv[i * 3 * d..][..3 * d];
                        row[h * dh..][..dh]
                            .iter_mut()
                            .zip(&d_q[src..src + dh])
                            .for_each(|(o, g)| *o = g * scale);
                        row[d + h * dh..][..dh].copy_from_slice(&d_k[src..src + dh]);
                        row[2 * d + h * dh..][..dh].copy_from_slice(&d_v[src..src + dh]);
                    }
                }
                let d_normed1 = blk.qkv.backward(d_qkv, t)?;
                let d_in =
                    layer_norm_backward(&d_normed1, &tape.normed1, &tape.rstd1, &blk.norm1.gamma);
                dx.iter_mut().zip(&d_in).for_each(|(a, b)| *a += b);
            }
            grads.push(AttentionGradient {
                heads,
                tokens: t,
                data: d_probs,
            });
        }
        grads.reverse();
        Ok(grads)
    }
}
