//! Teaching statistics (src/teach.rs) against numpy / transformers references
//! (tests/fixtures/teach/*.json, made by tests/fixtures/make_teach_reference.py).
#![cfg(not(target_arch = "wasm32"))]

mod common;

use candle_core::{Device, Tensor};
use serde_json::Value;
use vit_lens::analysis::LayerAttention;
use vit_lens::checkpoint::WeightTensor;
use vit_lens::model::VisionTransformer;
use vit_lens::teach::{self, filter_pca, mean_attention_distance, model_stats, FILTER_COMPONENTS};

fn reference_json(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/teach")
        .join(format!("{name}.json"));
    serde_json::from_slice(&std::fs::read(&path).expect("reference json")).expect("valid json")
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number") as f32)
        .collect()
}

/// Components equal up to sign, each within `tol`.
#[track_caller]
fn assert_components(ours: &[Vec<f32>], reference: &Value, tol: f32) {
    let reference = reference.as_array().unwrap();
    assert!(!reference.is_empty());
    assert!(ours.len() >= reference.len(), "{} components", ours.len());
    for (i, r) in reference.iter().enumerate() {
        let r = floats(r);
        let plus = common::max_abs_diff(&ours[i], &r);
        let minus = ours[i]
            .iter()
            .zip(&r)
            .map(|(a, b)| (a + b).abs())
            .fold(0.0, f32::max);
        assert!(
            plus.min(minus) <= tol,
            "component {i}: max |diff| up to sign = {:e}",
            plus.min(minus)
        );
    }
}

fn pixels_of(name: &str) -> (Tensor, usize, usize) {
    let reference = common::reference(name);
    let pv = &reference["pixel_values"];
    let (c, h, w) = (pv.shape[1], pv.shape[2], pv.shape[3]);
    let first = pv.data[..c * h * w].to_vec();
    (
        Tensor::from_vec(first, (1, c, h, w), &Device::Cpu).unwrap(),
        h,
        w,
    )
}

#[test]
fn model_statistics_match_numpy() {
    for name in ["vit_hf_224", "tiny_deit_distilled_hf", "tiny_vit_timm"] {
        let reference = reference_json(name);
        let checkpoint = common::load_fixture(name);
        let stats = model_stats(&checkpoint).unwrap();

        // (a) principal components of the patch-embedding filters.
        let pca = &stats.filter_pca;
        let want_ratio = floats(&reference["filter_pca"]["explained_variance_ratio"]);
        let n = want_ratio.len();
        assert!(pca.components.len() <= FILTER_COMPONENTS);
        common::assert_close(
            &format!("{name} explained variance"),
            &pca.explained_variance_ratio[..n],
            &want_ratio,
            1e-5,
        );
        assert_components(
            &pca.components,
            &reference["filter_pca"]["components"],
            1e-4,
        );
        assert_eq!(
            pca.components[0].len(),
            3 * checkpoint.config.patch_size.pow(2)
        );

        // (b) position-embedding cosine similarity.
        let sim = &stats.position_similarity;
        let patches = sim.grid_rows * sim.grid_cols;
        assert_eq!(sim.grid_rows, reference["grid"].as_u64().unwrap() as usize);
        let rows = reference["position_similarity"]["rows"].as_array().unwrap();
        let values = reference["position_similarity"]["values"]
            .as_array()
            .unwrap();
        for (row, want) in rows.iter().zip(values) {
            let r = row.as_u64().unwrap() as usize;
            common::assert_close(
                &format!("{name} similarity row {r}"),
                &sim.values[r * patches..(r + 1) * patches],
                &floats(want),
                1e-5,
            );
        }
        // Every patch is most similar to itself.
        for r in 0..patches {
            let row = &sim.values[r * patches..(r + 1) * patches];
            let best = (0..patches)
                .max_by(|&a, &b| row[a].total_cmp(&row[b]))
                .unwrap();
            assert_eq!(row[best], row[r], "{name}: row {r} peaks at {best}");
            assert!((row[r] - 1.0).abs() < 1e-5);
        }

        // The card's shapes and counts follow the config.
        let card = &stats.card;
        assert_eq!(card.tokens, card.prefix_tokens + card.patches);
        assert_eq!(card.parameters, checkpoint.parameter_count());
        assert_eq!(card.flops, 2 * checkpoint.config.macs());
    }
}

