//! `config.json` of both layouts → [`ModelConfig`], labels and preprocessing defaults.
//!
//! Geometry is read from the config and checked against the weights' shapes; where timm's
//! configs leave something out (they usually carry only the architecture name), it is taken
//! from the weights, and only the number of heads comes from the name.

use serde_json::Value;

use super::ranges::{
    check_range, classes_from_head, field_error, narrow, nonempty_shape, shape_of, size,
    size_field, LAYER_NORM_EPS_RANGE,
};
use super::{CheckpointError, Layout, RawWeights};
use crate::budget::{self, BudgetError, ModelSize, Usage};
use crate::json;
use crate::preprocess::PreprocessConfig;

/// The MLP's activation, as `hidden_act` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// `gelu`: the exact form, x·Φ(x) with the error function.
    GeluErf,
    /// `gelu_new` / `gelu_pytorch_tanh`: the tanh approximation.
    GeluTanh,
}

/// How logits are read off the final tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Classifier {
    /// One head on the CLS token.
    Cls,
    /// DeiT distilled: a head on CLS and one on the distillation token, averaged at inference.
    ClsAndDistillation,
}

/// The geometry of a ViT / DeiT.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ModelConfig {
    pub hidden_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub intermediate_size: usize,
    /// Side of the square input the position embeddings were trained for, in pixels.
    pub image_size: usize,
    pub patch_size: usize,
    pub num_channels: usize,
    pub num_classes: usize,
    pub qkv_bias: bool,
    pub layer_norm_eps: f64,
    pub activation: Activation,
    /// Whether a distillation token follows CLS (every transformers DeiT has one).
    pub distillation_token: bool,
    pub classifier: Classifier,
}

impl ModelConfig {
    /// Tokens before the patches: CLS, and the distillation token if present.
    pub fn prefix_tokens(&self) -> usize {
        1 + usize::from(self.distillation_token)
    }

    /// Patches per side at the native resolution.
    pub fn patch_grid(&self) -> usize {
        self.image_size.checked_div(self.patch_size).unwrap_or(0)
    }

    /// Tokens at the native resolution.
    pub fn tokens(&self) -> usize {
        self.prefix_tokens()
            .saturating_add(self.patch_grid().saturating_mul(self.patch_grid()))
    }

    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_heads
    }

    /// Multiply-accumulates of one forward pass at the native resolution (saturating).
    pub fn macs(&self) -> u64 {
        let w = budget::widen;
        let t = w(self.tokens());
        let d = w(self.hidden_size);
        let m = w(self.intermediate_size);
        let patches = w(self.patch_grid()).saturating_mul(w(self.patch_grid()));
        let patch_in = w(self.num_channels)
            .saturating_mul(w(self.patch_size))
            .saturating_mul(w(self.patch_size));
        let per_layer = [
            t.saturating_mul(d).saturating_mul(3).saturating_mul(d),
            t.saturating_mul(t).saturating_mul(d).saturating_mul(2),
            t.saturating_mul(d).saturating_mul(d),
            t.saturating_mul(d).saturating_mul(m).saturating_mul(2),
        ]
        .into_iter()
        .fold(0u64, u64::saturating_add);
        let heads = if self.classifier == Classifier::ClsAndDistillation {
            2
        } else {
            1
        };
        patches
            .saturating_mul(patch_in)
            .saturating_mul(d)
            .saturating_add(w(self.num_layers).saturating_mul(per_layer))
            .saturating_add(heads * d.saturating_mul(w(self.num_classes)))
    }

    /// The sizes the [`budget`] needs.
    pub fn size(&self) -> ModelSize {
        let w = budget::widen;
        ModelSize {
            layers: w(self.num_layers),
            heads: w(self.num_heads),
            hidden: w(self.hidden_size),
            intermediate: w(self.intermediate_size),
            patch: w(self.patch_size),
            channels: w(self.num_channels),
            prefix_tokens: w(self.prefix_tokens()),
            classes: w(self.num_classes),
            heads_out: match self.classifier {
                Classifier::Cls => 1,
                Classifier::ClsAndDistillation => 2,
            },
        }
    }

    /// Checks a `batch` of `height`×`width` inputs against this target's [`budget::LIMITS`]
    /// before anything is allocated: [`budget::check_input`] for this model.
    pub fn check_input(
        &self,
        batch: usize,
        height: usize,
        width: usize,
    ) -> Result<Usage, BudgetError> {
        budget::check_input(&self.size(), batch, height, width)
    }

    /// Checks every size against [`SIZE_RANGES`], the heads against the width, the image
    /// against the patch, and `layer_norm_eps` against [`LAYER_NORM_EPS_RANGE`].
    fn validate(&self) -> Result<(), CheckpointError> {
        for (name, value) in [
            ("hidden_size", self.hidden_size),
            ("num_hidden_layers", self.num_layers),
            ("num_attention_heads", self.num_heads),
            ("intermediate_size", self.intermediate_size),
            ("image_size", self.image_size),
            ("patch_size", self.patch_size),
            ("num_channels", self.num_channels),
            ("num_labels", self.num_classes),
        ] {
            check_range(name, budget::widen(value))?;
        }
        if !self.hidden_size.is_multiple_of(self.num_heads) {
            return Err(field_error(
                "num_attention_heads",
                format!(
                    "hidden size {} is not divisible by {} heads; set num_attention_heads to a divisor of hidden_size",
                    self.hidden_size, self.num_heads
                ),
            ));
        }
        if !self.image_size.is_multiple_of(self.patch_size) {
            return Err(field_error(
                "image_size",
                format!(
                    "{} px is not a multiple of the {} px patch size; use the config.json that came with the weights",
                    self.image_size, self.patch_size
                ),
            ));
        }
        let (low, high) = LAYER_NORM_EPS_RANGE;
        if !(low..=high).contains(&self.layer_norm_eps) {
            return Err(field_error(
                "layer_norm_eps",
                format!(
                    "{} is out of range; it must be a finite number from {low:.1e} to {high} \
                     (transformers uses 1e-12, timm 1e-6), so fix config.json",
                    budget::format_number(self.layer_norm_eps)
                ),
            ));
        }
        Ok(())
    }
}

