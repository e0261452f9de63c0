//! Row softmax in place (`softmax.wgsl`): the attention probabilities of one layer, one
//! workgroup per (image, head, query) row.

use wgpu::Device;

use super::kernel::{Access, Kernel};
use super::params::SoftmaxParams;

/// Binding 1: the scores, overwritten by the probabilities.
pub(super) fn kernel(device: &Device) -> Kernel {
    Kernel::new(
        device,
        wgpu::include_wgsl!("softmax.wgsl"),
        "softmax",
        std::mem::size_of::<SoftmaxParams>(),
        &[Access::ReadWrite],
    )
}
