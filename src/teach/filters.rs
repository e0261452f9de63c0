//! What the patch embedding learned: the principal components of its filters (ViT paper,
//! Fig. 7 left), by a small Jacobi eigen-solver.

use serde::{Deserialize, Serialize};

use super::TeachError;
use crate::checkpoint::WeightTensor;

/// The principal components of the patch-embedding filters.
///
/// Each of the `hidden` filters (channels × patch × patch weights of the patch-embedding
/// convolution) is one sample; the samples are centred (the mean filter subtracted) and the
/// components are the unit-length directions of largest variance, largest first. A component's
/// sign is arbitrary; here its largest-magnitude entry is positive.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FilterPca {
    pub channels: usize,
    pub patch_size: usize,
    /// Each `channels × patch × patch` values, channel-major like the filters.
    pub components: Vec<Vec<f32>>,
    /// The fraction of the total variance along each component.
    pub explained_variance_ratio: Vec<f32>,
}

/// The largest Gram matrix side the filter PCA solves (its Jacobi sweeps cost side³).
const MAX_PCA_DIM: u64 = 1024;
/// The most multiply-adds the Gram matrix may take (ViT-H/14: 588² · 1,280 ≈ 4.4e8).
const MAX_PCA_WORK: u64 = 4_000_000_000;

/// `weight`: the patch-embedding convolution, (hidden, channels, patch, patch). Returns at
/// most `k` components (fewer when the filters span fewer dimensions).
pub fn filter_pca(weight: &WeightTensor, k: usize) -> Result<FilterPca, TeachError> {
    let (d, channels, patch) = match weight.shape.as_slice() {
        &[d, c, p, q]
            if p == q && d > 0 && c > 0 && p > 0 && weight.data.len() == d * c * p * q =>
        {
            (d, c, p)
        }
        other => {
            return Err(TeachError::Shape {
                what: "the patch-embedding weight",
                shape: other.to_vec(),
                expected: "(hidden, channels, patch, patch)".into(),
            })
        }
    };
    let f = channels * patch * patch;
    // The Gram matrix costs min² · max multiply-adds and the eigen-solve min³ per sweep.
    let (small, large) = (d.min(f) as u64, d.max(f) as u64);
    if small > MAX_PCA_DIM || small * small * large > MAX_PCA_WORK {
        return Err(TeachError::TooLarge {
            what: format!("the principal components of {d} patch filters of {f} values each"),
            limit: format!(
                "up to {MAX_PCA_DIM} filters or filter values (ViT-H/14 has 1,280 filters of 588)"
            ),
        });
    }
    // Centred samples, f64: (d, f).
    let mut x: Vec<f64> = weight.data.iter().map(|&v| f64::from(v)).collect();
    for col in 0..f {
        let mean = (0..d).map(|r| x[r * f + col]).sum::<f64>() / d as f64;
        for r in 0..d {
            x[r * f + col] -= mean;
        }
    }
    let total: f64 = x.iter().map(|v| v * v).sum();
    // Eigen-decompose the smaller of the two Gram matrices.
    let (values, vectors, n) = if d <= f {
        let mut g = vec![0.0; d * d];
        for i in 0..d {
            for j in i..d {
                let dot: f64 = (0..f).map(|c| x[i * f + c] * x[j * f + c]).sum();
                g[i * d + j] = dot;
                g[j * d + i] = dot;
            }
        }
        let (values, vectors) = symmetric_eigen(g, d);
        (values, vectors, d)
    } else {
        let mut g = vec![0.0; f * f];
        for i in 0..f {
            for j in i..f {
                let dot: f64 = (0..d).map(|r| x[r * f + i] * x[r * f + j]).sum();
                g[i * f + j] = dot;
                g[j * f + i] = dot;
            }
        }
        let (values, vectors) = symmetric_eigen(g, f);
        (values, vectors, f)
    };
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| values[b].total_cmp(&values[a]));
    let mut components = Vec::new();
    let mut explained = Vec::new();
    for &i in order.iter().take(k) {
        let lambda = values[i];
        // Directions with no variance (rank-deficient filters) are not components.
        if lambda.is_nan() || lambda <= total * 1e-12 {
            break;
        }
        let mut component: Vec<f64> = if d <= f {
            // v = Xᵀu / ‖Xᵀu‖ for an eigenvector u of X·Xᵀ.
            let u: Vec<f64> = (0..d).map(|r| vectors[r * n + i]).collect();
            (0..f)
                .map(|c| (0..d).map(|r| x[r * f + c] * u[r]).sum())
                .collect()
        } else {
            (0..f).map(|c| vectors[c * n + i]).collect()
        };
        let norm = component.iter().map(|v| v * v).sum::<f64>().sqrt();
        let peak = component
            .iter()
            .copied()
            .max_by(|a, b| a.abs().total_cmp(&b.abs()))
            .unwrap_or(0.0);
        let sign = if peak < 0.0 { -1.0 } else { 1.0 };
        for v in &mut component {
            *v *= sign / norm;
        }
        components.push(component.into_iter().map(|v| v as f32).collect());
        explained.push((lambda / total) as f32);
    }
    Ok(FilterPca {
        channels,
        patch_size: patch,
        components,
        explained_variance_ratio: explained,
    })
}

/// Eigenvalues and eigenvectors of a symmetric `n × n` matrix (row-major) by cyclic Jacobi
/// rotations. Returns (values, vectors) with eigenvector `i` in column `i` of `vectors`.
fn symmetric_eigen(mut a: Vec<f64>, n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut v = vec![0.0; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    let scale: f64 = a.iter().map(|x| x * x).sum::<f64>().max(f64::MIN_POSITIVE);
    for _sweep in 0..64 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * n + j] * a[i * n + j])
            .sum();
        if off <= scale * 1e-28 {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq.abs() <= f64::MIN_POSITIVE {
                    continue;
                }
                let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (akp, akq) = (a[k * n + p], a[k * n + q]);
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[p * n + k], a[q * n + k]);
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (v[k * n + p], v[k * n + q]);
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..n).map(|i| a[i * n + i]).collect(), v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jacobi_diagonalizes_a_known_matrix() {
        // Eigenvalues of [[2,1,0],[1,2,1],[0,1,2]] are 2-√2, 2, 2+√2.
        let (mut values, vectors) =
            symmetric_eigen(vec![2.0, 1.0, 0.0, 1.0, 2.0, 1.0, 0.0, 1.0, 2.0], 3);
        let a = [[2.0, 1.0, 0.0], [1.0, 2.0, 1.0], [0.0, 1.0, 2.0]];
        for i in 0..3 {
            // A·v = λ·v for every returned pair.
            for r in 0..3 {
                let av: f64 = (0..3).map(|c| a[r][c] * vectors[c * 3 + i]).sum();
                assert!((av - values[i] * vectors[r * 3 + i]).abs() < 1e-12);
            }
        }
        values.sort_by(f64::total_cmp);
        let s = 2f64.sqrt();
        for (got, want) in values.iter().zip([2.0 - s, 2.0, 2.0 + s]) {
            assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        }
    }

    #[test]
    fn rejects_bad_filter_shapes() {
        let w = WeightTensor::new(vec![4, 3, 2], vec![0.0; 24]);
        assert!(filter_pca(&w, 3).is_err());
    }
}
