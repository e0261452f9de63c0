//! The WGSL forward pass (wgpu) against the CPU engine (candle) and the PyTorch references.
//!
//! These tests need a GPU adapter and FAIL without one: CI installs Mesa's lavapipe (a CPU
//! Vulkan driver, Debian `mesa-vulkan-drivers`), which runs the same WGSL.
//!
//! Tolerances, GPU vs CPU: logits 1e-3, attention probabilities and rollout 1e-4 (f32 with a
//! different summation order in every GEMM and reduction; the observed differences are
//! around 1e-6). GPU vs the PyTorch reference: logits 1e-3.
//!
//! Native only: in the browser the same kernels run on WebGPU, and `tests/web.rs` checks them
//! there against the CPU engine (wasm-bindgen-test in headless Chromium).
#![cfg(not(target_arch = "wasm32"))]

mod common;

use std::sync::OnceLock;

use common::{assert_close, load_fixture, max_abs_diff, reference};
use vit_lens::analysis::{rollout, LayerAttention, RolloutOptions};
use vit_lens::checkpoint::{Checkpoint, CheckpointFiles};
use vit_lens::engine::{Backend, BackendChoice, Engine, EngineOptions, ImageInference};
use vit_lens::gpu::{block_on, GpuContext, GpuError, GpuModel, GpuOutput};

const LOGIT_TOL: f32 = 1e-3;
const ATTENTION_TOL: f32 = 1e-4;
const ROLLOUT_TOL: f32 = 1e-4;

/// One device for the whole test binary: lavapipe compiles the kernels once.
fn context() -> &'static GpuContext {
    static CONTEXT: OnceLock<GpuContext> = OnceLock::new();
    CONTEXT.get_or_init(|| {
        block_on(GpuContext::new()).unwrap_or_else(|e| {
            panic!("the GPU tests need an adapter (install mesa-vulkan-drivers for lavapipe): {e}")
        })
    })
}

fn gpu_model(checkpoint: &Checkpoint) -> GpuModel {
    block_on(GpuModel::with_context(context(), checkpoint)).expect("model uploads")
}

/// The image `i` of a GPU output as layer attentions, for rollout.
fn image_attentions(out: &GpuOutput, i: usize) -> Vec<LayerAttention> {
    (0..out.attentions.len())
        .map(|layer| {
            LayerAttention::new(
                out.heads,
                out.tokens,
                out.image_attention(layer, i).to_vec(),
            )
            .expect("attention shape")
        })
        .collect()
}

/// Largest differences found: (logits, attention, rollout).
type Diffs = (f32, f32, f32);