/// What the config says, before the weights are mapped.
pub(super) struct Parsed {
    pub model: ModelConfig,
    pub labels: Vec<String>,
    pub preprocess_defaults: PreprocessConfig,
    pub architecture: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ConfigKind {
    Transformers,
    Timm,
}

impl std::fmt::Display for ConfigKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        Layout::from(*self).fmt(f)
    }
}

impl From<ConfigKind> for Layout {
    fn from(kind: ConfigKind) -> Layout {
        match kind {
            ConfigKind::Transformers => Layout::Transformers,
            ConfigKind::Timm => Layout::Timm,
        }
    }
}

impl ConfigKind {
    pub fn of(config: &Value) -> Result<Self, CheckpointError> {
        if config.get("model_type").is_some() || config.get("architectures").is_some() {
            Ok(ConfigKind::Transformers)
        } else if config.get("architecture").is_some() {
            Ok(ConfigKind::Timm)
        } else {
            Err(CheckpointError::UnknownArchitecture(
                "(config.json has neither transformers' `model_type`/`architectures` nor timm's `architecture`)"
                    .to_string(),
            ))
        }
    }
}

fn activation(name: &str) -> Result<Activation, CheckpointError> {
    match name {
        "gelu" => Ok(Activation::GeluErf),
        "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Ok(Activation::GeluTanh),
        other => Err(CheckpointError::Unsupported(format!(
            "hidden_act `{other}` (vit-lens implements gelu, gelu_new and gelu_pytorch_tanh)"
        ))),
    }
}

/// Labels from `id2label` (keys are class indices as strings).
fn labels_from_id2label(
    id2label: Option<&Value>,
    num_classes: usize,
) -> Result<Option<Vec<String>>, CheckpointError> {
    let Some(map) = id2label else {
        return Ok(None);
    };
    let Some(map) = map.as_object() else {
        return Err(field_error(
            "id2label",
            "expected an object of class index → name",
        ));
    };
    if map.is_empty() {
        return Ok(None);
    }
    let mut labels = vec![None; num_classes];
    for (key, name) in map {
        let index: usize = key.trim().parse().map_err(|_| {
            field_error(
                "id2label",
                format!("key `{key}` is not a class index; use keys \"0\", \"1\", …"),
            )
        })?;
        let name = name.as_str().ok_or_else(|| {
            field_error(
                "id2label",
                format!(
                    "the name of class {index} is not a string; give each class a name in quotes"
                ),
            )
        })?;
        let slot = labels.get_mut(index).ok_or_else(|| {
            CheckpointError::ConfigMismatch(format!(
                "id2label names class {index} but the classifier has {num_classes} classes"
            ))
        })?;
        *slot = Some(name.to_string());
    }
    let all_generic = labels
        .iter()
        .enumerate()
        .all(|(i, l)| l.as_deref().is_none_or(|l| l == format!("LABEL_{i}")));
    if all_generic {
        return Ok(None);
    }
    Ok(Some(
        labels
            .into_iter()
            .enumerate()
            .map(|(i, l)| l.unwrap_or_else(|| format!("class {i}")))
            .collect(),
    ))
}

