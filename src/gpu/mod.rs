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
//! `2 + 9·layers + 1 + heads` dispatches per pass (112 for DeiT-Ti); see `forward.rs`.
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

mod forward;
mod gemm;
mod im2col;
mod kernel;
mod layer_norm;
pub mod params;
mod softmax;
mod weights;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::checkpoint::{Checkpoint, ModelConfig};
use crate::model::resize_position_grid;

use forward::{Geometry, Workspace};
use kernel::Kernel;
use params::{GEMM_WORKGROUP_BYTES, GEMM_WORKGROUP_SIDE, ROW_WORKGROUP_SIZE};
use weights::{storage_buffer, GpuWeights};

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
fn mib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / f64::from(1u32 << 20))
}

/// The adapter a [`GpuContext`] runs on.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct AdapterInfo {
    /// As the driver names it (empty for some browser adapters).
    pub name: String,
    /// PCI vendor id, 0 where unknown.
    pub vendor: u32,
    /// "discrete GPU", "integrated GPU", "virtual GPU", "CPU" or "other".
    pub device_type: String,
    /// "vulkan", "metal", "dx12" or "webgpu".
    pub backend: String,
    /// A software (CPU) implementation such as lavapipe or SwiftShader.
    pub fallback: bool,
}

impl AdapterInfo {
    fn from_wgpu(info: &wgpu::AdapterInfo) -> Self {
        let device_type = match info.device_type {
            wgpu::DeviceType::DiscreteGpu => "discrete GPU",
            wgpu::DeviceType::IntegratedGpu => "integrated GPU",
            wgpu::DeviceType::VirtualGpu => "virtual GPU",
            wgpu::DeviceType::Cpu => "CPU",
            wgpu::DeviceType::Other => "other",
        };
        Self {
            name: info.name.clone(),
            vendor: info.vendor,
            device_type: device_type.to_string(),
            backend: info.backend.to_str().to_string(),
            fallback: info.device_type == wgpu::DeviceType::Cpu,
        }
    }
}

impl std::fmt::Display for AdapterInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = if self.name.is_empty() {
            "unnamed adapter"
        } else {
            &self.name
        };
        write!(f, "{name} ({}, {})", self.backend, self.device_type)
    }
}

/// Which compiled kernel a dispatch runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KernelId {
    Gemm,
    Softmax,
    LayerNorm,
    Im2col,
}

/// Every compiled kernel.
#[derive(Debug)]
struct Kernels {
    gemm: Kernel,
    softmax: Kernel,
    layer_norm: Kernel,
    im2col: Kernel,
}

impl Kernels {
    fn new(device: &wgpu::Device) -> Self {
        Self {
            gemm: gemm::kernel(device),
            softmax: softmax::kernel(device),
            layer_norm: layer_norm::kernel(device),
            im2col: im2col::kernel(device),
        }
    }

