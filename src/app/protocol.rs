//! Messages between the page and the inference worker.
//!
//! Every message is a two-element JS array: the JSON of a [`Request`] or [`Reply`], then an
//! array of `ArrayBuffer`s (transferred, not copied) whose meaning the message states.

use serde::{Deserialize, Serialize};

use crate::checkpoint::Checkpoint;
use crate::engine::{Backend, BackendChoice};
use crate::explain::Explanation;
use crate::teach::{ModelCard, Teaching};

/// Page → worker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Request {
    /// Buffers: `config.json`, `model.safetensors`, then `preprocessor_config.json` when
    /// `has_preprocessor`. The worker keeps its current model if this one fails.
    LoadModel {
        /// Where it came from, as the page shows it (repo id, URL or file names).
        source: String,
        backend: BackendChoice,
        has_preprocessor: bool,
    },
    /// Rebuilds the engine of the loaded model on another backend.
    SetBackend { backend: BackendChoice },
    /// Buffers: the encoded image file.
    Classify { id: u64 },
    /// The teaching statistics of the loaded model, and of the image classified as `id` when
    /// it is the worker's latest.
    Inspect { id: Option<u64> },
    /// Explains `class` for the image classified as `id`, which must be the worker's latest,
    /// on the CPU whichever backend classified it. Without `interventions`: the maps and the
    /// logit lens (fast); with them: occlusion, head effects and faithfulness curves too.
    Explain {
        id: u64,
        class: Option<usize>,
        interventions: bool,
    },
    /// The top classes of the image classified as `id` (the worker's latest) with its
    /// `hidden_patches` dropped and the heads `heads_off` (layer, head) zeroed, on the CPU.
    WhatIf {
        id: u64,
        hidden_patches: Vec<usize>,
        heads_off: Vec<(usize, usize)>,
    },
}

/// Worker → page.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Reply {
    /// The worker's wasm is running and takes requests.
    Alive,
    /// Progress of a long step, in words ("compiling WebGPU kernels").
    Status { message: String },
    /// A model is loaded and its engine built (after `LoadModel` or `SetBackend`, or after a
    /// failed GPU made the worker move to the CPU).
    Ready {
        model: ModelInfo,
        backend: BackendInfo,
        /// Whether this answers a `LoadModel` (the page then knows the files it sent are a
        /// usable model). Every `LoadModel` gets exactly one answer, in order: this, or an
        /// error of scope [`ErrorScope::Model`].
        #[serde(default)]
        answers_load: bool,
    },
    /// Buffers: the crop as RGB bytes (`crop_width × crop_height × 3`), the logits (f32),
    /// then every layer's attention (f32, `layers × heads × tokens × tokens`).
    Result(ResultMeta),
    /// Answers `Inspect`; `teaching.image` is set when the image `id` was still available.
    Teaching {
        id: Option<u64>,
        teaching: Box<Teaching>,
    },
    /// Answers `Explain`: what was asked, and the explanation.
    Explanation {
        id: u64,
        interventions: bool,
        explanation: Box<Explanation>,
    },
    /// Answers `WhatIf`: what was asked, and the top classes then.
    WhatIf {
        id: u64,
        hidden_patches: Vec<usize>,
        heads_off: Vec<(usize, usize)>,
        predictions: Vec<crate::analysis::Prediction>,
    },
    Error {
        scope: ErrorScope,
        message: String,
        /// The `Classify` id this answers, if any.
        id: Option<u64>,
    },
}

/// What a failure is about, so the page knows what it leaves untouched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorScope {
    Model,
    Backend,
    Image,
    /// The teaching views' statistics.
    Teaching,
    /// The explanation views.
    Explain,
    /// A message the worker could not read.
    Worker,
    /// The worker panicked: its wasm instance is dead and the page must start a new one.
    Crashed,
}

/// What the page shows about a loaded model: where it came from, its model card and its
/// class names.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// Where it came from, as the page shows it (repo id, URL or file names).
    pub source: String,
    /// Geometry and size of the checkpoint.
    pub card: ModelCard,
    pub labels: Vec<String>,
}

impl ModelInfo {
    pub fn of(checkpoint: &Checkpoint, source: &str) -> Self {
        Self {
            source: source.to_string(),
            card: ModelCard::of(checkpoint),
            labels: checkpoint.labels.clone(),
        }
    }
}

/// Which backend runs, in the words the page shows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BackendInfo {
    pub backend: Backend,
    /// "WebGPU · <adapter>" or "CPU · wasm SIMD".
    pub label: String,
    /// Why the automatic choice ended on the CPU, if it did.
    pub fallback_reason: Option<String>,
}

impl BackendInfo {
    /// The label of the CPU engine (SIMD128 is always on in our wasm builds).
    pub fn cpu(fallback_reason: Option<String>) -> Self {
        let label = if cfg!(target_arch = "wasm32") {
            "CPU · wasm SIMD"
        } else {
            "CPU · native"
        };
        Self {
            backend: Backend::Cpu,
            label: label.to_string(),
            fallback_reason,
        }
    }

    /// The label of the GPU engine on `adapter`.
    pub fn gpu(adapter: Option<&crate::gpu::AdapterInfo>) -> Self {
        let name = match adapter {
            Some(a) if !a.name.trim().is_empty() => a.name.trim().to_string(),
            Some(a) if a.fallback => "software adapter".to_string(),
            Some(a) => format!("{} adapter", a.device_type),
            None => "adapter".to_string(),
        };
        let api = if cfg!(target_arch = "wasm32") {
            "WebGPU"
        } else {
            "GPU"
        };
        Self {
            backend: Backend::Gpu,
            label: format!("{api} · {name}"),
            fallback_reason: None,
        }
    }
}

