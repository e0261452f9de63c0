//! Class-specific relevance maps from attention probabilities and their gradients, each for
//! every layer: the map "up to layer l" is the CLS row of the layer-l product over the patch
//! columns, `N = tokens − prefix_tokens` values.
//!
//! * [`chefer`] — Chefer, Gur & Wolf, "Generic Attention-model Explainability for
//!   Interpreting Bi-Modal and Encoder-Decoder Transformers" (ICCV 2021), the self-attention
//!   rule: with Ā_l = mean over heads of max(0, ∂y_c/∂A_l ⊙ A_l), R₀ = I and
//!   R_l = R_(l−1) + Ā_l·R_(l−1).
//! * [`grad_rollout`] — gradient-weighted attention rollout: W_l = max(0, mean over heads of
//!   ∂y_c/∂A_l ⊙ A_l), then the plain rollout of [`crate::analysis::rollout`] on the W_l
//!   (discard the smallest, (W + I)/2, rows renormalized, multiplied through the layers).

use super::backward::AttentionGradient;
use super::ExplainError;
use crate::analysis::{rollout, HeadFusion, LayerAttention, RolloutOptions};

/// Checks that attention and gradient layers pair up, and returns the token count.
fn check_pairs(
    attentions: &[LayerAttention],
    gradients: &[AttentionGradient],
    prefix_tokens: usize,
) -> Result<usize, ExplainError> {
    let first = attentions.first().ok_or(ExplainError::Analysis(
        crate::analysis::AnalysisError::NoLayers,
    ))?;
    if attentions.len() != gradients.len() {
        return Err(ExplainError::Input(format!(
            "{} layers of attention but {} layers of gradients",
            attentions.len(),
            gradients.len()
        )));
    }
    for (layer, (a, g)) in attentions.iter().zip(gradients).enumerate() {
        if (a.heads, a.tokens) != (first.heads, first.tokens)
            || (g.heads, g.tokens) != (a.heads, a.tokens)
            || g.data.len() != a.data.len()
        {
            return Err(ExplainError::Input(format!(
                "layer {layer}: attention is {} heads × {} tokens, its gradient {} heads × {} \
                 tokens ({} values); every layer must match layer 0",
                a.heads,
                a.tokens,
                g.heads,
                g.tokens,
                g.data.len()
            )));
        }
    }
    if prefix_tokens >= first.tokens {
        return Err(ExplainError::Analysis(
            crate::analysis::AnalysisError::PrefixTokens {
                prefix_tokens,
                tokens: first.tokens,
            },
        ));
    }
    Ok(first.tokens)
}

/// mean over heads of (∂y_c/∂A ⊙ A), (tokens, tokens), in f64; `clamp_each` clamps every
/// product at 0 before the mean (Chefer's rule), otherwise the mean is returned as is.
fn weighted_mean(a: &LayerAttention, g: &AttentionGradient, clamp_each: bool) -> Vec<f64> {
    let plane = a.tokens * a.tokens;
    let mut mean = vec![0.0f64; plane];
    for (ah, gh) in a.data.chunks_exact(plane).zip(g.data.chunks_exact(plane)) {
        for ((m, &av), &gv) in mean.iter_mut().zip(ah).zip(gh) {
            let product = f64::from(av) * f64::from(gv);
            *m += if clamp_each {
                product.max(0.0)
            } else {
                product
            };
        }
    }
    let heads = a.heads as f64;
    mean.iter_mut().for_each(|m| *m /= heads);
    mean
}

/// Chefer et al.'s class-specific relevance for every layer: `L` maps of `N` patch values.
///
/// R_l = (I + Ā_l)·R_(l−1) with R₀ = I, so the CLS row of R_l is
/// e_cls·(I + Ā_l)·(I + Ā_(l−1))·…·(I + Ā_1), computed as a row vector times each matrix in
/// turn (f64), `O(L²·T²)` for all layers instead of `O(L·T³)`.
pub fn chefer(
    attentions: &[LayerAttention],
    gradients: &[AttentionGradient],
    prefix_tokens: usize,
) -> Result<Vec<Vec<f32>>, ExplainError> {
    let t = check_pairs(attentions, gradients, prefix_tokens)?;
    let fused: Vec<Vec<f64>> = attentions
        .iter()
        .zip(gradients)
        .map(|(a, g)| weighted_mean(a, g, true))
        .collect();
    let mut maps = Vec::with_capacity(fused.len());
    let mut row = vec![0.0f64; t];
    let mut next = vec![0.0f64; t];
    for l in 0..fused.len() {
        row.fill(0.0);
        row[0] = 1.0;
        for a_bar in fused[..=l].iter().rev() {
            // next = row · (I + Ā)
            next.copy_from_slice(&row);
            for (&weight, a_row) in row.iter().zip(a_bar.chunks_exact(t)) {
                if weight != 0.0 {
                    next.iter_mut()
                        .zip(a_row)
                        .for_each(|(n, &a)| *n += weight * a);
                }
            }
            std::mem::swap(&mut row, &mut next);
        }
        maps.push(row[prefix_tokens..].iter().map(|&v| v as f32).collect());
    }
    Ok(maps)
}