    fn get(&self, id: KernelId) -> &Kernel {
        match id {
            KernelId::Gemm => &self.gemm,
            KernelId::Softmax => &self.softmax,
            KernelId::LayerNorm => &self.layer_norm,
            KernelId::Im2col => &self.im2col,
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What the device's callbacks have reported.
#[derive(Debug, Default)]
struct Health {
    /// Why the device was lost, once it is.
    lost: Mutex<Option<String>>,
    /// The first error no error scope caught.
    uncaptured: Mutex<Option<String>>,
}

impl Health {
    /// Errors if the device is lost or something failed outside an error scope.
    fn check(&self) -> Result<(), GpuError> {
        if let Some(reason) = lock(&self.lost).clone() {
            return Err(GpuError::DeviceLost(reason));
        }
        match lock(&self.uncaptured).take() {
            Some(error) => Err(GpuError::Validation(error)),
            None => Ok(()),
        }
    }

    /// `error`, unless the device was lost meanwhile (which then explains it).
    fn explain(&self, error: GpuError) -> GpuError {
        match lock(&self.lost).clone() {
            Some(reason) => GpuError::DeviceLost(reason),
            None => error,
        }
    }
}

/// The device and what is compiled for it.
#[derive(Debug)]
struct Shared {
    device: wgpu::Device,
    queue: wgpu::Queue,
    info: AdapterInfo,
    limits: wgpu::Limits,
    kernels: Kernels,
    health: Arc<Health>,
    /// Nanoseconds per timestamp tick, when the device has TIMESTAMP_QUERY.
    timestamp_period: Option<f32>,
}

/// Runs `work` inside validation and out-of-memory error scopes, then reports the first error.
/// The scopes are popped before anything is awaited (they are per thread).
async fn scoped<T>(
    device: &wgpu::Device,
    health: &Health,
    work: impl FnOnce() -> Result<T, GpuError>,
) -> Result<T, GpuError> {
    let out_of_memory = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
    let validation = device.push_error_scope(wgpu::ErrorFilter::Validation);
    let result = work();
    let validation = validation.pop();
    let out_of_memory = out_of_memory.pop();
    if let Some(error) = validation.await {
        return Err(health.explain(GpuError::Validation(error.to_string())));
    }
    if let Some(error) = out_of_memory.await {
        return Err(health.explain(GpuError::OutOfMemory(error.to_string())));
    }
    result
}

/// The limits our kernels need, on top of WebGPU's downlevel defaults: raised where the
/// kernels need more, and the adapter's own buffer-size limits so that the largest batch it
/// can hold runs (activations and attention grow with the batch).
fn required_limits(adapter: &wgpu::Limits) -> wgpu::Limits {
    let base = wgpu::Limits::downlevel_defaults();
    wgpu::Limits {
        max_storage_buffers_per_shader_stage: base
            .max_storage_buffers_per_shader_stage
            .max(gemm::STORAGE.len() as u32),
        max_compute_invocations_per_workgroup: base
            .max_compute_invocations_per_workgroup
            .max(GEMM_WORKGROUP_SIDE * GEMM_WORKGROUP_SIDE)
            .max(params::ELEMENTWISE_WORKGROUP_SIZE),
        max_compute_workgroup_size_x: base
            .max_compute_workgroup_size_x
            .max(ROW_WORKGROUP_SIZE)
            .max(params::ELEMENTWISE_WORKGROUP_SIZE),
        max_compute_workgroup_storage_size: base
            .max_compute_workgroup_storage_size
            .max(GEMM_WORKGROUP_BYTES),
        max_buffer_size: adapter.max_buffer_size.max(base.max_buffer_size),
        max_storage_buffer_binding_size: adapter
            .max_storage_buffer_binding_size
            .max(base.max_storage_buffer_binding_size),
        ..base
    }
}

/// An adapter, its device and queue, and the compiled kernels. Cheap to clone; share one
/// between models with [`GpuModel::with_context`].
#[derive(Clone, Debug)]
pub struct GpuContext {
    shared: Arc<Shared>,
}

impl GpuContext {
    /// Requests a high-performance adapter (no surface) and a device with the limits the
    /// kernels need (see the module docs), plus TIMESTAMP_QUERY when the adapter has it,
    /// and compiles the kernels.
    pub async fn new() -> Result<Self, GpuError> {
        // In the browser, `Instance::new` panics outside a window or dedicated worker; this
        // check says no instead (and catches a `navigator.gpu` without adapters).
        #[cfg(target_arch = "wasm32")]
        if !wgpu::util::is_browser_webgpu_supported().await {
            return Err(GpuError::NoAdapter(
                "this browser context exposes no WebGPU adapter".to_string(),
            ));
        }
        let instance =
            wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                force_fallback_adapter: false,
                compatible_surface: None,
                apply_limit_buckets: false,
            })
            .await
            .map_err(|e| GpuError::NoAdapter(e.to_string()))?;
        let info = AdapterInfo::from_wgpu(&adapter.get_info());
        let adapter_limits = adapter.limits();
        let limits = required_limits(&adapter_limits);
        let features = adapter.features() & wgpu::Features::TIMESTAMP_QUERY;
        let requested = format!(
            "features {features:?}, at least {} storage buffers per stage, {} invocations and {} bytes of workgroup memory per workgroup, buffers of up to {} MiB",
            limits.max_storage_buffers_per_shader_stage,
            limits.max_compute_invocations_per_workgroup,
            limits.max_compute_workgroup_storage_size,
            mib(limits.max_buffer_size),
        );
        let mut short = Vec::new();
        limits.check_limits_with_fail_fn(&adapter_limits, false, |name, wanted, has| {
            short.push(format!("{name} (needs {wanted}, has {has})"));
        });
        if !short.is_empty() {
            return Err(GpuError::DeviceRequest {
                adapter: info.to_string(),
                requested,
                reason: format!("the adapter is short of {}", short.join(", ")),
            });
        }
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("vit-lens"),
                required_features: features,
                required_limits: limits.clone(),
                experimental_features: wgpu::ExperimentalFeatures::disabled(),
                memory_hints: wgpu::MemoryHints::Performance,
                trace: wgpu::Trace::Off,
            })
            .await
            .map_err(|e| GpuError::DeviceRequest {
                adapter: info.to_string(),
                requested,
                reason: e.to_string(),
            })?;

