//! Multi-head self-attention on the packed GEMM's register tiles, straight from the fused
//! qkv rows: per (image, head) the keys and values are packed into panels, scores = q·kᵀ go
//! through a row softmax in place, and the context = P·v lands in the head's columns. The
//! probabilities are kept, because rollout needs them.

#[cfg(target_arch = "x86_64")]
use super::gemm::avx512::{gemm, Operand, Output};
use super::gemm::{pack_panels, rayon_threads, PackedLinear, NR};
#[cfg(target_arch = "x86_64")]
use super::simd::softmax_rows;

/// Multi-head self-attention from a fused projection, with the probabilities kept.
///
/// `qkv`: (batch·tokens, 3·heads·head_dim) row-major — per token all query features, then all
/// key features, then all value features (the layout of the fused `qkv` linear).
/// Writes `probs` (batch, heads, tokens, tokens) = softmax(q·kᵀ/√head_dim) and `context`
/// (batch·tokens, heads·head_dim) = probs·v with heads side by side.
/// Needs [`PackedLinear::available`]; panics on wrong slice lengths.
pub(crate) fn attention(
    qkv: &[f32],
    batch: usize,
    tokens: usize,
    heads: usize,
    head_dim: usize,
    probs: &mut [f32],
    context: &mut [f32],
) {
    assert!(PackedLinear::available(), "attention kernel needs AVX-512F");
    let hidden = heads * head_dim;
    assert_eq!(qkv.len(), batch * tokens * 3 * hidden, "qkv");
    assert_eq!(probs.len(), batch * heads * tokens * tokens, "probs");
    assert_eq!(context.len(), batch * tokens * hidden, "context");
    let scale = 1.0 / (head_dim as f32).sqrt();
    let zeros = vec![0f32; tokens.max(head_dim).div_ceil(NR) * NR];

    // One task per (image, head): its probability block, and its context columns returned.
    let head_task = |index: usize, block: &mut [f32]| -> Vec<f32> {
        let (b, h) = (index / heads, index % heads);
        let row0 = b * tokens * 3 * hidden;
        let at = |token: usize, part: usize, j: usize| {
            qkv[row0 + token * 3 * hidden + part * hidden + h * head_dim + j]
        };
        // kᵀ scaled: (head_dim, tokens); v: (tokens, head_dim).
        let keys = pack_panels(head_dim, tokens, |p, j| at(j, 1, p) * scale);
        let values = pack_panels(tokens, head_dim, |p, j| at(p, 2, j));
        let mut ctx = vec![0f32; tokens * head_dim];
        let q = &qkv[row0 + h * head_dim..];
        head_products(
            q,
            3 * hidden,
            tokens,
            head_dim,
            &keys,
            &values,
            &zeros,
            block,
            &mut ctx,
        );
        ctx
    };

    let per_head: Vec<Vec<f32>> = if rayon_threads() > 1 {
        use rayon::prelude::*;
        probs
            .par_chunks_mut(tokens * tokens)
            .enumerate()
            .map(|(i, block)| head_task(i, block))
            .collect()
    } else {
        probs
            .chunks_mut(tokens * tokens)
            .enumerate()
            .map(|(i, block)| head_task(i, block))
            .collect()
    };
    for (index, ctx) in per_head.iter().enumerate() {
        let (b, h) = (index / heads, index % heads);
        for (t, row) in ctx.chunks_exact(head_dim).enumerate() {
            let start = (b * tokens + t) * hidden + h * head_dim;
            context[start..start + head_dim].copy_from_slice(row);
        }
    }
}

/// scores = q·kᵀ into `block` (tokens × tokens), softmax in place, then `ctx` = block·v.
/// `q` starts at the head's first query value; its rows are `q_ld` apart.
#[allow(clippy::too_many_arguments)]
fn head_products(
    q: &[f32],
    q_ld: usize,
    tokens: usize,
    head_dim: usize,
    keys: &[f32],
    values: &[f32],
    zeros: &[f32],
    block: &mut [f32],
    ctx: &mut [f32],
) {
    assert!(q.len() >= (tokens - 1) * q_ld + head_dim, "query rows");
    assert!(
        block.len() == tokens * tokens && ctx.len() == tokens * head_dim,
        "outputs"
    );
    assert!(
        zeros.len() >= tokens.max(head_dim).div_ceil(NR) * NR,
        "bias padding"
    );
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `attention` checked AVX-512F; the asserts above bound every row the kernels
    // touch: q (tokens rows of head_dim, q_ld apart), block (tokens × tokens), ctx
    // (tokens × head_dim); `keys` and `values` were packed for exactly these shapes.
    unsafe {
        let zeros = zeros.as_ptr();
        let scores = Output::of(block, tokens);
        gemm(
            Operand::of(q, q_ld),
            [tokens, head_dim, tokens],
            keys,
            zeros,
            None,
            scores,
        );
        softmax_rows(block, tokens);
        let (p, out) = (Operand::of(block, tokens), Output::of(ctx, head_dim));
        gemm(p, [tokens, tokens, head_dim], values, zeros, None, out);
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (q, q_ld, keys, values, zeros, block, ctx);
        unreachable!(
            "the attention kernel is x86-64 only; PackedLinear::available() is false here"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attention_matches_a_plain_implementation() {
        if !PackedLinear::available() {
            eprintln!("skipped: the attention kernel needs AVX-512F, which this CPU lacks");
            return;
        }
        let (batch, tokens, heads, dh) = (2, 19, 3, 8);
        let hidden = heads * dh;
        let qkv: Vec<f32> = (0..batch * tokens * 3 * hidden)
            .map(|i| ((i * 7919 % 211) as f32 - 105.0) / 60.0)
            .collect();
        let mut probs = vec![0f32; batch * heads * tokens * tokens];
        let mut context = vec![0f32; batch * tokens * hidden];
        attention(&qkv, batch, tokens, heads, dh, &mut probs, &mut context);
        let at = |b: usize, t: usize, part: usize, h: usize, j: usize| {
            qkv[(b * tokens + t) * 3 * hidden + part * hidden + h * dh + j] as f64
        };
        for b in 0..batch {
            for h in 0..heads {
                for i in 0..tokens {
                    let scores: Vec<f64> = (0..tokens)
                        .map(|j| {
                            (0..dh)
                                .map(|p| at(b, i, 0, h, p) * at(b, j, 1, h, p))
                                .sum::<f64>()
                                / (dh as f64).sqrt()
                        })
                        .collect();
                    let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let total: f64 = scores.iter().map(|s| (s - max).exp()).sum();
                    for j in 0..tokens {
                        let expected = (scores[j] - max).exp() / total;
                        let got = probs[((b * heads + h) * tokens + i) * tokens + j] as f64;
                        assert!((got - expected).abs() < 1e-6, "prob {got} vs {expected}");
                    }
                    for c in 0..dh {
                        let expected: f64 = (0..tokens)
                            .map(|j| (scores[j] - max).exp() / total * at(b, j, 2, h, c))
                            .sum();
                        let got = context[(b * tokens + i) * hidden + h * dh + c] as f64;
                        assert!((got - expected).abs() < 1e-5, "context {got} vs {expected}");
                    }
                }
            }
        }
    }
}
