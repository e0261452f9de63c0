//! One forward pass, planned for a batch size and an input size: the activation buffers, the
//! readback buffer, the parameter block of every dispatch and its bind group, all made once
//! per (batch, height, width) and reused; then, per call, recording the whole pass into one
//! command encoder and unpacking the readback.
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

use bytemuck::Pod;
use wgpu::{BindGroup, Buffer, BufferBinding, BufferUsages, CommandEncoder, Device};

use super::kernel::{grid_2d, region};
use super::params::{gemm_flags, GemmParams, Im2colParams, LayerNormParams, SoftmaxParams};
use super::weights::{GpuLinear, GpuWeights};
use super::{gemm, im2col, GpuError, KernelId, Shared};
use crate::checkpoint::{Activation, Classifier, ModelConfig};

/// Alignment of buffer offsets that are bound or resolved into (the WebGPU maximum of
/// `min_storage_buffer_offset_alignment`, and the query-resolve alignment).
const OFFSET_ALIGN: u64 = 256;
/// WGSL indexes storage arrays with u32: keep every bound buffer below 4 GiB.
const U32_INDEXABLE_BYTES: u64 = u32::MAX as u64;

fn align_up(value: u64, align: u64) -> u64 {
    value.div_ceil(align) * align
}

/// The shapes of one forward pass.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Geometry {
    pub batch: usize,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub patch: usize,
    /// Patch grid (rows, cols).
    pub grid: (usize, usize),
    pub prefix: usize,
    /// prefix + rows·cols
    pub tokens: usize,
    pub hidden: usize,
    pub heads: usize,
    pub head_dim: usize,
    pub mlp: usize,
    pub layers: usize,
    pub classes: usize,
    /// channels · patch · patch
    pub patch_in: usize,
    pub distilled: bool,
    pub activation: Activation,
    pub layer_norm_eps: f32,
}

impl Geometry {
    /// Checks the request (not the pixels) and derives the shapes.
    pub fn new(
        cfg: &ModelConfig,
        batch: usize,
        height: usize,
        width: usize,
    ) -> Result<Self, GpuError> {
        let p = cfg.patch_size;
        if batch == 0 {
            return Err(GpuError::Input("the batch is empty".to_string()));
        }
        let grid = (height / p, width / p);
        if grid.0 == 0 || grid.1 == 0 {
            return Err(GpuError::Input(format!(
                "a {height}×{width} input is smaller than one {p}×{p} patch"
            )));
        }
        Ok(Self {
            batch,
            channels: cfg.num_channels,
            height,
            width,
            patch: p,
            grid,
            prefix: cfg.prefix_tokens(),
            tokens: cfg.prefix_tokens() + grid.0 * grid.1,
            hidden: cfg.hidden_size,
            heads: cfg.num_heads,
            head_dim: cfg.head_dim(),
            mlp: cfg.intermediate_size,
            layers: cfg.num_layers,
            classes: cfg.num_classes,
            patch_in: cfg.num_channels * p * p,
            distilled: cfg.classifier == Classifier::ClsAndDistillation,
            activation: cfg.activation,
            layer_norm_eps: cfg.layer_norm_eps as f32,
        })
    }

    /// Pixel values an input of this geometry has.
    pub fn pixel_count(&self) -> Option<usize> {
        self.batch
            .checked_mul(self.channels)?
            .checked_mul(self.height)?
            .checked_mul(self.width)
    }

    fn patches(&self) -> u64 {
        (self.grid.0 * self.grid.1) as u64
    }

    /// Bytes of one layer's attention probabilities, (B, H, T, T) f32.
    fn layer_probs_bytes(&self) -> u64 {
        let t = self.tokens as u64;
        self.batch as u64 * self.heads as u64 * t * t * 4
    }

    /// Distance between layers in the probabilities buffer (bindable offsets).
    fn layer_stride(&self) -> u64 {
        align_up(self.layer_probs_bytes(), OFFSET_ALIGN)
    }

    fn logits_bytes(&self) -> u64 {
        (self.batch * self.classes) as u64 * 4
    }

