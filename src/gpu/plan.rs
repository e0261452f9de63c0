//! One forward pass, planned for a batch size and an input size: the activation buffers
//! (`buffers.rs`), the parameter block of every dispatch and its bind group (`dispatch.rs`) and
//! the readback buffer (`readback.rs`), all made once per (batch, height, width) and reused;
//! [`Plan`] lays the dispatches out in the model's order. Per call, [`Workspace::record`]
//! records the whole pass into one command encoder.
//!
//! The pass, for B images of T = prefix + gh·gw tokens, hidden D, H heads of dh, MLP width M:
//!
//! | step | kernel | shapes |
//! |---|---|---|
//! | patches | im2col | pixels (B, C, h, w) → (B·gh·gw, C·P·P) |
//! | patch embedding | gemm + bias + position embeddings | → rows prefix.. of x (B, T, D); rows ..prefix are copied from CLS/dist + their position embeddings |
//! | per layer: norm1 | layer_norm | x → xn (B·T, D) |
//! | qkv | gemm + bias | xn → qkv (B·T, 3D) |
//! | scores | gemm, Bᵀ, ·1/√dh, batched over (image, head) | q, k in qkv → probs\[l\] (B, H, T, T) |
//! | softmax | softmax | probs\[l\] in place (kept for readback) |
//! | context | gemm, batched over (image, head) | probs\[l\], v in qkv → ctx (B·T, D) |
//! | proj | gemm + bias + residual x | ctx → x' |
//! | norm2 | layer_norm | x' → xn |
//! | fc1 | gemm + bias + GELU | xn → hidden (B·T, M) |
//! | fc2 | gemm + bias + residual x' | hidden → x |
//! | final norm | layer_norm of the prefix rows only | x → (B·prefix, D) |
//! | head(s) | gemm + bias (·½ and + the other head when distilled) | → logits (B, classes) |
//!
//! That is 2 + 9·layers + 1 + heads dispatches; x and x' ping-pong between two buffers so no
//! dispatch reads and writes the same buffer.

use wgpu::{Buffer, CommandEncoder};

use super::buffers::{align_up, Activations, Sizes};
use super::context::{KernelId, Shared};
use super::dispatch::{Builder, GemmOperands, Step};
use super::error::GpuError;
use super::im2col;
use super::kernel::region;
use super::params::{gemm_flags, GemmParams, Im2colParams, LayerNormParams, SoftmaxParams};
use super::readback::{Readback, Readout};
use super::weights::{GpuBlock, GpuWeights};
use crate::checkpoint::Activation;
use crate::geometry::Geometry;

/// Everything one forward pass of a given geometry needs besides the weights.
#[derive(Debug)]
pub(super) struct Workspace {
    pub geometry: Geometry,
    buffers: Activations,
    /// CLS (and the distillation token) plus their position embeddings, copied in front of
    /// every image's patch rows.
    prefix_rows: Buffer,
    steps: Vec<Step>,
    readback: Readback,
    /// The parameter blocks, kept alive with the bind groups that read them.
    _params: Buffer,
}

impl Workspace {
    /// Allocates and plans everything for `geometry`; `positions` holds the position
    /// embeddings for its patch grid, (tokens, hidden).
    pub fn new(
        shared: &Shared,
        weights: &GpuWeights,
        positions: &Buffer,
        geometry: Geometry,
    ) -> Result<Self, GpuError> {
        let sizes = Sizes::new(&geometry);
        sizes.check_limits(geometry.batch, &shared.limits)?;
        let buffers = Activations::new(&shared.device, &sizes);
        let readback = Readback::new(
            &shared.device,
            sizes,
            geometry.layers,
            shared.timestamp_period,
        );
        let mut plan = Plan {
            builder: Builder::new(shared, &weights.unused, &geometry),
            dims: Dims::of(&geometry),
            g: &geometry,
            sizes: &sizes,
            buffers: &buffers,
        };
        plan.patch_embedding(weights, positions)?;
        for (layer, block) in weights.blocks.iter().enumerate() {
            plan.block(layer, block)?;
        }
        plan.head(weights)?;
        let (steps, params) = plan.builder.finish(&shared.queue);
        Ok(Self {
            prefix_rows: weights.prefix_rows.clone(),
            geometry,
            buffers,
            steps,
            readback,
            _params: params,
        })
    }

