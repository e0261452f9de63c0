//! The candle forward pass against transformers / timm reference outputs
//! (tests/fixtures/make_reference.py). Tolerances: logits 1e-4, attention and rollout 1e-5.
//! Native only: they read fixtures from disk (tests/web.rs runs the engines in a browser).
#![cfg(not(target_arch = "wasm32"))]

mod common;

use common::{assert_close, load_fixture, reference};
use vit_lens::analysis::{rollout, HeadFusion, RolloutOptions};
use vit_lens::checkpoint::{Classifier, Layout};
use vit_lens::engine::{Engine, ImageInference};
use vit_lens::model::CpuOptions;

const LOGIT_TOL: f32 = 1e-4;
const ATTENTION_TOL: f32 = 1e-5;
const ROLLOUT_TOL: f32 = 1e-5;

/// Runs the fixture's reference input through the CPU engine.
fn run(name: &str, input_key: &str) -> (Vec<ImageInference>, usize) {
    let checkpoint = load_fixture(name);
    let reference = reference(name);
    let pixels = &reference[input_key];
    let [batch, _, height, width] = pixels.shape[..] else {
        panic!("{name}: {input_key} should be 4-D, is {:?}", pixels.shape);
    };
    let engine = Engine::cpu(&checkpoint).expect("engine");
    (
        engine
            .infer_batch(&pixels.data, batch, height, width)
            .expect("inference"),
        batch,
    )
}

/// Compares logits, every layer's attention and the rollout variants present in the reference.
fn check_fixture(name: &str) {
    let reference = reference(name);
    let (results, batch) = run(name, "pixel_values");
    let logits = &reference["logits"];
    let classes = logits.shape[1];
    assert_eq!(logits.shape[0], batch, "{name}: reference batch");
    for (i, result) in results.iter().enumerate() {
        assert_close(
            &format!("{name} image {i} logits"),
            &result.logits,
            &logits.data[i * classes..(i + 1) * classes],
            LOGIT_TOL,
        );
    }
    let mut layer = 0;
    while let Some(att) = reference.get(&format!("attentions.{layer}")) {
        let per_image = att.data.len() / att.shape[0];
        for (i, result) in results.iter().take(att.shape[0]).enumerate() {
            assert_close(
                &format!("{name} image {i} attention layer {layer}"),
                &result.attentions[layer].data,
                &att.data[i * per_image..(i + 1) * per_image],
                ATTENTION_TOL,
            );
        }
        layer += 1;
    }
    assert_eq!(
        layer,
        results[0].attentions.len(),
        "{name}: every layer has a reference"
    );

    let mut checked = 0;
    for (key, expected) in &reference {
        let (start_token, rest) = if let Some(rest) = key.strip_prefix("rollout.") {
            (0, rest)
        } else if let Some(rest) = key.strip_prefix("rollout_dist.") {
            (1, rest)
        } else {
            continue;
        };
        let (fusion, ratio) = rest.split_once('.').expect("rollout.{fusion}.{ratio}");
        let options = RolloutOptions {
            head_fusion: fusion.parse::<HeadFusion>().expect("fusion name"),
            discard_ratio: ratio.parse().expect("ratio"),
            start_token,
        };
        let maps =
            rollout(&results[0].attentions, results[0].prefix_tokens, &options).expect("rollout");
        assert_eq!(maps.len(), expected.shape[0], "{name} {key}: layers");
        assert_close(
            &format!("{name} {key}"),
            &maps.concat(),
            &expected.data,
            ROLLOUT_TOL,
        );
        checked += 1;
    }
    assert!(
        checked >= 4,
        "{name}: expected at least 4 rollout references, found {checked}"
    );
}

#[test]
fn tiny_vit_transformers_layout() {
    check_fixture("tiny_vit_hf");
}

#[test]
fn tiny_vit_timm_layout() {
    check_fixture("tiny_vit_timm");
}

#[test]
fn tiny_vit_stored_as_f16() {
    check_fixture("tiny_vit_hf_f16");
}

