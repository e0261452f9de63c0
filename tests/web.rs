//! In a real browser (headless Chromium with `--enable-unsafe-webgpu`, driven by
//! wasm-bindgen-test): the WebGPU engine gives the same numbers as the CPU engine compiled to
//! wasm. Run with `cargo test --target wasm32-unknown-unknown --test web` (see .ci/run).
#![cfg(target_arch = "wasm32")]

use vit_lens::analysis::{rollout, RolloutOptions};
use vit_lens::checkpoint::{read_safetensors, Checkpoint, CheckpointFiles};
use vit_lens::engine::{Backend, Engine};
use wasm_bindgen_test::{console_log, wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

/// A fixture's files, embedded in the test module.
struct Fixture {
    name: &'static str,
    config: &'static [u8],
    preprocessor: Option<&'static [u8]>,
    weights: &'static [u8],
    reference: &'static [u8],
}

macro_rules! fixture {
    ($name:literal, $pre:expr) => {
        Fixture {
            name: $name,
            config: include_bytes!(concat!("fixtures/models/", $name, "/config.json")),
            preprocessor: $pre,
            weights: include_bytes!(concat!("fixtures/models/", $name, "/model.safetensors")),
            reference: include_bytes!(concat!("fixtures/models/", $name, "/reference.safetensors")),
        }
    };
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

async fn gpu_matches_cpu(fixture: Fixture) {
    let checkpoint = Checkpoint::from_bytes(CheckpointFiles {
        config_json: fixture.config,
        preprocessor_config_json: fixture.preprocessor,
        safetensors: fixture.weights,
    })
    .expect("fixture loads");
    let reference = read_safetensors(fixture.reference)
        .expect("reference")
        .tensors;
    let pixels = &reference["pixel_values"];
    let [batch, _, height, width] = pixels.shape[..] else {
        panic!("pixel_values should be 4-D")
    };

    let cpu = Engine::cpu(&checkpoint).expect("CPU engine");
    let gpu = Engine::gpu(&checkpoint)
        .await
        .expect("a WebGPU adapter: Chromium must run with --enable-unsafe-webgpu");
    assert_eq!(gpu.backend(), Backend::Gpu);
    let adapter = gpu.adapter().expect("adapter info");
    console_log!("{}: WebGPU adapter {adapter}", fixture.name);

    let on_cpu = cpu
        .infer_batch_async(&pixels.data, batch, height, width)
        .await
        .expect("CPU run");
    let on_gpu = gpu
        .infer_batch_async(&pixels.data, batch, height, width)
        .await
        .expect("GPU run");
    let options = RolloutOptions::default();
    assert_eq!(
        on_cpu.len(),
        on_gpu.len(),
        "{}: both engines answer every image",
        fixture.name
    );
    for (i, (c, g)) in on_cpu.iter().zip(&on_gpu).enumerate() {
        let logits = max_abs_diff(&c.logits, &g.logits);
        assert!(
            logits <= 1e-3,
            "{} image {i}: logits differ by {logits:e}",
            fixture.name
        );
        assert_eq!(
            c.attentions.len(),
            g.attentions.len(),
            "{} image {i}: both engines return every layer's attention",
            fixture.name
        );
        for (l, (ca, ga)) in c.attentions.iter().zip(&g.attentions).enumerate() {
            let d = max_abs_diff(&ca.data, &ga.data);
            assert!(
                d <= 1e-4,
                "{} image {i} layer {l}: attention differs by {d:e}",
                fixture.name
            );
        }
        let rc = rollout(&c.attentions, c.prefix_tokens, &options).expect("rollout");
        let rg = rollout(&g.attentions, g.prefix_tokens, &options).expect("rollout");
        let d = max_abs_diff(&rc.concat(), &rg.concat());
        assert!(
            d <= 1e-4,
            "{} image {i}: rollout differs by {d:e}",
            fixture.name
        );
        console_log!(
            "{} image {i}: max |Δlogit| {logits:e}, max |Δrollout| {d:e}",
            fixture.name
        );
    }
    // The CPU engine in the browser still matches PyTorch.
    let classes = reference["logits"].shape[1];
    let d = max_abs_diff(&on_cpu[0].logits, &reference["logits"].data[..classes]);
    assert!(
        d <= 1e-4,
        "{}: wasm CPU logits differ from the reference by {d:e}",
        fixture.name
    );
}

#[wasm_bindgen_test]
async fn tiny_distilled_deit_gpu_matches_cpu() {
    gpu_matches_cpu(fixture!("tiny_deit_distilled_hf", None)).await;
}

#[wasm_bindgen_test]
async fn tiny_timm_vit_gpu_matches_cpu() {
    gpu_matches_cpu(fixture!("tiny_vit_timm", None)).await;
}

#[wasm_bindgen_test]
async fn real_geometry_vit_gpu_matches_cpu() {
    gpu_matches_cpu(fixture!(
        "vit_hf_224",
        Some(include_bytes!(
            "fixtures/models/vit_hf_224/preprocessor_config.json"
        ))
    ))
    .await;
}
