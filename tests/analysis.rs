//! Tests of `vit_lens::analysis`: rollout against an independent torch
//! reference (tests/fixtures/make_analysis_reference.py), hand-computed
//! cases, softmax, top-k and every error.

use serde::Deserialize;
use vit_lens::analysis::{
    query_attention, rollout, softmax, top_k, AnalysisError, HeadFusion, LayerAttention,
    RolloutOptions,
};

const REFERENCE_TOLERANCE: f32 = 1e-6;
const HAND_TOLERANCE: f32 = 1e-6;

#[derive(Deserialize)]
struct Reference {
    cases: Vec<ReferenceCase>,
}

#[derive(Deserialize)]
struct ReferenceCase {
    name: String,
    layers: usize,
    heads: usize,
    tokens: usize,
    prefix_tokens: usize,
    /// (layers) × flat (heads, tokens, tokens).
    attention: Vec<Vec<f32>>,
    expected: Vec<ReferenceRollout>,
}

#[derive(Deserialize)]
struct ReferenceRollout {
    head_fusion: HeadFusion,
    discard_ratio: f32,
    start_token: usize,
    cls_self_among_discarded: bool,
    /// (layers) × (tokens - prefix_tokens), computed in f64.
    maps: Vec<Vec<f64>>,
}

fn load_reference() -> Reference {
    serde_json::from_str(include_str!("fixtures/analysis/rollout_reference.json"))
        .expect("reference fixture parses")
}

/// One layer whose heads are the given `tokens×tokens` matrices (rows of rows).
fn layer(heads: &[&[&[f32]]]) -> LayerAttention {
    let tokens = heads[0].len();
    let data: Vec<f32> = heads
        .iter()
        .flat_map(|h| h.iter().flat_map(|r| r.iter().copied()))
        .collect();
    LayerAttention::new(heads.len(), tokens, data).expect("valid layer")
}

fn assert_close(found: &[f32], expected: &[f32], tolerance: f32, what: &str) {
    assert_eq!(found.len(), expected.len(), "{what}: length");
    for (i, (f, e)) in found.iter().zip(expected).enumerate() {
        assert!(
            (f - e).abs() <= tolerance,
            "{what}[{i}]: found {f}, expected {e} (diff {})",
            (f - e).abs()
        );
    }
}

fn opts(head_fusion: HeadFusion, discard_ratio: f32, start_token: usize) -> RolloutOptions {
    RolloutOptions {
        head_fusion,
        discard_ratio,
        start_token,
    }
}

#[test]
fn rollout_matches_torch_reference() {
    let reference = load_reference();
    assert_eq!(reference.cases.len(), 2);
    let mut worst = 0.0f64;
    let mut saw_cls_self_discard = false;
    for case in &reference.cases {
        assert_eq!(case.attention.len(), case.layers);
        let layers: Vec<LayerAttention> = case
            .attention
            .iter()
            .map(|data| LayerAttention::new(case.heads, case.tokens, data.clone()).expect("valid"))
            .collect();
        assert_eq!(case.expected.len(), 8);
        for expected in &case.expected {
            saw_cls_self_discard |= expected.cls_self_among_discarded;
            let options = opts(
                expected.head_fusion,
                expected.discard_ratio,
                expected.start_token,
            );
            let maps = rollout(&layers, case.prefix_tokens, &options).expect("rollout");
            assert_eq!(maps.len(), case.layers);
            for (l, (map, want)) in maps.iter().zip(&expected.maps).enumerate() {
                assert_eq!(map.len(), case.tokens - case.prefix_tokens);
                for (j, (&found, &want)) in map.iter().zip(want).enumerate() {
                    let diff = (f64::from(found) - want).abs();
                    worst = worst.max(diff);
                    assert!(
                        diff <= f64::from(REFERENCE_TOLERANCE),
                        "{} {options:?} layer {l} patch {j}: found {found}, expected {want}",
                        case.name
                    );
                }
            }
        }
    }
    assert!(
        saw_cls_self_discard,
        "fixture exercises the (0,0) exemption"
    );
    println!("worst |rollout - reference| = {worst:e}");
}

#[test]
fn reference_maps_change_with_options() {
    // Guards against a reference where every setting gives the same numbers.
    let reference = load_reference();
    let case = &reference.cases[1];
    let first = &case.expected[0].maps;
    assert!(case.expected[1..].iter().all(|e| &e.maps != first));
}

