//! A GEMM for the model's dense layers with weights packed once at load, an AVX-512 kernel and
//! fused epilogues (bias, residual).
//!
//! candle's matmul (the `gemm` crate) runs AVX2 kernels on stable Rust and repacks the
//! weights on every call. The dense layers of a ViT always multiply activations (tokens × in)
//! by the same weights, so here the weights are packed once into column panels of
//! [`NR`] floats and each call streams the activations through a 12×32 register tile:
//! 24 accumulators, two panel loads and 24 FMAs per step of the inner dimension. The bias
//! (and, for the end of a residual branch, the residual) initialise the accumulators, so they
//! cost no extra pass over memory.
//!
//! Where AVX-512F is missing (older x86, wasm32), [`PackedLinear::available`] is false and the
//! model uses candle's matmul instead. The attention kernel runs its two products per head on
//! the same register tiles.

/// Columns per packed panel: two 16-float AVX-512 registers.
pub(crate) const NR: usize = 32;
/// Rows per register tile.
pub(crate) const MR: usize = 12;
/// Rows per cache block: 48 rows of a 768-wide input are 144 KiB, well inside L2.
#[cfg(target_arch = "x86_64")]
const MC: usize = 4 * MR;

/// A linear layer's transposed weight (in, out), packed into column panels, with its bias.
#[derive(Clone, Debug)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) struct PackedLinear {
    /// Inner dimension (input features).
    k: usize,
    /// Output features.
    n: usize,
    /// ⌈n / NR⌉ panels, each k rows of NR floats; columns past n are zero.
    panels: Vec<f32>,
    /// Bias padded to a multiple of NR (zeros past n, or all zeros without a bias).
    bias: Vec<f32>,
}

/// What the accumulators start from, besides the bias.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Epilogue<'a> {
    /// out = a·W + bias
    Bias,
    /// out = a·W + bias + residual, residual (m, n) row-major.
    BiasResidual(&'a [f32]),
}

impl PackedLinear {
    /// Whether this CPU can run the packed kernel.
    pub(crate) fn available() -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            std::arch::is_x86_feature_detected!("avx512f")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }

    /// Packs `weight` as PyTorch stores it: (out = n, in = k), row-major.
    pub(crate) fn new(weight: &[f32], n: usize, k: usize, bias: Option<&[f32]>) -> Self {
        debug_assert_eq!(weight.len(), n * k);
        // Panel element (p, j) is input feature p of output j: weight[j·k + p].
        let panels = pack_panels(k, n, |p, j| weight[j * k + p]);
        let mut padded_bias = vec![0f32; n.div_ceil(NR) * NR];
        if let Some(b) = bias {
            padded_bias[..n].copy_from_slice(b);
        }
        Self {
            k,
            n,
            panels,
            bias: padded_bias,
        }
    }

    pub(crate) fn in_features(&self) -> usize {
        self.k
    }

    pub(crate) fn out_features(&self) -> usize {
        self.n
    }

    /// out (m, n) = a (m, k) · W + bias [+ residual]. Panics if [`Self::available`] is false
    /// or a slice has the wrong length; callers check both.
    pub(crate) fn forward(&self, a: &[f32], m: usize, epilogue: Epilogue<'_>, out: &mut [f32]) {
        assert!(Self::available(), "PackedLinear needs AVX-512F");
        assert_eq!(a.len(), m * self.k, "activations");
        assert_eq!(out.len(), m * self.n, "output");
        if let Epilogue::BiasResidual(r) = epilogue {
            assert_eq!(r.len(), m * self.n, "residual");
        }
        let rows_per_task = MR * 4;
        let threads = rayon_threads();
        if threads > 1 && m >= 2 * rows_per_task {
            use rayon::prelude::*;
            out.par_chunks_mut(rows_per_task * self.n)
                .enumerate()
                .for_each(|(chunk, out_rows)| {
                    let row0 = chunk * rows_per_task;
                    let rows = out_rows.len() / self.n;
                    let a_rows = &a[row0 * self.k..(row0 + rows) * self.k];
                    let epi = match epilogue {
                        Epilogue::Bias => Epilogue::Bias,
                        Epilogue::BiasResidual(r) => {
                            Epilogue::BiasResidual(&r[row0 * self.n..(row0 + rows) * self.n])
                        }
                    };
                    self.forward_rows(a_rows, rows, epi, out_rows);
                });
        } else {
            self.forward_rows(a, m, epilogue, out);
        }
    }

    fn forward_rows(&self, a: &[f32], m: usize, epilogue: Epilogue<'_>, out: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `forward` checked that the CPU has AVX-512F and that every slice has the
        // length the kernel indexes: a (m, k), out and residual (m, n), panels and bias padded
        // to whole panels.
        unsafe {
            avx512::run(self, a, m, epilogue, out);
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (a, m, epilogue, out);
            unreachable!("PackedLinear::available() is false off x86-64");
        }
    }
}