    /// Every buffer of the pass: (what, bytes, bound to a kernel as a whole).
    fn buffers(&self) -> Vec<(&'static str, u64, bool)> {
        let b = self.batch as u64;
        let rows = b * self.tokens as u64;
        let d = self.hidden as u64;
        let probs = self.layer_stride() * self.layers as u64;
        vec![
            (
                "pixel",
                self.pixel_count().map_or(u64::MAX, |n| n as u64 * 4),
                true,
            ),
            ("patch", b * self.patches() * self.patch_in as u64 * 4, true),
            ("token", rows * d * 4, true),
            ("qkv", rows * 3 * d * 4, true),
            ("MLP", rows * self.mlp as u64 * 4, true),
            // Bound rounded up to whole vec4s.
            (
                "attention (one layer)",
                align_up(self.layer_probs_bytes(), 16),
                true,
            ),
            ("attention", probs, false),
            (
                "readback",
                align_up(self.logits_bytes(), OFFSET_ALIGN)
                    + probs
                    + self.timestamp_queries() as u64 * 8,
                false,
            ),
        ]
    }

    /// Checks every buffer against the device's limits.
    pub fn check_limits(&self, limits: &wgpu::Limits) -> Result<(), GpuError> {
        let binding_limit = limits
            .max_storage_buffer_binding_size
            .min(U32_INDEXABLE_BYTES);
        for (what, bytes, bound) in self.buffers() {
            let limit = if bound {
                binding_limit.min(limits.max_buffer_size)
            } else {
                limits.max_buffer_size
            };
            if bytes > limit {
                return Err(GpuError::TooLarge {
                    what: what.to_string(),
                    batch: self.batch,
                    bytes,
                    limit,
                });
            }
        }
        Ok(())
    }

    /// Dispatches of one pass.
    pub fn dispatch_count(&self) -> usize {
        2 + 9 * self.layers + 1 + if self.distilled { 2 } else { 1 }
    }

    /// Timestamp queries of one pass when profiling: a begin and an end per dispatch.
    fn timestamp_queries(&self) -> u32 {
        2 * self.dispatch_count() as u32
    }
}

/// Where things are in the readback buffer.
#[derive(Debug)]
struct Readback {
    logits_len: usize,
    probs_offset: u64,
    layer_stride: u64,
    layer_len: usize,
    layers: usize,
    timestamps_offset: u64,
}

/// One recorded dispatch.
#[derive(Debug)]
struct Step {
    kernel: KernelId,
    /// Kernel kind for the timing summary ("gemm", "attention", …).
    kind: &'static str,
    label: String,
    bind_group: BindGroup,
    workgroups: [u32; 3],
}

/// Timestamp queries around every dispatch.
#[derive(Debug)]
struct Profiler {
    query_set: wgpu::QuerySet,
    resolve: Buffer,
    count: u32,
    /// Nanoseconds per tick.
    period: f32,
}

/// Everything one forward pass of a given geometry needs besides the weights.
#[derive(Debug)]
pub(super) struct Workspace {
    pub geometry: Geometry,
    /// (B, C, h, w) input, written by the queue before each submission.
    pixels: Buffer,
    /// The token rows the prefix rows are copied into.
    tokens: Buffer,
    prefix_rows: Buffer,
    logits: Buffer,
    probs: Buffer,
    /// MAP_READ copy of logits, probabilities and timestamps.
    staging: Buffer,
    readback: Readback,
    steps: Vec<Step>,
    profiler: Option<Profiler>,
    /// Kept alive with the bind groups that use them.
    _buffers: Vec<Buffer>,
}

/// The operands of one GEMM: A, B and C, and optionally bias and residual.
struct GemmOperands<'b> {
    a: BufferBinding<'b>,
    b: BufferBinding<'b>,
    c: BufferBinding<'b>,
    bias: Option<&'b Buffer>,
    residual: Option<BufferBinding<'b>>,
}

/// Accumulates dispatches: parameter blocks, bind groups, workgroup counts.
struct Builder<'a> {
    device: &'a Device,
    kernels: &'a super::Kernels,
    params: &'a Buffer,
    params_bytes: Vec<u8>,
    params_stride: u64,
    max_workgroups: u32,
    unused: &'a Buffer,
    batch: usize,
    /// Token rows of the whole batch (B·T), the M of every dense layer.
    rows: u32,
    steps: Vec<Step>,
}