#[test]
fn uniform_attention_rolls_out_uniformly() {
    // W = J/T is a projection P, so A = (P + I)/2 and A^l = (I + (2^l − 1) P)/2^l:
    // every off-diagonal entry of the layer-l rollout is (1 − 2^−l)/T.
    let tokens = 5;
    let heads = 2;
    let data = vec![1.0 / tokens as f32; heads * tokens * tokens];
    let layers = vec![LayerAttention::new(heads, tokens, data).expect("valid"); 4];
    for fusion in HeadFusion::ALL {
        let maps = rollout(&layers, 1, &opts(fusion, 0.0, 0)).expect("rollout");
        for (l, map) in maps.iter().enumerate() {
            let expected = (1.0 - 0.5f32.powi(l as i32 + 1)) / tokens as f32;
            assert_close(map, &[expected; 4], HAND_TOLERANCE, "uniform");
        }
    }
}

#[test]
fn identity_attention_keeps_each_token_to_itself() {
    // Every token attends only to itself: the rollout is the identity.
    let tokens = 4;
    let mut data = vec![0.0f32; tokens * tokens];
    for i in 0..tokens {
        data[i * tokens + i] = 1.0;
    }
    let layers = vec![LayerAttention::new(1, tokens, data).expect("valid"); 3];
    for map in rollout(&layers, 1, &RolloutOptions::default()).expect("rollout") {
        assert_close(&map, &[0.0, 0.0, 0.0], 0.0, "CLS row");
    }
    for map in rollout(&layers, 1, &opts(HeadFusion::Mean, 0.0, 2)).expect("rollout") {
        assert_close(&map, &[0.0, 1.0, 0.0], 0.0, "patch row");
    }
}

#[test]
fn two_token_rollout_by_hand() {
    // W1 = [[0.8, 0.2], [0.4, 0.6]] → A1 = [[0.9, 0.1], [0.2, 0.8]].
    // W2 = [[0.5, 0.5], [0.5, 0.5]] → A2 = [[0.75, 0.25], [0.25, 0.75]].
    // R2 = A2 · A1, row 0 = [0.725, 0.275]; row 1 = [0.375, 0.625].
    let first = layer(&[&[&[0.8, 0.2], &[0.4, 0.6]]]);
    let second = layer(&[&[&[0.5, 0.5], &[0.5, 0.5]]]);
    let layers = [first.clone(), second];
    let maps = rollout(&layers, 1, &RolloutOptions::default()).expect("rollout");
    assert_close(&maps[0], &[0.1], HAND_TOLERANCE, "layer 0");
    assert_close(&maps[1], &[0.275], HAND_TOLERANCE, "layer 1");
    let maps = rollout(&layers, 1, &opts(HeadFusion::Mean, 0.0, 1)).expect("rollout");
    assert_close(&maps[0], &[0.8], HAND_TOLERANCE, "layer 0, start 1");
    assert_close(&maps[1], &[0.625], HAND_TOLERANCE, "layer 1, start 1");

    // Same layer twice: (A1²)[0][1] = 0.9·0.1 + 0.1·0.8 = 0.17.
    let maps = rollout(&[first.clone(), first], 1, &RolloutOptions::default()).expect("rollout");
    assert_close(&maps[1], &[0.17], HAND_TOLERANCE, "A1 squared");
}

#[test]
fn head_fusions_by_hand() {
    // Heads [[1, 0], [0, 1]] and [[0.6, 0.4], [0.8, 0.2]].
    let two_heads = [layer(&[
        &[&[1.0, 0.0], &[0.0, 1.0]],
        &[&[0.6, 0.4], &[0.8, 0.2]],
    ])];
    let map = |fusion| rollout(&two_heads, 1, &opts(fusion, 0.0, 0)).expect("rollout")[0][0];
    // Mean [[0.8, 0.2], [0.4, 0.6]] → A[0][1] = 0.1.
    assert!((map(HeadFusion::Mean) - 0.1).abs() <= HAND_TOLERANCE);
    // Max [[1, 0.4], [0.8, 1]] → (W + I)/2 row 0 = [1, 0.2] → 0.2/1.2.
    assert!((map(HeadFusion::Max) - 0.2 / 1.2).abs() <= HAND_TOLERANCE);
    // Min [[0.6, 0], [0, 0.2]] → row 0 = [0.8, 0] → 0.
    assert_eq!(map(HeadFusion::Min), 0.0);
}

