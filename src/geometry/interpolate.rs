//! Bicubic resizing of the position-embedding grid, as PyTorch's
//! `F.interpolate(mode="bicubic", align_corners=False, size=…)` does it — what transformers'
//! `interpolate_pos_encoding` calls when an input is larger or smaller than the checkpoint's.

/// Keys' convolution constant of PyTorch's bicubic kernel.
const CUBIC_A: f32 = -0.75;

/// The four tap weights for a sample at fractional offset `t` ∈ [0, 1) past the second tap.
fn cubic_weights(t: f32) -> [f32; 4] {
    // |x| ≤ 1 and 1 < |x| < 2 pieces of the cubic convolution kernel.
    let near = |x: f32| ((CUBIC_A + 2.0) * x - (CUBIC_A + 3.0)) * x * x + 1.0;
    let far = |x: f32| ((CUBIC_A * x - 5.0 * CUBIC_A) * x + 8.0 * CUBIC_A) * x - 4.0 * CUBIC_A;
    [far(t + 1.0), near(t), near(1.0 - t), far(2.0 - t)]
}

/// For each output index: the four clamped source indices and their weights.
fn taps(in_len: usize, out_len: usize) -> Vec<([usize; 4], [f32; 4])> {
    let scale = in_len as f32 / out_len as f32;
    (0..out_len)
        .map(|o| {
            let src = scale * (o as f32 + 0.5) - 0.5;
            let base = src.floor();
            let t = src - base;
            let base = base as i64;
            let last = in_len as i64 - 1;
            let idx = [-1i64, 0, 1, 2].map(|k| (base + k).clamp(0, last) as usize);
            (idx, cubic_weights(t))
        })
        .collect()
}

/// Resizes the patch part of `pos_embed` (tokens × hidden, prefix tokens first, patches in
/// row-major grid order) from `from` = (rows, cols) to `to`; prefix tokens are kept as they are.
/// Returns (prefix + to.0·to.1) × hidden values.
pub fn resize_position_grid(
    pos_embed: &[f32],
    hidden: usize,
    prefix_tokens: usize,
    from: (usize, usize),
    to: (usize, usize),
) -> Vec<f32> {
    let (in_h, in_w) = from;
    let (out_h, out_w) = to;
    let grid = &pos_embed[prefix_tokens * hidden..];
    let row_taps = taps(in_h, out_h);
    let col_taps = taps(in_w, out_w);

    let mut out = Vec::with_capacity((prefix_tokens + out_h * out_w) * hidden);
    out.extend_from_slice(&pos_embed[..prefix_tokens * hidden]);
    let mut acc = vec![0f32; hidden];
    let mut row_acc = vec![0f32; hidden];
    for (rows, wy) in &row_taps {
        for (cols, wx) in &col_taps {
            acc.iter_mut().for_each(|a| *a = 0.0);
            for (&r, &wr) in rows.iter().zip(wy) {
                row_acc.iter_mut().for_each(|a| *a = 0.0);
                for (&c, &wc) in cols.iter().zip(wx) {
                    let src = &grid[(r * in_w + c) * hidden..][..hidden];
                    for (a, &s) in row_acc.iter_mut().zip(src) {
                        *a += wc * s;
                    }
                }
                for (a, &s) in acc.iter_mut().zip(&row_acc) {
                    *a += wr * s;
                }
            }
            out.extend_from_slice(&acc);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_sum_to_one() {
        for t in [0.0, 0.25, 0.5, 0.9] {
            let s: f32 = cubic_weights(t).iter().sum();
            assert!((s - 1.0).abs() < 1e-6, "t={t} sum={s}");
        }
    }

    #[test]
    fn same_size_is_identity() {
        let grid: Vec<f32> = (0..(1 + 9) * 2).map(|i| i as f32 * 0.37).collect();
        let out = resize_position_grid(&grid, 2, 1, (3, 3), (3, 3));
        for (a, b) in out.iter().zip(&grid) {
            assert!((a - b).abs() < 1e-5);
        }
    }

    #[test]
    fn constant_grid_stays_constant() {
        let grid = vec![1.5f32; (2 + 16) * 3];
        let out = resize_position_grid(&grid, 3, 2, (4, 4), (7, 5));
        assert_eq!(out.len(), (2 + 35) * 3);
        assert!(out.iter().all(|v| (v - 1.5).abs() < 1e-5));
    }
}
