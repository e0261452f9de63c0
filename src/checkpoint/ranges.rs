//! What each value in config.json may be, and the shapes the weights it is read from must
//! have: ranges for every size (checked in `u64`, so that they mean the same on 32-bit wasm),
//! for `layer_norm_eps`, and readers that apply them before a value becomes a `usize`.

use serde_json::Value;

use super::{CheckpointError, RawWeights};
use crate::budget;
use crate::json::{self, FromJson, WrongType};

/// The largest value each size in config.json may take (the smallest is 1). Far above any
/// published ViT (ViT-22B: width 6,144, 48 layers, 48 heads, MLP 24,576; 21,843 classes for
/// ImageNet-21k), so no real checkpoint is refused, and small enough that products of them
/// stay far from overflowing `u64` (the [`budget`] then says whether they can run).
pub const SIZE_RANGES: [(&str, u64); 8] = [
    ("hidden_size", 16_384),
    ("num_hidden_layers", 256),
    ("num_attention_heads", 1_024),
    ("intermediate_size", 131_072),
    ("image_size", 16_384),
    ("patch_size", 1_024),
    ("num_channels", 64),
    ("num_labels", 1 << 20),
];

/// `layer_norm_eps` from the smallest normal `f32` (the forward passes add it in f32; below
/// that it would be a denormal or 0 and a constant row would divide by ~0) to 0.1 (an epsilon
/// near the variance of the normalised activations, ~1, would wash the normalisation out;
/// checkpoints use 1e-12 to 1e-5).
pub const LAYER_NORM_EPS_RANGE: (f64, f64) = (f32::MIN_POSITIVE as f64, 0.1);

/// The largest value of the size `field` (transformers' name, or timm's such as
/// `model_args.num_heads`) in [`SIZE_RANGES`].
fn max_of(field: &str) -> u64 {
    let key = match field.rsplit('.').next().unwrap_or(field) {
        "num_heads" => "num_attention_heads",
        "img_size" | "input_size" => "image_size",
        "num_classes" => "num_labels",
        other => other,
    };
    SIZE_RANGES
        .iter()
        .find(|(name, _)| *name == key)
        .map_or(u64::MAX, |(_, max)| *max)
}

/// `value` of the size `field` against [`SIZE_RANGES`].
pub(super) fn check_range(field: &str, value: u64) -> Result<(), CheckpointError> {
    let max = max_of(field);
    if value == 0 {
        return Err(field_error(
            field,
            "0 is too small; it must be at least 1, so fix config.json",
        ));
    }
    if value > max {
        return Err(field_error(
            field,
            format!(
                "{value} is out of range; vit-lens reads up to {}, so check config.json",
                budget::thousands(max)
            ),
        ));
    }
    Ok(())
}

/// The size `key` of `obj`, read as `u64` (so that it means the same on 32-bit wasm) and
/// checked against [`SIZE_RANGES`] before it becomes a `usize`; messages call it `shown`.
pub(super) fn size(obj: &Value, key: &str, shown: &str) -> Result<Option<usize>, CheckpointError> {
    json::optional::<u64>(obj, key)
        .map_err(|wrong| WrongType {
            field: shown.to_string(),
            ..wrong
        })?
        .map(|v| narrow(shown, v))
        .transpose()
}

/// `value` as a `usize`, after [`check_range`].
pub(super) fn narrow(field: &str, value: u64) -> Result<usize, CheckpointError> {
    check_range(field, value)?;
    usize::try_from(value).map_err(|_| field_error(field, format!("{value} is out of range")))
}

pub(super) fn field_error(field: &str, problem: impl Into<String>) -> CheckpointError {
    CheckpointError::ConfigField {
        field: field.to_string(),
        problem: problem.into(),
    }
}

impl From<WrongType> for CheckpointError {
    /// The message reads, for example, ``config.json field `hidden_size` is invalid:
    /// expected a non-negative integer, found "big"``.
    fn from(wrong: WrongType) -> Self {
        field_error(
            &wrong.field,
            format!("expected {}, found {}", wrong.expected, wrong.found),
        )
    }
}

/// `image_size` / `patch_size` may be an integer or a `[h, w]` pair; only squares are supported.
pub(super) fn size_field(
    obj: &Value,
    key: &str,
    shown: &str,
) -> Result<Option<usize>, CheckpointError> {
    let field = shown;
    match obj.get(key) {
        Some(Value::Array(items)) => {
            let sides: Option<Vec<u64>> = items.iter().map(u64::from_json).collect();
            match sides.as_deref() {
                Some([h, w]) if h == w => narrow(field, *h).map(Some),
                Some([h, w]) => Err(CheckpointError::Unsupported(format!(
                    "`{field}` is {h}×{w} but vit-lens supports square {field}s only"
                ))),
                _ => Err(field_error(
                    field,
                    "expected an integer or [height, width] of positive integers",
                )),
            }
        }
        _ => size(obj, key, shown),
    }
}

pub(super) fn shape_of<'a>(raw: &'a RawWeights, name: &str) -> Option<&'a [usize]> {
    raw.tensors.get(name).map(|t| t.shape.as_slice())
}

/// The head weight's row count, or an error naming the tensor: a classifier needs
/// `[classes, hidden]` with both at least 1 and at most [`SIZE_RANGES`]' `num_labels`.
pub(super) fn classes_from_head(raw: &RawWeights, name: &str) -> Result<usize, CheckpointError> {
    let max_classes = max_of("num_labels");
    match shape_of(raw, name) {
        Some(&[classes, hidden])
            if classes >= 1 && hidden >= 1 && budget::widen(classes) <= max_classes =>
        {
            Ok(classes)
        }
        Some(shape) => Err(CheckpointError::BadShape {
            tensor: name.to_string(),
            shape: shape.to_vec(),
            problem: format!(
                "but a classifier must be [classes, hidden_size] with 1 to {} classes and a hidden_size of at least 1",
                budget::thousands(max_classes)
            ),
        }),
        None => Err(CheckpointError::MissingTensor(name.to_string())),
    }
}

/// The shape of `name`, refused if any dimension is 0: the model needs data there.
pub(super) fn nonempty_shape<'a>(
    raw: &'a RawWeights,
    name: &str,
) -> Result<&'a [usize], CheckpointError> {
    match shape_of(raw, name) {
        Some(shape) if !shape.is_empty() && shape.iter().all(|&d| d >= 1) => Ok(shape),
        Some(shape) => Err(CheckpointError::BadShape {
            tensor: name.to_string(),
            shape: shape.to_vec(),
            problem: "but the model needs data there and every dimension must be at least 1"
                .to_string(),
        }),
        None => Err(CheckpointError::MissingTensor(name.to_string())),
    }
}