#[test]
fn discard_never_zeroes_cls_self_attention() {
    // W = [[0.1, 0.9], [0.7, 0.3]], ratio 0.5 → k = 2 smallest: 0.1 at (0,0)
    // and 0.3 at (1,1). (0,0) is kept, so only (1,1) is zeroed:
    // W' = [[0.1, 0.9], [0.7, 0]] → A = [[0.55, 0.45], [0.35, 0.5]] / row sums.
    let layers = [layer(&[&[&[0.1, 0.9], &[0.7, 0.3]]])];
    let start_cls = rollout(&layers, 1, &opts(HeadFusion::Mean, 0.5, 0)).expect("rollout");
    // Zeroing (0,0) too would give 0.45 / 0.95.
    assert_close(&start_cls[0], &[0.45], HAND_TOLERANCE, "start 0");
    let start_patch = rollout(&layers, 1, &opts(HeadFusion::Mean, 0.5, 1)).expect("rollout");
    // Zeroing the next smallest, (1,0) = 0.7, instead would give 1.
    assert_close(&start_patch[0], &[0.5 / 0.85], HAND_TOLERANCE, "start 1");
}

#[test]
fn discard_breaks_ties_by_lower_flat_index() {
    // All four entries equal; k = floor(0.5·4) = 2 → flat indices 0 and 1 are
    // the two smallest; 0 is exempt, so only (0,1) is zeroed:
    // W' = [[0.5, 0], [0.5, 0.5]] → A = [[1, 0], [0.25, 0.75]].
    let layers = [layer(&[&[&[0.5, 0.5], &[0.5, 0.5]]])];
    let start_cls = rollout(&layers, 1, &opts(HeadFusion::Mean, 0.5, 0)).expect("rollout");
    assert_close(&start_cls[0], &[0.0], 0.0, "start 0");
    let start_patch = rollout(&layers, 1, &opts(HeadFusion::Mean, 0.5, 1)).expect("rollout");
    assert_close(&start_patch[0], &[0.75], HAND_TOLERANCE, "start 1");
}

#[test]
fn discard_count_rounds_down() {
    // T = 2: ratio 0.24 → floor(0.96) = 0 entries discarded, same as ratio 0.
    let layers = [layer(&[&[&[0.3, 0.7], &[0.6, 0.4]]])];
    let none = rollout(&layers, 1, &RolloutOptions::default()).expect("rollout");
    let tiny = rollout(&layers, 1, &opts(HeadFusion::Mean, 0.24, 0)).expect("rollout");
    assert_eq!(none, tiny);
    // ratio 0.25 → 1 entry: the smallest is (0,0) itself, which is kept.
    let one = rollout(&layers, 1, &opts(HeadFusion::Mean, 0.25, 0)).expect("rollout");
    assert_eq!(none, one);
    // ratio 0.5 → (0,0) kept and (1,1) = 0.4 zeroed: row 1 = [0.3, 0.5]/0.8.
    let two = rollout(&layers, 1, &opts(HeadFusion::Mean, 0.5, 1)).expect("rollout");
    assert_close(&two[0], &[0.5 / 0.8], HAND_TOLERANCE, "ratio 0.5");
}

#[test]
fn distillation_prefix_drops_two_columns() {
    let tokens = 6;
    let data: Vec<f32> = (0..tokens * tokens)
        .map(|i| ((i * 7 % 11) as f32 + 1.0) / 10.0)
        .collect();
    let raw = LayerAttention::new(1, tokens, data).expect("valid");
    let one = rollout(std::slice::from_ref(&raw), 1, &RolloutOptions::default()).expect("p1");
    let two = rollout(std::slice::from_ref(&raw), 2, &RolloutOptions::default()).expect("p2");
    assert_eq!(one[0].len(), 5);
    assert_eq!(two[0].len(), 4);
    assert_eq!(one[0][1..], two[0][..]);
}

#[test]
fn query_attention_reads_patch_columns() {
    let layer = layer(&[
        &[&[0.1, 0.2, 0.7], &[0.3, 0.3, 0.4], &[0.5, 0.25, 0.25]],
        &[&[0.6, 0.3, 0.1], &[0.2, 0.2, 0.6], &[0.0, 0.5, 0.5]],
    ]);
    let head1 = query_attention(&layer, Some(1), HeadFusion::Min, 1, 1).expect("head 1");
    assert_eq!(head1, vec![0.2, 0.6]);
    let mean = query_attention(&layer, None, HeadFusion::Mean, 0, 1).expect("mean");
    assert_close(&mean, &[0.25, 0.4], HAND_TOLERANCE, "mean");
    let max = query_attention(&layer, None, HeadFusion::Max, 2, 1).expect("max");
    assert_eq!(max, vec![0.5, 0.5]);
    let min = query_attention(&layer, None, HeadFusion::Min, 2, 2).expect("min");
    assert_eq!(min, vec![0.25]);
    assert_eq!(layer.get(1, 2, 1), 0.5);
    assert_eq!(layer.row(0, 2), &[0.5, 0.25, 0.25]);
}