/// Gradient rollout for every layer: `L` maps of `N` patch values.
///
/// W_l = max(0, mean over heads of ∂y_c/∂A_l ⊙ A_l) goes through [`rollout`] as a one-head
/// layer, so the discard ratio means exactly what it means there (the `floor(ratio·T²)`
/// smallest entries zeroed, entry (0, 0) kept), followed by (W + I)/2, rows renormalized and
/// G_l = W′_l·G_(l−1).
pub fn grad_rollout(
    attentions: &[LayerAttention],
    gradients: &[AttentionGradient],
    prefix_tokens: usize,
    discard_ratio: f32,
) -> Result<Vec<Vec<f32>>, ExplainError> {
    let t = check_pairs(attentions, gradients, prefix_tokens)?;
    let weighted = attentions
        .iter()
        .zip(gradients)
        .map(|(a, g)| {
            let w = weighted_mean(a, g, false)
                .into_iter()
                .map(|v| v.max(0.0) as f32)
                .collect();
            LayerAttention::new(1, t, w)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let options = RolloutOptions {
        head_fusion: HeadFusion::Mean,
        discard_ratio,
        start_token: 0,
    };
    Ok(rollout(&weighted, prefix_tokens, &options)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(tokens: usize, data: Vec<f32>) -> LayerAttention {
        LayerAttention::new(data.len() / (tokens * tokens), tokens, data).expect("valid")
    }

    fn grad(tokens: usize, data: Vec<f32>) -> AttentionGradient {
        AttentionGradient {
            heads: data.len() / (tokens * tokens),
            tokens,
            data,
        }
    }

    /// Two heads, two tokens (CLS + one patch), one layer, worked by hand.
    #[test]
    fn chefer_one_layer_by_hand() {
        let a = layer(2, vec![0.5, 0.5, 0.25, 0.75, 0.8, 0.2, 0.6, 0.4]);
        let g = grad(2, vec![2.0, -1.0, 1.0, 1.0, 1.0, 3.0, 0.0, -2.0]);
        // head 0: max(0, [1, -0.5, 0.25, 0.75]); head 1: max(0, [0.8, 0.6, 0, -0.8])
        // mean: [0.9, 0.3, 0.125, 0.375]; R = I + Ā; CLS row over the patch: 0.3.
        let maps = chefer(&[a], &[g], 1).expect("chefer");
        assert_eq!(maps.len(), 1);
        assert!((maps[0][0] - 0.3).abs() < 1e-7, "{maps:?}");
    }

    #[test]
    fn grad_rollout_clamps_after_the_mean() {
        // head 0 product at (0,1): -0.5, head 1: +0.6 → mean 0.05 (Chefer would give 0.3).
        let a = layer(2, vec![0.5, 0.5, 0.25, 0.75, 0.8, 0.2, 0.6, 0.4]);
        let g = grad(2, vec![2.0, -1.0, 1.0, 1.0, 1.0, 3.0, 0.0, -2.0]);
        // W = max(0, [0.9, 0.05, 0.125, -0.025]) = [0.9, 0.05, 0.125, 0];
        // (W + I)/2 row 0 = [0.95, 0.025], normalized: 0.025 / 0.975.
        let maps = grad_rollout(&[a], &[g], 1, 0.0).expect("grad rollout");
        assert!((maps[0][0] - 0.025 / 0.975).abs() < 1e-7, "{maps:?}");
    }

    #[test]
    fn mismatched_layers_are_errors() {
        let a = layer(2, vec![0.5, 0.5, 0.25, 0.75]);
        let g = grad(2, vec![1.0; 8]);
        assert!(chefer(std::slice::from_ref(&a), &[g], 1).is_err());
        assert!(chefer(std::slice::from_ref(&a), &[], 1).is_err());
        let g = grad(2, vec![1.0; 4]);
        assert!(grad_rollout(&[a], &[g], 2, 0.0).is_err());
    }
}