    pub fn pixels(&self) -> &Buffer {
        &self.buffers.pixels
    }

    pub fn staging(&self) -> &Buffer {
        self.readback.staging()
    }

    /// Records the whole pass and the copies into the readback buffer; with `timed` (and a
    /// device with timestamp queries) each dispatch gets its own compute pass with timestamps.
    pub fn record(&self, shared: &Shared, timed: bool) -> CommandEncoder {
        let g = &self.geometry;
        let mut encoder = shared
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("vit_forward"),
            });
        let prefix_bytes = (g.prefix * g.hidden * 4) as u64;
        let image_bytes = (g.tokens * g.hidden * 4) as u64;
        for image in 0..g.batch as u64 {
            encoder.copy_buffer_to_buffer(
                &self.prefix_rows,
                0,
                &self.buffers.x,
                image * image_bytes,
                prefix_bytes,
            );
        }
        self.readback
            .encode_steps(&mut encoder, &self.steps, &shared.kernels, timed);
        let b = &self.buffers;
        self.readback
            .copy_results(&mut encoder, &b.logits, &b.probs, timed);
        encoder
    }

    /// Unpacks the mapped readback buffer (see [`Readback::read`]) and unmaps it.
    pub fn read(&self, timed: bool) -> Result<Readout, GpuError> {
        self.readback.read(&self.steps, timed)
    }
}

/// The shapes of a pass as the kernels' u32 parameters. Every size fits: `Sizes::check_limits`
/// bounded each buffer by 4 GiB.
struct Dims {
    /// Images.
    b: u32,
    /// Tokens per image.
    t: u32,
    /// Hidden width.
    d: u32,
    /// Heads, and the width of one.
    h: u32,
    dh: u32,
    /// Prefix tokens.
    pf: u32,
    /// Patches per image and the values of one.
    patches: u32,
    patch_in: u32,
    classes: u32,
}

impl Dims {
    fn of(g: &Geometry) -> Self {
        Self {
            b: g.batch as u32,
            t: g.tokens as u32,
            d: g.hidden as u32,
            h: g.heads as u32,
            dh: g.head_dim as u32,
            pf: g.prefix as u32,
            patches: g.patches() as u32,
            patch_in: g.patch_in as u32,
            classes: g.classes as u32,
        }
    }
}

/// The model's forward pass, step by step, as dispatches.
struct Plan<'a> {
    builder: Builder<'a>,
    dims: Dims,
    g: &'a Geometry,
    sizes: &'a Sizes,
    buffers: &'a Activations,
}