        let health = Arc::new(Health::default());
        let lost = Arc::clone(&health);
        device.set_device_lost_callback(move |reason, message| {
            lock(&lost.lost).get_or_insert(format!("{reason:?}: {message}"));
        });
        let uncaptured = Arc::clone(&health);
        device.on_uncaptured_error(Arc::new(move |error: wgpu::Error| {
            lock(&uncaptured.uncaptured).get_or_insert(error.to_string());
        }));

        let kernels = scoped(&device, &health, || Ok(Kernels::new(&device))).await?;
        let timestamp_period = features
            .contains(wgpu::Features::TIMESTAMP_QUERY)
            .then(|| queue.get_timestamp_period());
        // On wasm32 wgpu's handles are neither Send nor Sync (there is one thread); natively
        // they are, and the Arc lets models on several threads share one device.
        #[cfg_attr(target_arch = "wasm32", allow(clippy::arc_with_non_send_sync))]
        let shared = Arc::new(Shared {
            device,
            queue,
            info,
            limits,
            kernels,
            health,
            timestamp_period,
        });
        Ok(Self { shared })
    }

    pub fn adapter_info(&self) -> &AdapterInfo {
        &self.shared.info
    }

    /// Whether [`GpuOutput::kernel_ms`] will be measured (the device has TIMESTAMP_QUERY).
    pub fn timestamps(&self) -> bool {
        self.shared.timestamp_period.is_some()
    }

    /// Destroys the device now (freeing its memory); every later call on a model of this
    /// context returns [`GpuError::DeviceLost`].
    pub fn destroy(&self) {
        lock(&self.shared.health.lost).get_or_insert("destroyed by the application".to_string());
        self.shared.device.destroy();
    }
}

/// A checkpoint on the GPU: weights uploaded once, and the buffers of the last pass kept for
/// the next one of the same shape.
#[derive(Debug)]
pub struct GpuModel {
    context: GpuContext,
    config: ModelConfig,
    weights: GpuWeights,
    /// Position embeddings at the native grid, (tokens, hidden), for resizing.
    pos_embed_host: Vec<f32>,
    /// Position embeddings per patch grid, (tokens, hidden), on the device.
    positions: Mutex<HashMap<(usize, usize), wgpu::Buffer>>,
    /// The buffers of the last pass, taken by a pass and put back after it.
    workspace: Mutex<Option<Workspace>>,
    /// Whether passes record per-kernel timestamps (where the device has them).
    kernel_timing: AtomicBool,
}

/// One forward pass's results.
#[derive(Clone, Debug, PartialEq)]
pub struct GpuOutput {
    /// (batch, classes)
    pub logits: Vec<f32>,
    /// One per layer, each (batch, heads, tokens, tokens).
    pub attentions: Vec<Vec<f32>>,
    /// Patch grid (rows, cols) the tokens come from.
    pub patch_grid: (usize, usize),
    /// CLS, and the distillation token if any, precede the patches.
    pub prefix_tokens: usize,
    pub batch: usize,
    pub heads: usize,
    /// prefix_tokens + rows·cols
    pub tokens: usize,
    /// GPU milliseconds per kernel kind ("im2col", "gemm", "attention", "softmax",
    /// "layer_norm"), in order of first use, when the device has TIMESTAMP_QUERY (and timing
    /// is on, see [`GpuModel::set_kernel_timing`]).
    pub kernel_ms: Option<Vec<(String, f64)>>,
}

