//! The `vit-lens` command line, run as a user would.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

use common::{assert_close, fixture_dir, reference, ScratchDir};

/// Runs the CLI; on the CPU backend unless the arguments choose one (the GPU path has its
/// own, looser tolerances and its own tests).
fn vit_lens(args: &[&str]) -> Output {
    let mut args = args.to_vec();
    if !args.contains(&"--backend") {
        args.extend(["--backend", "cpu"]);
    }
    Command::new(env!("CARGO_BIN_EXE_vit-lens"))
        .args(&args)
        .env("RAYON_NUM_THREADS", "1")
        .output()
        .expect("vit-lens runs")
}

fn stdout_json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "vit-lens failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is one JSON object")
}

/// Writes the fixture's first reference image as a `pixel_values` file into `scratch`.
fn reference_pixels(scratch: &ScratchDir, name: &str) -> PathBuf {
    let pixels = &reference(name)["pixel_values"];
    let [_, c, h, w] = pixels.shape[..] else {
        panic!()
    };
    let first = &pixels.data[..c * h * w];
    let bytes: Vec<u8> = first.iter().flat_map(|v| v.to_le_bytes()).collect();
    let view =
        safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![1, c, h, w], &bytes)
            .unwrap();
    let path = scratch.join(&format!("{name}-pixels.safetensors"));
    std::fs::write(
        &path,
        safetensors::serialize([("pixel_values", view)], None).unwrap(),
    )
    .unwrap();
    path
}

