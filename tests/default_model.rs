//! The built-in model (assets/model): vit-lens against transformers on the shipped samples,
//! and its quality on the committed held-out set through the CLI's `eval`. Native only: they
//! read files from disk and run the CLI.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use std::process::Command;

use common::ScratchDir;
use vit_lens::analysis::{rollout, softmax, RolloutOptions};
use vit_lens::checkpoint::{Checkpoint, CheckpointFiles};
use vit_lens::engine::Engine;
use vit_lens::preprocess::{preprocess_bytes, DecodeLimits};

fn root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn built_in() -> Checkpoint {
    let dir = root().join("assets/model");
    let read = |f: &str| std::fs::read(dir.join(f)).expect("assets/model is complete");
    let config = read("config.json");
    let preprocessor = read("preprocessor_config.json");
    let weights = read("model.safetensors");
    Checkpoint::from_bytes(CheckpointFiles {
        config_json: &config,
        preprocessor_config_json: Some(&preprocessor),
        safetensors: &weights,
    })
    .expect("the built-in model loads")
}

#[test]
fn built_in_model_is_small_and_names_its_shapes() {
    let checkpoint = built_in();
    for shape in ["circle", "square", "triangle", "star", "cross"] {
        assert!(checkpoint.labels.iter().any(|l| l == shape), "{shape}");
    }
    assert!(checkpoint.labels.len() >= 8);
    let c = &checkpoint.config;
    assert_eq!(
        (c.hidden_size, c.num_heads, c.patch_size, c.image_size),
        (192, 3, 16, 224)
    );
    let bytes: u64 = [
        "config.json",
        "preprocessor_config.json",
        "model.safetensors",
    ]
    .iter()
    .map(|f| {
        std::fs::metadata(root().join("assets/model").join(f))
            .unwrap()
            .len()
    })
    .sum();
    assert!(bytes <= 12_000_000, "assets/model is {bytes} bytes");
}