/// Labels when the checkpoint names none: ImageNet-1k for 1000 classes, else `class i`.
fn default_labels(num_classes: usize) -> Vec<String> {
    if num_classes == 1000 {
        super::imagenet_labels()
    } else {
        (0..num_classes).map(|i| format!("class {i}")).collect()
    }
}

pub(super) fn from_transformers(
    config: &Value,
    raw: &RawWeights,
) -> Result<Parsed, CheckpointError> {
    let model_type = json::optional::<&str>(config, "model_type")?;
    let declared = match config.get("architectures") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => items.first().and_then(Value::as_str),
        Some(other) => {
            return Err(field_error(
                "architectures",
                format!("expected a list, found {other}"),
            ))
        }
    };
    let has_teacher_heads = raw.tensors.contains_key("cls_classifier.weight");
    let architecture = match (declared, model_type) {
        (Some(a), _) => a.to_string(),
        (None, Some("vit")) => "ViTForImageClassification".to_string(),
        (None, Some("deit")) if has_teacher_heads => {
            "DeiTForImageClassificationWithTeacher".to_string()
        }
        (None, Some("deit")) => "DeiTForImageClassification".to_string(),
        (None, other) => {
            return Err(CheckpointError::UnknownArchitecture(format!(
                "model_type {:?}",
                other.unwrap_or("(none)")
            )))
        }
    };
    let (prefix, distillation_token, classifier) = match architecture.as_str() {
        "ViTForImageClassification" => ("vit", false, Classifier::Cls),
        "DeiTForImageClassification" => ("deit", true, Classifier::Cls),
        "DeiTForImageClassificationWithTeacher" => ("deit", true, Classifier::ClsAndDistillation),
        other => return Err(CheckpointError::UnknownArchitecture(format!("`{other}`"))),
    };
    if let Some(mt) = model_type {
        if mt != prefix {
            return Err(CheckpointError::ConfigMismatch(format!(
                "model_type is `{mt}` but the architecture is {architecture}"
            )));
        }
    }
    if !raw
        .tensors
        .keys()
        .any(|k| k.starts_with(&format!("{prefix}.")))
    {
        return Err(CheckpointError::ConfigMismatch(format!(
            "config.json describes {architecture} but no tensor name starts with `{prefix}.`"
        )));
    }

    let head_name = match classifier {
        Classifier::Cls => "classifier.weight",
        Classifier::ClsAndDistillation => "cls_classifier.weight",
    };
    let num_classes = classes_from_head(raw, head_name)?;
    let declared_labels = config
        .get("id2label")
        .and_then(Value::as_object)
        .map_or(0, |m| m.len());
    if let Some(n) = json::optional::<u64>(config, "num_labels")? {
        if n != budget::widen(num_classes) {
            return Err(CheckpointError::ConfigMismatch(format!(
                "num_labels is {n} but `{head_name}` has {num_classes} rows"
            )));
        }
    } else if declared_labels > num_classes {
        return Err(CheckpointError::ConfigMismatch(format!(
            "id2label names {declared_labels} classes but `{head_name}` has {num_classes} rows"
        )));
    }

    // Defaults are transformers' ViTConfig / DeiTConfig defaults.
    let model = ModelConfig {
        hidden_size: size(config, "hidden_size", "hidden_size")?.unwrap_or(768),
        num_layers: size(config, "num_hidden_layers", "num_hidden_layers")?.unwrap_or(12),
        num_heads: size(config, "num_attention_heads", "num_attention_heads")?.unwrap_or(12),
        intermediate_size: size(config, "intermediate_size", "intermediate_size")?.unwrap_or(3072),
        image_size: size_field(config, "image_size", "image_size")?.unwrap_or(224),
        patch_size: size_field(config, "patch_size", "patch_size")?.unwrap_or(16),
        num_channels: size(config, "num_channels", "num_channels")?.unwrap_or(3),
        num_classes,
        qkv_bias: json::optional::<bool>(config, "qkv_bias")?.unwrap_or(true),
        layer_norm_eps: json::optional::<f64>(config, "layer_norm_eps")?.unwrap_or(1e-12),
        activation: activation(json::optional::<&str>(config, "hidden_act")?.unwrap_or("gelu"))?,
        distillation_token,
        classifier,
    };
    model.validate()?;

    let labels = labels_from_id2label(config.get("id2label"), num_classes)?
        .unwrap_or_else(|| default_labels(num_classes));
    let preprocess_defaults = if prefix == "deit" {
        PreprocessConfig::deit_defaults(model.image_size as u32)
    } else {
        PreprocessConfig::vit_defaults(model.image_size as u32)
    };
    Ok(Parsed {
        model,
        labels,
        preprocess_defaults,
        architecture,
    })
}