impl Builder<'_> {
    fn push<P: Pod>(
        &mut self,
        kernel: KernelId,
        kind: &'static str,
        label: String,
        params: &P,
        storage: &[BufferBinding<'_>],
        workgroups: [u32; 3],
    ) -> Result<(), GpuError> {
        let compiled = self.kernels.get(kernel);
        if let Some(&too_many) = workgroups.iter().find(|&&n| n > self.max_workgroups) {
            return Err(GpuError::TooManyWorkgroups {
                kernel: compiled.name,
                batch: self.batch,
                workgroups: u64::from(too_many),
                limit: self.max_workgroups,
            });
        }
        let offset = self.steps.len() as u64 * self.params_stride;
        let bytes = bytemuck::bytes_of(params);
        if offset + bytes.len() as u64 > self.params.size() {
            return Err(GpuError::Validation(format!(
                "internal: more dispatches than planned at `{label}`"
            )));
        }
        self.params_bytes.resize(offset as usize, 0);
        self.params_bytes.extend_from_slice(bytes);
        let bind_group = compiled.bind(self.device, &label, self.params, offset, storage);
        self.steps.push(Step {
            kernel,
            kind,
            label,
            bind_group,
            workgroups,
        });
        Ok(())
    }

    /// One GEMM; sets the bias/residual flags from the operands given.
    fn gemm(
        &mut self,
        kind: &'static str,
        label: String,
        params: GemmParams,
        batch: u32,
        operands: GemmOperands<'_>,
    ) -> Result<(), GpuError> {
        let GemmOperands {
            a,
            b,
            c,
            bias,
            residual,
        } = operands;
        let mut params = params;
        if bias.is_some() {
            params.flags |= gemm_flags::BIAS;
        }
        if residual.is_some() {
            params.flags |= gemm_flags::RESIDUAL;
        }
        params.batch_inner = params.batch_inner.max(1);
        let params = gemm::with_vec4_flags(params);
        let unused = self.unused;
        let storage = [
            a.clone(),
            a,
            b.clone(),
            b,
            bias.unwrap_or(unused).as_entire_buffer_binding(),
            residual.unwrap_or_else(|| unused.as_entire_buffer_binding()),
            c,
        ];
        let workgroups = gemm::workgroups(&params, batch);
        self.push(KernelId::Gemm, kind, label, &params, &storage, workgroups)
    }

    /// `output = act(input·W + b) + residual` over the `rows` token rows; `flags` picks the
    /// activation.
    fn linear(
        &mut self,
        label: String,
        layer: &GpuLinear,
        [input, output]: [&Buffer; 2],
        residual: Option<&Buffer>,
        flags: u32,
    ) -> Result<(), GpuError> {
        let k = layer.in_features as u32;
        let n = layer.out_features as u32;
        let params = GemmParams {
            m: self.rows,
            n,
            k,
            flags,
            lda: k,
            ldb: n,
            ldc: n,
            ldr: n,
            alpha: 1.0,
            ..GemmParams::default()
        };
        self.gemm(
            "gemm",
            label,
            params,
            1,
            GemmOperands {
                a: input.as_entire_buffer_binding(),
                b: layer.weight_t.as_entire_buffer_binding(),
                c: output.as_entire_buffer_binding(),
                bias: layer.bias.as_ref(),
                residual: residual.map(Buffer::as_entire_buffer_binding),
            },
        )
    }

    fn layer_norm(
        &mut self,
        label: String,
        params: LayerNormParams,
        input: &Buffer,
        norm: &super::weights::GpuNorm,
        output: &Buffer,
    ) -> Result<(), GpuError> {
        let workgroups = self.rows_grid(params.rows)?;
        self.push(
            KernelId::LayerNorm,
            "layer_norm",
            label,
            &params,
            &[
                input.as_entire_buffer_binding(),
                norm.weight.as_entire_buffer_binding(),
                norm.bias.as_entire_buffer_binding(),
                output.as_entire_buffer_binding(),
            ],
            workgroups,
        )
    }

    /// One workgroup per row, on a 2-D grid.
    fn rows_grid(&self, rows: u32) -> Result<[u32; 3], GpuError> {
        grid_2d(rows, self.max_workgroups).ok_or(GpuError::TooManyWorkgroups {
            kernel: "row",
            batch: self.batch,
            workgroups: u64::from(rows),
            limit: self.max_workgroups,
        })
    }
}

