//! Attention rollout (Abnar & Zuidema 2020), with the head fusion and
//! discard options popularised by jacobgil/vit-explain.

use std::cmp::Ordering;

use super::{AnalysisError, LayerAttention, RolloutOptions};

/// Attention rollout maps for every layer.
///
/// `layers` are the `L` layers in forward order, all with the same `T =
/// tokens`. For every layer `l` (0-based) the result holds the rollout up to
/// and including layer `l`, read from row `opts.start_token` over the patch
/// columns only: `L` vectors of `N = T - prefix_tokens` values. The maps are
/// raw (not normalized).
///
/// Definition, per layer:
/// 1. fuse the heads into `W` (`T×T`) by element-wise mean, max or min;
/// 2. with `k = floor(discard_ratio · T²)` (in f64), zero the `k` smallest
///    entries of the row-major flattened `W`, except flat index 0 (entry
///    (0,0)), which is never zeroed: if it is among the `k` smallest only the
///    other `k − 1` are zeroed. Among equal values the lower flat index counts
///    as smaller (so it is zeroed first);
/// 3. `A = (W + I) / 2`, then each row of `A` divided by its own sum;
///
/// and `R_1 = A_1`, `R_l = A_l · R_(l−1)`. The map for layer `l` is row
/// `start_token` of `R_l`, columns `prefix_tokens..T`.
///
/// Computation is in f64. Instead of the `T×T` matrix products, each map is
/// computed as the row vector `e_start · A_l · A_(l−1) · … · A_1` (the same
/// value by associativity), which costs `O(L² T²)` instead of `O(L T³)`.
///
/// Errors: no layers, layers with different token counts, `prefix_tokens >=
/// T`, `start_token >= T`, or a discard ratio outside `[0, 1)`.
pub fn rollout(
    layers: &[LayerAttention],
    prefix_tokens: usize,
    opts: &RolloutOptions,
) -> Result<Vec<Vec<f32>>, AnalysisError> {
    let tokens = layers.first().ok_or(AnalysisError::NoLayers)?.tokens;
    if let Some((layer, found)) = layers
        .iter()
        .map(|l| l.tokens)
        .enumerate()
        .find(|&(_, t)| t != tokens)
    {
        return Err(AnalysisError::LayerMismatch {
            layer,
            expected: tokens,
            found,
        });
    }
    if prefix_tokens >= tokens {
        return Err(AnalysisError::PrefixTokens {
            prefix_tokens,
            tokens,
        });
    }
    if opts.start_token >= tokens {
        return Err(AnalysisError::StartTokenOutOfRange {
            start_token: opts.start_token,
            tokens,
        });
    }
    if !(0.0..1.0).contains(&opts.discard_ratio) {
        return Err(AnalysisError::DiscardRatio(opts.discard_ratio));
    }

    let mut order = Vec::new();
    let mixes: Vec<Vec<f64>> = layers
        .iter()
        .map(|layer| {
            let mut mix = Vec::with_capacity(tokens * tokens);
            opts.head_fusion.fuse(layer.head_planes(), &mut mix);
            discard_smallest(&mut mix, opts.discard_ratio, &mut order);
            add_identity_and_normalize_rows(&mut mix, tokens);
            mix
        })
        .collect();

    let start = opts.start_token;
    let mut row = vec![0.0f64; tokens];
    let mut next = vec![0.0f64; tokens];
    let mut maps = Vec::with_capacity(mixes.len());
    for (l, mix) in mixes.iter().enumerate() {
        row.copy_from_slice(&mix[start * tokens..(start + 1) * tokens]);
        for earlier in mixes[..l].iter().rev() {
            row_times_matrix(&row, earlier, &mut next);
            std::mem::swap(&mut row, &mut next);
        }
        maps.push(row[prefix_tokens..].iter().map(|&v| v as f32).collect());
    }
    Ok(maps)
}

/// Zeroes the `floor(ratio · len)` smallest entries of `matrix` (flattened,
/// `len = T²`), except flat index 0. Ties: lower flat index is smaller.
/// `order` is scratch space.
fn discard_smallest(matrix: &mut [f64], ratio: f32, order: &mut Vec<usize>) {
    let total = matrix.len();
    let count = ((f64::from(ratio) * total as f64).floor() as usize).min(total);
    if count == 0 {
        return;
    }
    order.clear();
    order.extend(0..total);
    {
        let values: &[f64] = matrix;
        // Values are finite (checked in `LayerAttention::new`), so
        // `partial_cmp` never fails; the index makes the order total.
        let by_value_then_index = |a: &usize, b: &usize| {
            values[*a]
                .partial_cmp(&values[*b])
                .unwrap_or(Ordering::Equal)
                .then(a.cmp(b))
        };
        if count < total {
            order.select_nth_unstable_by(count - 1, by_value_then_index);
        }
    }
    for &index in &order[..count] {
        if index != 0 {
            matrix[index] = 0.0;
        }
    }
}

/// `A = (W + I) / 2`, then each row divided by its own sum, in place on the
/// row-major `tokens×tokens` matrix.
fn add_identity_and_normalize_rows(matrix: &mut [f64], tokens: usize) {
    for (i, row) in matrix.chunks_exact_mut(tokens).enumerate() {
        row[i] += 1.0;
        row.iter_mut().for_each(|v| *v *= 0.5);
        // The diagonal is at least 0.5 and entries are non-negative, so the
        // sum is positive.
        let sum: f64 = row.iter().sum();
        row.iter_mut().for_each(|v| *v /= sum);
    }
}

/// `out = row · matrix` for a row vector of length `T` and a row-major `T×T`
/// matrix.
fn row_times_matrix(row: &[f64], matrix: &[f64], out: &mut [f64]) {
    let tokens = row.len();
    out.fill(0.0);
    for (&weight, matrix_row) in row.iter().zip(matrix.chunks_exact(tokens)) {
        if weight == 0.0 {
            continue;
        }
        out.iter_mut()
            .zip(matrix_row)
            .for_each(|(o, &m)| *o += weight * m);
    }
}