/// Probabilities within 0.02 of transformers (f32 run of the f16 weights), same top-1 and the
/// same rollout peak, on pixels vit-lens computes itself from the JPEG samples: JPEG decoders
/// differ by a level or two, which moves these probabilities by up to about 0.01. Exact model
/// parity is tested on fixed pixels in tests/model.rs.
#[test]
fn built_in_model_matches_transformers_on_the_samples() {
    let checkpoint = built_in();
    let engine = Engine::cpu(&checkpoint).unwrap();
    let reference: serde_json::Value = serde_json::from_slice(
        &std::fs::read(root().join("tests/fixtures/shapes/default_reference.json")).unwrap(),
    )
    .unwrap();
    let samples = reference["samples"].as_array().unwrap();
    assert!(samples.len() >= 8);
    for sample in samples {
        let file = sample["file"].as_str().unwrap();
        let bytes = std::fs::read(root().join("assets/samples").join(file)).unwrap();
        let image =
            preprocess_bytes(&bytes, &checkpoint.preprocess, &DecodeLimits::default()).unwrap();
        let out = engine.infer(&image).unwrap();
        let want: Vec<f32> = sample["logits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        let probs = softmax(&out.logits);
        let want_probs = softmax(&want);
        for (a, b) in probs.iter().zip(&want_probs) {
            assert!(
                (a - b).abs() < 0.02,
                "{file}: probabilities {probs:?} vs {want_probs:?}"
            );
        }
        let top = (0..probs.len())
            .max_by(|&a, &b| probs[a].total_cmp(&probs[b]))
            .unwrap();
        assert_eq!(
            checkpoint.labels[top],
            sample["predicted"].as_str().unwrap(),
            "{file}: same top-1 as transformers"
        );
        let maps = rollout(
            &out.attentions,
            out.prefix_tokens,
            &RolloutOptions::default(),
        )
        .unwrap();
        let last = maps.last().unwrap();
        let sum: f32 = last.iter().sum();
        let want_rollout: Vec<f32> = sample["rollout_last"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        let want_sum: f32 = want_rollout.iter().sum();
        let argmax = |v: &[f32]| (0..v.len()).max_by(|&a, &b| v[a].total_cmp(&v[b])).unwrap();
        assert_eq!(argmax(last), argmax(&want_rollout), "{file}: rollout peak");
        assert!(
            (sum - want_sum).abs() < 1e-3,
            "{file}: rollout mass {sum} vs {want_sum}"
        );
    }
}

/// `vit-lens eval` with the built-in model on the 48 committed held-out images (JPEG): a guard
/// that needs no Python (it scores 95.8 % and a pointing game of 100 % there; 98.0 % on the
/// 500 images of the README, and 48 images are too few to tell those apart).
#[test]
fn built_in_model_scores_on_the_held_out_set() {
    assert_scores(&root().join("tests/fixtures/shapes/heldout"), 0.9, 0.8);
}

/// Shapes drawn by other code than the training generator's (scripts/shapes/other_hands.py:
/// other proportions, outlined and bordered figures, paper and photo-like backgrounds). The
/// shipped model scores 93.8 % (45/48) with a pointing game of 100 % there (95.2 % on 1200
/// larger draws by the same code; see README).
#[test]
fn built_in_model_recognises_shapes_drawn_by_other_code() {
    assert_scores(&root().join("tests/fixtures/shapes/other_hands"), 0.9, 0.9);
}

/// `vit-lens eval --json` with the built-in model on the CPU reaches these accuracy and
/// pointing-game floors on the set in `data`.
fn assert_scores(data: &std::path::Path, min_accuracy: f64, min_pointing: f64) {
    let out = Command::new(env!("CARGO_BIN_EXE_vit-lens"))
        .args(["eval", "--json", "--backend", "cpu", "--data"])
        .arg(data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let accuracy = report["accuracy"].as_f64().unwrap();
    let pointing = report["pointing_game"].as_f64().unwrap();
    let n = report["images"].as_u64().unwrap();
    eprintln!(
        "{}: {n} images, accuracy {accuracy}, pointing game {pointing}",
        data.display()
    );
    assert!(
        accuracy >= min_accuracy,
        "{}: accuracy {accuracy}",
        data.display()
    );
    assert!(
        pointing >= min_pointing,
        "{}: pointing game {pointing}",
        data.display()
    );
}

/// The fixed held-out set of the README: 500 images of seed 900001, which the training stream
/// never draws. `scripts/shapes/shapes.py` writes it (about 10 s); the fingerprint of its
/// pixels, masks and labels makes sure this is the set the threshold was fixed on.
const README_SET_SEED: &str = "900001";
const README_SET_COUNT: usize = 500;
const README_SET_FINGERPRINT: u64 = 0x522e_3536_d6c1_c49a;

/// FNV-1a over every item's label, RGB pixels and mask, in the order of `index.json`: the
/// same pixels give the same number whatever PNG encoder wrote them.
fn fingerprint_set(dir: &std::path::Path) -> u64 {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let mut hash = 0xcbf2_9ce4_8422_2325_u64;
    let mut feed = |bytes: &[u8]| {
        for &b in bytes {
            hash = (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    for item in index["items"].as_array().unwrap() {
        feed(&[item["label"].as_u64().unwrap() as u8]);
        let image = image::open(dir.join(item["image"].as_str().unwrap())).unwrap();
        feed(image.to_rgb8().as_raw());
        let mask = image::open(dir.join(item["mask"].as_str().unwrap())).unwrap();
        feed(mask.to_luma8().as_raw());
    }
    hash
}

/// The acceptance guard of the shipped model: ≥ 95 % accuracy and a pointing game ≥ 80 % on
/// the README's 500 held-out images, through `vit-lens eval`. Needs python3 with numpy and
/// Pillow at the versions of `scripts/shapes/requirements.txt` (`.ci/run` installs them).
#[test]
fn built_in_model_reaches_95_percent_on_the_readme_held_out_set() {
    let dir = ScratchDir::new(&format!("heldout-{README_SET_SEED}"));
    let count = README_SET_COUNT.to_string();
    let generated = Command::new("python3")
        .args(["scripts/shapes/shapes.py", "--seed", README_SET_SEED])
        .args(["--count", &count, "--size", "224", "--fast-png", "--out"])
        .arg(dir.path())
        .current_dir(root())
        .output();
    let generated = match generated {
        Ok(out) => out,
        Err(e) => panic!(
            "cannot run python3 ({e}); this test needs python3 with numpy and Pillow: \
             python3 -m pip install -r scripts/shapes/requirements.txt"
        ),
    };
    assert!(
        generated.status.success(),
        "scripts/shapes/shapes.py failed (python3 -m pip install -r \
         scripts/shapes/requirements.txt installs what it needs):\n{}",
        String::from_utf8_lossy(&generated.stderr)
    );
    let fingerprint = fingerprint_set(dir.path());
    assert_eq!(
        fingerprint, README_SET_FINGERPRINT,
        "the generator drew a different held-out set (fingerprint {fingerprint:#018x}); \
         numpy and Pillow must be the versions of scripts/shapes/requirements.txt"
    );
    assert_scores(dir.path(), 0.95, 0.8);
}
