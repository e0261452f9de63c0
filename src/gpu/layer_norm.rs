//! LayerNorm (`layer_norm.wgsl`), one workgroup per token row.

use wgpu::Device;

use super::kernel::{Access, Kernel};
use super::params::LayerNormParams;

/// Bindings 1…4: input rows, gamma, beta (read), output rows (read-write).
pub(super) fn kernel(device: &Device) -> Kernel {
    Kernel::new(
        device,
        wgpu::include_wgsl!("layer_norm.wgsl"),
        "layer_norm",
        std::mem::size_of::<LayerNormParams>(),
        &[Access::Read, Access::Read, Access::Read, Access::ReadWrite],
    )
}
