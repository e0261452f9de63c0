//! The CPU kernels as candle custom ops: fused bias/GELU/residual epilogues, LayerNorm,
//! softmax, the packed GEMM and the fused attention.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Result, Shape};

use super::attention::attention;
use super::gemm::{Epilogue, PackedLinear};
use super::simd::{bias_gelu_rows, gelu_in_place, layer_norm_rows, softmax_rows, Gelu};

/// The contiguous f32 data of a custom op's input.
fn f32_slice<'a>(storage: &'a CpuStorage, layout: &Layout, what: &str) -> Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else {
        candle_core::bail!("{what}: expected f32 data");
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("{what}: input must be contiguous");
    };
    Ok(&data[start..end])
}

/// x + bias over the last dimension, then GELU if one is given: x (rows, width), bias (width,).
pub(crate) struct BiasActivation(pub(crate) Option<Gelu>);

impl CustomOp2 for BiasActivation {
    fn name(&self) -> &'static str {
        "bias-activation"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, bias) = input_and_bias(self.name(), (s1, l1), (s2, l2))?;
        let out = match self.0 {
            Some(gelu) => {
                let mut out = vec![0f32; x.len()];
                bias_gelu_rows(x, bias, gelu, &mut out);
                out
            }
            None => add_bias_rows(x, bias, None),
        };
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// residual + x + bias: the end of an attention or MLP branch. x and residual share a
/// shape whose last dimension is the bias length.
pub(crate) struct BiasResidual;

impl CustomOp3 for BiasResidual {
    fn name(&self) -> &'static str {
        "bias-residual"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, bias) = input_and_bias(self.name(), (s1, l1), (s2, l2))?;
        let residual = f32_slice(s3, l3, "bias-residual residual")?;
        if residual.len() != x.len() {
            candle_core::bail!(
                "bias-residual: residual {:?} vs input {:?}",
                l3.dims(),
                l1.dims()
            );
        }
        let out = add_bias_rows(x, bias, Some(residual));
        Ok((CpuStorage::F32(out), l3.shape().clone()))
    }
}

/// An op's input x (rows, width) and its bias (width,), checked against each other.
fn input_and_bias<'a>(
    what: &str,
    (s1, l1): (&'a CpuStorage, &Layout),
    (s2, l2): (&'a CpuStorage, &Layout),
) -> Result<(&'a [f32], &'a [f32])> {
    let x = f32_slice(s1, l1, what)?;
    let bias = f32_slice(s2, l2, what)?;
    if bias.is_empty() || l1.dims().last() != Some(&bias.len()) {
        candle_core::bail!("{what}: bias of {} for input {:?}", bias.len(), l1.dims());
    }
    Ok((x, bias))
}

/// x + bias row by row (rows of `bias.len()`), added onto `base` where given.
fn add_bias_rows(x: &[f32], bias: &[f32], base: Option<&[f32]>) -> Vec<f32> {
    let mut out = base.map_or_else(|| vec![0f32; x.len()], <[f32]>::to_vec);
    for (o_row, x_row) in out
        .chunks_exact_mut(bias.len())
        .zip(x.chunks_exact(bias.len()))
    {
        for ((o, &v), &b) in o_row.iter_mut().zip(x_row).zip(bias) {
            *o += v + b;
        }
    }
    out
}

/// LayerNorm over the last dimension: (x, weight, bias).
pub(crate) struct LayerNormOp {
    pub(crate) eps: f32,
}

impl CustomOp3 for LayerNormOp {
    fn name(&self) -> &'static str {
        "layer-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(s1, l1, "layer-norm input")?;
        let weight = f32_slice(s2, l2, "layer-norm weight")?;
        let bias = f32_slice(s3, l3, "layer-norm bias")?;
        if weight.is_empty()
            || weight.len() != bias.len()
            || l1.dims().last() != Some(&weight.len())
        {
            candle_core::bail!(
                "layer-norm: weight {} / bias {} for input {:?}",
                weight.len(),
                bias.len(),
                l1.dims()
            );
        }
        let mut out = vec![0f32; x.len()];
        layer_norm_rows(x, weight, bias, self.eps, &mut out);
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// Softmax over the last dimension.
pub(crate) struct Softmax;

impl CustomOp1 for Softmax {
    fn name(&self) -> &'static str {
        "softmax"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(storage, layout, "softmax input")?;
        let width = layout.dims().last().copied().unwrap_or(0);
        if width == 0 {
            candle_core::bail!("softmax: empty rows in {:?}", layout.dims());
        }
        let mut out = x.to_vec();
        softmax_rows(&mut out, width);
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }
}

/// a·W + bias through a packed weight, then optionally GELU: a (rows, in) → (rows, out).
pub(crate) struct PackedMatmul<'a> {
    pub(crate) weight: &'a PackedLinear,
    pub(crate) gelu: Option<Gelu>,
}

