//! The adapter, its device and queue, and the compiled kernels: made once, shared by every
//! model on that device.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::error::{mib, GpuError};
use super::kernel::Kernel;
use super::params::{self, GEMM_WORKGROUP_BYTES, GEMM_WORKGROUP_SIDE, ROW_WORKGROUP_SIZE};
use super::{gemm, im2col, layer_norm, softmax};

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
pub(super) enum KernelId {
    Gemm,
    Softmax,
    LayerNorm,
    Im2col,
}

/// Every compiled kernel.
#[derive(Debug)]
pub(super) struct Kernels {
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

    pub(super) fn get(&self, id: KernelId) -> &Kernel {
        match id {
            KernelId::Gemm => &self.gemm,
            KernelId::Softmax => &self.softmax,
            KernelId::LayerNorm => &self.layer_norm,
            KernelId::Im2col => &self.im2col,
        }
    }
}

pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What the device's callbacks have reported.
#[derive(Debug, Default)]
pub(super) struct Health {
    /// Why the device was lost, once it is.
    lost: Mutex<Option<String>>,
    /// The first error no error scope caught.
    uncaptured: Mutex<Option<String>>,
}

impl Health {
    /// Errors if the device is lost or something failed outside an error scope.
    pub(super) fn check(&self) -> Result<(), GpuError> {
        if let Some(reason) = lock(&self.lost).clone() {
            return Err(GpuError::DeviceLost(reason));
        }
        match lock(&self.uncaptured).take() {
            Some(error) => Err(GpuError::Validation(error)),
            None => Ok(()),
        }
    }

    /// `error`, unless the device was lost meanwhile (which then explains it).
    pub(super) fn explain(&self, error: GpuError) -> GpuError {
        match lock(&self.lost).clone() {
            Some(reason) => GpuError::DeviceLost(reason),
            None => error,
        }
    }
}

/// The device and what is compiled for it.
#[derive(Debug)]
pub(super) struct Shared {
    pub(super) device: wgpu::Device,
    pub(super) queue: wgpu::Queue,
    pub(super) info: AdapterInfo,
    pub(super) limits: wgpu::Limits,
    pub(super) kernels: Kernels,
    pub(super) health: Arc<Health>,
    /// Nanoseconds per timestamp tick, when the device has TIMESTAMP_QUERY.
    pub(super) timestamp_period: Option<f32>,
}

/// Runs `work` inside validation and out-of-memory error scopes, then reports the first error.
/// The scopes are popped before anything is awaited (they are per thread).
pub(super) async fn scoped<T>(
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
    pub(super) shared: Arc<Shared>,
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
