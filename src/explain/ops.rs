//! The row-wise pieces of the forward and backward passes, on plain row-major `f32` slices:
//! LayerNorm, GELU, softmax and their derivatives, and a matrix product through candle.
//!
//! Matrices are `(rows, cols)` row-major `Vec<f32>`s; only the products go through candle's
//! CPU `matmul` (the gemm crate), everything element-wise stays in loops that run the same
//! natively and in wasm32.

use candle_core::Tensor;

use super::ExplainError;
use crate::model::simd::{erf, exp};

/// `a · b` for row-major `a` (batch, m, k) and a candle tensor `b` that is either (k, n)
/// (shared by every batch) or (batch, k, n). Returns (batch, m, n) row-major.
pub(super) fn matmul(
    a: Vec<f32>,
    (batch, m, k): (usize, usize, usize),
    b: &Tensor,
) -> Result<Vec<f32>, ExplainError> {
    let lhs = Tensor::from_vec(a, (batch, m, k), b.device())?;
    let out = if b.rank() == 2 {
        // A shared rhs: fold the batch into the rows, one GEMM.
        lhs.reshape((batch * m, k))?.matmul(b)?
    } else {
        lhs.matmul(b)?
    };
    Ok(out.flatten_all()?.to_vec1::<f32>()?)
}

/// Lanes of the partial sums below: eight independent accumulators let the compiler use
/// SIMD registers (f32 addition is not associative, so a single running sum stays scalar).
const LANES: usize = 8;

/// Σ xs, in `LANES` partial sums.
#[inline]
fn sum(xs: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let mut chunks = xs.chunks_exact(LANES);
    for c in &mut chunks {
        for (a, v) in acc.iter_mut().zip(c) {
            *a += v;
        }
    }
    acc.iter().sum::<f32>() + chunks.remainder().iter().sum::<f32>()
}

/// Σ a·b, in `LANES` partial sums.
#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let mut ca = a.chunks_exact(LANES);
    let mut cb = b.chunks_exact(LANES);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for ((s, u), v) in acc.iter_mut().zip(x).zip(y) {
            *s += u * v;
        }
    }
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(u, v)| u * v)
        .sum();
    acc.iter().sum::<f32>() + tail
}

/// max xs (−∞ for an empty slice), in `LANES` partial maxima.
#[inline]
fn max(xs: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let mut chunks = xs.chunks_exact(LANES);
    for c in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a = if v > *a { v } else { *a };
        }
    }
    chunks
        .remainder()
        .iter()
        .chain(&acc)
        .fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m })
}

/// LayerNorm over the last dimension, in place on `(rows, width)` `x`, with affine `gamma`,
/// `beta` (width,). Returns, when `keep` is set, the normalized values `x̂ = (x − μ)·rstd`
/// (rows, width) and `rstd = 1/√(σ² + eps)` (rows,) that the backward pass needs.
pub(super) fn layer_norm(
    x: &mut [f32],
    width: usize,
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
    keep: bool,
) -> Option<(Vec<f32>, Vec<f32>)> {
    let rows = x.len() / width;
    let mut saved = keep.then(|| (Vec::with_capacity(x.len()), Vec::with_capacity(rows)));
    for row in x.chunks_exact_mut(width) {
        let mean = sum(row) / width as f32;
        row.iter_mut().for_each(|v| *v -= mean);
        let rstd = 1.0 / (dot(row, row) / width as f32 + eps).sqrt();
        row.iter_mut().for_each(|v| *v *= rstd);
        if let Some((normed, rstds)) = saved.as_mut() {
            normed.extend_from_slice(row);
            rstds.push(rstd);
        }
        for ((v, g), b) in row.iter_mut().zip(gamma).zip(beta) {
            *v = *v * g + b;
        }
    }
    saved
}