impl CustomOp1 for PackedMatmul<'_> {
    fn name(&self) -> &'static str {
        "packed-matmul"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let a = f32_slice(storage, layout, "packed-matmul input")?;
        let (rows, out_shape) = packed_shapes(self.weight, layout)?;
        let mut out = vec![0f32; rows * self.weight.out_features()];
        self.weight.forward(a, rows, Epilogue::Bias, &mut out);
        if let Some(gelu) = self.gelu {
            gelu_in_place(&mut out, gelu);
        }
        Ok((CpuStorage::F32(out), out_shape))
    }
}

/// residual + a·W + bias through a packed weight: (a (rows, in), residual (…, out)).
pub(crate) struct PackedMatmulResidual<'a>(pub(crate) &'a PackedLinear);

impl CustomOp2 for PackedMatmulResidual<'_> {
    fn name(&self) -> &'static str {
        "packed-matmul-residual"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let a = f32_slice(s1, l1, "packed-matmul input")?;
        let residual = f32_slice(s2, l2, "packed-matmul residual")?;
        let (rows, _) = packed_shapes(self.0, l1)?;
        if residual.len() != rows * self.0.out_features() {
            candle_core::bail!("packed-matmul: residual {:?} for {rows} rows", l2.dims());
        }
        let mut out = vec![0f32; residual.len()];
        self.0
            .forward(a, rows, Epilogue::BiasResidual(residual), &mut out);
        Ok((CpuStorage::F32(out), l2.shape().clone()))
    }
}

/// Rows of a packed matmul's input and the shape of its output.
fn packed_shapes(weight: &PackedLinear, layout: &Layout) -> Result<(usize, Shape)> {
    let dims = layout.dims();
    if dims.last() != Some(&weight.in_features()) {
        candle_core::bail!(
            "packed-matmul: input {dims:?} for {} input features",
            weight.in_features()
        );
    }
    let rows = dims[..dims.len() - 1].iter().product();
    let mut out_dims = dims.to_vec();
    if let Some(last) = out_dims.last_mut() {
        *last = weight.out_features();
    }
    Ok((rows, Shape::from(out_dims)))
}

/// Multi-head attention from the fused qkv projection (batch·tokens, 3·hidden) on the packed
/// kernel. Returns one flat buffer: the context (batch·tokens·hidden values, heads side by
/// side) followed by the probabilities (batch, heads, tokens, tokens); split it with `narrow`.
pub(crate) struct FusedAttention {
    pub(crate) batch: usize,
    pub(crate) tokens: usize,
    pub(crate) heads: usize,
    pub(crate) head_dim: usize,
}

impl CustomOp1 for FusedAttention {
    fn name(&self) -> &'static str {
        "fused-attention"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let qkv = f32_slice(storage, layout, "attention input")?;
        let Self {
            batch,
            tokens,
            heads,
            head_dim,
        } = *self;
        let hidden = heads * head_dim;
        if qkv.len() != batch * tokens * 3 * hidden {
            candle_core::bail!(
                "attention: qkv {:?} for {batch}×{tokens} tokens of {hidden}",
                layout.dims()
            );
        }
        let context_len = batch * tokens * hidden;
        let mut out = vec![0f32; context_len + batch * heads * tokens * tokens];
        let (context, probs) = out.split_at_mut(context_len);
        attention(qkv, batch, tokens, heads, head_dim, probs, context);
        let len = out.len();
        Ok((CpuStorage::F32(out), Shape::from(len)))
    }
}