impl Workspace {
    /// Allocates and binds everything for `geometry`; `positions` holds the position
    /// embeddings for its patch grid, (tokens, hidden).
    pub fn new(
        shared: &Shared,
        weights: &GpuWeights,
        positions: &Buffer,
        geometry: Geometry,
    ) -> Result<Self, GpuError> {
        let limits = &shared.limits;
        geometry.check_limits(limits)?;
        let device = &shared.device;
        let g = &geometry;
        // Every size below fits in u32 elements: check_limits bounded each buffer by 4 GiB.
        let b = g.batch as u32;
        let t = g.tokens as u32;
        let d = g.hidden as u32;
        let h = g.heads as u32;
        let dh = g.head_dim as u32;
        let pf = g.prefix as u32;
        let rows = b * t;
        let patches = g.patches() as u32;
        let patch_in = g.patch_in as u32;

        let storage = |label: &str, bytes: u64, extra: BufferUsages| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: align_up(bytes.max(16), 16),
                usage: BufferUsages::STORAGE | extra,
                mapped_at_creation: false,
            })
        };
        let none = BufferUsages::empty();
        let f32s = |n: u64| n * 4;
        let pixels = storage(
            "pixels",
            f32s(g.pixel_count().unwrap_or(0) as u64),
            BufferUsages::COPY_DST,
        );
        let patch_rows = storage("patches", f32s(u64::from(b * patches * patch_in)), none);
        let x = storage("x", f32s(u64::from(rows * d)), BufferUsages::COPY_DST);
        let x_mid = storage("x_mid", f32s(u64::from(rows * d)), none);
        let normed = storage("normed", f32s(u64::from(rows * d)), none);
        let qkv = storage("qkv", f32s(u64::from(rows * 3 * d)), none);
        let context = storage("context", f32s(u64::from(rows * d)), none);
        let hidden = storage("mlp_hidden", f32s(rows as u64 * g.mlp as u64), none);
        let layer_stride = g.layer_stride();
        let probs = storage(
            "attention_probs",
            layer_stride * g.layers as u64,
            BufferUsages::COPY_SRC,
        );
        let prefix_out = storage("prefix_out", f32s(u64::from(b * pf * d)), none);
        let logits_bytes = g.logits_bytes();
        let logits = storage("logits", logits_bytes, BufferUsages::COPY_SRC);
        let logits_cls = storage("logits_cls", logits_bytes, none);

        let profiler = shared.timestamp_period.map(|period| {
            let count = g.timestamp_queries();
            Profiler {
                query_set: device.create_query_set(&wgpu::QuerySetDescriptor {
                    label: Some("kernel_timestamps"),
                    ty: wgpu::QueryType::Timestamp,
                    count,
                }),
                resolve: device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("kernel_timestamps_resolve"),
                    size: u64::from(count) * 8,
                    usage: BufferUsages::QUERY_RESOLVE | BufferUsages::COPY_SRC,
                    mapped_at_creation: false,
                }),
                count,
                period,
            }
        });
        let probs_offset = align_up(logits_bytes, OFFSET_ALIGN);
        let timestamps_offset = probs_offset + layer_stride * g.layers as u64;
        let staging_bytes =
            timestamps_offset + profiler.as_ref().map_or(0, |p| u64::from(p.count) * 8);
        let staging = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: staging_bytes,
            usage: BufferUsages::MAP_READ | BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });

        let params_stride = align_up(
            std::mem::size_of::<GemmParams>() as u64,
            u64::from(limits.min_uniform_buffer_offset_alignment).max(OFFSET_ALIGN),
        );
        let params = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("dispatch_params"),
            size: params_stride * g.dispatch_count() as u64,
            usage: BufferUsages::UNIFORM | BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut builder = Builder {
            device,
            kernels: &shared.kernels,
            params: &params,
            params_bytes: Vec::new(),
            params_stride,
            max_workgroups: limits.max_compute_workgroups_per_dimension,
            unused: &weights.unused,
            batch: g.batch,
            rows,
            steps: Vec::with_capacity(g.dispatch_count()),
        };

        // Patch embedding.
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
        let im2col_groups = builder.rows_grid(im2col::workgroup_count(&im2col_params))?;
        builder.push(
            KernelId::Im2col,
            "im2col",
            "im2col".to_string(),
            &im2col_params,
            &[
                pixels.as_entire_buffer_binding(),
                patch_rows.as_entire_buffer_binding(),
            ],
            im2col_groups,
        )?;
        // One batch entry per image: patch rows → token rows prefix.., plus position embeddings.
        builder.gemm(
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
                a: patch_rows.as_entire_buffer_binding(),
                b: weights.patch_embed.weight_t.as_entire_buffer_binding(),
                c: x.as_entire_buffer_binding(),
                bias: weights.patch_embed.bias.as_ref(),
                residual: Some(positions.as_entire_buffer_binding()),
            },
        )?;

        let dense_norm = LayerNormParams {
            rows,
            cols: d,
            group: rows,
            group_stride: rows,
            eps: g.layer_norm_eps,
            ..LayerNormParams::default()
        };
        let gelu = match g.activation {
            Activation::GeluErf => gemm_flags::GELU_ERF,
            Activation::GeluTanh => gemm_flags::GELU_TANH,
        };
        let layer_probs_bytes = g.layer_probs_bytes();
        for (l, block) in weights.blocks.iter().enumerate() {
            // Rounded up to whole vec4s; stays inside the layer's 256-byte-aligned slot.
            let layer_probs = region(
                &probs,
                l as u64 * layer_stride,
                align_up(layer_probs_bytes, 16),
            );
            builder.layer_norm(
                format!("blocks.{l}.norm1"),
                dense_norm,
                &x,
                &block.norm1,
                &normed,
            )?;
            builder.linear(
                format!("blocks.{l}.qkv"),
                &block.qkv,
                [&normed, &qkv],
                None,
                0,
            )?;
            // scores(image, head) = q·kᵀ/√dh, q and k read in place from the qkv rows.
            builder.gemm(
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
                    alpha: 1.0 / (g.head_dim as f32).sqrt(),
                    ..GemmParams::default()
                },
                b * h,
                GemmOperands {
                    a: qkv.as_entire_buffer_binding(),
                    b: qkv.as_entire_buffer_binding(),
                    c: layer_probs.clone(),
                    bias: None,
                    residual: None,
                },
            )?;
            let softmax_groups = builder.rows_grid(b * h * t)?;
            builder.push(
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
            // context(image, head) = P·v, written into the head's columns of the context rows.
            builder.gemm(
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
                    b: qkv.as_entire_buffer_binding(),
                    c: context.as_entire_buffer_binding(),
                    bias: None,
                    residual: None,
                },
            )?;
            builder.linear(
                format!("blocks.{l}.proj"),
                &block.proj,
                [&context, &x_mid],
                Some(&x),
                0,
            )?;
            builder.layer_norm(
                format!("blocks.{l}.norm2"),
                dense_norm,
                &x_mid,
                &block.norm2,
                &normed,
            )?;
            builder.linear(
                format!("blocks.{l}.fc1"),
                &block.fc1,
                [&normed, &hidden],
                None,
                gelu,
            )?;
            builder.linear(
                format!("blocks.{l}.fc2"),
                &block.fc2,
                [&hidden, &x],
                Some(&x_mid),
                0,
            )?;
        }

        // Final norm of the prefix rows of every image only: the heads read nothing else.
        builder.layer_norm(
            "norm".to_string(),
            LayerNormParams {
                rows: b * pf,
                cols: d,
                group: pf,
                group_stride: t,
                eps: g.layer_norm_eps,
                ..LayerNormParams::default()
            },
            &x,
            &weights.norm,
            &prefix_out,
        )?;
        let head_params = |a_offset: u32, alpha: f32| GemmParams {
            m: b,
            n: g.classes as u32,
            k: d,
            lda: pf * d,
            ldb: g.classes as u32,
            ldc: g.classes as u32,
            ldr: g.classes as u32,
            a_offset,
            alpha,
            ..GemmParams::default()
        };
        match (&weights.head_dist, g.distilled) {
            (Some(head_dist), true) => {
                // (head(cls) + head_dist(dist)) / 2, the second GEMM adding the first.
                builder.gemm(
                    "gemm",
                    "head".to_string(),
                    head_params(0, 0.5),
                    1,
                    GemmOperands {
                        a: prefix_out.as_entire_buffer_binding(),
                        b: weights.head.weight_t.as_entire_buffer_binding(),
                        c: logits_cls.as_entire_buffer_binding(),
                        bias: weights.head.bias.as_ref(),
                        residual: None,
                    },
                )?;
                builder.gemm(
                    "gemm",
                    "head_dist".to_string(),
                    head_params(d, 0.5),
                    1,
                    GemmOperands {
                        a: prefix_out.as_entire_buffer_binding(),
                        b: head_dist.weight_t.as_entire_buffer_binding(),
                        c: logits.as_entire_buffer_binding(),
                        bias: head_dist.bias.as_ref(),
                        residual: Some(logits_cls.as_entire_buffer_binding()),
                    },
                )?;
            }
            _ => builder.gemm(
                "gemm",
                "head".to_string(),
                head_params(0, 1.0),
                1,
                GemmOperands {
                    a: prefix_out.as_entire_buffer_binding(),
                    b: weights.head.weight_t.as_entire_buffer_binding(),
                    c: logits.as_entire_buffer_binding(),
                    bias: weights.head.bias.as_ref(),
                    residual: None,
                },
            )?,
        }

        let Builder {
            params_bytes,
            steps,
            ..
        } = builder;
        shared.queue.write_buffer(&params, 0, &params_bytes);
        let readback = Readback {
            logits_len: g.batch * g.classes,
            probs_offset,
            layer_stride,
            layer_len: (layer_probs_bytes / 4) as usize,
            layers: g.layers,
            timestamps_offset,
        };
        Ok(Self {
            geometry,
            pixels,
            tokens: x,
            prefix_rows: weights.prefix_rows.clone(),
            logits,
            probs,
            staging,
            readback,
            steps,
            profiler,
            _buffers: vec![
                patch_rows, x_mid, normed, qkv, context, hidden, prefix_out, logits_cls, params,
            ],
        })
    }

    pub fn pixels(&self) -> &Buffer {
        &self.pixels
    }

    pub fn staging(&self) -> &Buffer {
        &self.staging
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
                &self.tokens,
                image * image_bytes,
                prefix_bytes,
            );
        }
        let profiler = self.profiler.as_ref().filter(|_| timed);
        match profiler {
            Some(profiler) => {
                for (i, step) in self.steps.iter().enumerate() {
                    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                        label: Some(&step.label),
                        timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                            query_set: &profiler.query_set,
                            beginning_of_pass_write_index: Some(2 * i as u32),
                            end_of_pass_write_index: Some(2 * i as u32 + 1),
                        }),
                    });
                    step.encode(&mut pass, &shared.kernels);
                }
            }
            None => {
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("vit_forward"),
                    timestamp_writes: None,
                });
                for step in &self.steps {
                    step.encode(&mut pass, &shared.kernels);
                }
            }
        }
        let rb = &self.readback;
        encoder.copy_buffer_to_buffer(&self.logits, 0, &self.staging, 0, g.logits_bytes());
        encoder.copy_buffer_to_buffer(
            &self.probs,
            0,
            &self.staging,
            rb.probs_offset,
            rb.layer_stride * rb.layers as u64,
        );
        if let Some(profiler) = profiler {
            encoder.resolve_query_set(&profiler.query_set, 0..profiler.count, &profiler.resolve, 0);
            encoder.copy_buffer_to_buffer(
                &profiler.resolve,
                0,
                &self.staging,
                rb.timestamps_offset,
                u64::from(profiler.count) * 8,
            );
        }
        encoder
    }

    /// Unpacks the mapped readback buffer: logits (B·classes), every layer's probabilities
    /// (B·H·T·T each) and, when the pass was `timed`, milliseconds per kernel kind. Unmaps it.
    pub fn read(&self, timed: bool) -> Result<Readout, GpuError> {
        let rb = &self.readback;
        let view = self
            .staging
            .slice(..)
            .get_mapped_range()
            .map_err(|e| GpuError::Map(e.to_string()))?;
        let bytes: &[u8] = &view;
        let logits = f32s(&bytes[..rb.logits_len * 4]);
        let attentions = (0..rb.layers)
            .map(|l| {
                let start = (rb.probs_offset + l as u64 * rb.layer_stride) as usize;
                f32s(&bytes[start..start + rb.layer_len * 4])
            })
            .collect();
        let kernel_ms = self.profiler.as_ref().filter(|_| timed).map(|profiler| {
            let start = rb.timestamps_offset as usize;
            let ticks: Vec<u64> = bytes[start..start + profiler.count as usize * 8]
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect();
            let mut totals: Vec<(String, f64)> = Vec::new();
            for (step, pair) in self.steps.iter().zip(ticks.chunks_exact(2)) {
                let ms = pair[1].saturating_sub(pair[0]) as f64 * f64::from(profiler.period) / 1e6;
                match totals.iter_mut().find(|(kind, _)| kind == step.kind) {
                    Some((_, total)) => *total += ms,
                    None => totals.push((step.kind.to_string(), ms)),
                }
            }
            totals
        });
        drop(view);
        self.staging.unmap();
        Ok(Readout {
            logits,
            attentions,
            kernel_ms,
        })
    }
}