#[test]
fn softmax_by_hand() {
    // softmax([0, ln 2, ln 3]) = [1, 2, 3] / 6.
    let probs = softmax(&[0.0, 2f32.ln(), 3f32.ln()]);
    assert_close(&probs, &[1.0 / 6.0, 2.0 / 6.0, 3.0 / 6.0], 1e-7, "hand");
    assert!(softmax(&[]).is_empty());
    assert_eq!(softmax(&[42.0]), vec![1.0]);
}

#[test]
fn softmax_sums_to_one_and_is_shift_invariant() {
    // Multiples of 1/8, so adding 1000 is exact in f32.
    let logits: Vec<f32> = (0..1000)
        .map(|i| ((i * 37 % 101) as f32 - 50.0) / 8.0)
        .collect();
    let probs = softmax(&logits);
    let sum: f64 = probs.iter().map(|&p| f64::from(p)).sum();
    assert!((sum - 1.0).abs() < 1e-5, "sum {sum}");
    let shifted: Vec<f32> = logits.iter().map(|&v| v + 1000.0).collect();
    assert_close(&softmax(&shifted), &probs, 1e-7, "shifted");
}

#[test]
fn softmax_is_stable_with_large_logits() {
    let probs = softmax(&[1e30, 1e30, -1e30, 3.0e38]);
    assert!(probs.iter().all(|p| p.is_finite()));
    assert_eq!(probs, vec![0.0, 0.0, 0.0, 1.0]);
    // softmax([1000, 1001]) = [1, e] / (1 + e); naive exp(1000) overflows.
    let probs = softmax(&[1000.0, 1001.0]);
    let e = std::f32::consts::E;
    assert_close(
        &probs,
        &[1.0 / (1.0 + e), e / (1.0 + e)],
        1e-7,
        "large pair",
    );
}

