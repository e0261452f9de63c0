//! The engine runs a checkpoint on a backend and hands back plain numbers: logits and every
//! layer's attention per image. Callers (CLI, web app) never touch tensors or GPU buffers.
//!
//! [`Engine::new`] with [`BackendChoice::Auto`] takes the GPU (WebGPU in the browser; Vulkan,
//! Metal or DX12 natively) when a hardware adapter exists and grants the limits the model
//! needs, and the CPU otherwise, keeping the reason; the checkpoint stays with the caller, so
//! an engine can always be rebuilt on the other backend. [`Engine::with_options`] can also
//! let `Auto` take a software adapter ([`EngineOptions::allow_software_adapter`]), as the web
//! app does.
//!
//! Both backends check their input and split their batched results per image through
//! [`crate::geometry`], so a batch means the same on either.

use candle_core::{Device, Tensor};

use crate::analysis::{AnalysisError, LayerAttention};
use crate::checkpoint::{Checkpoint, ModelConfig};
use crate::geometry::{split_batch, Geometry, GeometryError};
use crate::gpu::{AdapterInfo, GpuContext, GpuError, GpuModel};
use crate::model::{CpuOptions, ModelError, VisionTransformer};
use crate::preprocess::Preprocessed;

/// Why inference failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Gpu(#[from] GpuError),
    #[error("invalid input: {0}")]
    Input(String),
    #[error("attention output is malformed: {0}")]
    Attention(#[from] AnalysisError),
    #[error(transparent)]
    Budget(#[from] crate::budget::BudgetError),
    #[error(
        "the model computed values that are not finite numbers {at}: its weights overflow f32 \
         on this input; check the checkpoint (re-export it from a model that works) or try \
         another image"
    )]
    NonFinite { at: String },
}

impl From<GeometryError> for EngineError {
    fn from(e: GeometryError) -> Self {
        EngineError::Input(e.to_string())
    }
}

impl From<candle_core::Error> for EngineError {
    fn from(e: candle_core::Error) -> Self {
        EngineError::Model(ModelError::Candle(e))
    }
}

/// Which backend ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// candle on the CPU (SIMD128 in the browser).
    Cpu,
    /// Our WGSL kernels through wgpu (WebGPU in the browser).
    Gpu,
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Cpu => "cpu",
            Backend::Gpu => "gpu",
        })
    }
}

/// Which backend the caller asks for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendChoice {
    /// The GPU when one is usable, else the CPU.
    #[default]
    Auto,
    Gpu,
    Cpu,
}

impl std::str::FromStr for BackendChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(BackendChoice::Auto),
            "gpu" | "webgpu" => Ok(BackendChoice::Gpu),
            "cpu" => Ok(BackendChoice::Cpu),
            other => Err(format!(
                "unknown backend `{other}`; choose auto, gpu or cpu"
            )),
        }
    }
}

/// One image's result.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageInference {
    /// (classes,)
    pub logits: Vec<f32>,
    /// One per layer, each (heads, tokens, tokens).
    pub attentions: Vec<LayerAttention>,
    /// Patch grid (rows, cols) the tokens come from.
    pub patch_grid: (usize, usize),
    /// CLS, and the distillation token if the model has one, precede the patches.
    pub prefix_tokens: usize,
}

/// How an [`Engine`] is built, besides the backend.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EngineOptions {
    /// Let [`BackendChoice::Auto`] take a software GPU adapter (device type CPU: SwiftShader,
    /// lavapipe, WARP). Off by default: natively such an adapter runs the kernels 20–70× slower
    /// than the CPU engine. The web app turns it on, because there the adapter is the one the
    /// browser chose to expose (headless Chromium's is SwiftShader). [`BackendChoice::Gpu`]
    /// takes any adapter either way.
    pub allow_software_adapter: bool,
    /// Kernel choices of the CPU engine, also where `Auto` falls back to it.
    pub cpu: CpuOptions,
}

enum Runner {
    Cpu(Box<VisionTransformer>),
    Gpu(Box<GpuModel>),
}

/// A model ready to run on one backend.
pub struct Engine {
    runner: Runner,
    config: ModelConfig,
    /// Why `Auto` ended on the CPU, if it did.
    fallback_reason: Option<String>,
}

impl Engine {
    /// An engine on the chosen backend with the default [`EngineOptions`]. `Auto` takes a
    /// hardware GPU and otherwise the CPU, keeping the reason ([`Engine::fallback_reason`]): no
    /// adapter, a refused device, or only a software adapter. `Gpu` takes any adapter, software
    /// ones included, and reports errors.
    pub async fn new(checkpoint: &Checkpoint, choice: BackendChoice) -> Result<Self, EngineError> {
        Self::with_options(checkpoint, choice, EngineOptions::default()).await
    }

