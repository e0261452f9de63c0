//! Image → patch rows (`im2col.wgsl`), the input of the patch-embedding GEMM.

use wgpu::Device;

use super::kernel::{Access, Kernel};
use super::params::{Im2colParams, ELEMENTWISE_WORKGROUP_SIZE};

/// Bindings 1…2: pixels (read), patch rows (read-write).
pub(super) fn kernel(device: &Device) -> Kernel {
    Kernel::new(
        device,
        wgpu::include_wgsl!("im2col.wgsl"),
        "im2col",
        std::mem::size_of::<Im2colParams>(),
        &[Access::Read, Access::ReadWrite],
    )
}

/// Workgroups needed for `params.total` values (before laying them out in 2-D).
pub(super) fn workgroup_count(params: &Im2colParams) -> u32 {
    params.total.div_ceil(ELEMENTWISE_WORKGROUP_SIZE)
}
