//! Why the GPU path could not run.

use crate::geometry::GeometryError;

/// Why the GPU path could not run. Each message says what to do next.
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    #[error("no WebGPU/Vulkan/Metal/DX12 adapter ({0}); use the CPU backend")]
    NoAdapter(String),
    #[error(
        "the adapter `{adapter}` refused a device with {requested}: {reason}; use the CPU backend"
    )]
    DeviceRequest {
        adapter: String,
        /// The features and limits asked for.
        requested: String,
        reason: String,
    },
    #[error(
        "a batch of {batch} needs a {mib_needed} MiB {what} buffer, over the adapter's {mib_limit} MiB limit; use a smaller batch (or smaller images)",
        mib_needed = mib(*.bytes),
        mib_limit = mib(*.limit)
    )]
    TooLarge {
        /// Which buffer.
        what: String,
        batch: usize,
        bytes: u64,
        limit: u64,
    },
    #[error("a batch of {batch} needs {workgroups} {kernel} workgroups along one dimension, over the adapter's limit of {limit}; use a smaller batch")]
    TooManyWorkgroups {
        kernel: &'static str,
        batch: usize,
        workgroups: u64,
        limit: u32,
    },
    #[error("the GPU device was lost ({0}); rebuild the engine or use the CPU")]
    DeviceLost(String),
    #[error("GPU validation error: {0}")]
    Validation(String),
    #[error("the GPU ran out of memory ({0}); use a smaller batch or the CPU")]
    OutOfMemory(String),
    #[error("reading the results back from the GPU failed: {0}")]
    Map(String),
    #[error("invalid input: {0}")]
    Input(String),
}

/// Bytes as MiB with one decimal, for messages.
pub(super) fn mib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / f64::from(1u32 << 20))
}

impl From<GeometryError> for GpuError {
    fn from(e: GeometryError) -> Self {
        GpuError::Input(e.to_string())
    }
}