impl Step {
    fn encode(&self, pass: &mut wgpu::ComputePass<'_>, kernels: &super::Kernels) {
        pass.set_pipeline(&kernels.get(self.kernel).pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        let [x, y, z] = self.workgroups;
        pass.dispatch_workgroups(x, y, z);
    }
}

/// What one pass read back.
pub(super) struct Readout {
    pub logits: Vec<f32>,
    pub attentions: Vec<Vec<f32>>,
    pub kernel_ms: Option<Vec<(String, f64)>>,
}

/// Little-endian f32s out of bytes (mapped memory need not be 4-byte aligned for `cast_slice`).
fn f32s(bytes: &[u8]) -> Vec<f32> {
    match bytemuck::try_cast_slice::<u8, f32>(bytes) {
        Ok(values) => values.to_vec(),
        Err(_) => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::{Activation, Classifier};

    fn deit_tiny() -> ModelConfig {
        ModelConfig {
            hidden_size: 192,
            num_layers: 12,
            num_heads: 3,
            intermediate_size: 768,
            image_size: 224,
            patch_size: 16,
            num_channels: 3,
            num_classes: 1000,
            qkv_bias: true,
            layer_norm_eps: 1e-12,
            activation: Activation::GeluErf,
            distillation_token: false,
            classifier: Classifier::Cls,
        }
    }

    #[test]
    fn geometry_of_deit_tiny() {
        let g = Geometry::new(&deit_tiny(), 2, 230, 224).expect("valid");
        assert_eq!(g.grid, (14, 14));
        assert_eq!(g.tokens, 197);
        assert_eq!(g.pixel_count(), Some(2 * 3 * 230 * 224));
        assert_eq!(g.dispatch_count(), 112);
        assert_eq!(g.layer_probs_bytes(), 2 * 3 * 197 * 197 * 4);
        assert_eq!(g.layer_stride() % OFFSET_ALIGN, 0);
    }

    #[test]
    fn bad_geometry_is_input_error() {
        assert!(matches!(
            Geometry::new(&deit_tiny(), 0, 224, 224),
            Err(GpuError::Input(_))
        ));
        assert!(matches!(
            Geometry::new(&deit_tiny(), 1, 15, 224),
            Err(GpuError::Input(_))
        ));
    }

    #[test]
    fn limits_bound_the_batch() {
        let limits = wgpu::Limits::defaults();
        Geometry::new(&deit_tiny(), 8, 224, 224)
            .expect("valid")
            .check_limits(&limits)
            .expect("batch 8 fits WebGPU's default limits");
        match Geometry::new(&deit_tiny(), 1000, 224, 224)
            .expect("valid")
            .check_limits(&limits)
        {
            Err(GpuError::TooLarge {
                batch,
                bytes,
                limit,
                ..
            }) => {
                assert_eq!(batch, 1000);
                assert!(bytes > limit);
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
    }
}