impl Plan<'_> {
    /// Patches (im2col), then one GEMM per image writing the patch tokens after the prefix
    /// rows, with the bias and the position embeddings added in its epilogue.
    fn patch_embedding(
        &mut self,
        weights: &GpuWeights,
        positions: &Buffer,
    ) -> Result<(), GpuError> {
        let (g, buf) = (self.g, self.buffers);
        let Dims {
            b,
            t,
            d,
            pf,
            patches,
            patch_in,
            ..
        } = self.dims;
        let im2col_params = Im2colParams {
            batch: b,
            channels: g.channels as u32,
            height: g.height as u32,
            width: g.width as u32,
            patch_size: g.patch as u32,
            grid_h: g.grid.0 as u32,
            grid_w: g.grid.1 as u32,
            total: b * patches * patch_in,
        };
        let im2col_groups = self
            .builder
            .rows_grid(im2col::workgroup_count(&im2col_params))?;
        self.builder.push(
            KernelId::Im2col,
            "im2col",
            "im2col".to_string(),
            &im2col_params,
            &[
                buf.pixels.as_entire_buffer_binding(),
                buf.patch_rows.as_entire_buffer_binding(),
            ],
            im2col_groups,
        )?;
        self.builder.gemm(
            "gemm",
            "patch_embed".to_string(),
            GemmParams {
                m: patches,
                n: d,
                k: patch_in,
                lda: patch_in,
                ldb: d,
                ldc: d,
                ldr: d,
                a_stride_outer: patches * patch_in,
                c_offset: pf * d,
                c_stride_outer: t * d,
                r_offset: pf * d,
                alpha: 1.0,
                ..GemmParams::default()
            },
            b,
            GemmOperands {
                a: buf.patch_rows.as_entire_buffer_binding(),
                b: weights.patch_embed.weight_t.as_entire_buffer_binding(),
                c: buf.x.as_entire_buffer_binding(),
                bias: weights.patch_embed.bias.as_ref(),
                residual: Some(positions.as_entire_buffer_binding()),
            },
        )
    }

    /// One encoder block: x' = x + proj(attention(norm1(x))), x = x' + fc2(gelu(fc1(norm2(x')))).
    fn block(&mut self, l: usize, block: &GpuBlock) -> Result<(), GpuError> {
        let buf = self.buffers;
        let dense_norm = self.dense_norm();
        self.builder.layer_norm(
            format!("blocks.{l}.norm1"),
            dense_norm,
            &buf.x,
            &block.norm1,
            &buf.normed,
        )?;
        self.builder.linear(
            format!("blocks.{l}.qkv"),
            &block.qkv,
            [&buf.normed, &buf.qkv],
            None,
            0,
        )?;
        self.attention(l)?;
        self.builder.linear(
            format!("blocks.{l}.proj"),
            &block.proj,
            [&buf.context, &buf.x_mid],
            Some(&buf.x),
            0,
        )?;
        self.builder.layer_norm(
            format!("blocks.{l}.norm2"),
            dense_norm,
            &buf.x_mid,
            &block.norm2,
            &buf.normed,
        )?;
        let gelu = match self.g.activation {
            Activation::GeluErf => gemm_flags::GELU_ERF,
            Activation::GeluTanh => gemm_flags::GELU_TANH,
        };
        self.builder.linear(
            format!("blocks.{l}.fc1"),
            &block.fc1,
            [&buf.normed, &buf.hidden],
            None,
            gelu,
        )?;
        self.builder.linear(
            format!("blocks.{l}.fc2"),
            &block.fc2,
            [&buf.hidden, &buf.x],
            Some(&buf.x_mid),
            0,
        )
    }

    /// LayerNorm of every token row.
    fn dense_norm(&self) -> LayerNormParams {
        let rows = self.dims.b * self.dims.t;
        LayerNormParams {
            rows,
            cols: self.dims.d,
            group: rows,
            group_stride: rows,
            eps: self.g.layer_norm_eps,
            ..LayerNormParams::default()
        }
    }

    /// Layer `l`'s attention, per (image, head) straight on the fused qkv rows: scores = q·kᵀ/√dh
    /// into the layer's probabilities, softmax in place (kept for readback), then P·v into the
    /// head's columns of the context rows.
    fn attention(&mut self, l: usize) -> Result<(), GpuError> {
        let buf = self.buffers;
        let Dims { b, t, d, h, dh, .. } = self.dims;
        // Rounded up to whole vec4s; stays inside the layer's 256-byte-aligned slot.
        let layer_probs = region(
            &buf.probs,
            l as u64 * self.sizes.layer_stride,
            align_up(self.sizes.layer_probs, 16),
        );
        self.builder.gemm(
            "attention",
            format!("blocks.{l}.scores"),
            GemmParams {
                m: t,
                n: t,
                k: dh,
                flags: gemm_flags::TRANS_B,
                lda: 3 * d,
                ldb: 3 * d,
                ldc: t,
                a_stride_outer: t * 3 * d,
                a_stride_inner: dh,
                b_offset: d,
                b_stride_outer: t * 3 * d,
                b_stride_inner: dh,
                c_stride_outer: h * t * t,
                c_stride_inner: t * t,
                batch_inner: h,
                alpha: 1.0 / (self.g.head_dim as f32).sqrt(),
                ..GemmParams::default()
            },
            b * h,
            GemmOperands {
                a: buf.qkv.as_entire_buffer_binding(),
                b: buf.qkv.as_entire_buffer_binding(),
                c: layer_probs.clone(),
                bias: None,
                residual: None,
            },
        )?;
        let softmax_groups = self.builder.rows_grid(b * h * t)?;
        self.builder.push(
            KernelId::Softmax,
            "softmax",
            format!("blocks.{l}.softmax"),
            &SoftmaxParams {
                rows: b * h * t,
                cols: t,
                row_stride: t,
                offset: 0,
            },
            std::slice::from_ref(&layer_probs),
            softmax_groups,
        )?;
        self.builder.gemm(
            "attention",
            format!("blocks.{l}.context"),
            GemmParams {
                m: t,
                n: dh,
                k: t,
                lda: t,
                ldb: 3 * d,
                ldc: d,
                a_stride_outer: h * t * t,
                a_stride_inner: t * t,
                b_offset: 2 * d,
                b_stride_outer: t * 3 * d,
                b_stride_inner: dh,
                c_stride_outer: t * d,
                c_stride_inner: dh,
                batch_inner: h,
                alpha: 1.0,
                ..GemmParams::default()
            },
            b * h,
            GemmOperands {
                a: layer_probs,
                b: buf.qkv.as_entire_buffer_binding(),
                c: buf.context.as_entire_buffer_binding(),
                bias: None,
                residual: None,
            },
        )
    }

    /// The final norm of every image's prefix rows only (the heads read nothing else), then
    /// the head, or for a distilled model (head(cls) + head_dist(dist)) / 2 — the second GEMM
    /// adding the first as its residual.
    fn head(&mut self, weights: &GpuWeights) -> Result<(), GpuError> {
        let buf = self.buffers;
        let Dims {
            b,
            t,
            d,
            pf,
            classes,
            ..
        } = self.dims;
        self.builder.layer_norm(
            "norm".to_string(),
            LayerNormParams {
                rows: b * pf,
                cols: d,
                group: pf,
                group_stride: t,
                eps: self.g.layer_norm_eps,
                ..LayerNormParams::default()
            },
            &buf.x,
            &weights.norm,
            &buf.prefix_out,
        )?;
        let head_params = |a_offset: u32, alpha: f32| GemmParams {
            m: b,
            n: classes,
            k: d,
            lda: pf * d,
            ldb: classes,
            ldc: classes,
            ldr: classes,
            a_offset,
            alpha,
            ..GemmParams::default()
        };
        let prefix_out = || buf.prefix_out.as_entire_buffer_binding();
        let (head_dist, alpha) = match (&weights.head_dist, self.g.distilled) {
            (Some(head_dist), true) => (Some(head_dist), 0.5),
            _ => (None, 1.0),
        };
        let cls_logits = if head_dist.is_some() {
            &buf.logits_cls
        } else {
            &buf.logits
        };
        self.builder.gemm(
            "gemm",
            "head".to_string(),
            head_params(0, alpha),
            1,
            GemmOperands {
                a: prefix_out(),
                b: weights.head.weight_t.as_entire_buffer_binding(),
                c: cls_logits.as_entire_buffer_binding(),
                bias: weights.head.bias.as_ref(),
                residual: None,
            },
        )?;
        let Some(head_dist) = head_dist else {
            return Ok(());
        };
        self.builder.gemm(
            "gemm",
            "head_dist".to_string(),
            head_params(d, alpha),
            1,
            GemmOperands {
                a: prefix_out(),
                b: head_dist.weight_t.as_entire_buffer_binding(),
                c: buf.logits.as_entire_buffer_binding(),
                bias: head_dist.bias.as_ref(),
                residual: Some(buf.logits_cls.as_entire_buffer_binding()),
            },
        )
    }
}