    /// An engine on the chosen backend, built as `options` say. Never blocks: on the web the
    /// adapter and device requests are awaited.
    pub async fn with_options(
        checkpoint: &Checkpoint,
        choice: BackendChoice,
        options: EngineOptions,
    ) -> Result<Self, EngineError> {
        match choice {
            BackendChoice::Cpu => Self::cpu_with(checkpoint, options.cpu),
            BackendChoice::Gpu => Self::gpu(checkpoint).await,
            BackendChoice::Auto => {
                let reason = match Self::auto_gpu(checkpoint, options).await {
                    Ok(engine) => return Ok(engine),
                    Err(reason) => reason,
                };
                let mut engine = Self::cpu_with(checkpoint, options.cpu)?;
                engine.fallback_reason = Some(reason);
                Ok(engine)
            }
        }
    }

    /// `Auto`'s GPU engine, or why there is none: the adapter is checked before any weight is
    /// uploaded.
    async fn auto_gpu(checkpoint: &Checkpoint, options: EngineOptions) -> Result<Self, String> {
        let context = GpuContext::new()
            .await
            .map_err(|e| EngineError::from(e).to_string())?;
        let adapter = context.adapter_info();
        if adapter.fallback && !options.allow_software_adapter {
            return Err(format!(
                "the only GPU adapter, {adapter}, is a software renderer, slower than the CPU engine"
            ));
        }
        let model = GpuModel::with_context(&context, checkpoint)
            .await
            .map_err(|e| EngineError::from(e).to_string())?;
        Ok(Self::on_gpu(model, checkpoint))
    }

    /// The CPU engine (candle, with packed AVX-512 GEMMs where the CPU has them).
    pub fn cpu(checkpoint: &Checkpoint) -> Result<Self, EngineError> {
        Self::cpu_with(checkpoint, CpuOptions::default())
    }

    /// The CPU engine with explicit kernel choices.
    pub fn cpu_with(checkpoint: &Checkpoint, options: CpuOptions) -> Result<Self, EngineError> {
        Ok(Self {
            runner: Runner::Cpu(Box::new(VisionTransformer::with_options(
                checkpoint,
                &Device::Cpu,
                options,
            )?)),
            config: checkpoint.config.clone(),
            fallback_reason: None,
        })
    }

    /// The GPU engine: adapter, device, pipelines and weights, built once.
    pub async fn gpu(checkpoint: &Checkpoint) -> Result<Self, EngineError> {
        Ok(Self::on_gpu(GpuModel::new(checkpoint).await?, checkpoint))
    }

    fn on_gpu(model: GpuModel, checkpoint: &Checkpoint) -> Self {
        // Per-kernel timing splits the pass into one compute pass per dispatch; only
        // `profile_batch` wants it.
        model.set_kernel_timing(false);
        Self {
            runner: Runner::Gpu(Box::new(model)),
            config: checkpoint.config.clone(),
            fallback_reason: None,
        }
    }