/// Checks the GPU against the CPU engine (logits, every layer's attention, default rollout)
/// and the GPU logits against the PyTorch reference, image by image.
fn check_against_cpu(
    name: &str,
    checkpoint: &Checkpoint,
    pixels: &[f32],
    shape: [usize; 4],
    reference_logits: Option<&[f32]>,
) -> Diffs {
    let [batch, _, height, width] = shape;
    let cpu: Vec<ImageInference> = Engine::cpu(checkpoint)
        .expect("cpu engine")
        .infer_batch(pixels, batch, height, width)
        .expect("cpu inference");
    let model = gpu_model(checkpoint);
    let gpu = block_on(model.infer(pixels, batch, height, width)).expect("gpu inference");
    let classes = checkpoint.config.num_classes;
    assert_eq!(gpu.logits.len(), batch * classes);
    assert_eq!(gpu.attentions.len(), checkpoint.config.num_layers);
    assert_eq!(gpu.patch_grid, cpu[0].patch_grid);
    assert_eq!(gpu.prefix_tokens, cpu[0].prefix_tokens);

    let mut diffs: Diffs = (0.0, 0.0, 0.0);
    for (i, cpu_image) in cpu.iter().enumerate() {
        let logits = gpu.image_logits(i);
        assert_close(
            &format!("{name} image {i} logits vs cpu"),
            logits,
            &cpu_image.logits,
            LOGIT_TOL,
        );
        diffs.0 = diffs.0.max(max_abs_diff(logits, &cpu_image.logits));
        if let Some(reference) = reference_logits {
            assert_close(
                &format!("{name} image {i} logits vs PyTorch"),
                logits,
                &reference[i * classes..(i + 1) * classes],
                LOGIT_TOL,
            );
        }
        let layers = image_attentions(&gpu, i);
        for (l, (ours, theirs)) in layers.iter().zip(&cpu_image.attentions).enumerate() {
            assert_close(
                &format!("{name} image {i} attention layer {l}"),
                &ours.data,
                &theirs.data,
                ATTENTION_TOL,
            );
            diffs.1 = diffs.1.max(max_abs_diff(&ours.data, &theirs.data));
        }
        let options = RolloutOptions::default();
        let ours = rollout(&layers, gpu.prefix_tokens, &options).expect("gpu rollout");
        let theirs =
            rollout(&cpu_image.attentions, cpu_image.prefix_tokens, &options).expect("cpu rollout");
        assert_close(
            &format!("{name} image {i} rollout"),
            &ours.concat(),
            &theirs.concat(),
            ROLLOUT_TOL,
        );
        diffs.2 = diffs.2.max(max_abs_diff(&ours.concat(), &theirs.concat()));
    }
    eprintln!(
        "{name}: max |gpu - cpu| logits {:.2e}, attention {:.2e}, rollout {:.2e}",
        diffs.0, diffs.1, diffs.2
    );
    diffs
}

/// A fixture's reference input (`input_key`) through both backends.
fn check_fixture_input(name: &str, input_key: &str, logits_key: &str) {
    let checkpoint = load_fixture(name);
    let reference = reference(name);
    let pixels = &reference[input_key];
    let [b, c, h, w] = pixels.shape[..] else {
        panic!("{name}: {input_key} should be 4-D");
    };
    check_against_cpu(
        &format!("{name} {input_key}"),
        &checkpoint,
        &pixels.data,
        [b, c, h, w],
        Some(&reference[logits_key].data),
    );
}

