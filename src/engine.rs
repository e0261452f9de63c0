//! The engine runs a checkpoint on a backend and hands back plain numbers: logits and every
//! layer's attention per image. Callers (CLI, web app) never touch tensors.

use candle_core::{Device, Tensor};

use crate::analysis::{AnalysisError, LayerAttention};
use crate::checkpoint::Checkpoint;
use crate::model::{CpuOptions, ModelError, VisionTransformer};
use crate::preprocess::Preprocessed;

/// Why inference failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Model(#[from] ModelError),
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// candle on the CPU (SIMD128 in the browser).
    Cpu,
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Cpu => "cpu",
        })
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

/// A model ready to run.
pub struct Engine {
    model: VisionTransformer,
}

impl Engine {
    /// The CPU engine (candle, with packed AVX-512 GEMMs where the CPU has them).
    pub fn cpu(checkpoint: &Checkpoint) -> Result<Self, EngineError> {
        Self::cpu_with(checkpoint, CpuOptions::default())
    }

    /// The CPU engine with explicit kernel choices.
    pub fn cpu_with(checkpoint: &Checkpoint, options: CpuOptions) -> Result<Self, EngineError> {
        Ok(Self {
            model: VisionTransformer::with_options(checkpoint, &Device::Cpu, options)?,
        })
    }

    pub fn backend(&self) -> Backend {
        Backend::Cpu
    }

    /// Runs a batch. `pixels`: (batch, channels, height, width), normalized, channel-major.
    pub fn infer_batch(
        &self,
        pixels: &[f32],
        batch: usize,
        height: usize,
        width: usize,
    ) -> Result<Vec<ImageInference>, EngineError> {
        let channels = self.model.config().num_channels;
        let expected = batch * channels * height * width;
        if batch == 0 || pixels.len() != expected {
            return Err(EngineError::Input(format!(
                "expected {batch}×{channels}×{height}×{width} = {expected} pixel values, got {}",
                pixels.len()
            )));
        }
        let input = Tensor::from_slice(
            pixels,
            (batch, channels, height, width),
            self.model.device(),
        )?;
        let (logits, attentions) = self.model.forward_with_attention(&input)?;
        let classes = logits.dim(1)?;
        let logits = logits.flatten_all()?.to_vec1::<f32>()?;
        let heads = self.model.config().num_heads;
        let patch_grid = self.model.patch_grid(height, width);
        let prefix_tokens = self.model.config().prefix_tokens();
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

    /// Runs one preprocessed image.
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
}
