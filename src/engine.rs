//! The engine runs a checkpoint on a backend and hands back plain numbers: logits and every
//! layer's attention per image. Callers (CLI, web app) never touch tensors or GPU buffers.
//!
//! [`Engine::new`] with [`BackendChoice::Auto`] takes the GPU (WebGPU in the browser; Vulkan,
//! Metal or DX12 natively) when a hardware adapter exists and grants the limits the model
//! needs, and the CPU otherwise, keeping the reason; the checkpoint stays with the caller, so
//! an engine can always be rebuilt on the other backend.

use candle_core::{Device, Tensor};

use crate::analysis::{AnalysisError, LayerAttention};
use crate::checkpoint::{Checkpoint, ModelConfig};
use crate::gpu::{AdapterInfo, GpuError, GpuModel, GpuOutput};
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
    /// An engine on the chosen backend. `Auto` takes a hardware GPU and otherwise the CPU,
    /// keeping the reason ([`Engine::fallback_reason`]): no adapter, a refused device, or only a
    /// software adapter. `Gpu` takes any adapter, software ones included, and reports errors.
    pub async fn new(checkpoint: &Checkpoint, choice: BackendChoice) -> Result<Self, EngineError> {
        match choice {
            BackendChoice::Cpu => Self::cpu(checkpoint),
            BackendChoice::Gpu => Self::gpu(checkpoint).await,
            BackendChoice::Auto => {
                let reason = match Self::gpu(checkpoint).await {
                    Ok(engine) => match engine.adapter() {
                        // A software adapter (lavapipe, SwiftShader) runs the same kernels
                        // 20–70× slower than the CPU engine: only an explicit `Gpu` uses it.
                        Some(adapter) if adapter.fallback => format!(
                            "the only GPU adapter, {adapter}, is a software renderer, slower than the CPU engine"
                        ),
                        _ => return Ok(engine),
                    },
                    Err(err) => err.to_string(),
                };
                let mut engine = Self::cpu(checkpoint)?;
                engine.fallback_reason = Some(reason);
                Ok(engine)
            }
        }
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
        let model = GpuModel::new(checkpoint).await?;
        // Per-kernel timing splits the pass into one compute pass per dispatch; only
        // `profile_batch` wants it.
        model.set_kernel_timing(false);
        Ok(Self {
            runner: Runner::Gpu(Box::new(model)),
            config: checkpoint.config.clone(),
            fallback_reason: None,
        })
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

    /// Why [`BackendChoice::Auto`] chose the CPU, when it did.
    pub fn fallback_reason(&self) -> Option<&str> {
        self.fallback_reason.as_deref()
    }

    /// Checks that `pixels` holds (batch, channels, height, width) values.
    fn check_input(
        &self,
        pixels: &[f32],
        batch: usize,
        height: usize,
        width: usize,
    ) -> Result<(), EngineError> {
        let channels = self.config.num_channels;
        let expected = batch * channels * height * width;
        if batch == 0 || pixels.len() != expected {
            return Err(EngineError::Input(format!(
                "expected {batch}×{channels}×{height}×{width} = {expected} pixel values, got {}",
                pixels.len()
            )));
        }
        Ok(())
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
        match &self.runner {
            Runner::Cpu(model) => self.infer_cpu(model, pixels, batch, height, width),
            Runner::Gpu(gpu) => {
                self.check_input(pixels, batch, height, width)?;
                let out = gpu.infer(pixels, batch, height, width).await?;
                split_gpu_output(out, batch, self.config.num_heads)
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
                self.check_input(pixels, batch, height, width)?;
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

    fn infer_cpu(
        &self,
        model: &VisionTransformer,
        pixels: &[f32],
        batch: usize,
        height: usize,
        width: usize,
    ) -> Result<Vec<ImageInference>, EngineError> {
        self.check_input(pixels, batch, height, width)?;
        let input = Tensor::from_slice(
            pixels,
            (batch, model.config().num_channels, height, width),
            model.device(),
        )?;
        let (logits, attentions) = model.forward_with_attention(&input)?;
        let classes = logits.dim(1)?;
        let logits = logits.flatten_all()?.to_vec1::<f32>()?;
        let heads = model.config().num_heads;
        let patch_grid = model.patch_grid(height, width);
        let prefix_tokens = model.config().prefix_tokens();
        let tokens = prefix_tokens + patch_grid.0 * patch_grid.1;
        (0..batch)
            .map(|i| {
                // One copy per image and layer, straight out of the (batch, heads, T, T) tensor.
                let attentions = attentions
                    .iter()
                    .map(|layer| {
                        let data = layer.get(i)?.flatten_all()?.to_vec1::<f32>()?;
                        Ok(LayerAttention::new(heads, tokens, data)?)
                    })
                    .collect::<Result<Vec<_>, EngineError>>()?;
                Ok(ImageInference {
                    logits: logits[i * classes..(i + 1) * classes].to_vec(),
                    attentions,
                    patch_grid,
                    prefix_tokens,
                })
            })
            .collect()
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

/// Splits the GPU's batched buffers into per-image results.
fn split_gpu_output(
    out: GpuOutput,
    batch: usize,
    heads: usize,
) -> Result<Vec<ImageInference>, EngineError> {
    let classes = out.logits.len() / batch;
    let tokens = out.prefix_tokens + out.patch_grid.0 * out.patch_grid.1;
    let per_image = heads * tokens * tokens;
    (0..batch)
        .map(|i| {
            let attentions = out
                .attentions
                .iter()
                .map(|layer| {
                    let data = layer
                        .get(i * per_image..(i + 1) * per_image)
                        .ok_or_else(|| {
                            EngineError::Input(
                                "the GPU returned a short attention buffer".to_string(),
                            )
                        })?;
                    Ok(LayerAttention::new(heads, tokens, data.to_vec())?)
                })
                .collect::<Result<Vec<_>, EngineError>>()?;
            Ok(ImageInference {
                logits: out.logits[i * classes..(i + 1) * classes].to_vec(),
                attentions,
                patch_grid: out.patch_grid,
                prefix_tokens: out.prefix_tokens,
            })
        })
        .collect()
}
