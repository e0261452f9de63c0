//! Checkpoint loading: layouts, metadata, and every malformed input as a typed error whose
//! message names the problem.

mod common;

use common::{f32_tensors, fixture_bytes, load_fixture, write_safetensors};
use vit_lens::checkpoint::{Checkpoint, CheckpointError, CheckpointFiles, Layout, StoredDtype};

fn load(config: &[u8], weights: &[u8]) -> Result<Checkpoint, CheckpointError> {
    Checkpoint::from_bytes(CheckpointFiles {
        config_json: config,
        preprocessor_config_json: None,
        safetensors: weights,
    })
}

/// Loads with a modified config.json (a JSON edit applied to the fixture's).
fn load_with_config(
    name: &str,
    edit: impl FnOnce(&mut serde_json::Value),
) -> Result<Checkpoint, CheckpointError> {
    let (config, _, weights) = fixture_bytes(name);
    let mut value: serde_json::Value = serde_json::from_slice(&config).unwrap();
    edit(&mut value);
    load(&serde_json::to_vec(&value).unwrap(), &weights)
}

/// Loads with modified tensors (an edit applied to the fixture's tensors, all as f32).
fn load_with_tensors(
    name: &str,
    edit: impl FnOnce(&mut Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)>),
) -> Result<Checkpoint, CheckpointError> {
    let (config, _, weights) = fixture_bytes(name);
    let mut tensors = f32_tensors(&weights);
    edit(&mut tensors);
    load(&config, &write_safetensors(&tensors))
}

#[track_caller]
fn assert_message(
    result: Result<Checkpoint, CheckpointError>,
    needles: &[&str],
) -> CheckpointError {
    let err = result.expect_err("the checkpoint should be rejected");
    let message = err.to_string();
    for needle in needles {
        assert!(
            message.contains(needle),
            "message {message:?} should contain {needle:?}"
        );
    }
    err
}

#[test]
fn metadata_of_each_layout() {
    let hf = load_fixture("tiny_vit_hf");
    assert_eq!(hf.layout, Layout::Transformers);
    assert_eq!(hf.architecture, "ViTForImageClassification");
    assert_eq!(hf.stored_dtype, StoredDtype::F32);
    assert_eq!(hf.config.layer_norm_eps, 1e-12);
    let timm = load_fixture("tiny_vit_timm");
    assert_eq!(timm.layout, Layout::Timm);
    assert_eq!(timm.config.layer_norm_eps, 1e-6);
    assert_eq!(timm.config.num_heads, 2);
    assert_eq!(
        load_fixture("tiny_vit_hf_f16").stored_dtype,
        StoredDtype::F16
    );
    assert_eq!(
        load_fixture("tiny_vit_hf_bf16").stored_dtype,
        StoredDtype::Bf16
    );
    let distilled = load_fixture("tiny_deit_distilled_hf");
    assert_eq!(
        distilled.architecture,
        "DeiTForImageClassificationWithTeacher"
    );
    assert!(distilled.weights.head_dist.is_some());
}

#[test]
fn not_a_safetensors_file() {
    let (config, _, _) = fixture_bytes("tiny_vit_hf");
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0";
    let err = assert_message(load(&config, png), &["PNG image", "not a safetensors file"]);
    assert!(matches!(
        err,
        CheckpointError::HeaderLength { .. } | CheckpointError::NotSafetensors(_)
    ));
    assert_message(load(&config, b"abc"), &["only 3 bytes"]);
    assert_message(load(&config, b""), &["only 0 bytes"]);
    // A plausible length followed by something that is not JSON.
    let mut fake = 16u64.to_le_bytes().to_vec();
    fake.extend_from_slice(b"not json at all!");
    assert_message(load(&config, &fake), &["not a safetensors file"]);
    // Valid framing, broken JSON.
    let mut broken = 8u64.to_le_bytes().to_vec();
    broken.extend_from_slice(b"{\"a\":[}x");
    assert_message(load(&config, &broken), &["not valid JSON"]);
    assert_message(load(&config, &config), &["JSON file"]);
}

