//! Dispatches of a pass, planned once: each kernel's parameter block (all in one uniform
//! buffer), its bind group and its workgroup count. The model's steps (`plan.rs`) call
//! [`Builder::linear`], [`Builder::gemm`], [`Builder::layer_norm`] and [`Builder::push`].

use bytemuck::Pod;
use wgpu::{BindGroup, Buffer, BufferBinding, BufferUsages, Device};

use super::buffers::{align_up, dispatch_count, OFFSET_ALIGN};
use super::context::{KernelId, Kernels, Shared};
use super::error::GpuError;
use super::gemm;
use super::kernel::grid_2d;
use super::params::{gemm_flags, GemmParams, LayerNormParams};
use super::weights::{GpuLinear, GpuNorm};
use crate::geometry::Geometry;

/// One recorded dispatch.
#[derive(Debug)]
pub(super) struct Step {
    kernel: KernelId,
    /// Kernel kind for the timing summary ("gemm", "attention", …).
    pub kind: &'static str,
    pub label: String,
    bind_group: BindGroup,
    workgroups: [u32; 3],
}

impl Step {
    pub fn encode(&self, pass: &mut wgpu::ComputePass<'_>, kernels: &Kernels) {
        pass.set_pipeline(&kernels.get(self.kernel).pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        let [x, y, z] = self.workgroups;
        pass.dispatch_workgroups(x, y, z);
    }
}

/// The operands of one GEMM: A, B and C, and optionally bias and residual.
pub(super) struct GemmOperands<'b> {
    pub a: BufferBinding<'b>,
    pub b: BufferBinding<'b>,
    pub c: BufferBinding<'b>,
    pub bias: Option<&'b Buffer>,
    pub residual: Option<BufferBinding<'b>>,
}

/// Accumulates dispatches: parameter blocks, bind groups, workgroup counts.
pub(super) struct Builder<'a> {
    device: &'a Device,
    kernels: &'a Kernels,
    /// One parameter block per dispatch, `params_stride` apart.
    params: Buffer,
    params_bytes: Vec<u8>,
    params_stride: u64,
    max_workgroups: u32,
    unused: &'a Buffer,
    batch: usize,
    /// Token rows of the whole batch (B·T), the M of every dense layer.
    rows: u32,
    steps: Vec<Step>,
}

impl<'a> Builder<'a> {
    /// A builder for the dispatches of one pass of `g`, each with its parameter block in one
    /// uniform buffer; `unused` is bound where an optional operand is absent.
    pub fn new(shared: &'a Shared, unused: &'a Buffer, g: &Geometry) -> Self {
        let limits = &shared.limits;
        let params_stride = align_up(
            std::mem::size_of::<GemmParams>() as u64,
            u64::from(limits.min_uniform_buffer_offset_alignment).max(OFFSET_ALIGN),
        );
        let dispatches = dispatch_count(g);
        let params = shared.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("dispatch_params"),
            size: params_stride * dispatches as u64,
            usage: BufferUsages::UNIFORM | BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Self {
            device: &shared.device,
            kernels: &shared.kernels,
            params,
            params_bytes: Vec::new(),
            params_stride,
            max_workgroups: limits.max_compute_workgroups_per_dimension,
            unused,
            batch: g.batch,
            // Fits in u32: `Sizes::check_limits` bounded the token buffer by 4 GiB.
            rows: (g.batch * g.tokens) as u32,
            steps: Vec::with_capacity(dispatches),
        }
    }

    /// Writes the parameter blocks; returns the dispatches and the buffer their bind groups
    /// read.
    pub fn finish(self, queue: &wgpu::Queue) -> (Vec<Step>, Buffer) {
        queue.write_buffer(&self.params, 0, &self.params_bytes);
        (self.steps, self.params)
    }

    pub fn push<P: Pod>(
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
        let bind_group = compiled.bind(self.device, &label, &self.params, offset, storage);
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
    pub fn gemm(
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
    pub fn linear(
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

    pub fn layer_norm(
        &mut self,
        label: String,
        params: LayerNormParams,
        input: &Buffer,
        norm: &GpuNorm,
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
    pub fn rows_grid(&self, rows: u32) -> Result<[u32; 3], GpuError> {
        grid_2d(rows, self.max_workgroups).ok_or(GpuError::TooManyWorkgroups {
            kernel: "row",
            batch: self.batch,
            workgroups: u64::from(rows),
            limit: self.max_workgroups,
        })
    }
}
