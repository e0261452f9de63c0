//! Reading `model.safetensors` bytes into f32 tensors, with errors that name the problem.

use std::collections::HashMap;

use safetensors::{Dtype, SafeTensors};

use super::CheckpointError;
use crate::budget;

/// Largest header we accept; the safetensors format itself caps it at 100 MB.
const MAX_HEADER_BYTES: u64 = 100_000_000;

/// A tensor as stored in the checkpoint, widened to f32, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct WeightTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl WeightTensor {
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Self {
        debug_assert_eq!(
            shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d)),
            Some(data.len())
        );
        Self { shape, data }
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// Storage precision of a checkpoint's floating-point tensors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StoredDtype {
    F32,
    F16,
    Bf16,
    /// Tensors of more than one of the above.
    Mixed,
}

impl std::fmt::Display for StoredDtype {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StoredDtype::F32 => "f32",
            StoredDtype::F16 => "f16",
            StoredDtype::Bf16 => "bf16",
            StoredDtype::Mixed => "mixed",
        })
    }
}

/// All tensors of a safetensors file by name, widened to f32.
pub struct RawWeights {
    pub tensors: HashMap<String, WeightTensor>,
    pub stored_dtype: StoredDtype,
}

/// Parses safetensors bytes. Checks the framing before handing the bytes to the
/// `safetensors` crate so the common mistakes (a different file, a truncated
/// download) get a message of their own.
pub fn read_safetensors(bytes: &[u8]) -> Result<RawWeights, CheckpointError> {
    if bytes.len() < 8 {
        return Err(CheckpointError::NotSafetensors(format!(
            "the file is only {} bytes long; a safetensors file starts with an 8-byte header length",
            bytes.len()
        )));
    }
    let mut len_bytes = [0u8; 8];
    len_bytes.copy_from_slice(&bytes[..8]);
    let header_len = u64::from_le_bytes(len_bytes);
    let available = (bytes.len() - 8) as u64;
    if header_len > MAX_HEADER_BYTES {
        // A header length this large means the first bytes are not a header length at all.
        let looks_like = sniff(bytes);
        return Err(CheckpointError::HeaderLength {
            header_len,
            file_len: bytes.len() as u64,
            hint: looks_like.map_or_else(
                || "the file is not a safetensors file, or it is damaged".to_string(),
                |kind| format!("the file looks like {kind}, not a safetensors file"),
            ),
        });
    }
    if bytes.len() > 8 && bytes[8] != b'{' {
        return Err(CheckpointError::NotSafetensors(match sniff(bytes) {
            Some(kind) => format!("the file looks like {kind}"),
            None => "its header does not start with a JSON object".to_string(),
        }));
    }
    if header_len > available {
        return Err(CheckpointError::Truncated(format!(
            "the header says it is {header_len} bytes long but only {available} bytes follow"
        )));
    }

    let st = SafeTensors::deserialize(bytes).map_err(|e| {
        use safetensors::SafeTensorError as E;
        match e {
            E::MetadataIncompleteBuffer => CheckpointError::Truncated(
                "the tensor data is shorter (or longer) than the header declares".to_string(),
            ),
            E::InvalidHeaderDeserialization(err) | E::JsonError(err) => {
                CheckpointError::NotSafetensors(format!("its header is not valid JSON ({err})"))
            }
            other => CheckpointError::NotSafetensors(other.to_string()),
        }
    })?;

    // Dtypes and sizes first: nothing is widened before the whole file is known to fit.
    let views = st.tensors();
    let mut seen_dtype: Option<StoredDtype> = None;
    let mut values: u64 = 0;
    for (name, view) in &views {
        let dtype = match view.dtype() {
            Dtype::F32 => StoredDtype::F32,
            Dtype::F16 => StoredDtype::F16,
            Dtype::BF16 => StoredDtype::Bf16,
            other => {
                return Err(CheckpointError::UnsupportedDtype {
                    tensor: name.clone(),
                    dtype: format!("{other:?}"),
                })
            }
        };
        seen_dtype = Some(match seen_dtype {
            None => dtype,
            Some(d) if d == dtype => d,
            Some(_) => StoredDtype::Mixed,
        });
        let count = view
            .shape()
            .iter()
            .try_fold(1u64, |n, &d| n.checked_mul(budget::widen(d)))
            .unwrap_or(u64::MAX);
        values = values.saturating_add(count);
    }
    budget::check_weights(values).map_err(|source| CheckpointError::Budget {
        file: "model.safetensors",
        source: Box::new(source),
    })?;

    let mut tensors = HashMap::new();
    for (name, view) in views {
        let raw = view.data();
        let data: Vec<f32> = match view.dtype() {
            Dtype::F32 => raw
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            Dtype::F16 => raw
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            _ => raw
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
        };
        if let Some(at) = data.iter().position(|v| !v.is_finite()) {
            return Err(CheckpointError::NonFinite {
                layer: layer_of(&name),
                value: data[at],
                index: unravel(at, view.shape()),
                tensor: name,
            });
        }
        tensors.insert(name, WeightTensor::new(view.shape().to_vec(), data));
    }
    Ok(RawWeights {
        tensors,
        stored_dtype: seen_dtype.unwrap_or(StoredDtype::F32),
    })
}

/// The encoder layer a tensor belongs to: `N` in `….layer.N.…` (transformers) or `blocks.N.…`
/// (timm).
fn layer_of(name: &str) -> Option<usize> {
    let after = name
        .split_once(".layer.")
        .map(|(_, rest)| rest)
        .or_else(|| name.strip_prefix("blocks."))?;
    after.split('.').next()?.parse().ok()
}

/// A flat row-major offset as one index per dimension of `shape`.
fn unravel(mut flat: usize, shape: &[usize]) -> Vec<usize> {
    let mut index = vec![0; shape.len()];
    for (slot, &dim) in index.iter_mut().zip(shape).rev() {
        if dim > 0 {
            *slot = flat % dim;
            flat /= dim;
        }
    }
    index
}

/// Names the kind of file by its magic bytes, for error messages.
fn sniff(bytes: &[u8]) -> Option<&'static str> {
    const MAGIC: &[(&[u8], &str)] = &[
        (b"\x89PNG", "a PNG image"),
        (b"\xFF\xD8\xFF", "a JPEG image"),
        (b"GIF8", "a GIF image"),
        (
            b"PK\x03\x04",
            "a zip archive (a PyTorch .bin/.pt checkpoint? convert it to safetensors)",
        ),
        (
            b"\x80\x02",
            "a pickle (a PyTorch .bin checkpoint? convert it to safetensors)",
        ),
        (
            b"{",
            "a JSON file (config.json given in place of model.safetensors?)",
        ),
        (b"<", "an HTML or XML page (an error page from a server?)"),
        (
            b"version https://git-lfs",
            "a Git LFS pointer, not the file it points to",
        ),
        (b"\x08\x01\x12", "an ONNX model"),
    ];
    MAGIC
        .iter()
        .find(|(magic, _)| bytes.starts_with(magic))
        .map(|(_, kind)| *kind)
        .or_else(|| {
            (bytes.len() >= 12 && &bytes[0..4] == b"RIFF" && &bytes[8..12] == b"WEBP")
                .then_some("a WebP image")
        })
}