#[test]
fn truncated_file() {
    let (config, _, weights) = fixture_bytes("tiny_vit_hf");
    let err = assert_message(
        load(&config, &weights[..weights.len() / 2]),
        &["truncated", "fetch the file again"],
    );
    assert!(matches!(err, CheckpointError::Truncated(_)), "{err:?}");
    // Cut inside the header.
    assert_message(load(&config, &weights[..20]), &["truncated"]);
}

#[test]
fn absurd_header_length() {
    let (config, _, weights) = fixture_bytes("tiny_vit_hf");
    let mut bad = weights.clone();
    bad[..8].copy_from_slice(&(1u64 << 60).to_le_bytes());
    let err = assert_message(load(&config, &bad), &["absurd header length"]);
    assert!(matches!(err, CheckpointError::HeaderLength { .. }));
}

#[test]
fn missing_tensor_is_named() {
    let name = "vit.encoder.layer.1.attention.attention.key.weight";
    let err = assert_message(
        load_with_tensors("tiny_vit_hf", |t| t.retain(|x| x.0 != name)),
        &[name, "missing"],
    );
    assert!(matches!(err, CheckpointError::MissingTensor(_)));
    assert_message(
        load_with_tensors("tiny_deit_distilled_timm", |t| {
            t.retain(|x| x.0 != "head_dist.bias")
        }),
        &["head_dist.bias"],
    );
}

#[test]
fn shape_mismatch_says_expected_and_found() {
    let name = "vit.encoder.layer.0.intermediate.dense.weight";
    let err = assert_message(
        load_with_tensors("tiny_vit_hf", |t| {
            let entry = t.iter_mut().find(|x| x.0 == name).unwrap();
            let rows = entry.2[0];
            entry.2 = vec![rows / 2, entry.2[1]];
            entry.3.truncate(entry.3.len() / 2);
        }),
        &[name, "[32, 32]", "[64, 32]"],
    );
    assert!(
        matches!(err, CheckpointError::ShapeMismatch { .. }),
        "{err:?}"
    );
}

#[test]
fn unsupported_dtype_is_named() {
    let err = assert_message(
        load_with_tensors("tiny_vit_hf", |t| {
            let entry = t.iter_mut().find(|x| x.0 == "vit.layernorm.bias").unwrap();
            entry.1 = safetensors::Dtype::I32;
        }),
        &["vit.layernorm.bias", "I32", "f32, f16 and bf16"],
    );
    assert!(matches!(err, CheckpointError::UnsupportedDtype { .. }));
}

#[test]
fn config_and_weights_disagree() {
    assert_message(
        load_with_config("tiny_vit_hf", |c| c["num_hidden_layers"] = 1.into()),
        &["disagree", "more layers"],
    );
    assert_message(
        load_with_config("tiny_vit_hf", |c| c["num_labels"] = 7.into()),
        &["num_labels is 7"],
    );
    assert_message(
        load_with_config("tiny_vit_hf", |c| c["hidden_size"] = 48.into()),
        &["do not belong together"],
    );
    assert_message(
        load_with_config("tiny_vit_timm", |c| c["model_args"]["depth"] = 5.into()),
        &["depth is 5"],
    );
    // A timm config next to transformers weights.
    let (timm_config, _, _) = fixture_bytes("tiny_vit_timm");
    let (_, _, hf_weights) = fixture_bytes("tiny_vit_hf");
    assert_message(
        load(&timm_config, &hf_weights),
        &["timm config", "transformers"],
    );
    // A distilled timm name without a distillation token.
    assert_message(
        load_with_config("tiny_vit_timm", |c| {
            c["architecture"] = "deit_tiny_distilled_patch16_224".into()
        }),
        &["dist_token"],
    );
}

