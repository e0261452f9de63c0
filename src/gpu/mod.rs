//! The ViT / DeiT forward pass on the GPU, in our own WGSL kernels driven by `wgpu`: natively
//! on Vulkan / Metal / DX12, in the browser on WebGPU. Same inputs and outputs as the candle
//! path in [`crate::model`] (logits and every layer's attention probabilities), within f32
//! rounding: against the CPU engine the fixtures in `tests/gpu.rs` differ by ≤ 1.2e-5
//! (logits) and ≤ 6e-6 (attention).
//!
//! * [`GpuContext`]: adapter, device, queue and the compiled kernels — one per process is
//!   plenty; several models can share it ([`GpuModel::with_context`]).
//! * [`GpuModel`]: a checkpoint's weights uploaded once; [`GpuModel::infer`] records one
//!   command stream for the whole pass, submits it once and reads logits and attention back
//!   through one mapped buffer. The buffers of a pass are kept for the next pass of the same
//!   shape.
//!
//! Kernels, one `.wgsl` each beside the Rust that dispatches it (parameter blocks in
//! [`params`]):
//! * `gemm.wgsl` — 64×64 output tiles, 64 invocations each holding an 8×8 block, K in steps of
//!   16 through 8 KiB of workgroup memory, vec4 global loads where the operand is aligned;
//!   epilogue +bias, GELU (erf or tanh), ·alpha, +residual chosen per dispatch. Batched and
//!   strided, so the attention products q·kᵀ and P·V run per (image, head) straight on the
//!   fused qkv rows without a transpose: the probabilities must be materialized for readback
//!   anyway, so a fused (flash-style) attention kernel would save nothing, and one tuned kernel
//!   serves every product.
//! * `softmax.wgsl`, `layer_norm.wgsl` — one workgroup of 64 per row, tree reductions.
//! * `im2col.wgsl` — patches for the patch-embedding GEMM.
//!
//! `2 + 9·layers + 1 + heads` dispatches per pass (112 for DeiT-Ti); see `plan.rs`.
//! Only WebGPU-core features (no f16, no subgroups); the limits asked for are WebGPU's
//! downlevel defaults raised to what the kernels need (7 storage buffers per stage, 256
//! invocations and 8 KiB of workgroup memory per workgroup) plus the adapter's own buffer
//! sizes, so it runs on SwiftShader (Chrome without a GPU) and Mesa's lavapipe.
//!
//! Errors never panic: validation and out-of-memory errors are caught by error scopes around
//! each call, a lost device is remembered by a callback, and both come back as [`GpuError`].
//! After [`GpuError::DeviceLost`], build a new [`GpuModel`] (or fall back to the CPU).
//!
//! On the web nothing blocks: `infer` awaits the buffer mapping (the browser drives it);
//! natively it blocks in `Device::poll` until the GPU is done, so [`block_on`] is all a
//! native caller needs. Software adapters ([`AdapterInfo::fallback`]) run the kernels far
//! slower than the CPU engine does the model.
//!
//! Inside, each module using only those listed before it: `error`; `params`, `kernel` and one
//! module per kernel; `context` (device and kernels); `weights`; `buffers` (sizes and limits of
//! a pass); `dispatch` (parameter blocks and bind groups); `readback` (recording, timestamps,
//! mapping); `plan` (the forward pass as dispatches: patch embedding → blocks → head); `model`.
//! Shapes, input checks, position embeddings and the per-image split come from
//! [`crate::geometry`], shared with the CPU path.

mod buffers;
mod context;
mod dispatch;
mod error;
mod gemm;
mod im2col;
mod kernel;
mod layer_norm;
mod model;
pub mod params;
mod plan;
mod readback;
mod softmax;
mod weights;

pub use context::{AdapterInfo, GpuContext};
pub use error::GpuError;
pub use model::{GpuModel, GpuOutput};

/// Runs a future to completion on this thread, parking it while the future waits: enough for
/// [`GpuModel::new`] and [`GpuModel::infer`], whose waits are resolved by `Device::poll`
/// natively. For the CLI and tests.
#[cfg(not(target_arch = "wasm32"))]
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};

    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.unpark();
        }
    }

    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(output) => return output,
            Poll::Pending => std::thread::park(),
        }
    }
}