#[test]
fn filter_pca_with_more_filters_than_values() {
    let reference = reference_json("synthetic_pca");
    let shape: Vec<usize> = reference["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let weight = WeightTensor::new(shape, floats(&reference["weight"]));
    let pca = filter_pca(&weight, 8).unwrap();
    common::assert_close(
        "synthetic explained variance",
        &pca.explained_variance_ratio,
        &floats(&reference["explained_variance_ratio"]),
        1e-5,
    );
    assert_components(&pca.components, &reference["components"], 1e-4);
}

#[test]
fn attention_distance_matches_numpy() {
    for name in ["vit_hf_224", "tiny_deit_distilled_hf", "tiny_vit_timm"] {
        let reference = reference_json(name);
        let attentions = common::reference(name);
        let grid = reference["grid"].as_u64().unwrap() as usize;
        let prefix = reference["prefix_tokens"].as_u64().unwrap() as usize;
        let patch = reference["patch_size"].as_u64().unwrap() as usize;
        let want = reference["attention_distance"].as_array().unwrap();
        for (l, want) in want.iter().enumerate() {
            // transformers' attention of image 0, through our statistic.
            let a = &attentions[&format!("attentions.{l}")];
            let (heads, tokens) = (a.shape[1], a.shape[2]);
            let layer =
                LayerAttention::new(heads, tokens, a.data[..heads * tokens * tokens].to_vec())
                    .unwrap();
            let ours = mean_attention_distance(&layer, (grid, grid), prefix, patch).unwrap();
            common::assert_close(
                &format!("{name} layer {l} distance"),
                &ours,
                &floats(want),
                1e-3,
            );
        }
    }
}

#[test]
fn forward_steps_match_transformers() {
    for name in ["vit_hf_224", "tiny_deit_distilled_hf"] {
        let reference = reference_json(name);
        let checkpoint = common::load_fixture(name);
        let model = VisionTransformer::new(&checkpoint, &Device::Cpu).unwrap();
        let (pixels, _, _) = pixels_of(name);
        let teaching = teach::teaching(&checkpoint, &model, Some(&pixels)).unwrap();
        let image = teaching.image.unwrap();
        let want = reference["steps"].as_array().unwrap();
        let layers = checkpoint.config.num_layers;
        assert_eq!(image.steps.len(), 4 + 6 * layers + 3);
        assert_eq!(image.steps.len(), want.len());
        for (ours, want) in image.steps.iter().zip(want) {
            let key = want["key"].as_str().unwrap();
            assert_eq!(ours.key, key);
            let shape: Vec<usize> = want["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as usize)
                .collect();
            assert_eq!(ours.shape, shape, "{name} {key} shape");
            let scale = want["mean_row_norm"].as_f64().unwrap() as f32;
            let tol = 2e-5 * scale.max(1.0);
            common::assert_close(
                &format!("{name} {key} values"),
                &ours.values,
                &floats(&want["values"]),
                tol,
            );
            for (field, ours) in [
                ("row_norm", ours.row_norm),
                ("mean_row_norm", ours.mean_row_norm),
                ("min", ours.min),
                ("max", ours.max),
            ] {
                let want = want[field].as_f64().unwrap() as f32;
                assert!(
                    (ours - want).abs() <= tol,
                    "{name} {key} {field}: {ours} vs {want}"
                );
            }
        }
        // Patch embeddings: one row per patch, and patch 0's row begins with the step's values.
        let patches = image.grid_rows * image.grid_cols;
        assert_eq!(image.patch_embeddings.len(), patches * image.hidden_size);
        let step = image
            .steps
            .iter()
            .find(|s| s.key == "patch_embedding")
            .unwrap();
        assert_eq!(
            &image.patch_embeddings[..step.values.len()],
            &step.values[..]
        );
        // Our own forward pass's attention gives the distances transformers' attention gives.
        for (l, want) in reference["attention_distance"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
        {
            common::assert_close(
                &format!("{name} layer {l} distance from our forward"),
                &image.attention_distance[l],
                &floats(want),
                1e-2,
            );
        }
    }
}
