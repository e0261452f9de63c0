//! The tiled GEMM (`gemm.wgsl`): every dense layer, the patch embedding and both attention
//! products (q·kᵀ and P·V, straight on the fused qkv buffer, one batch entry per image and
//! head) — see [`GemmParams`] for the addressing.

use wgpu::Device;

use super::kernel::{Access, Kernel};
use super::params::{gemm_flags, GemmParams, GEMM_TILE};

/// Bindings 1…7: A and the same buffer as vec4s, B and the same as vec4s, bias, residual
/// (read), C (read-write). The most storage buffers of any kernel.
pub(super) const STORAGE: [Access; 7] = [
    Access::Read,
    Access::ReadVec4,
    Access::Read,
    Access::ReadVec4,
    Access::Read,
    Access::Read,
    Access::ReadWrite,
];

pub(super) fn kernel(device: &Device) -> Kernel {
    Kernel::new(
        device,
        wgpu::include_wgsl!("gemm.wgsl"),
        "gemm",
        std::mem::size_of::<GemmParams>(),
        &STORAGE,
    )
}

/// Sets [`gemm_flags::A_VEC4`] / [`gemm_flags::B_VEC4`] where every offset, stride and
/// leading dimension of the operand (and its contiguous extent) is a multiple of 4 elements,
/// so its rows can be read as aligned vec4s (bound buffer offsets are 256-byte aligned).
pub(super) fn with_vec4_flags(mut params: GemmParams) -> GemmParams {
    let aligned = |values: &[u32]| values.iter().all(|v| v % 4 == 0);
    if aligned(&[
        params.lda,
        params.k,
        params.a_offset,
        params.a_stride_outer,
        params.a_stride_inner,
    ]) {
        params.flags |= gemm_flags::A_VEC4;
    }
    let contiguous = if params.flags & gemm_flags::TRANS_B != 0 {
        params.k
    } else {
        params.n
    };
    if aligned(&[
        params.ldb,
        contiguous,
        params.b_offset,
        params.b_stride_outer,
        params.b_stride_inner,
    ]) {
        params.flags |= gemm_flags::B_VEC4;
    }
    params
}

/// Workgroups for `params` over `batch` batch entries: one per output tile and entry.
pub(super) fn workgroups(params: &GemmParams, batch: u32) -> [u32; 3] {
    [
        params.n.div_ceil(GEMM_TILE),
        params.m.div_ceil(GEMM_TILE),
        batch,
    ]
}