#[test]
fn top_k_orders_by_probability_then_index() {
    let labels: Vec<String> = ["cat", "dog", "fox"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let probs = [0.1, 0.3, 0.3, 0.05, 0.25];
    let top = top_k(&probs, &labels, 4);
    let indices: Vec<usize> = top.iter().map(|p| p.index).collect();
    assert_eq!(indices, vec![1, 2, 4, 0]);
    assert_eq!(top[0].label, "dog");
    assert_eq!(top[1].label, "fox");
    assert_eq!(top[2].label, "class 4");
    assert_eq!(top[2].prob, 0.25);
    assert_eq!(top_k(&probs, &labels, 10).len(), 5);
    assert!(top_k(&probs, &labels, 0).is_empty());
    assert!(top_k(&[], &labels, 3).is_empty());
}

#[test]
fn top_k_ranks_nan_last_and_serializes() {
    let top = top_k(&[f32::NAN, 0.2, 0.8], &[], 3);
    let indices: Vec<usize> = top.iter().map(|p| p.index).collect();
    assert_eq!(indices, vec![2, 1, 0]);
    let json = serde_json::to_string(&top[0]).expect("serializes");
    assert_eq!(json, r#"{"index":2,"label":"class 2","prob":0.8}"#);
}

#[test]
fn head_fusion_names() {
    for (name, fusion) in [
        ("mean", HeadFusion::Mean),
        ("max", HeadFusion::Max),
        ("min", HeadFusion::Min),
    ] {
        assert_eq!(name.parse::<HeadFusion>().expect("parses"), fusion);
        assert_eq!(fusion.to_string(), name);
        assert_eq!(
            serde_json::to_string(&fusion).expect("ser"),
            format!("\"{name}\"")
        );
    }
    assert_eq!(
        " MAX ".parse::<HeadFusion>().expect("parses"),
        HeadFusion::Max
    );
    assert_eq!(HeadFusion::default(), HeadFusion::Mean);
    let err = "median".parse::<HeadFusion>().unwrap_err();
    assert_eq!(err, AnalysisError::UnknownHeadFusion("median".into()));
    let message = err.to_string();
    assert!(message.contains("\"median\""), "{message}");
    assert!(message.contains("mean, max, min"), "{message}");
}

#[test]
fn rollout_options_default() {
    assert_eq!(RolloutOptions::default(), opts(HeadFusion::Mean, 0.0, 0));
}

fn message(err: AnalysisError) -> String {
    err.to_string()
}

#[test]
fn layer_attention_errors() {
    let err = LayerAttention::new(2, 3, vec![0.0; 17]).unwrap_err();
    assert!(matches!(
        err,
        AnalysisError::DataLength {
            expected: 18,
            found: 17,
            ..
        }
    ));
    let text = message(err);
    assert!(
        text.contains("expected 18") && text.contains("found 17"),
        "{text}"
    );

    let err = LayerAttention::new(0, 3, vec![]).unwrap_err();
    assert!(message(err).contains("0 heads"));
    let err = LayerAttention::new(1, 0, vec![]).unwrap_err();
    assert!(message(err).contains("0 tokens"));

    let err = LayerAttention::new(1, 2, vec![0.5, 0.5, f32::NAN, 0.5]).unwrap_err();
    assert!(matches!(err, AnalysisError::InvalidValue { index: 2, .. }));
    assert!(message(err).contains("flat index 2"));
    let err = LayerAttention::new(1, 2, vec![0.5, -0.5, 1.0, 0.0]).unwrap_err();
    assert!(message(err).contains("-0.5"));
}

#[test]
fn query_attention_errors() {
    let layer = layer(&[&[&[0.5, 0.5], &[0.5, 0.5]], &[&[1.0, 0.0], &[0.0, 1.0]]]);
    let err = query_attention(&layer, Some(2), HeadFusion::Mean, 0, 1).unwrap_err();
    assert_eq!(err, AnalysisError::HeadOutOfRange { head: 2, heads: 2 });
    assert!(message(err).contains("head 2 out of range"));
    let err = query_attention(&layer, None, HeadFusion::Mean, 2, 1).unwrap_err();
    assert_eq!(
        err,
        AnalysisError::QueryOutOfRange {
            query: 2,
            tokens: 2
        }
    );
    assert!(message(err).contains("query token 2 out of range"));
    let err = query_attention(&layer, None, HeadFusion::Mean, 0, 2).unwrap_err();
    assert!(message(err).contains("prefix_tokens (2) must be less than tokens (2)"));
}

#[test]
fn rollout_errors() {
    let small = layer(&[&[&[0.5, 0.5], &[0.5, 0.5]]]);
    let large = layer(&[&[&[0.5, 0.5, 0.0], &[0.5, 0.5, 0.0], &[0.0, 0.0, 1.0]]]);
    let defaults = RolloutOptions::default();

    let err = rollout(&[], 1, &defaults).unwrap_err();
    assert_eq!(err, AnalysisError::NoLayers);
    assert!(message(err).contains("no layers"));

    let err = rollout(&[small.clone(), large.clone(), small.clone()], 1, &defaults).unwrap_err();
    assert_eq!(
        err,
        AnalysisError::LayerMismatch {
            layer: 1,
            expected: 2,
            found: 3
        }
    );
    assert!(message(err).contains("layers disagree in size"));

    let err = rollout(std::slice::from_ref(&small), 2, &defaults).unwrap_err();
    assert!(message(err).contains("prefix_tokens (2) must be less than tokens (2)"));

    let err = rollout(
        std::slice::from_ref(&large),
        1,
        &opts(HeadFusion::Max, 0.0, 3),
    )
    .unwrap_err();
    assert_eq!(
        err,
        AnalysisError::StartTokenOutOfRange {
            start_token: 3,
            tokens: 3
        }
    );
    assert!(message(err).contains("start token 3 out of range"));

    for ratio in [1.0, -0.1, 1.5, f32::NAN] {
        let err = rollout(
            std::slice::from_ref(&small),
            1,
            &opts(HeadFusion::Mean, ratio, 0),
        )
        .unwrap_err();
        assert!(matches!(err, AnalysisError::DiscardRatio(_)));
        assert!(message(err).contains("outside [0, 1)"));
    }
}

#[test]
fn rollout_of_vit_base_size_is_quick() {
    // L = 12, H = 12, T = 197: a ViT-B/16 at 224 px.
    let (layers, heads, tokens) = (12, 12, 197);
    let all: Vec<LayerAttention> = (0..layers)
        .map(|l| {
            let data: Vec<f32> = (0..heads * tokens * tokens)
                .map(|i| ((i * 31 + l * 17) % 97) as f32 + 1.0)
                .collect();
            LayerAttention::new(heads, tokens, data).expect("valid")
        })
        .collect();
    let start = std::time::Instant::now();
    let maps = rollout(&all, 1, &opts(HeadFusion::Max, 0.9, 0)).expect("rollout");
    println!("12×197 rollout: {:?}", start.elapsed());
    assert_eq!(maps.len(), layers);
    assert!(maps
        .iter()
        .all(|m| m.len() == tokens - 1 && m.iter().all(|v| v.is_finite())));
}