/// timm model names carry the width class; the head count is not in the weights.
fn timm_heads_from_name(architecture: &str) -> Option<usize> {
    const WIDTHS: &[(&str, usize)] = &[
        ("_tiny_", 3),
        ("_small_", 6),
        ("_medium_", 8),
        ("_base_", 12),
        ("_large_", 16),
        ("_huge_", 16),
    ];
    WIDTHS
        .iter()
        .find(|(tag, _)| architecture.contains(tag))
        .map(|(_, heads)| *heads)
}

pub(super) fn from_timm(config: &Value, raw: &RawWeights) -> Result<Parsed, CheckpointError> {
    let architecture = json::optional::<&str>(config, "architecture")?
        .ok_or_else(|| {
            field_error(
                "architecture",
                "is missing; add timm's model name, e.g. \"vit_tiny_patch16_224\"",
            )
        })?
        .to_string();
    let family_ok = architecture.starts_with("vit_") || architecture.starts_with("deit_");
    if !family_ok {
        return Err(CheckpointError::UnknownArchitecture(format!(
            "timm `{architecture}`"
        )));
    }
    let empty = Value::Object(Default::default());
    let model_args = config.get("model_args").unwrap_or(&empty);
    let pretrained_cfg = config.get("pretrained_cfg").unwrap_or(&empty);

    if let Some(pool) = json::optional::<&str>(config, "global_pool")?
        .or(json::optional::<&str>(model_args, "global_pool")?)
    {
        if pool != "token" {
            return Err(CheckpointError::Unsupported(format!(
                "timm global_pool `{pool}`; vit-lens reads the class token (global_pool \"token\")"
            )));
        }
    }
    for (marker, what) in [
        ("fc_norm.weight", "a pooled-feature norm (fc_norm)"),
        ("norm_pre.weight", "a pre-encoder norm (norm_pre)"),
        ("blocks.0.ls1.gamma", "layer scale (DeiT III style)"),
        ("reg_token", "register tokens"),
        ("attn_pool.latent", "attention pooling"),
        ("blocks.0.attn.q_norm.weight", "query/key normalisation"),
    ] {
        if raw.tensors.contains_key(marker) {
            return Err(CheckpointError::Unsupported(format!(
                "`{architecture}` uses {what}, which vit-lens does not implement"
            )));
        }
    }

    let (hidden_size, num_channels, patch_size) =
        match nonempty_shape(raw, "patch_embed.proj.weight")? {
            [d, c, p, q] if p == q => (*d, *c, *p),
            other => {
                return Err(CheckpointError::Unsupported(format!(
                    "patch embedding of shape {other:?}; expected [hidden, channels, patch, patch]"
                )))
            }
        };
    let mut num_layers = 0;
    while raw
        .tensors
        .contains_key(&format!("blocks.{num_layers}.attn.qkv.weight"))
    {
        num_layers += 1;
    }
    if num_layers == 0 {
        return Err(CheckpointError::MissingTensor(
            "blocks.0.attn.qkv.weight".to_string(),
        ));
    }
    if let Some(depth) = json::optional::<u64>(model_args, "depth")? {
        if depth != budget::widen(num_layers) {
            return Err(CheckpointError::ConfigMismatch(format!(
                "model_args.depth is {depth} but the weights have {num_layers} blocks"
            )));
        }
    }
    let intermediate_size = match nonempty_shape(raw, "blocks.0.mlp.fc1.weight")? {
        [m, _] => *m,
        other => {
            return Err(CheckpointError::BadShape {
                tensor: "blocks.0.mlp.fc1.weight".to_string(),
                shape: other.to_vec(),
                problem: "but an MLP weight must be [intermediate_size, hidden_size]".to_string(),
            })
        }
    };
    let distillation_token = raw.tensors.contains_key("dist_token");
    if architecture.contains("distilled") && !distillation_token {
        return Err(CheckpointError::ConfigMismatch(format!(
            "`{architecture}` is a distilled model but the weights have no `dist_token`"
        )));
    }
    let classifier = if raw.tensors.contains_key("head_dist.weight") {
        Classifier::ClsAndDistillation
    } else {
        Classifier::Cls
    };
    let num_classes = classes_from_head(raw, "head.weight")?;
    if let Some(n) = json::optional::<u64>(config, "num_classes")? {
        if n != budget::widen(num_classes) {
            return Err(CheckpointError::ConfigMismatch(format!(
                "num_classes is {n} but `head.weight` has {num_classes} rows"
            )));
        }
    }
    let num_heads = match size(model_args, "num_heads", "model_args.num_heads")? {
        Some(h) => h,
        None => timm_heads_from_name(&architecture).ok_or_else(|| {
            CheckpointError::Unsupported(format!(
                "cannot tell the number of attention heads of `{architecture}`; add `model_args.num_heads` to config.json"
            ))
        })?,
    };
    if let Some(d) = json::optional::<u64>(model_args, "embed_dim")? {
        if d != budget::widen(hidden_size) {
            return Err(CheckpointError::ConfigMismatch(format!(
                "model_args.embed_dim is {d} but the patch embedding is {hidden_size} wide"
            )));
        }
    }

    // Image size: the config's, else the position-embedding grid times the patch size.
    let prefix_tokens = 1 + usize::from(distillation_token);
    let positions = match shape_of(raw, "pos_embed") {
        Some([1, t, d]) if *d == hidden_size => *t,
        Some(other) => {
            return Err(CheckpointError::ShapeMismatch {
                tensor: "pos_embed".to_string(),
                expected: vec![1, 0, hidden_size],
                found: other.to_vec(),
            })
        }
        None => return Err(CheckpointError::MissingTensor("pos_embed".to_string())),
    };
    let grid_area = positions.saturating_sub(prefix_tokens);
    let grid = (grid_area as f64).sqrt().round() as usize;
    if grid == 0 || grid * grid != grid_area {
        return Err(CheckpointError::Unsupported(format!(
            "pos_embed holds {positions} positions, which is not {prefix_tokens} prefix token(s) plus a square patch grid"
        )));
    }
    let input_size = match pretrained_cfg.get("input_size") {
        Some(Value::Array(v)) if v.len() == 3 => v[1]
            .as_u64()
            .map(|n| narrow("pretrained_cfg.input_size", n)),
        _ => None,
    }
    .transpose()?;
    let image_size = size_field(model_args, "img_size", "model_args.img_size")?
        .or(input_size)
        .unwrap_or(grid.saturating_mul(patch_size));
    if image_size / patch_size != grid {
        return Err(CheckpointError::ConfigMismatch(format!(
            "a {image_size} px input with {patch_size} px patches needs a {0}×{0} position grid, but pos_embed has {grid}×{grid}",
            image_size / patch_size
        )));
    }

    let model = ModelConfig {
        hidden_size,
        num_layers,
        num_heads,
        intermediate_size,
        image_size,
        patch_size,
        num_channels,
        num_classes,
        qkv_bias: raw.tensors.contains_key("blocks.0.attn.qkv.bias"),
        // timm builds its ViTs with LayerNorm(eps=1e-6).
        layer_norm_eps: 1e-6,
        activation: Activation::GeluErf,
        distillation_token,
        classifier,
    };
    model.validate()?;

    let label_names = config
        .get("label_names")
        .or_else(|| pretrained_cfg.get("label_names"))
        .and_then(Value::as_array);
    let labels = match label_names {
        Some(names) if names.len() == num_classes => names
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_str()
                    .map_or_else(|| format!("class {i}"), str::to_string)
            })
            .collect(),
        Some(names) => {
            return Err(CheckpointError::ConfigMismatch(format!(
                "label_names has {} names but the head has {num_classes} classes",
                names.len()
            )))
        }
        None => default_labels(num_classes),
    };
    // An empty pretrained_cfg gives timm's own defaults (bicubic, crop_pct 0.875, ImageNet stats).
    let preprocess_defaults = PreprocessConfig::from_timm_pretrained_cfg(pretrained_cfg)
        .map_err(CheckpointError::PretrainedCfg)?;
    Ok(Parsed {
        model,
        labels,
        preprocess_defaults,
        architecture,
    })
}