/// The gradient through a LayerNorm: given `dy` (rows, width) of its output, the saved `x̂`
/// and `rstd`, and `gamma`, returns `dx` (rows, width):
/// `dx = rstd · (g − mean(g) − x̂ · mean(g ⊙ x̂))` with `g = dy ⊙ gamma`.
pub(super) fn layer_norm_backward(
    dy: &[f32],
    normed: &[f32],
    rstd: &[f32],
    gamma: &[f32],
) -> Vec<f32> {
    let width = gamma.len();
    let mut dx = vec![0.0f32; dy.len()];
    for (((dx_row, dy_row), x_row), &r) in dx
        .chunks_exact_mut(width)
        .zip(dy.chunks_exact(width))
        .zip(normed.chunks_exact(width))
        .zip(rstd)
    {
        // dx_row holds g = dy ⊙ gamma first.
        for ((o, &d), &g) in dx_row.iter_mut().zip(dy_row).zip(gamma) {
            *o = d * g;
        }
        let mean_g = sum(dx_row) / width as f32;
        let mean_gx = dot(dx_row, x_row) / width as f32;
        for (o, &xh) in dx_row.iter_mut().zip(x_row) {
            *o = r * (*o - mean_g - xh * mean_gx);
        }
    }
    dx
}

/// Which GELU the MLP uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Gelu {
    /// x·Φ(x), Φ through the error function.
    Erf,
    /// 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
    Tanh,
}

const SQRT_2_OVER_PI: f32 = 0.797_884_6;
const TANH_CUBIC: f32 = 0.044_715;
/// 1/√(2π), the standard normal density at 0.
const INV_SQRT_2PI: f32 = 0.398_942_3;

/// tanh(x) = 1 − 2/(e^{2x} + 1), through the branch-free [`exp`].
#[inline]
fn tanh(x: f32) -> f32 {
    1.0 - 2.0 / (exp(2.0 * x.clamp(-20.0, 20.0)) + 1.0)
}

impl Gelu {
    #[inline]
    pub(super) fn value(self, x: f32) -> f32 {
        match self {
            Gelu::Erf => 0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2)),
            Gelu::Tanh => 0.5 * x * (1.0 + tanh(SQRT_2_OVER_PI * (x + TANH_CUBIC * x * x * x))),
        }
    }

    /// d gelu / dx.
    #[inline]
    pub(super) fn derivative(self, x: f32) -> f32 {
        match self {
            Gelu::Erf => {
                let cdf = 0.5 * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2));
                cdf + x * INV_SQRT_2PI * exp(-0.5 * x * x)
            }
            Gelu::Tanh => {
                let t = tanh(SQRT_2_OVER_PI * (x + TANH_CUBIC * x * x * x));
                0.5 * (1.0 + t)
                    + 0.5 * x * (1.0 - t * t) * SQRT_2_OVER_PI * (1.0 + 3.0 * TANH_CUBIC * x * x)
            }
        }
    }

    /// gelu(x) for every value, in place.
    pub(super) fn apply(self, xs: &mut [f32]) {
        match self {
            Gelu::Erf => xs.iter_mut().for_each(|v| *v = Gelu::Erf.value(*v)),
            Gelu::Tanh => xs.iter_mut().for_each(|v| *v = Gelu::Tanh.value(*v)),
        }
    }

    /// grads ⊙ gelu′(pre), in place on `grads`.
    pub(super) fn backward(self, grads: &mut [f32], pre: &[f32]) {
        let pairs = grads.iter_mut().zip(pre);
        match self {
            Gelu::Erf => pairs.for_each(|(g, &u)| *g *= Gelu::Erf.derivative(u)),
            Gelu::Tanh => pairs.for_each(|(g, &u)| *g *= Gelu::Tanh.derivative(u)),
        }
    }
}

/// Softmax of every `width`-long row of `x`, in place (maximum subtracted first).
pub(super) fn softmax_rows(x: &mut [f32], width: usize) {
    for row in x.chunks_exact_mut(width) {
        let m = max(row);
        row.iter_mut().for_each(|v| *v = exp(*v - m));
        let inv = 1.0 / sum(row);
        row.iter_mut().for_each(|v| *v *= inv);
    }
}