#[test]
fn tiny_vit_stored_as_bf16() {
    check_fixture("tiny_vit_hf_bf16");
}

#[test]
fn tiny_vit_without_qkv_bias() {
    check_fixture("tiny_vit_noqkvbias_hf");
    assert!(!load_fixture("tiny_vit_noqkvbias_hf").config.qkv_bias);
}

#[test]
fn tiny_deit_single_head() {
    check_fixture("tiny_deit_hf");
    let c = load_fixture("tiny_deit_hf");
    assert_eq!(
        c.config.prefix_tokens(),
        2,
        "transformers DeiT always has a distillation token"
    );
    assert_eq!(c.config.classifier, Classifier::Cls);
}

#[test]
fn tiny_deit_distilled_transformers_layout() {
    check_fixture("tiny_deit_distilled_hf");
    assert_eq!(
        load_fixture("tiny_deit_distilled_hf").config.classifier,
        Classifier::ClsAndDistillation
    );
}

#[test]
fn tiny_deit_distilled_timm_layout() {
    check_fixture("tiny_deit_distilled_timm");
    let c = load_fixture("tiny_deit_distilled_timm");
    assert_eq!(c.layout, Layout::Timm);
    assert_eq!(c.config.classifier, Classifier::ClsAndDistillation);
}

#[test]
fn real_geometry_vit_transformers_layout() {
    check_fixture("vit_hf_224");
    let c = load_fixture("vit_hf_224");
    assert_eq!(c.config.tokens(), 197);
    assert_eq!((c.config.num_heads, c.config.head_dim()), (3, 64));
}

#[test]
fn real_geometry_deit_distilled_timm_layout() {
    check_fixture("deit_distilled_timm_224");
    assert_eq!(load_fixture("deit_distilled_timm_224").config.tokens(), 198);
}

/// Same weights, two layouts: only the LayerNorm epsilon differs (1e-12 vs 1e-6).
#[test]
fn transformers_and_timm_layouts_agree() {
    for (hf, timm) in [
        ("tiny_vit_hf", "tiny_vit_timm"),
        ("tiny_deit_distilled_hf", "tiny_deit_distilled_timm"),
    ] {
        let a = load_fixture(hf);
        let b = load_fixture(timm);
        assert_eq!(a.layout, Layout::Transformers);
        assert_eq!(b.layout, Layout::Timm);
        assert_eq!(a.weights.blocks, b.weights.blocks, "{hf} vs {timm}: blocks");
        assert_eq!(a.weights.pos_embed, b.weights.pos_embed);
        let (ra, _) = run(hf, "pixel_values");
        let (rb, _) = run(timm, "pixel_values");
        for (x, y) in ra.iter().zip(&rb) {
            assert_close(
                &format!("{hf} vs {timm} logits"),
                &x.logits,
                &y.logits,
                1e-3,
            );
            for (la, lb) in x.attentions.iter().zip(&y.attentions) {
                assert_close(
                    &format!("{hf} vs {timm} attention"),
                    &la.data,
                    &lb.data,
                    1e-4,
                );
            }
        }
    }
}

/// A larger input than the checkpoint's: position embeddings are resized bicubically, as
/// transformers' `interpolate_pos_encoding=True` does.
fn check_interpolated(name: &str) {
    let reference = reference(name);
    let (results, batch) = run(name, "pixel_values_384");
    assert_eq!(batch, 1);
    assert_close(
        &format!("{name} interpolated logits"),
        &results[0].logits,
        &reference["logits_384"].data,
        LOGIT_TOL,
    );
    for (l, att) in results[0].attentions.iter().enumerate() {
        // Either every query row, or (to keep fixtures small) only the CLS row of each head.
        let (ours, theirs): (Vec<f32>, _) = match reference.get(&format!("attentions_384.{l}")) {
            Some(full) => (att.data.clone(), full),
            None => (
                (0..att.heads)
                    .flat_map(|h| att.row(h, 0).to_vec())
                    .collect(),
                &reference[&format!("attentions_384_cls.{l}")],
            ),
        };
        assert_close(
            &format!("{name} interpolated attention layer {l}"),
            &ours,
            &theirs.data,
            ATTENTION_TOL,
        );
    }
}

