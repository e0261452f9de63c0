//! Checkpoints from bytes: `config.json` (+ optional `preprocessor_config.json`) +
//! `model.safetensors`, in either of the two layouts found on the Hugging Face hub:
//!
//! * **transformers** — `ViTForImageClassification`, `DeiTForImageClassification` and
//!   `DeiTForImageClassificationWithTeacher` (keys such as
//!   `vit.encoder.layer.0.attention.attention.query.weight`, `deit.embeddings.distillation_token`,
//!   `cls_classifier.weight`);
//! * **timm** — `vit_*` / `deit_*` models (keys such as `blocks.0.attn.qkv.weight`,
//!   `pos_embed`, `dist_token`, `head_dist.weight`).
//!
//! Both are mapped onto one typed [`VitWeights`], so the CPU and GPU forward passes never see
//! the difference. Every malformed input is a [`CheckpointError`] whose message names the
//! problem and what to do about it.

mod config;
mod layout;
mod weights;

use serde_json::Value;

use crate::preprocess::{PreprocessConfig, PreprocessError};

pub use config::{Activation, Classifier, ModelConfig};
pub use layout::{BlockWeights, Linear, Norm, VitWeights};
pub use weights::{read_safetensors, RawWeights, StoredDtype, WeightTensor};

/// Which key layout a checkpoint uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// Hugging Face transformers (`vit.*`, `deit.*`).
    Transformers,
    /// timm (`blocks.*`, `pos_embed`).
    Timm,
}

impl std::fmt::Display for Layout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Layout::Transformers => "transformers",
            Layout::Timm => "timm",
        })
    }
}

/// Why a checkpoint could not be loaded. Each message says what is wrong and what to do.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("model.safetensors is not a safetensors file: {0}. Give the model's `model.safetensors` file.")]
    NotSafetensors(String),
    #[error("model.safetensors is truncated: {0}. The download was probably cut short; fetch the file again.")]
    Truncated(String),
    #[error("model.safetensors has an absurd header length ({header_len} bytes in a {file_len}-byte file): {hint}")]
    HeaderLength {
        header_len: u64,
        file_len: u64,
        hint: String,
    },
    #[error(
        "tensor `{tensor}` is stored as {dtype}; vit-lens reads f32, f16 and bf16 weights only"
    )]
    UnsupportedDtype { tensor: String, dtype: String },
    #[error("tensor `{0}` is missing from model.safetensors: the weights are incomplete or belong to a different model")]
    MissingTensor(String),
    #[error("tensor `{tensor}` has shape {found:?} but the config needs {expected:?}: config.json and model.safetensors do not belong together")]
    ShapeMismatch {
        tensor: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("config.json and model.safetensors disagree: {0}")]
    ConfigMismatch(String),
    #[error("config.json is not valid JSON: {0}")]
    ConfigJson(String),
    #[error("config.json field `{field}` is invalid: {problem}")]
    ConfigField { field: String, problem: String },
    #[error("unknown architecture {0}: vit-lens runs ViT and DeiT image classifiers (transformers ViTForImageClassification, DeiTForImageClassification[WithTeacher], or timm vit_*/deit_*)")]
    UnknownArchitecture(String),
    #[error("unsupported model variant: {0}")]
    Unsupported(String),
    #[error("preprocessor configuration: {0}")]
    Preprocess(#[from] PreprocessError),
}

/// A loaded checkpoint: geometry, weights in f32, labels and how to preprocess images.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    pub config: ModelConfig,
    pub weights: VitWeights,
    /// One name per class, index = class id.
    pub labels: Vec<String>,
    pub preprocess: PreprocessConfig,
    pub layout: Layout,
    /// The architecture as the checkpoint names it (`DeiTForImageClassificationWithTeacher`,
    /// `vit_tiny_patch16_224`, ...).
    pub architecture: String,
    pub stored_dtype: StoredDtype,
}

/// The files of a checkpoint, as bytes.
#[derive(Clone, Copy, Debug)]
pub struct CheckpointFiles<'a> {
    pub config_json: &'a [u8],
    pub preprocessor_config_json: Option<&'a [u8]>,
    pub safetensors: &'a [u8],
}

impl Checkpoint {
    /// Parses and validates a checkpoint. Never panics on any input bytes.
    pub fn from_bytes(files: CheckpointFiles<'_>) -> Result<Self, CheckpointError> {
        let config_value: Value = serde_json::from_slice(files.config_json)
            .map_err(|e| CheckpointError::ConfigJson(e.to_string()))?;
        if !config_value.is_object() {
            return Err(CheckpointError::ConfigJson(
                "expected a JSON object at the top level".to_string(),
            ));
        }
        let raw = read_safetensors(files.safetensors)?;
        let layout = layout::detect(&raw)?;
        let parsed = match (config::ConfigKind::of(&config_value)?, layout) {
            (config::ConfigKind::Transformers, Layout::Transformers) => {
                config::from_transformers(&config_value, &raw)?
            }
            (config::ConfigKind::Timm, Layout::Timm) => config::from_timm(&config_value, &raw)?,
            (kind, layout) => {
                return Err(CheckpointError::ConfigMismatch(format!(
                    "config.json is a {kind} config but the weights use {layout}'s key names"
                )))
            }
        };
        let weights = layout::map(&raw, layout, &parsed.model)?;
        let preprocess = match (files.preprocessor_config_json, layout) {
            (Some(json), _) => PreprocessConfig::from_hf_json(json, &parsed.preprocess_defaults)?,
            (None, _) => parsed.preprocess_defaults.clone(),
        };
        Ok(Checkpoint {
            config: parsed.model,
            weights,
            labels: parsed.labels,
            preprocess,
            layout,
            architecture: parsed.architecture,
            stored_dtype: raw.stored_dtype,
        })
    }

    /// Number of parameters (every weight and bias, tokens and position embeddings included).
    pub fn parameter_count(&self) -> usize {
        self.weights.parameter_count()
    }
}

/// The ImageNet-1k class names in class-index order, for checkpoints without labels.
pub fn imagenet_labels() -> Vec<String> {
    include_str!("../../assets/imagenet1k_labels.txt")
        .lines()
        .map(str::to_string)
        .collect()
}
