//! The row-wise pieces of the forward and backward passes, on plain row-major `f32` slices:
//! LayerNorm, GELU, softmax and their derivatives, and a matrix product through candle.
//!
//! Matrices are `(rows, cols)` row-major `Vec<f32>`s; only the products go through candle's
//! CPU `matmul` (the gemm crate), everything element-wise stays in loops that run the same
//! natively and in wasm32.

use candle_core::Tensor;

use super::ExplainError;

/// `a · b` for row-major `a` (batch, m, k) and a candle tensor `b` that is either (k, n)
/// (shared by every batch) or (batch, k, n). Returns (batch, m, n) row-major.
pub(super) fn matmul(
    a: &[f32],
    (batch, m, k): (usize, usize, usize),
    b: &Tensor,
) -> Result<Vec<f32>, ExplainError> {
    let lhs = Tensor::from_slice(a, (batch, m, k), b.device())?;
    let out = if b.rank() == 2 {
        // A shared rhs: fold the batch into the rows, one GEMM.
        lhs.reshape((batch * m, k))?.matmul(b)?
    } else {
        lhs.matmul(b)?
    };
    Ok(out.flatten_all()?.to_vec1::<f32>()?)
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
        let mean = row.iter().sum::<f32>() / width as f32;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / width as f32;
        let rstd = 1.0 / (var + eps).sqrt();
        for v in row.iter_mut() {
            *v = (*v - mean) * rstd;
        }
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
        let (mut sum_g, mut sum_gx) = (0.0f32, 0.0f32);
        for ((&d, &g), &xh) in dy_row.iter().zip(gamma).zip(x_row) {
            sum_g += d * g;
            sum_gx += d * g * xh;
        }
        let (mean_g, mean_gx) = (sum_g / width as f32, sum_gx / width as f32);
        for (((o, &d), &g), &xh) in dx_row.iter_mut().zip(dy_row).zip(gamma).zip(x_row) {
            *o = r * (d * g - mean_g - xh * mean_gx);
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

impl Gelu {
    pub(super) fn value(self, x: f32) -> f32 {
        match self {
            Gelu::Erf => {
                0.5 * x
                    * (1.0 + candle_core::cpu::erf::erf_f32(x * std::f32::consts::FRAC_1_SQRT_2))
            }
            Gelu::Tanh => 0.5 * x * (1.0 + (SQRT_2_OVER_PI * (x + TANH_CUBIC * x * x * x)).tanh()),
        }
    }

    /// d gelu / dx.
    pub(super) fn derivative(self, x: f32) -> f32 {
        match self {
            Gelu::Erf => {
                let cdf = 0.5
                    * (1.0 + candle_core::cpu::erf::erf_f32(x * std::f32::consts::FRAC_1_SQRT_2));
                cdf + x * INV_SQRT_2PI * (-0.5 * x * x).exp()
            }
            Gelu::Tanh => {
                let inner = SQRT_2_OVER_PI * (x + TANH_CUBIC * x * x * x);
                let t = inner.tanh();
                0.5 * (1.0 + t)
                    + 0.5 * x * (1.0 - t * t) * SQRT_2_OVER_PI * (1.0 + 3.0 * TANH_CUBIC * x * x)
            }
        }
    }
}

/// Softmax of every `width`-long row of `x`, in place (maximum subtracted first).
pub(super) fn softmax_rows(x: &mut [f32], width: usize) {
    for row in x.chunks_exact_mut(width) {
        let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        let mut sum = 0.0f32;
        for v in row.iter_mut() {
            *v = (*v - max).exp();
            sum += *v;
        }
        let inv = 1.0 / sum;
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
        let dot: f32 = p_row.iter().zip(dp_row).map(|(a, b)| a * b).sum();
        for ((o, &pv), &dv) in ds_row.iter_mut().zip(p_row).zip(dp_row) {
            *o = pv * (dv - dot);
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