/// Packs a (k, n) matrix, given element by element, into panels of [`NR`] columns.
pub(crate) fn pack_panels(k: usize, n: usize, element: impl Fn(usize, usize) -> f32) -> Vec<f32> {
    let mut panels = vec![0f32; n.div_ceil(NR) * k * NR];
    for (panel, chunk) in panels.chunks_exact_mut(k * NR).enumerate() {
        for (row, lanes) in chunk.chunks_exact_mut(NR).enumerate() {
            for (lane, slot) in lanes.iter_mut().enumerate() {
                let col = panel * NR + lane;
                if col < n {
                    *slot = element(row, col);
                }
            }
        }
    }
    panels
}

pub(crate) fn rayon_threads() -> usize {
    #[cfg(target_arch = "wasm32")]
    {
        1
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        rayon::current_num_threads()
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512 {
    use std::arch::x86_64::*;

    use super::{Epilogue, PackedLinear, MC, MR, NR};

    /// All tiles of out = a·W + epilogue.
    ///
    /// # Safety
    /// The CPU has AVX-512F; a is (m, k), out (m, n), a residual (m, n).
    #[target_feature(enable = "avx512f")]
    pub(crate) unsafe fn run(
        w: &PackedLinear,
        a: &[f32],
        m: usize,
        epilogue: Epilogue<'_>,
        out: &mut [f32],
    ) {
        let residual = match epilogue {
            Epilogue::Bias => None,
            Epilogue::BiasResidual(r) => Some(r.as_ptr()),
        };
        let (k, n) = (w.k, w.n);
        let (a, out) = (Operand::of(a, k), Output::of(out, n));
        gemm(a, [m, k, n], &w.panels, w.bias.as_ptr(), residual, out);
    }

    /// A row-major matrix in memory: element (i, j) at `ptr + i·ld + j`.
    #[derive(Clone, Copy)]
    pub(crate) struct Operand {
        pub(crate) ptr: *const f32,
        pub(crate) ld: usize,
    }

    /// A row-major matrix written through `ptr`: element (i, j) at `ptr + i·ld + j`.
    #[derive(Clone, Copy)]
    pub(crate) struct Output {
        pub(crate) ptr: *mut f32,
        pub(crate) ld: usize,
    }

    impl Operand {
        /// `values` as rows `ld` apart.
        pub(crate) fn of(values: &[f32], ld: usize) -> Self {
            Self {
                ptr: values.as_ptr(),
                ld,
            }
        }
    }

    impl Output {
        /// `values` as rows `ld` apart.
        pub(crate) fn of(values: &mut [f32], ld: usize) -> Self {
            Self {
                ptr: values.as_mut_ptr(),
                ld,
            }
        }
    }

    /// out (m, n) = a (m, k) · B + bias [+ residual], B packed in panels of NR columns.
    ///
    /// # Safety
    /// The CPU has AVX-512F; `a`, `out` and `residual` (same `ld` as `out`) address m rows of
    /// k (a) or n (out, residual) valid elements; `panels` holds ⌈n/NR⌉·k·NR floats and `bias`
    /// ⌈n/NR⌉·NR.
    #[target_feature(enable = "avx512f")]
    pub(crate) unsafe fn gemm(
        a: Operand,
        [m, k, n]: [usize; 3],
        panels: &[f32],
        bias: *const f32,
        residual: Option<*const f32>,
        out: Output,
    ) {
        // Rows in blocks of MC so a block of activations stays in L2 while every panel of
        // the weights passes over it (a batch of images is thousands of rows).
        for block0 in (0..m).step_by(MC) {
            let block_end = m.min(block0 + MC);
            for panel in 0..n.div_ceil(NR) {
                let col0 = panel * NR;
                let cols = NR.min(n - col0);
                let panel_ptr = panels.as_ptr().add(panel * k * NR);
                let mut row0 = block0;
                while row0 < block_end {
                    let rows = MR.min(block_end - row0);
                    let tile = Tile {
                        a: a.ptr.add(row0 * a.ld),
                        lda: a.ld,
                        k,
                        panel: panel_ptr,
                        bias: bias.add(col0),
                        residual: residual.map(|r| r.add(row0 * out.ld + col0)),
                        out: out.ptr.add(row0 * out.ld + col0),
                        ld: out.ld,
                        cols,
                    };
                    match rows {
                        12 => tile.run::<12>(),
                        11 => tile.run::<11>(),
                        10 => tile.run::<10>(),
                        9 => tile.run::<9>(),
                        8 => tile.run::<8>(),
                        7 => tile.run::<7>(),
                        6 => tile.run::<6>(),
                        5 => tile.run::<5>(),
                        4 => tile.run::<4>(),
                        3 => tile.run::<3>(),
                        2 => tile.run::<2>(),
                        _ => tile.run::<1>(),
                    }
                    row0 += rows;
                }
            }
        }
    }

    /// One register tile: up to MR rows × NR columns of the output.
    struct Tile {
        /// First activation row; rows are `lda` apart.
        a: *const f32,
        lda: usize,
        k: usize,
        /// k rows of NR packed weights.
        panel: *const f32,
        /// NR bias values (zero-padded).
        bias: *const f32,
        /// First residual element of the tile; rows are `ld` apart.
        residual: Option<*const f32>,
        /// First output element of the tile; rows are `ld` apart.
        out: *mut f32,
        ld: usize,
        /// Valid columns of the tile (≤ NR).
        cols: usize,
    }

    impl Tile {
        #[target_feature(enable = "avx512f")]
        unsafe fn run<const R: usize>(&self) {
            let lo_mask: __mmask16 = if self.cols >= 16 {
                0xffff
            } else {
                (1u16 << self.cols) - 1
            };
            let hi_mask: __mmask16 = if self.cols >= NR {
                0xffff
            } else if self.cols > 16 {
                (1u16 << (self.cols - 16)) - 1
            } else {
                0
            };
            let bias_lo = _mm512_loadu_ps(self.bias);
            let bias_hi = _mm512_loadu_ps(self.bias.add(16));
            let mut acc = [[bias_lo, bias_hi]; R];
            if let Some(res) = self.residual {
                for (r, row) in acc.iter_mut().enumerate() {
                    let p = res.add(r * self.ld);
                    row[0] = _mm512_add_ps(row[0], _mm512_maskz_loadu_ps(lo_mask, p));
                    row[1] = _mm512_add_ps(row[1], _mm512_maskz_loadu_ps(hi_mask, p.add(16)));
                }
            }
            for p in 0..self.k {
                let b0 = _mm512_loadu_ps(self.panel.add(p * NR));
                let b1 = _mm512_loadu_ps(self.panel.add(p * NR + 16));
                for (r, row) in acc.iter_mut().enumerate() {
                    let av = _mm512_set1_ps(*self.a.add(r * self.lda + p));
                    row[0] = _mm512_fmadd_ps(av, b0, row[0]);
                    row[1] = _mm512_fmadd_ps(av, b1, row[1]);
                }
            }
            for (r, row) in acc.iter().enumerate() {
                let p = self.out.add(r * self.ld);
                _mm512_mask_storeu_ps(p, lo_mask, row[0]);
                _mm512_mask_storeu_ps(p.add(16), hi_mask, row[1]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(a: &[f32], w: &[f32], bias: &[f32], m: usize, n: usize, k: usize) -> Vec<f32> {
        let mut out = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                let dot: f64 = (0..k)
                    .map(|p| a[i * k + p] as f64 * w[j * k + p] as f64)
                    .sum();
                out[i * n + j] = (dot + bias[j] as f64) as f32;
            }
        }
        out
    }

    #[test]
    fn matches_a_plain_matmul() {
        if !PackedLinear::available() {
            eprintln!("skipped: this CPU has no AVX-512F, so the model uses candle's matmul");
            return;
        }
        for (m, n, k) in [
            (1, 1, 1),
            (13, 33, 7),
            (197, 96, 64),
            (25, 17, 40),
            (12, 32, 5),
        ] {
            let a: Vec<f32> = (0..m * k)
                .map(|i| ((i * 7919 % 113) as f32 - 56.0) / 40.0)
                .collect();
            let w: Vec<f32> = (0..n * k)
                .map(|i| ((i * 104_729 % 97) as f32 - 48.0) / 50.0)
                .collect();
            let bias: Vec<f32> = (0..n).map(|j| j as f32 * 0.01 - 0.2).collect();
            let residual: Vec<f32> = (0..m * n).map(|i| (i % 11) as f32 * 0.1).collect();
            let packed = PackedLinear::new(&w, n, k, Some(&bias));
            let expected = reference(&a, &w, &bias, m, n, k);
            let mut out = vec![f32::NAN; m * n];
            packed.forward(&a, m, Epilogue::Bias, &mut out);
            for (o, e) in out.iter().zip(&expected) {
                assert!(
                    (o - e).abs() <= 1e-5 * (1.0 + e.abs()),
                    "{m}x{n}x{k}: {o} vs {e}"
                );
            }
            packed.forward(&a, m, Epilogue::BiasResidual(&residual), &mut out);
            for ((o, e), r) in out.iter().zip(&expected).zip(&residual) {
                assert!(
                    (o - (e + r)).abs() <= 1e-5 * (1.0 + e.abs()),
                    "{m}x{n}x{k}: residual"
                );
            }
        }
    }
}