#[test]
fn interpolated_position_embeddings_tiny() {
    check_interpolated("tiny_vit_hf");
}

#[test]
fn interpolated_position_embeddings_384() {
    check_interpolated("vit_hf_224");
    let (results, _) = run("vit_hf_224", "pixel_values_384");
    assert_eq!(results[0].patch_grid, (24, 24));
}

/// The dense layers run on the packed AVX-512 GEMM where the CPU has it; the candle matmul
/// path (every other CPU, and wasm) must match the reference just as well.
#[test]
fn candle_matmul_path_matches_reference_too() {
    for name in [
        "vit_hf_224",
        "tiny_deit_distilled_timm",
        "tiny_vit_noqkvbias_hf",
    ] {
        let checkpoint = load_fixture(name);
        let reference = reference(name);
        let pixels = &reference["pixel_values"];
        let [batch, _, h, w] = pixels.shape[..] else {
            panic!()
        };
        let engine = Engine::cpu_with(&checkpoint, CpuOptions { packed_gemm: false }).unwrap();
        let results = engine.infer_batch(&pixels.data, batch, h, w).unwrap();
        let classes = reference["logits"].shape[1];
        for (i, r) in results.iter().enumerate() {
            assert_close(
                &format!("{name} candle path logits {i}"),
                &r.logits,
                &reference["logits"].data[i * classes..(i + 1) * classes],
                LOGIT_TOL,
            );
        }
        assert_close(
            &format!("{name} candle path attention"),
            &results[0].attentions[0].data,
            &reference["attentions.0"].data[..results[0].attentions[0].data.len()],
            ATTENTION_TOL,
        );
    }
}

#[test]
fn batch_results_equal_single_image_results() {
    let checkpoint = load_fixture("tiny_deit_distilled_hf");
    let reference = reference("tiny_deit_distilled_hf");
    let pixels = &reference["pixel_values"];
    let [batch, c, h, w] = pixels.shape[..] else {
        panic!()
    };
    assert!(batch >= 2);
    let engine = Engine::cpu(&checkpoint).unwrap();
    let together = engine.infer_batch(&pixels.data, batch, h, w).unwrap();
    let per_image = c * h * w;
    for (i, joint) in together.iter().enumerate() {
        let alone = engine
            .infer_batch(&pixels.data[i * per_image..(i + 1) * per_image], 1, h, w)
            .unwrap()
            .remove(0);
        assert_close(
            "batched vs single logits",
            &joint.logits,
            &alone.logits,
            1e-5,
        );
    }
}

#[test]
fn wrong_input_size_is_an_error_not_a_panic() {
    let checkpoint = load_fixture("tiny_vit_hf");
    let engine = Engine::cpu(&checkpoint).unwrap();
    let err = engine.infer_batch(&[0.0; 10], 1, 32, 32).unwrap_err();
    assert!(err.to_string().contains("pixel values"), "{err}");
    let err = engine.infer_batch(&[0.0; 3 * 4 * 4], 1, 4, 4).unwrap_err();
    assert!(err.to_string().contains("smaller than one"), "{err}");
}

#[test]
fn labels_come_from_id2label() {
    let c = load_fixture("tiny_vit_hf");
    assert_eq!(c.labels.len(), c.config.num_classes);
    assert!(
        c.labels.iter().all(|l| !l.starts_with("LABEL_")),
        "{:?}",
        c.labels
    );
}

#[test]
fn parameter_count_matches_geometry() {
    let c = load_fixture("vit_hf_224");
    let (d, m, k, l) = (192, 768, c.config.num_classes, c.config.num_layers);
    let per_layer = 4 * d + (3 * d * d + 3 * d) + (d * d + d) + (m * d + m) + (d * m + d);
    let expected = (d * 3 * 16 * 16 + d) + d + 197 * d + l * per_layer + 2 * d + (k * d + k);
    assert_eq!(c.parameter_count(), expected);
}