impl GpuOutput {
    /// Logits of image `image`: (classes,).
    pub fn image_logits(&self, image: usize) -> &[f32] {
        let classes = self.logits.len() / self.batch.max(1);
        &self.logits[image * classes..(image + 1) * classes]
    }

    /// Attention probabilities of image `image` in layer `layer`: (heads, tokens, tokens).
    pub fn image_attention(&self, layer: usize, image: usize) -> &[f32] {
        let per_image = self.heads * self.tokens * self.tokens;
        &self.attentions[layer][image * per_image..(image + 1) * per_image]
    }
}

impl GpuModel {
    /// Creates a [`GpuContext`] and uploads `checkpoint` into it.
    pub async fn new(checkpoint: &Checkpoint) -> Result<Self, GpuError> {
        Self::with_context(&GpuContext::new().await?, checkpoint).await
    }

    /// Uploads every weight of `checkpoint` once (linear weights transposed to (in, out)).
    pub async fn with_context(
        context: &GpuContext,
        checkpoint: &Checkpoint,
    ) -> Result<Self, GpuError> {
        let shared = &context.shared;
        shared.health.check()?;
        let cfg = &checkpoint.config;
        let native = cfg.patch_grid();
        let (weights, native_positions) = scoped(&shared.device, &shared.health, || {
            Ok((
                GpuWeights::upload(&shared.device, checkpoint),
                storage_buffer(
                    &shared.device,
                    "pos_embed",
                    &checkpoint.weights.pos_embed.data,
                ),
            ))
        })
        .await?;
        Ok(Self {
            context: context.clone(),
            config: cfg.clone(),
            weights,
            pos_embed_host: checkpoint.weights.pos_embed.data.clone(),
            positions: Mutex::new(HashMap::from([((native, native), native_positions)])),
            workspace: Mutex::new(None),
            kernel_timing: AtomicBool::new(true),
        })
    }

    pub fn adapter_info(&self) -> &AdapterInfo {
        self.context.adapter_info()
    }

