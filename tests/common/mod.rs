//! Shared helpers for the integration tests: fixtures and reference outputs.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use vit_lens::checkpoint::{read_safetensors, Checkpoint, CheckpointFiles, WeightTensor};

/// A test's own directory under the system's temporary folder, removed with everything in it
/// when dropped: tests that run in parallel never share a file, and nothing is left behind.
pub struct ScratchDir(PathBuf);

impl ScratchDir {
    /// `vit-lens-{label}-{process id}`, emptied if a killed run left it behind.
    pub fn new(label: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("vit-lens-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create a scratch directory");
        Self(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn fixture_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/models")
        .join(name)
}

/// The bytes of a fixture's files: (config.json, preprocessor_config.json, model.safetensors).
pub fn fixture_bytes(name: &str) -> (Vec<u8>, Option<Vec<u8>>, Vec<u8>) {
    let dir = fixture_dir(name);
    let config = std::fs::read(dir.join("config.json")).expect("config.json");
    let pre = std::fs::read(dir.join("preprocessor_config.json")).ok();
    let weights = std::fs::read(dir.join("model.safetensors")).expect("model.safetensors");
    (config, pre, weights)
}

pub fn load_fixture(name: &str) -> Checkpoint {
    let (config, pre, weights) = fixture_bytes(name);
    Checkpoint::from_bytes(CheckpointFiles {
        config_json: &config,
        preprocessor_config_json: pre.as_deref(),
        safetensors: &weights,
    })
    .unwrap_or_else(|e| panic!("fixture {name} should load: {e}"))
}

/// reference.safetensors of a fixture: outputs computed by transformers / timm.
pub fn reference(name: &str) -> HashMap<String, WeightTensor> {
    let bytes = std::fs::read(fixture_dir(name).join("reference.safetensors"))
        .expect("reference.safetensors");
    read_safetensors(&bytes).expect("reference parses").tensors
}

/// Largest absolute difference; panics on length mismatch.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[track_caller]
pub fn assert_close(what: &str, ours: &[f32], reference: &[f32], tol: f32) {
    let diff = max_abs_diff(ours, reference);
    assert!(diff <= tol, "{what}: max |diff| = {diff:e} > {tol:e}");
}

/// Serializes tensors (name → (dtype, shape, raw little-endian bytes)) into safetensors bytes.
pub fn write_safetensors(tensors: &[(String, safetensors::Dtype, Vec<usize>, Vec<u8>)]) -> Vec<u8> {
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|(name, dtype, shape, data)| {
            (
                name.clone(),
                safetensors::tensor::TensorView::new(*dtype, shape.clone(), data).expect("view"),
            )
        })
        .collect();
    safetensors::serialize(views, None).expect("serialize")
}

/// All tensors of a safetensors file as f32 (name, shape, bytes), sorted by name.
pub fn f32_tensors(bytes: &[u8]) -> Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> {
    let raw = read_safetensors(bytes).expect("valid safetensors");
    let mut out: Vec<_> = raw
        .tensors
        .into_iter()
        .map(|(name, t)| {
            let data = t.data.iter().flat_map(|v| v.to_le_bytes()).collect();
            (name, safetensors::Dtype::F32, t.shape, data)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}