    /// The geometry of the model this engine runs.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    pub fn backend(&self) -> Backend {
        match self.runner {
            Runner::Cpu(_) => Backend::Cpu,
            Runner::Gpu(_) => Backend::Gpu,
        }
    }

    /// The GPU adapter that runs the model, if on the GPU.
    pub fn adapter(&self) -> Option<&AdapterInfo> {
        match &self.runner {
            Runner::Gpu(gpu) => Some(gpu.adapter_info()),
            Runner::Cpu(_) => None,
        }
    }

    /// The CPU model this engine runs, if on the CPU: for step-by-step views
    /// ([`VisionTransformer::forward_recorded`]) without building a second copy.
    pub fn cpu_model(&self) -> Option<&VisionTransformer> {
        match &self.runner {
            Runner::Cpu(model) => Some(model),
            Runner::Gpu(_) => None,
        }
    }

    /// Why [`BackendChoice::Auto`] chose the CPU, when it did.
    pub fn fallback_reason(&self) -> Option<&str> {
        self.fallback_reason.as_deref()
    }

    /// The geometry of a batch, once `pixels` is checked to hold (batch, channels, height,
    /// width) values of at least one patch.
    fn geometry(
        &self,
        pixels: &[f32],
        batch: usize,
        height: usize,
        width: usize,
    ) -> Result<Geometry, EngineError> {
        // The budget first: it refuses sizes whose products overflow or outgrow memory
        // before any shape arithmetic or allocation.
        self.config.check_input(batch, height, width)?;
        let geometry = Geometry::new(&self.config, batch, height, width)?;
        geometry.check_pixels(pixels.len())?;
        Ok(geometry)
    }

    /// Runs a batch on either backend. `pixels`: (batch, channels, height, width), normalized,
    /// channel-major. On the web this never blocks.
    pub async fn infer_batch_async(
        &self,
        pixels: &[f32],
        batch: usize,
        height: usize,
        width: usize,
    ) -> Result<Vec<ImageInference>, EngineError> {
        let geometry = self.geometry(pixels, batch, height, width)?;
        match &self.runner {
            Runner::Cpu(model) => {
                let (logits, attentions) = run_cpu(model, pixels, &geometry)?;
                per_image(&geometry, &logits, &attentions)
            }
            Runner::Gpu(gpu) => {
                let out = gpu.infer(pixels, batch, height, width).await?;
                per_image(&geometry, &out.logits, &out.attentions)
            }
        }
    }

    /// GPU time per kernel kind for one batch, in ms, where the adapter has timestamp queries;
    /// `None` on the CPU or without them (native only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn profile_batch(
        &self,
        pixels: &[f32],
        batch: usize,
        height: usize,
        width: usize,
    ) -> Result<Option<Vec<(String, f64)>>, EngineError> {
        match &self.runner {
            Runner::Cpu(_) => Ok(None),
            Runner::Gpu(gpu) => {
                self.geometry(pixels, batch, height, width)?;
                gpu.set_kernel_timing(true);
                let out = crate::gpu::block_on(gpu.infer(pixels, batch, height, width));
                gpu.set_kernel_timing(false);
                Ok(out?.kernel_ms)
            }
        }
    }

    /// Runs a batch, blocking until done (native only; on the GPU it waits for the device).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn infer_batch(
        &self,
        pixels: &[f32],
        batch: usize,
        height: usize,
        width: usize,
    ) -> Result<Vec<ImageInference>, EngineError> {
        // On the CPU the future is ready at once; on the GPU this waits for the device.
        crate::gpu::block_on(self.infer_batch_async(pixels, batch, height, width))
    }

    /// Runs one preprocessed image (native; blocks on the GPU).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn infer(&self, image: &Preprocessed) -> Result<ImageInference, EngineError> {
        let mut results = self.infer_batch(
            &image.pixel_values,
            1,
            image.height as usize,
            image.width as usize,
        )?;
        results
            .pop()
            .ok_or_else(|| EngineError::Input("the batch produced no result".to_string()))
    }

    /// Runs one preprocessed image on either backend without blocking.
    pub async fn infer_async(&self, image: &Preprocessed) -> Result<ImageInference, EngineError> {
        let mut results = self
            .infer_batch_async(
                &image.pixel_values,
                1,
                image.height as usize,
                image.width as usize,
            )
            .await?;
        results
            .pop()
            .ok_or_else(|| EngineError::Input("the batch produced no result".to_string()))
    }
}

/// The CPU forward pass of a checked batch: logits (batch, classes) and every layer's
/// attention (batch, heads, tokens, tokens), as plain values.
fn run_cpu(
    model: &VisionTransformer,
    pixels: &[f32],
    g: &Geometry,
) -> Result<(Vec<f32>, Vec<Vec<f32>>), EngineError> {
    let shape = (g.batch, g.channels, g.height, g.width);
    let input = Tensor::from_slice(pixels, shape, model.device())?;
    let (logits, attentions) = model.forward_with_attention(&input)?;
    let attentions = attentions
        .iter()
        .map(|layer| layer.flatten_all()?.to_vec1::<f32>())
        .collect::<candle_core::Result<_>>()?;
    Ok((logits.flatten_all()?.to_vec1::<f32>()?, attentions))
}

/// Batched results of either backend → one [`ImageInference`] per image.
fn per_image(
    g: &Geometry,
    logits: &[f32],
    attentions: &[Vec<f32>],
) -> Result<Vec<ImageInference>, EngineError> {
    // Overflowing or NaN weights show first in a layer's attention; name the earliest layer.
    if let Some(layer) = attentions
        .iter()
        .position(|layer| layer.iter().any(|v| !v.is_finite()))
    {
        return Err(EngineError::NonFinite {
            at: format!("in layer {} of {}", layer + 1, attentions.len()),
        });
    }
    if logits.iter().any(|v| !v.is_finite()) {
        return Err(EngineError::NonFinite {
            at: "in the classifier's logits".to_string(),
        });
    }
    split_batch(g, logits, attentions)?
        .into_iter()
        .map(|image| {
            let attentions = image
                .attentions
                .into_iter()
                .map(|layer| LayerAttention::new(g.heads, g.tokens, layer.to_vec()))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(ImageInference {
                logits: image.logits.to_vec(),
                attentions,
                patch_grid: g.grid,
                prefix_tokens: g.prefix,
            })
        })
        .collect()
}