    pub fn context(&self) -> &GpuContext {
        &self.context
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Turns per-kernel GPU timing ([`GpuOutput::kernel_ms`]) on or off; on by default where
    /// the device has timestamp queries. Timing records every dispatch in its own compute pass,
    /// which costs a little on fast GPUs; turn it off for production runs.
    pub fn set_kernel_timing(&self, enabled: bool) {
        self.kernel_timing.store(enabled, Ordering::Relaxed);
    }

    /// Checks that a batch of `batch` images of `height`×`width` pixels fits the device's
    /// limits, without allocating anything.
    pub fn check_capacity(
        &self,
        batch: usize,
        height: usize,
        width: usize,
    ) -> Result<(), GpuError> {
        Geometry::new(&self.config, batch, height, width)?.check_limits(&self.context.shared.limits)
    }

    /// The largest batch of `height`×`width` images one pass can take (0 if not even one).
    pub fn max_batch(&self, height: usize, width: usize) -> usize {
        if self.check_capacity(1, height, width).is_err() {
            return 0;
        }
        let (mut fits, mut fails) = (1usize, 2usize);
        while fails < 1 << 24 && self.check_capacity(fails, height, width).is_ok() {
            fits = fails;
            fails *= 2;
        }
        while fails - fits > 1 {
            let mid = fits + (fails - fits) / 2;
            if self.check_capacity(mid, height, width).is_ok() {
                fits = mid;
            } else {
                fails = mid;
            }
        }
        fits
    }

    /// One forward pass of `batch` images, `pixels` (batch, channels, height, width),
    /// normalized, channel-major.
    ///
    /// Records one command stream for the whole pass, submits it once and reads back logits
    /// and every layer's attention probabilities through one mapped buffer. Natively it
    /// blocks in `Device::poll` until the GPU is done; on the web it only awaits. Inputs whose
    /// sides are not multiples of the patch size lose the pixels past the last whole patch;
    /// grids other than the checkpoint's get bicubically resized position embeddings.
    ///
    /// Errors: [`GpuError::Input`] for an empty batch, a wrong number of values or an image
    /// smaller than a patch; [`GpuError::TooLarge`] / [`GpuError::TooManyWorkgroups`] when a
    /// buffer or dispatch would exceed the device's limits (see [`GpuModel::max_batch`]);
    /// [`GpuError::DeviceLost`], [`GpuError::Validation`], [`GpuError::OutOfMemory`] and
    /// [`GpuError::Map`] when the GPU fails.
    pub async fn infer(
        &self,
        pixels: &[f32],
        batch: usize,
        height: usize,
        width: usize,
    ) -> Result<GpuOutput, GpuError> {
        let shared = &self.context.shared;
        let geometry = Geometry::new(&self.config, batch, height, width)?;
        let expected = geometry.pixel_count();
        if expected != Some(pixels.len()) {
            return Err(GpuError::Input(format!(
                "expected {batch}×{}×{height}×{width} = {} pixel values, got {}",
                self.config.num_channels,
                expected.map_or_else(|| "too many".to_string(), |n| n.to_string()),
                pixels.len()
            )));
        }
        geometry.check_limits(&shared.limits)?;
        shared.health.check()?;

        let timed = self.kernel_timing.load(Ordering::Relaxed);
        let cached = lock(&self.workspace)
            .take()
            .filter(|w| w.geometry == geometry);
        let (sender, receiver) = futures_channel::oneshot::channel();
        let workspace = scoped(&shared.device, &shared.health, || {
            let workspace = match cached {
                Some(workspace) => workspace,
                None => {
                    let positions = self.positions(geometry.grid);
                    Workspace::new(shared, &self.weights, &positions, geometry)?
                }
            };
            shared
                .queue
                .write_buffer(workspace.pixels(), 0, bytemuck::cast_slice(pixels));
            let encoder = workspace.record(shared, timed);
            shared.queue.submit(Some(encoder.finish()));
            workspace
                .staging()
                .slice(..)
                .map_async(wgpu::MapMode::Read, move |result| {
                    // The receiver is gone only if the caller dropped the future.
                    let _ = sender.send(result);
                });
            Ok(workspace)
        })
        .await?;

        #[cfg(not(target_arch = "wasm32"))]
        shared
            .device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| shared.health.explain(GpuError::Map(e.to_string())))?;
        match receiver.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(shared.health.explain(GpuError::Map(e.to_string()))),
            Err(_) => {
                return Err(shared.health.explain(GpuError::Map(
                    "the mapping was dropped before it completed".to_string(),
                )))
            }
        }
        let readout = workspace.read(timed)?;
        shared.health.check()?;
        let g = &workspace.geometry;
        let output = GpuOutput {
            logits: readout.logits,
            attentions: readout.attentions,
            patch_grid: g.grid,
            prefix_tokens: g.prefix,
            batch: g.batch,
            heads: g.heads,
            tokens: g.tokens,
            kernel_ms: readout.kernel_ms,
        };
        *lock(&self.workspace) = Some(workspace);
        Ok(output)
    }

    /// The position embeddings for a patch grid: the checkpoint's at its native grid, else
    /// bicubically resized as transformers' `interpolate_pos_encoding` (cached per grid).
    fn positions(&self, grid: (usize, usize)) -> wgpu::Buffer {
        let mut cache = lock(&self.positions);
        if let Some(buffer) = cache.get(&grid) {
            return buffer.clone();
        }
        let native = self.config.patch_grid();
        let resized = resize_position_grid(
            &self.pos_embed_host,
            self.config.hidden_size,
            self.config.prefix_tokens(),
            (native, native),
            grid,
        );
        let buffer = storage_buffer(
            &self.context.shared.device,
            &format!("pos_embed_{}x{}", grid.0, grid.1),
            &resized,
        );
        cache.insert(grid, buffer.clone());
        buffer
    }
}

/// Runs a future to completion on this thread, parking it while the future waits: enough for
/// [`GpuModel::new`] and [`GpuModel::infer`], whose waits are resolved by `Device::poll`
/// natively. For the CLI and tests.
#[cfg(not(target_arch = "wasm32"))]
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
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
