//! `vit_lens::explain` against PyTorch autograd and interventions in transformers / timm
//! (tests/fixtures/make_explain_reference.py), on image 0 of each fixture's own inputs.
//!
//! Tolerances: gradients ≤ 1e-4 of each layer's largest |∂y_c/∂A|; Chefer and gradient
//! rollout maps ≤ 1e-3 of each layer's largest value; logit-lens probabilities ≤ 1e-4 with the
//! same top 5; occlusion and faithfulness probabilities ≤ 2e-4; logits ≤ 1e-4.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use common::{assert_close, load_fixture, max_abs_diff, reference};
use vit_lens::analysis::softmax;
use vit_lens::checkpoint::{read_safetensors, WeightTensor};
use vit_lens::explain::{
    chefer, explain, grad_rollout, random_order, step_count, trapezoid, Embedded, ExplainError,
    ExplainModel, ExplainOptions, HeadId, Intervention, Trace, DEFAULT_CURVE_STEPS,
};

const LOGIT_TOL: f32 = 1e-4;
const GRAD_REL_TOL: f32 = 1e-4;
const MAP_REL_TOL: f32 = 1e-3;
const LENS_TOL: f32 = 1e-4;
const PROB_TOL: f32 = 2e-4;

const TINY: [&str; 5] = [
    "tiny_vit_hf",
    "tiny_vit_timm",
    "tiny_deit_hf",
    "tiny_deit_distilled_hf",
    "tiny_deit_distilled_timm",
];
const REAL: [&str; 2] = ["vit_hf_224", "deit_distilled_timm_224"];