/// The gradient through a row softmax: given the probabilities `p` and `dp` (both rows of
/// `width`), returns `ds = p ⊙ (dp − Σ_j dp_j p_j)` row by row.
pub(super) fn softmax_backward(p: &[f32], dp: &[f32], width: usize) -> Vec<f32> {
    let mut ds = vec![0.0f32; p.len()];
    for ((ds_row, p_row), dp_row) in ds
        .chunks_exact_mut(width)
        .zip(p.chunks_exact(width))
        .zip(dp.chunks_exact(width))
    {
        let d = dot(p_row, dp_row);
        for ((o, &pv), &dv) in ds_row.iter_mut().zip(p_row).zip(dp_row) {
            *o = pv * (dv - d);
        }
    }
    ds
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Central difference of `f` at `x`, in f64 from f32 evaluations.
    fn numeric(f: impl Fn(f32) -> f32, x: f32) -> f32 {
        let h = 1e-2f32;
        (f(x + h) - f(x - h)) / (2.0 * h)
    }

    #[test]
    fn gelu_derivatives_match_central_differences() {
        for gelu in [Gelu::Erf, Gelu::Tanh] {
            for x in [-4.0f32, -1.3, -0.2, 0.0, 0.4, 1.7, 3.5] {
                let d = gelu.derivative(x);
                let n = numeric(|v| gelu.value(v), x);
                assert!((d - n).abs() < 2e-3, "{gelu:?} at {x}: {d} vs {n}");
            }
        }
        // Φ(1) = 0.841344746…
        assert!((Gelu::Erf.value(1.0) - 0.841_344_7).abs() < 1e-6);
    }

    #[test]
    fn lane_wise_max_and_sum() {
        assert_eq!(
            max(&[1.0, 5.0, -2.0, 3.0, 0.0, 0.0, 0.0, 0.0, 4.0, 7.5]),
            7.5
        );
        assert_eq!(sum(&[1.0; 11]), 11.0);
    }

    #[test]
    fn layer_norm_backward_matches_central_differences() {
        let width = 5;
        let x0 = [0.3f32, -1.2, 2.0, 0.7, -0.4, 1.0, 1.5, -2.0, 0.1, 0.0];
        let gamma = [1.1f32, 0.9, 1.3, 0.7, 1.0];
        let beta = [0.1f32, -0.2, 0.0, 0.3, 0.05];
        let dy = [0.5f32, -1.0, 0.25, 2.0, -0.3, 1.0, 0.0, -0.5, 0.7, 0.2];
        let loss = |x: &[f32]| -> f32 {
            let mut y = x.to_vec();
            layer_norm(&mut y, width, &gamma, &beta, 1e-5, false);
            y.iter().zip(&dy).map(|(a, b)| a * b).sum()
        };
        let mut y = x0.to_vec();
        let (normed, rstd) = layer_norm(&mut y, width, &gamma, &beta, 1e-5, true).expect("kept");
        let dx = layer_norm_backward(&dy, &normed, &rstd, &gamma);
        for i in 0..x0.len() {
            let n = numeric(
                |v| {
                    let mut x = x0.to_vec();
                    x[i] = v;
                    loss(&x)
                },
                x0[i],
            );
            assert!((dx[i] - n).abs() < 2e-3, "x[{i}]: {} vs {n}", dx[i]);
        }
    }

    #[test]
    fn softmax_backward_matches_central_differences() {
        let s0 = [0.2f32, -0.5, 1.5, 0.0];
        let dp = [1.0f32, -2.0, 0.5, 0.25];
        let loss = |s: &[f32]| -> f32 {
            let mut p = s.to_vec();
            softmax_rows(&mut p, 4);
            p.iter().zip(&dp).map(|(a, b)| a * b).sum()
        };
        let mut p = s0.to_vec();
        softmax_rows(&mut p, 4);
        let ds = softmax_backward(&p, &dp, 4);
        for i in 0..4 {
            let n = numeric(
                |v| {
                    let mut s = s0.to_vec();
                    s[i] = v;
                    loss(&s)
                },
                s0[i],
            );
            assert!((ds[i] - n).abs() < 1e-3, "s[{i}]: {} vs {n}", ds[i]);
        }
    }
}