/// The numbers of one classification; the bulky arrays travel as buffers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResultMeta {
    pub id: u64,
    pub crop_width: u32,
    pub crop_height: u32,
    pub layers: usize,
    pub heads: usize,
    pub tokens: usize,
    pub grid_rows: usize,
    pub grid_cols: usize,
    pub prefix_tokens: usize,
    /// Decode, resize, crop and normalize.
    pub preprocess_ms: f64,
    pub forward_ms: f64,
    pub backend: BackendInfo,
}

impl ResultMeta {
    /// Checks that buffers of these lengths carry what this message says.
    pub fn check_buffers(
        &self,
        crop: usize,
        logits: usize,
        attention: usize,
    ) -> Result<(), String> {
        let product = |factors: &[usize]| {
            factors
                .iter()
                .try_fold(1usize, |n, &f| n.checked_mul(f))
                .ok_or_else(|| format!("the sizes {factors:?} of the result overflow"))
        };
        if self.layers == 0 || self.heads == 0 || self.tokens == 0 {
            return Err(format!(
                "a result of {} layers, {} heads and {} tokens holds no attention",
                self.layers, self.heads, self.tokens
            ));
        }
        let want_crop = product(&[self.crop_width as usize, self.crop_height as usize, 3])?;
        let want_attention = product(&[self.layers, self.heads, self.tokens, self.tokens])?;
        if crop != want_crop {
            return Err(format!("crop has {crop} bytes, expected {want_crop}"));
        }
        if logits == 0 {
            return Err("no logits".to_string());
        }
        if attention != want_attention {
            return Err(format!(
                "attention has {attention} values, expected {want_attention}"
            ));
        }
        let grid_tokens = product(&[self.grid_rows, self.grid_cols])?;
        if grid_tokens.checked_add(self.prefix_tokens) != Some(self.tokens) {
            return Err(format!(
                "a {}×{} grid plus {} prefix tokens is not {} tokens",
                self.grid_rows, self.grid_cols, self.prefix_tokens, self.tokens
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_through_json() {
        let requests = [
            Request::LoadModel {
                source: "facebook/deit-tiny-patch16-224".into(),
                backend: BackendChoice::Auto,
                has_preprocessor: true,
            },
            Request::SetBackend {
                backend: BackendChoice::Cpu,
            },
            Request::Classify { id: 7 },
            Request::Inspect { id: Some(7) },
            Request::Inspect { id: None },
            Request::Explain {
                id: 7,
                class: Some(3),
                interventions: false,
            },
            Request::WhatIf {
                id: 7,
                hidden_patches: vec![0, 5],
                heads_off: vec![(1, 2)],
            },
        ];
        for request in requests {
            let json = serde_json::to_string(&request).unwrap();
            assert_eq!(serde_json::from_str::<Request>(&json).unwrap(), request);
        }
        let json = serde_json::to_string(&Request::Classify { id: 3 }).unwrap();
        assert_eq!(json, r#"{"type":"classify","id":3}"#);
    }

    #[test]
    fn ready_replies_carry_the_model_card() {
        let card = ModelCard {
            architecture: "ViTForImageClassification".into(),
            layout: "transformers".into(),
            stored_dtype: "f32".into(),
            image_size: 32,
            patch_size: 8,
            channels: 3,
            grid: 4,
            patches: 16,
            prefix_tokens: 1,
            tokens: 17,
            layers: 2,
            heads: 2,
            head_dim: 8,
            hidden_size: 16,
            mlp_size: 32,
            classes: 3,
            parameters: 1234,
            flops: 5678,
        };
        let reply = Reply::Ready {
            model: ModelInfo {
                source: "test/vit".into(),
                card,
                labels: vec!["a".into(), "b".into(), "c".into()],
            },
            backend: BackendInfo::cpu(None),
            answers_load: true,
        };
        let json = serde_json::to_string(&reply).unwrap();
        assert!(json.contains(r#""card":{"architecture""#), "{json}");
        assert_eq!(serde_json::from_str::<Reply>(&json).unwrap(), reply);
    }

    #[test]
    fn result_buffers_are_checked() {
        let meta = ResultMeta {
            id: 1,
            crop_width: 4,
            crop_height: 2,
            layers: 2,
            heads: 3,
            tokens: 5,
            grid_rows: 2,
            grid_cols: 2,
            prefix_tokens: 1,
            preprocess_ms: 1.0,
            forward_ms: 2.0,
            backend: BackendInfo::cpu(None),
        };
        assert!(meta.check_buffers(24, 10, 150).is_ok());
        assert!(meta
            .check_buffers(23, 10, 150)
            .unwrap_err()
            .contains("crop"));
        assert!(meta.check_buffers(24, 0, 150).is_err());
        assert!(meta
            .check_buffers(24, 10, 149)
            .unwrap_err()
            .contains("attention"));
        let bad_grid = ResultMeta {
            grid_cols: 3,
            ..meta
        };
        assert!(bad_grid.check_buffers(24, 10, 150).is_err());
    }

    #[test]
    fn backend_labels_name_the_backend() {
        assert!(BackendInfo::cpu(None).label.starts_with("CPU"));
        let adapter = crate::gpu::AdapterInfo {
            name: String::new(),
            vendor: 0,
            device_type: "CPU".into(),
            backend: "webgpu".into(),
            fallback: true,
        };
        assert!(BackendInfo::gpu(Some(&adapter))
            .label
            .ends_with("software adapter"));
    }
}