fn explain_reference(name: &str) -> HashMap<String, WeightTensor> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/explain")
        .join(format!("{name}.safetensors"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    read_safetensors(&bytes).expect("reference parses").tensors
}

/// Image 0 of the fixture's reference inputs, (1, 3, S, S).
fn image0(name: &str) -> Tensor {
    let pixels = &reference(name)["pixel_values"];
    let [_, c, h, w] = pixels.shape[..] else {
        panic!("pixel_values should be 4-D");
    };
    Tensor::from_slice(&pixels.data[..c * h * w], (1, c, h, w), &Device::Cpu).expect("tensor")
}

struct Case {
    name: &'static str,
    model: ExplainModel,
    embedded: Embedded,
    trace: Trace,
    reference: HashMap<String, WeightTensor>,
    classes: [usize; 2],
}

fn case(name: &'static str) -> Case {
    let model = ExplainModel::new(&load_fixture(name)).expect("model");
    let embedded = model.embed(&image0(name)).expect("embed");
    let trace = model.trace(&embedded).expect("trace");
    let reference = explain_reference(name);
    let classes = &reference["classes"].data;
    let classes = [classes[0] as usize, classes[1] as usize];
    Case {
        name,
        model,
        embedded,
        trace,
        reference,
        classes,
    }
}

impl Case {
    fn get(&self, key: &str) -> &[f32] {
        &self
            .reference
            .get(key)
            .unwrap_or_else(|| panic!("{}: no `{key}` in the reference", self.name))
            .data
    }
}

/// max |ours − reference| ≤ tol · max |reference|, per chunk of `len` values (a layer or a row).
#[track_caller]
fn assert_relative(what: &str, ours: &[f32], expected: &[f32], len: usize, tol: f32) {
    assert_eq!(ours.len(), expected.len(), "{what}: lengths");
    for (i, (o, e)) in ours.chunks(len).zip(expected.chunks(len)).enumerate() {
        let scale = e.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let diff = max_abs_diff(o, e);
        assert!(
            diff <= tol * scale.max(1e-6),
            "{what} [{i}]: max |diff| {diff:e} > {tol:e} × max |ref| {scale:e}"
        );
    }
}

#[test]
fn logits_match_the_libraries() {
    for name in TINY.iter().chain(&REAL) {
        let c = case(name);
        assert_close(
            &format!("{name} logits"),
            &c.trace.logits,
            c.get("logits"),
            LOGIT_TOL,
        );
    }
}

#[test]
fn attention_gradients_match_autograd() {
    for name in TINY.iter().chain(&REAL) {
        let c = case(name);
        let prefix = c.embedded.prefix_tokens;
        for (r, &class) in c.classes.iter().enumerate() {
            let grads = c.model.attention_gradients(&c.trace, class).expect("grads");
            assert_eq!(grads.len(), c.model.config().num_layers);
            for (l, g) in grads.iter().enumerate() {
                let what = format!("{name} class {class} layer {l} gradient");
                if let Some(full) = c.reference.get(&format!("grad.{r}.{l}")) {
                    assert_relative(&what, &g.data, &full.data, g.data.len(), GRAD_REL_TOL);
                } else {
                    let t = g.tokens;
                    let rows: Vec<f32> = g
                        .data
                        .chunks(t * t)
                        .flat_map(|plane| plane[..prefix * t].to_vec())
                        .collect();
                    let expected = c.get(&format!("grad_prefix.{r}.{l}"));
                    assert_relative(&what, &rows, expected, rows.len(), GRAD_REL_TOL);
                }
            }
        }
    }
}

#[test]
fn chefer_and_gradient_rollout_match_the_reference() {
    for name in TINY.iter().chain(&REAL) {
        let c = case(name);
        let attentions = c.model.attentions(&c.trace).expect("attentions");
        let prefix = c.embedded.prefix_tokens;
        let n = c.embedded.patches();
        for (r, &class) in c.classes.iter().enumerate() {
            let grads = c.model.attention_gradients(&c.trace, class).expect("grads");
            let maps = chefer(&attentions, &grads, prefix).expect("chefer");
            assert_relative(
                &format!("{name} class {class} chefer"),
                &maps.concat(),
                c.get(&format!("chefer.{r}")),
                n,
                MAP_REL_TOL,
            );
            for ratio in ["0.0", "0.9"] {
                let maps = grad_rollout(&attentions, &grads, prefix, ratio.parse().expect("ratio"))
                    .expect("grad rollout");
                assert_relative(
                    &format!("{name} class {class} grad_rollout {ratio}"),
                    &maps.concat(),
                    c.get(&format!("grad_rollout.{r}.{ratio}")),
                    n,
                    MAP_REL_TOL,
                );
            }
        }
    }
}

#[test]
fn maps_differ_between_classes() {
    let c = case("tiny_deit_distilled_timm");
    let attentions = c.model.attentions(&c.trace).expect("attentions");
    let prefix = c.embedded.prefix_tokens;
    let [a, b] = c.classes.map(|class| {
        let grads = c.model.attention_gradients(&c.trace, class).expect("grads");
        (
            chefer(&attentions, &grads, prefix).expect("chefer"),
            grad_rollout(&attentions, &grads, prefix, 0.0).expect("grad rollout"),
        )
    });
    let last = |maps: &Vec<Vec<f32>>| maps.last().expect("layers").clone();
    let chefer_gap = max_abs_diff(&last(&a.0), &last(&b.0));
    let grad_gap = max_abs_diff(&last(&a.1), &last(&b.1));
    let chefer_scale = last(&a.0).iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(
        chefer_gap > 0.1 * chefer_scale,
        "chefer maps of classes {:?} barely differ: {chefer_gap:e} (scale {chefer_scale:e})",
        c.classes
    );
    assert!(
        grad_gap > 1e-3,
        "gradient rollout maps barely differ: {grad_gap:e}"
    );
}

#[test]
fn logit_lens_matches_the_reference() {
    for name in TINY.iter().chain(&REAL) {
        let c = case(name);
        let lens = c.model.logit_lens(&c.trace, c.classes[0], 5).expect("lens");
        let expected = c.get("lens_probs");
        let classes = c.model.config().num_classes;
        let lens_logits = c.model.lens_logits(&c.trace).expect("lens logits");
        for (l, (layer, logits)) in lens.iter().zip(&lens_logits).enumerate() {
            let want = &expected[l * classes..(l + 1) * classes];
            assert_close(
                &format!("{name} lens layer {l}"),
                &softmax(logits),
                want,
                LENS_TOL,
            );
            let mut order: Vec<usize> = (0..classes).collect();
            order.sort_by(|&a, &b| want[b].total_cmp(&want[a]).then(a.cmp(&b)));
            let ours: Vec<usize> = layer.top.iter().map(|p| p.index).collect();
            assert_eq!(ours, order[..5.min(classes)], "{name} lens layer {l} top 5");
            assert!((layer.class_prob - want[c.classes[0]]).abs() <= LENS_TOL);
        }
        // The last layer's lens is the model's output.
        assert_eq!(lens_logits.last().expect("layers"), &c.trace.logits);
    }
}

#[test]
fn occlusion_matches_token_dropping_in_pytorch() {
    for name in TINY.iter().chain(&REAL) {
        let c = case(name);
        for (r, &class) in c.classes.iter().enumerate() {
            let ours = c.model.occlusion(&c.embedded, class, 7).expect("occlusion");
            assert_close(
                &format!("{name} class {class} occlusion"),
                &ours,
                c.get(&format!("occlusion.{r}")),
                PROB_TOL,
            );
        }
    }
}

#[test]
fn head_knockout_matches_zeroed_context_in_pytorch() {
    for name in TINY.iter().chain(&REAL) {
        let c = case(name);
        let cfg = c.model.config();
        let (layers, heads) = (cfg.num_layers, cfg.num_heads);
        for layer in 0..layers {
            let off: Vec<HeadId> = (0..heads).map(|head| HeadId { layer, head }).collect();
            let logits = c.model.knockout(&c.embedded, &off).expect("knockout");
            let expected = c.get(&format!("knockout_layer.{layer}"));
            assert_close(
                &format!("{name} layer {layer} off"),
                &logits,
                expected,
                LOGIT_TOL,
            );
            // Knocking a whole layer out changes the logits, consistently with the reference.
            let change = max_abs_diff(&logits, &c.trace.logits);
            let expected_change = max_abs_diff(expected, c.get("logits"));
            assert!(change > 1e-3, "{name}: layer {layer} off changes nothing");
            assert!((change - expected_change).abs() <= 2.0 * LOGIT_TOL);
        }
        let set = c.get("knockout_set_heads");
        let off: Vec<HeadId> = set
            .chunks(2)
            .map(|p| HeadId {
                layer: p[0] as usize,
                head: p[1] as usize,
            })
            .collect();
        let logits = c.model.knockout(&c.embedded, &off).expect("knockout");
        assert_close(
            &format!("{name} head set {off:?} off"),
            &logits,
            c.get("knockout_set"),
            LOGIT_TOL,
        );

        let class = c.classes[0];
        let effects = c
            .model
            .head_effects(&c.embedded, class, 4)
            .expect("effects");
        let singles = c.get("knockout_single");
        let classes = cfg.num_classes;
        let full = c.get("logits")[class];
        for (layer, row) in effects.effects.iter().enumerate() {
            for (head, &effect) in row.iter().enumerate() {
                let expected = full - singles[(layer * heads + head) * classes + class];
                assert!(
                    (effect - expected).abs() <= 2.0 * LOGIT_TOL,
                    "{name} head ({layer}, {head}) effect {effect} vs {expected}"
                );
            }
        }
        assert_eq!(effects.ranking.len(), layers * heads);
        assert!(effects
            .ranking
            .windows(2)
            .all(|w| w[0].effect >= w[1].effect));
    }
}

#[test]
fn random_order_faithfulness_matches_pytorch() {
    for name in TINY.iter().chain(&REAL) {
        let c = case(name);
        let n = c.embedded.patches();
        let order = random_order(n, 2021);
        let expected: Vec<usize> = c.get("random_order").iter().map(|&v| v as usize).collect();
        assert_eq!(order, expected, "{name}: splitmix64 Fisher–Yates order");
        let curves = c
            .model
            .faithfulness(
                &c.embedded,
                c.classes[0],
                &[("random".to_string(), order)],
                DEFAULT_CURVE_STEPS,
                5,
            )
            .expect("faithfulness");
        let curve = &curves[0];
        assert_eq!(curve.deletion.len(), DEFAULT_CURVE_STEPS + 1);
        assert_close(
            &format!("{name} deletion"),
            &curve.deletion,
            c.get("faith_random.deletion"),
            PROB_TOL,
        );
        assert_close(
            &format!("{name} insertion"),
            &curve.insertion,
            c.get("faith_random.insertion"),
            PROB_TOL,
        );
        assert!((curve.deletion_auc - trapezoid(c.get("faith_random.deletion"))).abs() < PROB_TOL);
    }
}

#[test]
fn explain_puts_it_all_together() {
    let name = "deit_distilled_timm_224";
    let checkpoint = load_fixture(name);
    let options = ExplainOptions::default();
    let e = explain(&checkpoint, &image0(name), None, &options).expect("explain");
    // The web worker sends it to the page as JSON: it comes back unchanged.
    let json = serde_json::to_string(&e).expect("to JSON");
    let back: vit_lens::explain::Explanation = serde_json::from_str(&json).expect("from JSON");
    assert_eq!(back, e);
    let reference = explain_reference(name);
    let top1 = reference["classes"].data[0] as usize;
    assert_eq!(e.class, top1);
    assert_eq!(e.predictions[0].index, top1);
    assert_eq!(e.patch_grid, (14, 14));
    let (layers, n) = (checkpoint.config.num_layers, 196);
    for maps in [&e.rollout, &e.chefer, &e.grad_rollout] {
        assert_eq!(maps.len(), layers);
        assert!(maps.iter().all(|m| m.len() == n));
    }
    assert_eq!(e.logit_lens.len(), layers);
    let last = e.logit_lens.last().expect("layers");
    assert_eq!(last.top[0].index, e.class);
    assert!((last.class_prob - e.prob).abs() < 1e-6);
    assert_eq!(e.occlusion.as_ref().map(Vec::len), Some(n));

    let curves = e.faithfulness.as_ref().expect("curves");
    let names: Vec<&str> = curves.iter().map(|c| c.order.as_str()).collect();
    assert_eq!(
        names,
        ["rollout", "chefer", "grad_rollout", "occlusion", "random"]
    );
    for curve in curves {
        assert_eq!(curve.deletion.len(), 17);
        // All patches, then none: both curves start / end at the same two points.
        assert!((curve.deletion[0] - e.prob).abs() < 1e-6);
        assert!((curve.insertion[16] - e.prob).abs() < 1e-6);
        assert_eq!(curve.deletion[16], curves[0].insertion[0]);
        assert_eq!(curve.insertion[0], curves[0].insertion[0]);
    }
    // Deleting the patches occlusion ranks first hurts more than deleting random ones.
    let auc = |order: &str| {
        curves
            .iter()
            .find(|c| c.order == order)
            .map(|c| c.deletion_auc)
            .expect("curve")
    };
    assert!(auc("occlusion") < auc("random"));

    let heads = e.head_effects.as_ref().expect("heads");
    assert_eq!(heads.ranking.len(), layers * checkpoint.config.num_heads);

    let json = serde_json::to_value(&e).expect("serializes");
    assert_eq!(json["class"], top1);
    assert_eq!(json["faithfulness"][4]["order"], "random");

    // Another class, and the lower-level pieces switched off.
    let lower = reference["classes"].data[1] as usize;
    let options = ExplainOptions {
        occlusion: false,
        head_effects: false,
        faithfulness: false,
        ..ExplainOptions::default()
    };
    let other = explain(&checkpoint, &image0(name), Some(lower), &options).expect("explain");
    assert_eq!(other.class, lower);
    assert!(other.occlusion.is_none() && other.faithfulness.is_none());
    assert_eq!(
        other.rollout, e.rollout,
        "rollout does not depend on the class"
    );
    assert_ne!(other.chefer, e.chefer);
}

#[test]
fn interventions_compose_with_token_dropping() {
    // Dropping no patch is the full model; dropping a set equals keeping its complement.
    let c = case("tiny_vit_hf");
    let n = c.embedded.patches();
    let passes = [
        Intervention::default(),
        Intervention::drop_patches(n, &[]),
        Intervention::drop_patches(n, &[3, 7, 11]),
        Intervention::keep_patches(
            &(0..n)
                .filter(|p| ![3, 7, 11].contains(p))
                .collect::<Vec<_>>(),
        ),
    ];
    let logits = c.model.run(&c.embedded, &passes, 3).expect("run");
    assert_close("full", &logits[0], &c.trace.logits, 1e-6);
    assert_close("drop none", &logits[1], &c.trace.logits, 1e-6);
    assert_close("drop = keep complement", &logits[2], &logits[3], 1e-6);
    assert_eq!(step_count(16, n, 16), n);
}

#[test]
fn bad_inputs_are_errors() {
    let name = "tiny_vit_hf";
    let checkpoint = load_fixture(name);
    let model = ExplainModel::new(&checkpoint).expect("model");
    let wrong_size =
        Tensor::zeros((1, 3, 48, 48), candle_core::DType::F32, &Device::Cpu).expect("tensor");
    let err = model.embed(&wrong_size).expect_err("48 px is not native");
    assert!(err.to_string().contains("native"), "{err}");
    let options = ExplainOptions::default();
    let err = explain(&checkpoint, &image0(name), Some(99), &options).expect_err("class");
    assert!(
        matches!(
            err,
            ExplainError::ClassOutOfRange {
                class: 99,
                classes: 5
            }
        ),
        "{err}"
    );
    let bad = ExplainOptions {
        discard_ratio: 1.0,
        ..ExplainOptions::default()
    };
    assert!(explain(&checkpoint, &image0(name), None, &bad).is_err());

    let embedded = model.embed(&image0(name)).expect("embed");
    let err = model
        .knockout(&embedded, &[HeadId { layer: 2, head: 0 }])
        .expect_err("layer 2 of 2");
    assert!(matches!(err, ExplainError::HeadOutOfRange { .. }), "{err}");
    let err = model
        .run(&embedded, &[Intervention::keep_patches(&[16])], 1)
        .expect_err("patch 16 of 16");
    assert!(
        matches!(
            err,
            ExplainError::PatchOutOfRange {
                patch: 16,
                patches: 16
            }
        ),
        "{err}"
    );
    let err = model
        .faithfulness(&embedded, 0, &[("short".to_string(), vec![0, 1])], 16, 4)
        .expect_err("not a permutation");
    assert!(err.to_string().contains("permutation"), "{err}");
}
