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
mod ranges;
mod weights;

use serde_json::Value;

use crate::budget::{self, BudgetError};
use crate::preprocess::{self, PreprocessConfig, PreprocessError};

pub use config::{Activation, Classifier, ModelConfig};
pub use layout::{BlockWeights, Linear, Norm, VitWeights};
pub use ranges::{LAYER_NORM_EPS_RANGE, SIZE_RANGES};
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

/// What to do when config.json and model.safetensors do not match.
const USE_MATCHING_FILES: &str =
    "use the config.json that came with these weights (or weights that match this config)";

/// Why a checkpoint could not be loaded. Each message names the file, the key or tensor and
/// the value at fault, and says what to do.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("model.safetensors is not a safetensors file: {0}; give the model's `model.safetensors` file")]
    NotSafetensors(String),
    #[error("model.safetensors is truncated: {0}. The download was probably cut short; fetch the file again (re-download it)")]
    Truncated(String),
    #[error("model.safetensors has an absurd header length ({header_len} bytes in a {file_len}-byte file): {hint}; check that you picked the model's weights file")]
    HeaderLength {
        header_len: u64,
        file_len: u64,
        hint: String,
    },
    #[error(
        "model.safetensors: tensor `{tensor}` is stored as {dtype}; vit-lens reads f32, f16 and bf16 weights only, so convert the checkpoint to one of them"
    )]
    UnsupportedDtype { tensor: String, dtype: String },
    #[error("tensor `{0}` is missing from model.safetensors: the weights are incomplete or belong to a different model; {USE_MATCHING_FILES}")]
    MissingTensor(String),
    #[error("model.safetensors: tensor `{tensor}` has shape {found:?} but config.json needs {expected:?}, so the two files do not belong together; {USE_MATCHING_FILES}")]
    ShapeMismatch {
        tensor: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    /// A tensor whose shape no model could use (a zero or absurd dimension).
    #[error("model.safetensors: tensor `{tensor}` has shape {shape:?}, {problem}; re-export the checkpoint")]
    BadShape {
        tensor: String,
        shape: Vec<usize>,
        /// What a usable shape looks like.
        problem: String,
    },
    /// A NaN or infinite weight.
    #[error(
        "model.safetensors: tensor `{tensor}`{} holds {value} at {index:?}, and every weight must be a finite number; re-export the checkpoint from a model that trained without diverging, or download it again",
        layer.map(|l| format!(" (layer {l})")).unwrap_or_default()
    )]
    NonFinite {
        tensor: String,
        /// The encoder layer the tensor belongs to, counted from 0, if any.
        layer: Option<usize>,
        value: f32,
        /// Where in the tensor, one index per dimension.
        index: Vec<usize>,
    },
    #[error("config.json and model.safetensors disagree: {0}; {USE_MATCHING_FILES}")]
    ConfigMismatch(String),
    #[error("config.json is not valid JSON: {0}; give the model's config.json (re-download it)")]
    ConfigJson(String),
    #[error("config.json field `{field}` is invalid: {problem}")]
    ConfigField { field: String, problem: String },
    #[error("unknown architecture {0}: vit-lens runs ViT and DeiT image classifiers (transformers ViTForImageClassification, DeiTForImageClassification[WithTeacher], or timm vit_*/deit_*); load one of those")]
    UnknownArchitecture(String),
    #[error("unsupported model variant: {0}; use a plain ViT or DeiT checkpoint")]
    Unsupported(String),
    #[error("{}", in_preprocessor_file(.0))]
    Preprocess(#[from] PreprocessError),
    /// timm's `pretrained_cfg` in config.json describes preprocessing vit-lens cannot follow.
    #[error("config.json `pretrained_cfg`: {0}")]
    PretrainedCfg(PreprocessError),
    /// The model, or the input size its files ask for, is over the [`budget`](crate::budget).
    #[error("{file}: {source}")]
    Budget {
        /// The file whose sizes are too large.
        file: &'static str,
        source: Box<BudgetError>,
    },
}

/// A preprocessing error as a message that names preprocessor_config.json once.
fn in_preprocessor_file(error: &PreprocessError) -> String {
    const FILE: &str = "preprocessor_config.json";
    let message = error.to_string();
    if message.contains(FILE) {
        message
    } else {
        format!("{FILE}: {message}")
    }
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
    /// Parses and validates a checkpoint. Never panics on any input bytes: every size in the
    /// configs is range-checked, every tensor's shape and values (finite) are checked, and
    /// the weights, the model's own input size and the input size the preprocessing asks for
    /// are checked against the [`budget`](crate::budget) before anything is allocated for
    /// them.
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
        check_native_budget(&parsed.model)?;
        let weights = layout::map(&raw, layout, &parsed.model)?;
        let (preprocess, preprocess_file) = match files.preprocessor_config_json {
            Some(json) => (
                PreprocessConfig::from_hf_json(json, &parsed.preprocess_defaults)?,
                "preprocessor_config.json",
            ),
            None => (parsed.preprocess_defaults.clone(), "config.json"),
        };
        check_preprocess_budget(&parsed.model, &preprocess, preprocess_file)?;
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

/// Refuses a model whose weights, or whose run at its own `image_size`, exceed the budget.
fn check_native_budget(model: &ModelConfig) -> Result<(), CheckpointError> {
    let in_config = |source: BudgetError| CheckpointError::Budget {
        file: "config.json",
        source: Box::new(source.advise("use a smaller model")),
    };
    let size = model.size();
    budget::check_weights(size.parameters(budget::widen(model.tokens()))).map_err(in_config)?;
    model
        .check_input(1, model.image_size, model.image_size)
        .map_err(in_config)?;
    Ok(())
}

/// Refuses a preprocessing config whose output is too large for the model to run: the input
/// size it asks for is checked at load, not at the first image.
fn check_preprocess_budget(
    model: &ModelConfig,
    preprocess: &PreprocessConfig,
    file: &'static str,
) -> Result<(), CheckpointError> {
    // Without a crop a shortest-edge resize depends on the image; its square is the least.
    let (height, width) = match (preprocess.output_size(), preprocess.resize) {
        (Some(size), _) => size,
        (None, Some(preprocess::Resize::ShortestEdge(side))) => (side, side),
        (None, _) => return Ok(()),
    };
    let side = |px: u32| usize::try_from(px).unwrap_or(usize::MAX);
    model
        .check_input(1, side(height), side(width))
        .map(|_| ())
        .map_err(|source| CheckpointError::Budget {
            file,
            source: Box::new(source.advise("use a smaller size or crop_size")),
        })
}

/// The ImageNet-1k class names in class-index order, for checkpoints without labels.
pub fn imagenet_labels() -> Vec<String> {
    include_str!("../../assets/imagenet1k_labels.txt")
        .lines()
        .map(str::to_string)
        .collect()
}