fn check_fixture(name: &str) {
    check_fixture_input(name, "pixel_values", "logits");
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
fn tiny_vit_without_qkv_bias() {
    check_fixture("tiny_vit_noqkvbias_hf");
}

#[test]
fn tiny_deit_cls_head_with_distillation_token() {
    check_fixture("tiny_deit_hf");
}

#[test]
fn tiny_deit_distilled_transformers_layout() {
    check_fixture("tiny_deit_distilled_hf");
}

#[test]
fn tiny_deit_distilled_timm_layout() {
    check_fixture("tiny_deit_distilled_timm");
}

#[test]
fn tiny_vit_interpolated_position_embeddings() {
    // 48 px: a 6×6 grid from the 4×4 the checkpoint was made for.
    check_fixture_input("tiny_vit_hf", "pixel_values_384", "logits_384");
}

#[test]
fn real_geometry_vit() {
    check_fixture("vit_hf_224");
}

#[test]
fn real_geometry_deit_distilled() {
    check_fixture("deit_distilled_timm_224");
}

#[test]
fn real_geometry_vit_at_384_px() {
    // 24×24 patches from the native 14×14: interpolated position embeddings, T = 577.
    check_fixture_input("vit_hf_224", "pixel_values_384", "logits_384");
}

/// No fixture uses the tanh GELU: the same weights with `gelu_new`, GPU vs CPU only.
#[test]
fn tanh_gelu_matches_cpu() {
    let (config, pre, weights) = common::fixture_bytes("tiny_vit_hf");
    let config = String::from_utf8(config)
        .expect("utf-8 config")
        .replace("\"hidden_act\": \"gelu\"", "\"hidden_act\": \"gelu_new\"");
    let checkpoint = Checkpoint::from_bytes(CheckpointFiles {
        config_json: config.as_bytes(),
        preprocessor_config_json: pre.as_deref(),
        safetensors: &weights,
    })
    .expect("checkpoint");
    assert_eq!(
        checkpoint.config.activation,
        vit_lens::checkpoint::Activation::GeluTanh
    );
    let pixels = &reference("tiny_vit_hf")["pixel_values"];
    check_against_cpu(
        "tiny_vit_hf gelu_new",
        &checkpoint,
        &pixels.data,
        [2, 3, 32, 32],
        None,
    );
}

/// Deterministic values in [-scale, scale) (xorshift).
fn noise(seed: &mut u64, n: usize, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|_| {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            ((*seed >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

/// A random timm DeiT (distilled) whose every size is odd or not a multiple of 4 — hidden 30,
/// 2 heads of 15, MLP 46, 5 px patches over 3 channels (75 values), 7 classes — so every
/// GEMM operand takes the scalar (not vec4) load path, on a non-square, interpolated grid.
#[test]
fn odd_shapes_match_cpu() {
    let (hidden, heads, mlp, patch, classes, layers, grid) = (30, 2, 46, 5, 7, 2, 4);
    let tokens = 2 + grid * grid;
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut tensors: Vec<(String, Vec<usize>, Vec<f32>)> = Vec::new();
    let mut add = |name: &str, shape: Vec<usize>, scale: f32| {
        let n = shape.iter().product();
        tensors.push((name.to_string(), shape, noise(&mut seed, n, scale)));
    };
    add(
        "patch_embed.proj.weight",
        vec![hidden, 3, patch, patch],
        0.2,
    );
    add("patch_embed.proj.bias", vec![hidden], 0.1);
    add("cls_token", vec![1, 1, hidden], 0.5);
    add("dist_token", vec![1, 1, hidden], 0.5);
    add("pos_embed", vec![1, tokens, hidden], 0.5);
    for l in 0..layers {
        for (name, shape, scale) in [
            ("norm1.weight", vec![hidden], 1.0),
            ("norm1.bias", vec![hidden], 0.2),
            ("attn.qkv.weight", vec![3 * hidden, hidden], 0.4),
            ("attn.qkv.bias", vec![3 * hidden], 0.1),
            ("attn.proj.weight", vec![hidden, hidden], 0.2),
            ("attn.proj.bias", vec![hidden], 0.1),
            ("norm2.weight", vec![hidden], 1.0),
            ("norm2.bias", vec![hidden], 0.2),
            ("mlp.fc1.weight", vec![mlp, hidden], 0.3),
            ("mlp.fc1.bias", vec![mlp], 0.1),
            ("mlp.fc2.weight", vec![hidden, mlp], 0.2),
            ("mlp.fc2.bias", vec![hidden], 0.1),
        ] {
            add(&format!("blocks.{l}.{name}"), shape, scale);
        }
    }
    add("norm.weight", vec![hidden], 1.0);
    add("norm.bias", vec![hidden], 0.2);
    add("head.weight", vec![classes, hidden], 0.3);
    add("head.bias", vec![classes], 0.1);
    add("head_dist.weight", vec![classes, hidden], 0.3);
    add("head_dist.bias", vec![classes], 0.1);
    let safetensors = common::write_safetensors(
        &tensors
            .into_iter()
            .map(|(name, shape, data)| {
                let bytes = data.iter().flat_map(|v| v.to_le_bytes()).collect();
                (name, safetensors::Dtype::F32, shape, bytes)
            })
            .collect::<Vec<_>>(),
    );
    let config = format!(
        r#"{{"architecture": "deit_tiny_distilled_patch16_224", "num_classes": {classes},
            "model_args": {{"img_size": {}, "patch_size": {patch}, "embed_dim": {hidden},
            "depth": {layers}, "num_heads": {heads}, "num_classes": {classes}}}}}"#,
        grid * patch
    );
    let checkpoint = Checkpoint::from_bytes(CheckpointFiles {
        config_json: config.as_bytes(),
        preprocessor_config_json: None,
        safetensors: &safetensors,
    })
    .expect("synthetic checkpoint");
    assert_eq!(checkpoint.config.head_dim(), 15);
    assert_eq!(checkpoint.config.intermediate_size, mlp);

    // 27×21 px: a 5×4 grid (the last 2 rows and 1 column of pixels fall outside it).
    let (batch, height, width) = (3, 27, 21);
    let pixels = noise(&mut seed, batch * 3 * height * width, 1.0);
    check_against_cpu(
        "odd shapes",
        &checkpoint,
        &pixels,
        [batch, 3, height, width],
        None,
    );
}

/// A batch of two gives what two single-image passes give (the workspace is rebuilt
/// between shapes and reused for equal ones).
#[test]
fn batch_of_two_equals_two_singles() {
    let checkpoint = load_fixture("tiny_deit_distilled_hf");
    let pixels = &reference("tiny_deit_distilled_hf")["pixel_values"].data;
    let model = gpu_model(&checkpoint);
    let both = block_on(model.infer(pixels, 2, 32, 32)).expect("batch of 2");
    let per_image = pixels.len() / 2;
    let classes = checkpoint.config.num_classes;
    for i in 0..2 {
        let single = block_on(model.infer(&pixels[i * per_image..(i + 1) * per_image], 1, 32, 32))
            .expect("single image");
        assert_close(
            &format!("image {i} logits"),
            &single.logits,
            &both.logits[i * classes..(i + 1) * classes],
            1e-5,
        );
        let attention_len = single.attentions[0].len();
        for (l, (one, two)) in single.attentions.iter().zip(&both.attentions).enumerate() {
            assert_close(
                &format!("image {i} attention layer {l}"),
                one,
                &two[i * attention_len..(i + 1) * attention_len],
                1e-6,
            );
        }
    }
    // Same shape again: the cached workspace gives the same numbers.
    let again = block_on(model.infer(pixels, 2, 32, 32)).expect("batch of 2 again");
    assert_eq!(again.logits, both.logits);
}

#[test]
fn bad_inputs_are_input_errors() {
    let checkpoint = load_fixture("tiny_vit_hf");
    let model = gpu_model(&checkpoint);
    let one = vec![0.0f32; 3 * 32 * 32];
    for (pixels, batch, h, w, why) in [
        (&one[..one.len() - 1], 1, 32, 32, "one value short"),
        (&one[..], 2, 32, 32, "half a batch"),
        (&one[..], 0, 32, 32, "empty batch"),
        (&one[..3 * 4 * 4], 1, 4, 4, "smaller than a patch"),
    ] {
        match block_on(model.infer(pixels, batch, h, w)) {
            Err(GpuError::Input(message)) => assert!(!message.is_empty()),
            other => panic!("{why}: expected GpuError::Input, got {other:?}"),
        }
    }
    // The model still works afterwards.
    block_on(model.infer(&one, 1, 32, 32)).expect("valid input after errors");
}

#[test]
fn requests_over_the_limits_are_too_large() {
    let checkpoint = load_fixture("tiny_vit_hf");
    let model = gpu_model(&checkpoint);
    match model.check_capacity(1 << 40, 32, 32) {
        Err(GpuError::TooLarge {
            batch,
            bytes,
            limit,
            ..
        }) => {
            assert_eq!(batch, 1 << 40);
            assert!(bytes > limit);
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    let max = model.max_batch(32, 32);
    assert!(max >= 2, "max batch {max}");
    model.check_capacity(max, 32, 32).expect("max batch fits");
    assert!(model.check_capacity(max + 1, 32, 32).is_err());

    // A single 2048×2048 image: 65,537 tokens, 32 GiB of attention per layer.
    let side = 2048;
    let pixels = vec![0.0f32; 3 * side * side];
    match block_on(model.infer(&pixels, 1, side, side)) {
        Err(error @ GpuError::TooLarge { .. }) => {
            let message = error.to_string();
            assert!(message.contains("use a smaller batch"), "{message}");
            eprintln!("{message}");
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
}

#[test]
fn adapter_is_described() {
    let info = context().adapter_info();
    let shown = info.to_string();
    assert!(shown.contains(&info.backend), "{shown}");
    assert!(!info.device_type.is_empty());
    eprintln!("adapter: {shown}, timestamps: {}", context().timestamps());
}

#[test]
fn kernel_times_when_timestamps_exist() {
    let checkpoint = load_fixture("tiny_vit_hf");
    let model = gpu_model(&checkpoint);
    let pixels = &reference("tiny_vit_hf")["pixel_values"].data;
    let out = block_on(model.infer(pixels, 2, 32, 32)).expect("inference");
    match (&out.kernel_ms, context().timestamps()) {
        (Some(kinds), true) => {
            let names: Vec<&str> = kinds.iter().map(|(k, _)| k.as_str()).collect();
            for kind in ["im2col", "gemm", "layer_norm", "attention", "softmax"] {
                assert!(names.contains(&kind), "{kind} missing from {names:?}");
            }
            assert!(kinds.iter().all(|(_, ms)| ms.is_finite() && *ms >= 0.0));
        }
        (None, false) => {}
        (times, has) => panic!("timestamps {has} but kernel_ms {times:?}"),
    }
    // Without timing: no times, the same numbers.
    model.set_kernel_timing(false);
    let untimed = block_on(model.infer(pixels, 2, 32, 32)).expect("inference");
    assert_eq!(untimed.kernel_ms, None);
    assert_eq!(untimed.logits, out.logits);
    assert_eq!(untimed.attentions, out.attentions);
}

/// A destroyed device is an error, never a panic, and a new context works again.
#[test]
fn lost_device_is_an_error() {
    let checkpoint = load_fixture("tiny_vit_hf");
    let own = block_on(GpuContext::new()).expect("second context");
    let model = block_on(GpuModel::with_context(&own, &checkpoint)).expect("model");
    let pixels = vec![0.1f32; 3 * 32 * 32];
    block_on(model.infer(&pixels, 1, 32, 32)).expect("before");
    own.destroy();
    match block_on(model.infer(&pixels, 1, 32, 32)) {
        Err(GpuError::DeviceLost(reason)) => assert!(!reason.is_empty()),
        other => panic!("expected DeviceLost, got {other:?}"),
    }
    assert!(matches!(
        block_on(GpuModel::with_context(&own, &checkpoint)),
        Err(GpuError::DeviceLost(_))
    ));
    let fresh = block_on(GpuModel::new(&checkpoint)).expect("a new model after the loss");
    block_on(fresh.infer(&pixels, 1, 32, 32)).expect("after");
}

/// `Auto` takes a software adapter only when the options allow it (the web app's choice);
/// either way the numbers are the CPU engine's within the tolerances.
#[test]
fn auto_takes_a_software_adapter_only_when_allowed() {
    let checkpoint = load_fixture("tiny_vit_hf");
    let pixels = &reference("tiny_vit_hf")["pixel_values"].data;
    let software = context().adapter_info().fallback;
    let allowed = EngineOptions {
        allow_software_adapter: true,
        ..EngineOptions::default()
    };
    for options in [EngineOptions::default(), allowed] {
        let engine = block_on(Engine::with_options(
            &checkpoint,
            BackendChoice::Auto,
            options,
        ))
        .expect("an engine on either backend");
        if software && !options.allow_software_adapter {
            assert_eq!(engine.backend(), Backend::Cpu);
            let reason = engine.fallback_reason().expect("a reason");
            assert!(reason.contains("software"), "{reason}");
        } else {
            assert_eq!(engine.backend(), Backend::Gpu, "{options:?}");
            assert!(engine.fallback_reason().is_none());
        }
        let out = engine.infer_batch(pixels, 2, 32, 32).expect("inference");
        let cpu = Engine::cpu(&checkpoint)
            .expect("cpu")
            .infer_batch(pixels, 2, 32, 32)
            .expect("cpu inference");
        for (ours, theirs) in out.iter().zip(&cpu) {
            assert_close("auto logits", &ours.logits, &theirs.logits, LOGIT_TOL);
        }
    }
}