fn as_f32(v: &serde_json::Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

#[test]
fn classify_pixels_json_matches_reference() {
    let scratch = ScratchDir::new("cli-reference");
    for name in ["deit_distilled_timm_224", "tiny_vit_timm"] {
        let pixels = reference_pixels(&scratch, name);
        let model = fixture_dir(name);
        let out = vit_lens(&[
            "classify",
            "--model",
            model.to_str().unwrap(),
            "--pixels",
            pixels.to_str().unwrap(),
            "--json",
            "--top",
            "3",
            "--backend",
            "cpu",
        ]);
        let json = stdout_json(&out);
        let reference = reference(name);
        let logits = &reference["logits"];
        let classes = logits.shape[1];
        assert_close(
            &format!("{name} CLI logits"),
            &as_f32(&json["logits"]),
            &logits.data[..classes],
            1e-4,
        );
        let top = json["top"].as_array().unwrap();
        assert_eq!(top.len(), 3);
        // The top class is the arg-max of the reference logits.
        let argmax = (0..classes)
            .max_by(|&a, &b| logits.data[a].total_cmp(&logits.data[b]))
            .unwrap();
        assert_eq!(top[0]["index"].as_u64().unwrap() as usize, argmax);
        assert!(top[0]["label"].is_string());
        let probs: Vec<f64> = top.iter().map(|p| p["prob"].as_f64().unwrap()).collect();
        assert!(probs.windows(2).all(|w| w[0] >= w[1]), "{probs:?}");
        assert_eq!(json["backend"], "cpu");
        assert!(json["timings_ms"]["forward"].as_f64().unwrap() > 0.0);
        let rollout = &json["rollout"];
        let layers = rollout["layers"].as_array().unwrap();
        let expected = &reference["rollout.mean.0.0"];
        assert_eq!(layers.len(), expected.shape[0]);
        let grid: Vec<u64> = rollout["grid"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        assert_eq!((grid[0] * grid[1]) as usize, expected.shape[1]);
        let flat: Vec<f32> = layers.iter().flat_map(as_f32).collect();
        assert_close(&format!("{name} CLI rollout"), &flat, &expected.data, 1e-5);
    }
}

#[test]
fn classify_with_fusion_and_discard() {
    let scratch = ScratchDir::new("cli-fusion");
    let name = "tiny_deit_distilled_hf";
    let pixels = reference_pixels(&scratch, name);
    let model = fixture_dir(name);
    let json = stdout_json(&vit_lens(&[
        "classify",
        "--model",
        model.to_str().unwrap(),
        "--pixels",
        pixels.to_str().unwrap(),
        "--json",
        "--head-fusion",
        "max",
        "--discard-ratio",
        "0.9",
    ]));
    let flat: Vec<f32> = json["rollout"]["layers"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(as_f32)
        .collect();
    assert_close(
        "max/0.9 rollout",
        &flat,
        &reference(name)["rollout.max.0.9"].data,
        1e-5,
    );
    let json = stdout_json(&vit_lens(&[
        "classify",
        "--model",
        model.to_str().unwrap(),
        "--pixels",
        pixels.to_str().unwrap(),
        "--json",
        "--from-distillation-token",
    ]));
    let flat: Vec<f32> = json["rollout"]["layers"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(as_f32)
        .collect();
    assert_close(
        "distillation rollout",
        &flat,
        &reference(name)["rollout_dist.mean.0.0"].data,
        1e-5,
    );
}

#[test]
fn classify_image_writes_pixels_and_png() {
    let scratch = ScratchDir::new("cli-image");
    let model = fixture_dir("vit_hf_224");
    let image = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/images/rgb.png");
    let png = scratch.join("rollout.png");
    let saved = scratch.join("saved-pixels.safetensors");
    let out = vit_lens(&[
        "classify",
        "--model",
        model.to_str().unwrap(),
        "--image",
        image.to_str().unwrap(),
        "--rollout-png",
        png.to_str().unwrap(),
        "--save-pixels",
        saved.to_str().unwrap(),
        "--layer",
        "1",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("rollout of layer 1/2"), "{text}");
    let heatmap = image::open(&png).expect("a PNG").to_rgba8();
    assert_eq!(heatmap.dimensions(), (224, 224));
    // Feeding the saved pixels back gives the same answer as the image did.
    let from_image = stdout_json(&vit_lens(&[
        "classify",
        "--model",
        model.to_str().unwrap(),
        "--image",
        image.to_str().unwrap(),
        "--json",
    ]));
    let from_pixels = stdout_json(&vit_lens(&[
        "classify",
        "--model",
        model.to_str().unwrap(),
        "--pixels",
        saved.to_str().unwrap(),
        "--json",
    ]));
    assert_close(
        "saved pixels",
        &as_f32(&from_pixels["logits"]),
        &as_f32(&from_image["logits"]),
        1e-6,
    );
}

#[track_caller]
fn assert_fails(args: &[&str], needle: &str) {
    let out = vit_lens(args);
    assert!(!out.status.success(), "{args:?} should fail");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.contains(needle),
        "{stderr:?} should contain {needle:?}"
    );
}

#[test]
fn errors_are_one_clear_line() {
    let scratch = ScratchDir::new("cli-errors");
    let model = fixture_dir("tiny_vit_hf");
    let model = model.to_str().unwrap();
    let images = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/images");
    assert_fails(
        &["classify", "--model", "/nonexistent/model", "--pixels", "x"],
        "does not exist",
    );
    assert_fails(
        &[
            "classify",
            "--model",
            model,
            "--pixels",
            "/nonexistent.safetensors",
        ],
        "cannot read",
    );
    let not_an_image = images.join("random.bin");
    assert_fails(
        &[
            "classify",
            "--model",
            model,
            "--image",
            not_an_image.to_str().unwrap(),
        ],
        "cannot use the image",
    );
    let pixels = reference_pixels(&scratch, "tiny_vit_hf");
    assert_fails(
        &[
            "classify",
            "--model",
            model,
            "--pixels",
            pixels.to_str().unwrap(),
            "--layer",
            "9",
        ],
        "--layer must be between 1 and 2",
    );
    assert_fails(
        &[
            "classify",
            "--model",
            model,
            "--pixels",
            pixels.to_str().unwrap(),
            "--discard-ratio",
            "1.5",
        ],
        "--discard-ratio",
    );
    assert_fails(
        &[
            "classify",
            "--model",
            model,
            "--pixels",
            pixels.to_str().unwrap(),
            "--from-distillation-token",
        ],
        "distilled",
    );
    // A checkpoint directory whose weights are cut short.
    let broken = scratch.join("broken-model");
    std::fs::create_dir_all(&broken).unwrap();
    let dir = fixture_dir("tiny_vit_hf");
    std::fs::copy(dir.join("config.json"), broken.join("config.json")).unwrap();
    let weights = std::fs::read(dir.join("model.safetensors")).unwrap();
    std::fs::write(
        broken.join("model.safetensors"),
        &weights[..weights.len() - 100],
    )
    .unwrap();
    assert_fails(
        &[
            "classify",
            "--model",
            broken.to_str().unwrap(),
            "--pixels",
            pixels.to_str().unwrap(),
        ],
        "truncated",
    );
    // Pixels of the wrong shape.
    let wrong = scratch.join("wrong-pixels.safetensors");
    let view =
        safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![3, 4], &[0u8; 48])
            .unwrap();
    std::fs::write(
        &wrong,
        safetensors::serialize([("pixel_values", view)], None).unwrap(),
    )
    .unwrap();
    assert_fails(
        &[
            "classify",
            "--model",
            model,
            "--pixels",
            wrong.to_str().unwrap(),
        ],
        "[3, 4]",
    );
}

#[test]
fn bench_reports_json() {
    let model = fixture_dir("tiny_deit_distilled_timm");
    let json = stdout_json(&vit_lens(&[
        "bench",
        "--model",
        model.to_str().unwrap(),
        "--runs",
        "3",
        "--warmup",
        "1",
        "--threads",
        "1",
        "--batch",
        "2",
        "--json",
        "--backend",
        "cpu",
    ]));
    for key in ["median_ms", "min_ms", "max_ms", "first_ms"] {
        assert!(json[key].as_f64().unwrap() > 0.0, "{key}");
    }
    assert!(json["min_ms"].as_f64() <= json["median_ms"].as_f64());
    assert!(json["median_ms"].as_f64() <= json["max_ms"].as_f64());
    assert_eq!(json["runs"], 3);
    assert_eq!(json["batch"], 2);
    assert_eq!(json["threads"], 1);
    assert_eq!(json["backend"], "cpu");
    assert!(json["adapter"].is_null());
}

/// `--backend gpu` (Mesa's lavapipe in CI) gives the CPU's answer, and says which adapter ran.
#[test]
fn gpu_backend_matches_cpu_backend() {
    let scratch = ScratchDir::new("cli-gpu");
    let name = "deit_distilled_timm_224";
    let pixels = reference_pixels(&scratch, name);
    let model = fixture_dir(name);
    let run = |backend: &str| {
        stdout_json(&vit_lens(&[
            "classify",
            "--model",
            model.to_str().unwrap(),
            "--pixels",
            pixels.to_str().unwrap(),
            "--json",
            "--backend",
            backend,
        ]))
    };
    let (gpu, cpu) = (run("gpu"), run("cpu"));
    assert_eq!(gpu["backend"], "gpu");
    assert!(gpu["adapter"]["name"].is_string(), "{}", gpu["adapter"]);
    assert_eq!(cpu["backend"], "cpu");
    assert_close(
        "gpu vs cpu logits",
        &as_f32(&gpu["logits"]),
        &as_f32(&cpu["logits"]),
        1e-3,
    );
    let indices = |j: &serde_json::Value| -> Vec<u64> {
        j["top"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["index"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(indices(&gpu), indices(&cpu));
    let bench = stdout_json(&vit_lens(&[
        "bench",
        "--model",
        model.to_str().unwrap(),
        "--runs",
        "2",
        "--warmup",
        "1",
        "--json",
        "--backend",
        "gpu",
    ]));
    assert_eq!(bench["backend"], "gpu");
    assert!(bench["setup_ms"].as_f64().unwrap() > 0.0);
}

/// `eval` scores a labelled set: accuracy from the same predictions `classify` makes, and the
/// rollout's localization when masks are given.
#[test]
fn eval_scores_a_labelled_set() {
    let scratch = ScratchDir::new("cli-eval");
    let model = fixture_dir("vit_hf_224");
    let images = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/images");
    let data = scratch.join("eval-set");
    std::fs::create_dir_all(&data).unwrap();
    let files = ["rgb.png", "gray.png", "lossless.webp"];
    let mut predicted = Vec::new();
    for file in files {
        std::fs::copy(images.join(file), data.join(file)).unwrap();
        let json = stdout_json(&vit_lens(&[
            "classify",
            "--model",
            model.to_str().unwrap(),
            "--image",
            data.join(file).to_str().unwrap(),
            "--json",
        ]));
        predicted.push(json["top"][0]["label"].as_str().unwrap().to_string());
    }
    // A white square in the middle of a black mask, for the first image.
    let mask = image::GrayImage::from_fn(320, 240, |x, y| {
        image::Luma([if (120..200).contains(&x) && (80..160).contains(&y) {
            255
        } else {
            0
        }])
    });
    mask.save(data.join("mask.png")).unwrap();
    // Classes of the set: the model's own labels; the last image is labelled wrongly on purpose.
    let classes: Vec<String> = load_labels(&model);
    let label_of = |name: &str| classes.iter().position(|c| c == name).unwrap();
    let wrong = (label_of(&predicted[2]) + 1) % classes.len();
    let index = serde_json::json!({
        "classes": classes,
        "items": [
            {"image": files[0], "label": label_of(&predicted[0]), "mask": "mask.png"},
            {"image": files[1], "label": label_of(&predicted[1])},
            {"image": files[2], "label": wrong},
        ]
    });
    std::fs::write(data.join("index.json"), index.to_string()).unwrap();
    let json = stdout_json(&vit_lens(&[
        "eval",
        "--model",
        model.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(json["images"], 3);
    assert!(
        (json["accuracy"].as_f64().unwrap() - 2.0 / 3.0).abs() < 1e-9,
        "{json}"
    );
    assert_eq!(json["misclassified"].as_array().unwrap().len(), 1);
    assert_eq!(json["masked_images"], 1);
    let pointing = json["pointing_game"].as_f64().unwrap();
    assert!(pointing == 0.0 || pointing == 1.0);
    let area = json["mask_area_fraction"].as_f64().unwrap();
    // 80×80 of 320×240, resized to 224×224 (nearest), is 1/12 of the crop.
    assert!((area - 1.0 / 12.0).abs() < 0.01, "{area}");
    let mass = json["rollout_mass_in_mask"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&mass));
    // A set naming a class the model lacks is refused.
    let bad = serde_json::json!({"classes": ["no-such-class"], "items": [{"image": files[0], "label": 0}]});
    std::fs::write(data.join("index.json"), bad.to_string()).unwrap();
    assert_fails(
        &[
            "eval",
            "--model",
            model.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
        ],
        "no class named",
    );
}

fn load_labels(model: &std::path::Path) -> Vec<String> {
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(model.join("config.json")).unwrap()).unwrap();
    let map = config["id2label"].as_object().unwrap();
    (0..map.len())
        .map(|i| map[&i.to_string()].as_str().unwrap().to_string())
        .collect()
}

/// `auto` takes a hardware GPU, else the CPU with the reason (on CI's lavapipe: a software
/// adapter, which is slower than the CPU engine).
#[test]
fn auto_backend_explains_its_choice() {
    let scratch = ScratchDir::new("cli-auto");
    let name = "tiny_vit_hf";
    let pixels = reference_pixels(&scratch, name);
    let model = fixture_dir(name);
    let json = stdout_json(&vit_lens(&[
        "classify",
        "--model",
        model.to_str().unwrap(),
        "--pixels",
        pixels.to_str().unwrap(),
        "--json",
        "--backend",
        "auto",
    ]));
    match json["backend"].as_str().unwrap() {
        "gpu" => assert_eq!(json["adapter"]["fallback"], false, "{json}"),
        "cpu" => {
            let reason = json["fallback_reason"]
                .as_str()
                .expect("a reason for the CPU");
            assert!(!reason.is_empty());
            if json["adapter"].is_null() && reason.contains("software") {
                assert!(reason.contains("slower than the CPU"), "{reason}");
            }
        }
        other => panic!("unknown backend {other}"),
    }
}

/// tests/fixtures/explain/{name}.safetensors: what PyTorch computed for the explanations.
fn explain_reference(
    name: &str,
) -> std::collections::HashMap<String, vit_lens::checkpoint::WeightTensor> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/explain")
        .join(format!("{name}.safetensors"));
    let bytes = std::fs::read(path).unwrap();
    vit_lens::checkpoint::read_safetensors(&bytes)
        .unwrap()
        .tensors
}

/// `vit-lens explain --json` against PyTorch autograd (tests/fixtures/explain, made by
/// tests/fixtures/make_explain_reference.py): the Chefer maps of every layer within 1e-3 of
/// the row maximum and the occlusion map within 2e-4, for the lower-ranked reference class.
#[test]
fn explain_prints_the_maps_pytorch_computes() {
    let scratch = ScratchDir::new("cli-explain");
    let name = "tiny_vit_hf";
    let pixels = reference_pixels(&scratch, name);
    let want = explain_reference(name);
    let class = want["classes"].data[1] as usize;
    let model = fixture_dir(name);
    let out = Command::new(env!("CARGO_BIN_EXE_vit-lens"))
        .args(["explain", "--model", model.to_str().unwrap()])
        .args(["--pixels", pixels.to_str().unwrap()])
        .args(["--class", &class.to_string(), "--json"])
        .env("RAYON_NUM_THREADS", "1")
        .output()
        .expect("vit-lens runs");
    let json = stdout_json(&out);
    assert_eq!(json["class"], class);
    let chefer = json["maps"]["chefer"].as_array().unwrap();
    assert_eq!(chefer.len(), 2, "one map per layer");
    // chefer.{r}: (layers, patches) for the r-th reference class.
    let reference = &want["chefer.1"];
    let patches = reference.shape[1];
    for (layer, map) in chefer.iter().enumerate() {
        let row = &reference.data[layer * patches..(layer + 1) * patches];
        let max = row.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert_close(
            &format!("chefer layer {layer}"),
            &as_f32(map),
            row,
            1e-3 * max,
        );
    }
    let occlusion = &want["occlusion.1"].data;
    assert_close("occlusion", &as_f32(&json["occlusion"]), occlusion, 2e-4);
    for method in ["rollout", "chefer", "grad_rollout", "occlusion", "random"] {
        let curve = &json["faithfulness"][method];
        assert_eq!(curve["deletion"].as_array().unwrap().len(), 17, "{method}");
        assert!(curve["insertion_auc"].as_f64().is_some(), "{method}");
    }
    let lens = json["logit_lens"].as_array().unwrap();
    assert_eq!(lens.len(), 2);
    assert_eq!(lens[0].as_array().unwrap().len(), 5);

    // A class the model does not have: one error line, exit code 1.
    let out = Command::new(env!("CARGO_BIN_EXE_vit-lens"))
        .args(["explain", "--model", model.to_str().unwrap()])
        .args(["--pixels", pixels.to_str().unwrap(), "--class", "99"])
        .output()
        .expect("vit-lens runs");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error:") && stderr.contains("99"),
        "{stderr}"
    );
}

/// `vit-lens explain --heads-off` and `--hide` against PyTorch: the class probabilities with a
/// set of heads zeroed (their slice of the attention context, before the output projection),
/// and p_c with one patch token dropped, equal to p_c(full) − occlusion[i].
#[test]
fn explain_what_if_matches_pytorch_interventions() {
    let scratch = ScratchDir::new("cli-what-if");
    let name = "tiny_vit_hf";
    let pixels = reference_pixels(&scratch, name);
    let want = explain_reference(name);
    let model = fixture_dir(name);
    let run = |extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_vit-lens"))
            .args(["explain", "--model", model.to_str().unwrap()])
            .args([
                "--pixels",
                pixels.to_str().unwrap(),
                "--no-interventions",
                "--json",
            ])
            .args(extra)
            .env("RAYON_NUM_THREADS", "1")
            .output()
            .expect("vit-lens runs");
        stdout_json(&out)
    };
    let prob_of = |json: &serde_json::Value, class: usize| -> f32 {
        json["what_if"]["top"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["index"] == class)
            .map(|p| p["prob"].as_f64().unwrap() as f32)
            .expect("class in the top 5")
    };

    // Heads off: the reference's set, as LAYER:HEAD pairs.
    let heads = &want["knockout_set_heads"].data;
    let pairs: Vec<String> = heads
        .chunks(2)
        .map(|p| format!("{}:{}", p[0] as usize, p[1] as usize))
        .collect();
    let json = run(&["--heads-off", &pairs.join(",")]);
    let logits = &want["knockout_set"].data;
    let probs = vit_lens::analysis::softmax(logits);
    for (class, &p) in probs.iter().enumerate() {
        assert!((prob_of(&json, class) - p).abs() < 1e-4, "class {class}");
    }

    // One patch hidden: p_c falls by the occlusion value PyTorch measured.
    let class = want["classes"].data[0] as usize;
    let full = run(&["--class", &class.to_string(), "--hide", "5"]);
    let p_full = full["prob"].as_f64().unwrap() as f32;
    let drop = want["occlusion.0"].data[5];
    assert!((prob_of(&full, class) - (p_full - drop)).abs() < 2e-4);
}