#[test]
fn unknown_architecture() {
    let err = assert_message(
        load_with_config("tiny_vit_hf", |c| {
            c["architectures"] = serde_json::json!(["BertForMaskedLM"]);
        }),
        &["unknown architecture", "BertForMaskedLM"],
    );
    assert!(matches!(err, CheckpointError::UnknownArchitecture(_)));
    assert_message(
        load_with_config("tiny_vit_timm", |c| c["architecture"] = "resnet50".into()),
        &["unknown architecture", "resnet50"],
    );
    assert_message(
        load_with_config("tiny_vit_hf", |c| *c = serde_json::json!({"hello": 1})),
        &["unknown architecture"],
    );
    // Weights of some other network entirely.
    let (config, _, _) = fixture_bytes("tiny_vit_hf");
    let other = write_safetensors(&[(
        "conv1.weight".to_string(),
        safetensors::Dtype::F32,
        vec![1],
        vec![0; 4],
    )]);
    assert_message(load(&config, &other), &["conv1.weight"]);
}

#[test]
fn bad_config_json() {
    let (_, _, weights) = fixture_bytes("tiny_vit_hf");
    assert_message(
        load(b"{not json", &weights),
        &["config.json is not valid JSON"],
    );
    assert_message(load(b"[1,2]", &weights), &["JSON object"]);
    assert_message(
        load_with_config("tiny_vit_hf", |c| c["hidden_size"] = "big".into()),
        &["hidden_size", "integer"],
    );
    assert_message(
        load_with_config("tiny_vit_hf", |c| c["num_attention_heads"] = 0.into()),
        &["num_attention_heads", "at least 1"],
    );
    assert_message(
        load_with_config("tiny_vit_hf", |c| c["num_attention_heads"] = 5.into()),
        &["not divisible"],
    );
    assert_message(
        load_with_config("tiny_vit_hf", |c| c["hidden_act"] = "relu".into()),
        &["hidden_act", "relu"],
    );
}

#[test]
fn unsupported_timm_variants_are_refused() {
    assert_message(
        load_with_tensors("tiny_vit_timm", |t| {
            t.push((
                "fc_norm.weight".into(),
                safetensors::Dtype::F32,
                vec![32],
                vec![0; 128],
            ));
        }),
        &["fc_norm"],
    );
    assert_message(
        load_with_config("tiny_vit_timm", |c| c["global_pool"] = "avg".into()),
        &["global_pool"],
    );
}

/// Random corruption anywhere in the file must give an error or a checkpoint, never a panic.
#[test]
fn corrupted_bytes_never_panic() {
    let (config, _, weights) = fixture_bytes("tiny_vit_hf");
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..300 {
        let mut bad = weights.clone();
        let flips = 1 + next() % 8;
        for _ in 0..flips {
            // Bias towards the header, where structure lives.
            let limit = if next() % 2 == 0 {
                400.min(bad.len())
            } else {
                bad.len()
            };
            let at = (next() % limit as u64) as usize;
            bad[at] = next() as u8;
        }
        let cut = if next() % 4 == 0 {
            (next() % bad.len() as u64) as usize
        } else {
            bad.len()
        };
        let _ = load(&config, &bad[..cut]);
    }
}

/// Every fixture, at its own image size, fits the budget of both targets: the limits refuse
/// hostile sizes, not real models.
#[test]
fn fixtures_fit_the_budget_of_both_targets() {
    for name in [
        "deit_distilled_timm_224",
        "tiny_deit_distilled_hf",
        "tiny_deit_hf",
        "tiny_vit_hf",
        "tiny_vit_timm",
        "vit_hf_224",
    ] {
        let checkpoint = load_fixture(name);
        let geometry = checkpoint.config.size();
        let side = vit_lens::budget::widen(checkpoint.config.image_size);
        for limits in [
            vit_lens::budget::Limits::NATIVE,
            vit_lens::budget::Limits::WASM32,
        ] {
            limits
                .check_input(&geometry, 8, side, side)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            limits
                .check_weights(vit_lens::budget::widen(checkpoint.parameter_count()))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
}
