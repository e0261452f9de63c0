//! Hostile inputs: crafted checkpoints, preprocessor configs, images, model references and
//! protocol messages. Each case must end in an error that names what is wrong, says what to
//! do, and says it once: no panic, no abort, no allocation sized by the attacker.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};

use serde_json::{json, Value};
use vit_lens::app::hub::{check_hub_url, parse_model_ref};
use vit_lens::app::protocol::{Reply, Request};
use vit_lens::budget;
use vit_lens::checkpoint::{Checkpoint, CheckpointFiles};
use vit_lens::engine::Engine;
use vit_lens::preprocess::{preprocess_bytes, DecodeLimits};

use common::{f32_tensors, fixture_bytes, write_safetensors};

type Tensors = Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)>;

// ---------------------------------------------------------------------------------------
// The largest single allocation each case makes, so that a case that allocates by an
// attacker's size fails even when the machine happens to have the memory.

/// No hostile case may allocate more than this at once: the fixtures are kilobytes.
const MAX_CASE_ALLOCATION: usize = 64 << 20;

struct LargestAllocation;

thread_local! {
    static LARGEST: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

fn note(size: usize) {
    let _ = LARGEST.try_with(|largest| largest.set(largest.get().max(size)));
}

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl std::alloc::GlobalAlloc for LargestAllocation {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: forwarded unchanged.
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: forwarded unchanged.
        unsafe { std::alloc::System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        // SAFETY: forwarded unchanged.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, size: usize) -> *mut u8 {
        note(size);
        // SAFETY: forwarded unchanged.
        unsafe { std::alloc::System.realloc(ptr, layout, size) }
    }
}

#[global_allocator]
static ALLOCATOR: LargestAllocation = LargestAllocation;

/// Words of which an error message must use at least one: it says what to do.
const ACTION_WORDS: &[&str] = &[
    "use ", "give ", "check ", "choose ", "try ", "pick ", "set ", "remove ", "export ", "save ",
    "convert ", "drop ", "load ", "reduce ", "smaller", "fix ", "re-", "expected", "must ",
];

/// Runs `case`, which must fail; checks the message and returns it (and prints it when
/// `HOSTILE_PRINT` is set, to read every message at once).
#[track_caller]
fn refused(what: &str, must_name: &[&str], case: impl FnOnce() -> Result<(), String>) -> String {
    LARGEST.with(|largest| largest.set(0));
    let outcome = catch_unwind(AssertUnwindSafe(case));
    let largest = LARGEST.with(std::cell::Cell::get);
    assert!(
        largest <= MAX_CASE_ALLOCATION,
        "{what}: allocated {largest} bytes at once; the size must be checked before allocating"
    );
    let message = match outcome {
        Ok(Ok(())) => panic!("{what}: was accepted; expected a clear error"),
        Ok(Err(message)) => message,
        Err(panic) => {
            let text = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!("{what}: panicked ({text}); expected a clear error")
        }
    };
    let lower = message.to_lowercase();
    for name in must_name {
        assert!(
            lower.contains(&name.to_lowercase()),
            "{what}: the message should name `{name}`: {message}"
        );
    }
    assert!(
        ACTION_WORDS.iter().any(|w| lower.contains(w)),
        "{what}: the message should say what to do: {message}"
    );
    said_once(what, &message);
    if std::env::var_os("HOSTILE_PRINT").is_some() {
        eprintln!("MESSAGE {what} => {message}");
    }
    message
}

/// No clause of the message repeats an earlier one ("X: X").
#[track_caller]
fn said_once(what: &str, message: &str) {
    let parts: Vec<&str> = message
        .split([':', ';'])
        .map(str::trim)
        .filter(|p| p.len() >= 12)
        .collect();
    for (i, a) in parts.iter().enumerate() {
        for b in &parts[i + 1..] {
            assert!(
                !b.contains(a) && !a.contains(b),
                "{what}: the message repeats itself: {message}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// Building crafted checkpoints from the small fixtures.

struct Crafted {
    config: Value,
    preprocessor: Option<Value>,
    tensors: Tensors,
}

impl Crafted {
    fn from_fixture(name: &str) -> Self {
        let (config, pre, weights) = fixture_bytes(name);
        Self {
            config: serde_json::from_slice(&config).expect("fixture config"),
            preprocessor: pre.map(|p| serde_json::from_slice(&p).expect("fixture preprocessor")),
            tensors: f32_tensors(&weights),
        }
    }

    fn hf() -> Self {
        Self::from_fixture("tiny_vit_hf")
    }

    fn timm() -> Self {
        Self::from_fixture("tiny_vit_timm")
    }

    fn config(mut self, key: &str, value: Value) -> Self {
        self.config[key] = value;
        self
    }

    fn preprocessor(mut self, key: &str, value: Value) -> Self {
        let pre = self.preprocessor.get_or_insert_with(|| json!({}));
        pre[key] = value;
        self
    }

    /// Replaces one tensor's shape and data (f32 values).
    fn tensor(mut self, name: &str, shape: Vec<usize>, values: &[f32]) -> Self {
        let entry = self
            .tensors
            .iter_mut()
            .find(|t| t.0 == name)
            .unwrap_or_else(|| panic!("no tensor {name}"));
        entry.1 = safetensors::Dtype::F32;
        entry.2 = shape;
        entry.3 = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self
    }

    /// Sets every value of one tensor to `value`, keeping its shape.
    fn fill(mut self, name: &str, value: f32) -> Self {
        let entry = self
            .tensors
            .iter_mut()
            .find(|t| t.0 == name)
            .unwrap_or_else(|| panic!("no tensor {name}"));
        entry.3 = entry
            .3
            .chunks(4)
            .flat_map(|_| value.to_le_bytes())
            .collect();
        self
    }

    fn bytes(&self) -> (Vec<u8>, Option<Vec<u8>>, Vec<u8>) {
        (
            serde_json::to_vec(&self.config).expect("json"),
            self.preprocessor
                .as_ref()
                .map(|p| serde_json::to_vec(p).expect("json")),
            write_safetensors(&self.tensors),
        )
    }

    fn load(&self) -> Result<Checkpoint, String> {
        let (config, pre, weights) = self.bytes();
        load_bytes(&config, pre.as_deref(), &weights)
    }

    /// Loads, builds the CPU engine and classifies a smooth image of the checkpoint's size.
    fn run(&self) -> Result<(), String> {
        let checkpoint = self.load()?;
        run_checkpoint(&checkpoint)
    }
}

fn load_bytes(config: &[u8], pre: Option<&[u8]>, weights: &[u8]) -> Result<Checkpoint, String> {
    Checkpoint::from_bytes(CheckpointFiles {
        config_json: config,
        preprocessor_config_json: pre,
        safetensors: weights,
    })
    .map_err(|e| e.to_string())
}

fn run_checkpoint(checkpoint: &Checkpoint) -> Result<(), String> {
    let engine = Engine::cpu(checkpoint).map_err(|e| e.to_string())?;
    let side = checkpoint.config.image_size;
    let channels = checkpoint.config.num_channels;
    let pixels: Vec<f32> = (0..channels * side * side)
        .map(|i| (i as f32 * 0.37).sin())
        .collect();
    engine
        .infer_batch(&pixels, 1, side, side)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Preprocesses `image` with the preprocessor config of `checkpoint`.
fn preprocess_with(checkpoint: &Checkpoint, image: &[u8]) -> Result<(), String> {
    preprocess_bytes(image, &checkpoint.preprocess, &DecodeLimits::default())
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn png(width: u32, height: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(width, height, |x, y| image::Rgb([x as u8, y as u8, 90]));
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .expect("encode png");
    out
}

const HF_PATCH: &str = "vit.embeddings.patch_embeddings.projection.weight";
const HF_HEAD: &str = "classifier.weight";
const HF_POS: &str = "vit.embeddings.position_embeddings";
const TIMM_PATCH: &str = "patch_embed.proj.weight";
const TIMM_HEAD: &str = "head.weight";

// ---------------------------------------------------------------------------------------
// config.json

#[test]
fn config_not_json() {
    refused("config.json that is not JSON", &["config.json"], || {
        let (_, pre, weights) = Crafted::hf().bytes();
        load_bytes(b"{ not json", pre.as_deref(), &weights).map(|_| ())
    });
}

#[test]
fn config_json_array() {
    refused("config.json that is an array", &["config.json"], || {
        let (_, pre, weights) = Crafted::hf().bytes();
        load_bytes(b"[1, 2, 3]", pre.as_deref(), &weights).map(|_| ())
    });
}

#[test]
fn patch_size_zero() {
    refused("patch_size 0", &["patch_size", "0"], || {
        Crafted::hf().config("patch_size", json!(0)).run()
    });
}

#[test]
fn hidden_size_zero() {
    refused("hidden_size 0", &["hidden_size"], || {
        Crafted::hf().config("hidden_size", json!(0)).run()
    });
}

#[test]
fn heads_zero() {
    refused("num_attention_heads 0", &["num_attention_heads"], || {
        Crafted::hf().config("num_attention_heads", json!(0)).run()
    });
}

#[test]
fn heads_do_not_divide_width() {
    refused(
        "hidden_size not divisible by heads",
        &["num_attention_heads"],
        || Crafted::hf().config("num_attention_heads", json!(3)).run(),
    );
}

#[test]
fn absurd_layer_count() {
    refused("a billion layers", &["num_hidden_layers"], || {
        Crafted::hf()
            .config("num_hidden_layers", json!(1_000_000_000u64))
            .run()
    });
}

#[test]
fn image_size_zero() {
    refused("image_size 0", &["image_size"], || {
        Crafted::hf().config("image_size", json!(0)).run()
    });
}

#[test]
fn image_size_huge() {
    refused("image_size 2^40", &["image_size"], || {
        Crafted::hf().config("image_size", json!(1u64 << 40)).run()
    });
}

#[test]
fn layer_norm_eps_huge() {
    refused("layer_norm_eps 1e300", &["layer_norm_eps"], || {
        Crafted::hf().config("layer_norm_eps", json!(1e300)).run()
    });
}

#[test]
fn layer_norm_eps_negative() {
    refused("layer_norm_eps -1", &["layer_norm_eps"], || {
        Crafted::hf().config("layer_norm_eps", json!(-1.0)).run()
    });
}

#[test]
fn intermediate_size_zero() {
    refused("intermediate_size 0", &["intermediate_size"], || {
        Crafted::hf().config("intermediate_size", json!(0)).run()
    });
}

#[test]
fn channels_zero() {
    refused("num_channels 0", &["num_channels"], || {
        Crafted::hf().config("num_channels", json!(0)).run()
    });
}

#[test]
fn labels_disagree_with_the_head() {
    refused(
        "id2label with 1000 labels for a 5-class head",
        &["classifier"],
        || {
            let labels: serde_json::Map<String, Value> = (0..1000)
                .map(|i| (i.to_string(), json!(format!("c{i}"))))
                .collect();
            Crafted::hf()
                .config("id2label", Value::Object(labels))
                .config("label2id", json!({}))
                .run()
        },
    );
}

#[test]
fn negative_size_in_config() {
    refused("hidden_size -32", &["hidden_size"], || {
        Crafted::hf().config("hidden_size", json!(-32)).run()
    });
}

#[test]
fn layer_norm_eps_zero() {
    refused("layer_norm_eps 0", &["layer_norm_eps"], || {
        Crafted::hf().config("layer_norm_eps", json!(0.0)).run()
    });
}

#[test]
fn layer_norm_eps_below_f32() {
    // Positive in f64, but 0 once the forward pass adds it in f32.
    refused("layer_norm_eps 1e-60", &["layer_norm_eps"], || {
        Crafted::hf().config("layer_norm_eps", json!(1e-60)).run()
    });
}

#[test]
fn num_labels_huge() {
    refused("num_labels 2^40", &["num_labels"], || {
        Crafted::hf().config("num_labels", json!(1u64 << 40)).run()
    });
}

#[test]
fn hidden_size_not_a_number() {
    refused("hidden_size \"big\"", &["hidden_size"], || {
        Crafted::hf().config("hidden_size", json!("big")).run()
    });
}

#[test]
fn image_size_not_square() {
    refused("image_size [32, 64]", &["image_size"], || {
        Crafted::hf().config("image_size", json!([32, 64])).run()
    });
}

#[test]
fn more_layers_in_the_config_than_in_the_weights() {
    refused(
        "num_hidden_layers 5 for 2 layers",
        &["num_hidden_layers"],
        || Crafted::hf().config("num_hidden_layers", json!(5)).run(),
    );
}

#[test]
fn unknown_activation() {
    refused("hidden_act swish", &["hidden_act"], || {
        Crafted::hf().config("hidden_act", json!("swish")).run()
    });
}

#[test]
fn timm_heads_zero() {
    refused("timm model_args.num_heads 0", &["num_heads"], || {
        let mut crafted = Crafted::timm();
        crafted.config["model_args"]["num_heads"] = json!(0);
        crafted.run()
    });
}

#[test]
fn timm_input_size_huge() {
    refused(
        "timm pretrained_cfg.input_size 2^40",
        &["input_size"],
        || {
            let mut crafted = Crafted::timm();
            crafted.config["model_args"]
                .as_object_mut()
                .expect("model_args")
                .remove("img_size");
            crafted.config["pretrained_cfg"]["input_size"] = json!([3, 1u64 << 40, 1u64 << 40]);
            crafted.run()
        },
    );
}

#[test]
fn timm_pretrained_cfg_std_zero() {
    // timm's preprocessing lives in config.json, so the message must not blame another file.
    let message = refused("timm pretrained_cfg.std 0", &["config.json", "std"], || {
        let mut crafted = Crafted::timm();
        crafted.config["pretrained_cfg"]["std"] = json!([0.0, 0.5, 0.5]);
        crafted.run()
    });
    assert!(!message.contains("preprocessor_config.json"), "{message}");
}

#[test]
fn config_describes_a_giant_model() {
    // Valid sizes one by one; together 1.4 trillion weights.
    let message = refused("a giant config", &["config.json", "weights"], || {
        Crafted::hf()
            .config("hidden_size", json!(16_384))
            .config("num_attention_heads", json!(128))
            .config("intermediate_size", json!(131_072))
            .config("num_hidden_layers", json!(256))
            .run()
    });
    assert!(message.contains("smaller model"), "{message}");
}

#[test]
fn config_asks_for_too_many_tokens() {
    refused(
        "image_size 16384 with 1 px patches",
        &["config.json"],
        || {
            Crafted::hf()
                .config("image_size", json!(16_384))
                .config("patch_size", json!(1))
                .run()
        },
    );
}

// ---------------------------------------------------------------------------------------
// model.safetensors

#[test]
fn timm_patch_embedding_with_a_zero_dimension() {
    refused(
        "timm patch_embed.proj.weight [32, 3, 0, 0]",
        &[TIMM_PATCH],
        || {
            Crafted::timm()
                .tensor(TIMM_PATCH, vec![32, 3, 0, 0], &[])
                .run()
        },
    );
}

#[test]
fn timm_classifier_huge_by_zero() {
    // Zero bytes of data, so the file is valid safetensors; the shape claims 2^44 classes.
    refused("timm head.weight [2^44, 0]", &[TIMM_HEAD], || {
        Crafted::timm()
            .tensor(TIMM_HEAD, vec![1 << 44, 0], &[])
            .run()
    });
}

#[test]
fn hf_classifier_huge_by_zero() {
    refused("classifier.weight [2^44, 0]", &[HF_HEAD], || {
        Crafted::hf().tensor(HF_HEAD, vec![1 << 44, 0], &[]).run()
    });
}

#[test]
fn hf_patch_embedding_wrong_shape() {
    refused("patch projection of the wrong shape", &[HF_PATCH], || {
        Crafted::hf()
            .tensor(HF_PATCH, vec![32, 3, 4, 4], &[0.1; 32 * 3 * 16])
            .run()
    });
}

#[test]
fn position_embeddings_of_the_wrong_length() {
    refused("position embeddings for 3 tokens", &["position"], || {
        Crafted::hf()
            .tensor(HF_POS, vec![1, 3, 32], &[0.0; 96])
            .run()
    });
}

#[test]
fn nan_weights_name_the_layer() {
    let message = refused("NaN in layer 1's query weight", &["layer 1"], || {
        Crafted::hf()
            .fill(
                "vit.encoder.layer.1.attention.attention.query.weight",
                f32::NAN,
            )
            .run()
    });
    assert!(!message.contains("flat index"), "{message}");
}

#[test]
fn infinite_position_embedding() {
    refused("infinite position embeddings", &["finite"], || {
        Crafted::hf().fill(HF_POS, f32::INFINITY).run()
    });
}

#[test]

fn huge_values_overflow_in_the_first_layer() {
    refused("weights of 1e38 overflow", &["layer"], || {
        Crafted::hf()
            .fill("vit.encoder.layer.0.intermediate.dense.weight", 1e38)
            .run()
    });
}

#[test]
fn timm_nan_weights_name_the_block() {
    let message = refused(
        "NaN in timm block 1",
        &["layer 1", "blocks.1.attn.qkv.weight"],
        || {
            Crafted::timm()
                .fill("blocks.1.attn.qkv.weight", f32::NAN)
                .run()
        },
    );
    assert!(!message.contains("flat index"), "{message}");
}

#[test]
fn negative_infinity_in_the_classifier() {
    refused("-inf in the classifier", &[HF_HEAD, "finite"], || {
        Crafted::hf().fill(HF_HEAD, f32::NEG_INFINITY).run()
    });
}

#[test]
fn layer_norm_with_a_huge_empty_shape() {
    refused(
        "vit.layernorm.weight [2^40, 0]",
        &["vit.layernorm.weight"],
        || {
            Crafted::hf()
                .tensor("vit.layernorm.weight", vec![1 << 40, 0], &[])
                .run()
        },
    );
}

#[test]
fn timm_classifier_of_rank_one() {
    refused("timm head.weight [5]", &[TIMM_HEAD], || {
        Crafted::timm().tensor(TIMM_HEAD, vec![5], &[0.0; 5]).run()
    });
}

#[test]
fn timm_position_embedding_without_positions() {
    refused("timm pos_embed [1, 0, 32]", &["pos_embed"], || {
        Crafted::timm()
            .tensor("pos_embed", vec![1, 0, 32], &[])
            .run()
    });
}

#[test]
fn truncated_safetensors() {
    refused("safetensors cut in half", &["safetensors"], || {
        let (config, pre, weights) = Crafted::hf().bytes();
        load_bytes(&config, pre.as_deref(), &weights[..weights.len() / 2]).map(|_| ())
    });
}

#[test]
fn safetensors_header_length_huge() {
    refused("header length 2^60", &["safetensors"], || {
        let (config, pre, _) = Crafted::hf().bytes();
        let mut weights = (1u64 << 60).to_le_bytes().to_vec();
        weights.extend_from_slice(b"{}");
        load_bytes(&config, pre.as_deref(), &weights).map(|_| ())
    });
}

#[test]
fn empty_safetensors() {
    refused("an empty model.safetensors", &["safetensors"], || {
        let (config, pre, _) = Crafted::hf().bytes();
        load_bytes(&config, pre.as_deref(), &[]).map(|_| ())
    });
}

#[test]
fn integer_weights() {
    refused("i64 weights", &[HF_HEAD], || {
        let mut crafted = Crafted::hf();
        let head = crafted
            .tensors
            .iter_mut()
            .find(|t| t.0 == HF_HEAD)
            .expect("head");
        head.1 = safetensors::Dtype::I64;
        head.3.extend(std::iter::repeat_n(0u8, head.3.len()));
        crafted.run()
    });
}

// ---------------------------------------------------------------------------------------
// preprocessor_config.json

#[test]
fn preprocessor_asks_for_16384_px() {
    let message = refused(
        "a 16384 px input without a crop",
        &["16384", "tokens"],
        || {
            Crafted::hf()
                .preprocessor("size", json!({"height": 16384, "width": 16384}))
                .preprocessor("do_center_crop", json!(false))
                .run()
        },
    );
    assert!(message.contains("preprocessor_config.json"), "{message}");
}

#[test]
fn preprocessor_std_denormal() {
    let message = refused("image_std 1e-40", &["image_std"], || {
        Crafted::hf()
            .preprocessor("image_std", json!([1e-40, 0.5, 0.5]))
            .load()
            .map(|_| ())
    });
    assert!(message.contains("preprocessor_config.json"), "{message}");
}

#[test]
fn preprocessor_std_zero() {
    refused("image_std 0", &["image_std"], || {
        Crafted::hf()
            .preprocessor("image_std", json!([0.0, 0.5, 0.5]))
            .load()
            .map(|_| ())
    });
}

#[test]
fn preprocessor_mean_wrong_length() {
    refused("image_mean of 2 values", &["image_mean"], || {
        Crafted::hf()
            .preprocessor("image_mean", json!([0.5, 0.5]))
            .load()
            .map(|_| ())
    });
}

#[test]
fn preprocessor_size_zero() {
    refused("size 0", &["size"], || {
        Crafted::hf()
            .preprocessor("size", json!({"height": 0, "width": 0}))
            .load()
            .map(|_| ())
    });
}

#[test]
fn preprocessor_rescale_factor_infinite() {
    refused("rescale_factor 1e39", &["rescale_factor"], || {
        Crafted::hf()
            .preprocessor("rescale_factor", json!(1e39))
            .load()
            .map(|_| ())
    });
}

#[test]
fn preprocessor_shortest_edge_too_large() {
    let message = refused(
        "shortest_edge 16384 without a crop",
        &["16384", "tokens"],
        || {
            Crafted::hf()
                .preprocessor("size", json!({"shortest_edge": 16384}))
                .preprocessor("do_center_crop", json!(false))
                .load()
                .map(|_| ())
        },
    );
    assert!(message.contains("preprocessor_config.json"), "{message}");
}

#[test]
fn preprocessor_crop_size_huge() {
    refused("crop_size 100000", &["crop_size"], || {
        Crafted::hf()
            .preprocessor("do_center_crop", json!(true))
            .preprocessor("crop_size", json!({"height": 100000, "width": 100000}))
            .load()
            .map(|_| ())
    });
}

#[test]
fn preprocessor_crop_without_a_size() {
    refused("do_center_crop without crop_size", &["crop_size"], || {
        Crafted::hf()
            .preprocessor("do_center_crop", json!(true))
            .load()
            .map(|_| ())
    });
}

#[test]
fn preprocessor_mean_huge() {
    refused("image_mean 1e30", &["image_mean"], || {
        Crafted::hf()
            .preprocessor("image_mean", json!([1e30, 0.5, 0.5]))
            .load()
            .map(|_| ())
    });
}

#[test]
fn preprocessor_rescale_factor_zero() {
    refused("rescale_factor 0", &["rescale_factor"], || {
        Crafted::hf()
            .preprocessor("rescale_factor", json!(0.0))
            .load()
            .map(|_| ())
    });
}

#[test]
fn preprocessor_unknown_resample() {
    refused("resample 99", &["resample"], || {
        Crafted::hf()
            .preprocessor("resample", json!(99))
            .load()
            .map(|_| ())
    });
}

#[test]
fn preprocessor_json_array() {
    refused(
        "preprocessor_config.json that is an array",
        &["preprocessor_config.json"],
        || {
            let (config, _, weights) = Crafted::hf().bytes();
            load_bytes(&config, Some(b"[1, 2]"), &weights).map(|_| ())
        },
    );
}

#[test]
fn preprocessor_not_json() {
    refused(
        "preprocessor_config.json that is not JSON",
        &["preprocessor_config.json"],
        || {
            let (config, _, weights) = Crafted::hf().bytes();
            load_bytes(&config, Some(b"nope"), &weights).map(|_| ())
        },
    );
}

// ---------------------------------------------------------------------------------------
// Images

#[test]
fn image_empty() {
    refused("zero bytes", &["image"], || {
        let checkpoint = Crafted::hf().load().expect("fixture");
        preprocess_with(&checkpoint, &[])
    });
}

#[test]
fn image_not_an_image() {
    refused("a text file", &["image"], || {
        let checkpoint = Crafted::hf().load().expect("fixture");
        preprocess_with(&checkpoint, b"hello, this is not a picture")
    });
}

#[test]
fn image_truncated_png() {
    refused("a PNG cut short", &["image"], || {
        let checkpoint = Crafted::hf().load().expect("fixture");
        let bytes = png(64, 64);
        preprocess_with(&checkpoint, &bytes[..bytes.len() / 2])
    });
}

#[test]
fn image_header_claims_a_huge_size() {
    refused(
        "a PNG header claiming 100000 × 100000",
        &["100000"],
        || {
            let checkpoint = Crafted::hf().load().expect("fixture");
            let mut bytes = png(4, 4);
            // IHDR width and height sit at bytes 16..24; the CRC is not checked before the size.
            bytes[16..20].copy_from_slice(&100_000u32.to_be_bytes());
            bytes[20..24].copy_from_slice(&100_000u32.to_be_bytes());
            preprocess_with(&checkpoint, &bytes)
        },
    );
}

#[test]

fn engine_input_of_the_wrong_length() {
    refused("pixels of the wrong length", &["pixels"], || {
        let checkpoint = Crafted::hf().load().expect("fixture");
        let engine = Engine::cpu(&checkpoint).map_err(|e| e.to_string())?;
        engine
            .infer_batch(&[0.0; 10], 1, 32, 32)
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
}

#[test]

fn engine_batch_overflows() {
    refused("a batch of 2^62 images", &["batch"], || {
        let checkpoint = Crafted::hf().load().expect("fixture");
        let engine = Engine::cpu(&checkpoint).map_err(|e| e.to_string())?;
        engine
            .infer_batch(&[0.0; 10], 1 << 62, 32, 32)
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
}

#[test]

fn engine_input_too_large_for_the_budget() {
    // The 805 MB input is the caller's; the engine must refuse it without allocating more.
    let side = 8192;
    let pixels = vec![0.0f32; 3 * side * side];
    refused("a 8192 × 8192 input to the engine", &["tokens"], || {
        let checkpoint = Crafted::hf().load().expect("fixture");
        let engine = Engine::cpu(&checkpoint).map_err(|e| e.to_string())?;
        engine
            .infer_batch(&pixels, 1, side, side)
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
}

// ---------------------------------------------------------------------------------------
// The budget the engine checks per request (budget::check_input)

/// The hf fixture's geometry: the engine asks the budget about it before it runs.
fn fixture_geometry() -> budget::ModelSize {
    Crafted::hf().load().expect("fixture").config.size()
}

#[test]
fn budget_refuses_a_huge_batch() {
    refused("a batch of 2^62 images", &["batch"], || {
        budget::check_input(&fixture_geometry(), 1 << 62, 32, 32)
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
}

#[test]
fn budget_refuses_too_many_tokens() {
    refused("an 8192 × 8192 input", &["tokens", "8192"], || {
        budget::check_input(&fixture_geometry(), 1, 8192, 8192)
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
}

#[test]
fn budget_refuses_an_empty_batch() {
    refused("a batch of 0 images", &["batch"], || {
        budget::check_input(&fixture_geometry(), 0, 32, 32)
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
}

#[test]
fn budget_refuses_an_input_smaller_than_a_patch() {
    refused("a 4 × 4 input with 8 px patches", &["patch"], || {
        budget::check_input(&fixture_geometry(), 1, 4, 4)
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
}

#[test]
fn budget_refuses_a_huge_input_in_the_browser() {
    // The wasm32 limits, checked natively: a 1024 px input is fine here, not there.
    let geometry = budget::ModelSize {
        patch: 16,
        ..fixture_geometry()
    };
    budget::Limits::NATIVE
        .check_input(&geometry, 1, 1024, 1024)
        .expect("1024 px runs natively");
    refused("1024 px in the browser", &["tokens", "browser"], || {
        budget::Limits::WASM32
            .check_input(&geometry, 1, 1024, 1024)
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
}

// ---------------------------------------------------------------------------------------
// Model references (?model=, the model box) and hubs (?hub=)

const HUB: &str = "https://huggingface.co";

#[test]
fn repo_id_with_dot_dot() {
    refused("owner/../name", &["repo"], || {
        parse_model_ref("owner/../name", HUB).map(|_| ())
    });
}

#[test]
fn revision_with_a_fragment() {
    refused("owner/name@main#x", &["revision"], || {
        parse_model_ref("owner/name@main#x", HUB).map(|_| ())
    });
}

#[test]
fn revision_with_a_query() {
    refused("owner/name@main?x=1", &["revision"], || {
        parse_model_ref("owner/name@main?x=1", HUB).map(|_| ())
    });
}

#[test]
fn revision_with_dot_dot() {
    refused("owner/name@..", &["revision"], || {
        parse_model_ref("owner/name@..", HUB).map(|_| ())
    });
}

#[test]
fn protocol_relative_url() {
    refused("//other.host/owner/name", &["http"], || {
        parse_model_ref("//other.host/owner/name", HUB).map(|_| ())
    });
}

#[test]
fn javascript_url() {
    refused("javascript:alert(1)", &["http"], || {
        parse_model_ref("javascript:alert(1)", HUB).map(|_| ())
    });
}

#[test]
fn data_url() {
    refused("data:text/html,…", &["http"], || {
        parse_model_ref("data:text/html,<script>alert(1)</script>", HUB).map(|_| ())
    });
}

#[test]
fn file_url() {
    refused("file:///etc/passwd", &["http"], || {
        parse_model_ref("file:///etc/passwd", HUB).map(|_| ())
    });
}

#[test]
fn url_with_credentials() {
    let message = refused("https://user:secret@host/owner/name", &["password"], || {
        parse_model_ref("https://user:secret@example.org/owner/name", HUB).map(|_| ())
    });
    assert!(
        !message.contains("secret"),
        "the message repeats the password: {message}"
    );
}

#[test]
fn url_climbing_with_dot_dot() {
    refused("https://host/models/../../admin", &[".."], || {
        parse_model_ref("https://example.org/models/../../admin", HUB).map(|_| ())
    });
}

#[test]
fn url_climbing_with_an_encoded_dot_dot() {
    refused("https://host/models/%2E%2E/admin", &[".."], || {
        parse_model_ref("https://example.org/models/%2E%2E/admin", HUB).map(|_| ())
    });
}

#[test]
fn url_with_a_bad_port() {
    refused("https://host:99999/x", &["host"], || {
        parse_model_ref("https://example.org:99999/x", HUB).map(|_| ())
    });
}

#[test]
fn hub_url_revision_with_dot_dot() {
    refused("{hub}/owner/name/tree/a..b", &["revision"], || {
        parse_model_ref("https://huggingface.co/owner/name/tree/a..b", HUB).map(|_| ())
    });
}

#[test]
fn repo_id_too_long() {
    refused("a 120-character repo id", &["repo id"], || {
        parse_model_ref(&format!("owner/{}", "n".repeat(120)), HUB).map(|_| ())
    });
}

#[test]
fn repo_id_with_odd_characters() {
    refused("owner/na<me>", &["repo id"], || {
        parse_model_ref("owner/na<me>", HUB).map(|_| ())
    });
}

#[test]
fn revision_with_whitespace_or_control_characters() {
    for bad in [
        "owner/name@main x",
        "owner/name@ma\u{0}in",
        "owner/name@/etc",
    ] {
        refused(bad, &["revision"], || parse_model_ref(bad, HUB).map(|_| ()));
    }
}

#[test]
fn hub_parameter_javascript() {
    refused("?hub=javascript:alert(1)", &["hub", "http"], || {
        check_hub_url("javascript:alert(1)").map(|_| ())
    });
}

#[test]
fn hub_parameter_protocol_relative() {
    refused("?hub=//evil.example", &["hub", "http"], || {
        check_hub_url("//evil.example").map(|_| ())
    });
}

#[test]
fn hub_parameter_with_credentials() {
    refused("?hub=https://user:pw@host", &["password"], || {
        check_hub_url("https://user:pw@example.org").map(|_| ())
    });
}

#[test]
fn hub_parameter_with_a_query() {
    refused("?hub=https://host/?x=1", &["hub", "query"], || {
        check_hub_url("https://example.org/?x=1").map(|_| ())
    });
}

#[test]
fn hub_parameter_that_is_fine() {
    assert_eq!(
        check_hub_url("http://127.0.0.1:9000/").as_deref(),
        Ok("http://127.0.0.1:9000")
    );
    assert_eq!(check_hub_url(HUB).as_deref(), Ok(HUB));
}

// ---------------------------------------------------------------------------------------
// The page ↔ worker protocol

#[test]
fn protocol_unknown_request() {
    let decoded = serde_json::from_str::<Request>(r#"{"type":"format_disk"}"#);
    assert!(decoded.is_err());
    let decoded = serde_json::from_str::<Reply>(r#"{"type":"result","id":"NaN"}"#);
    assert!(decoded.is_err());
}

// ---------------------------------------------------------------------------------------
// Every input the fuzzers found (fuzz/regressions/<target>/), and their seeds, replayed
// through the same code the fuzz targets run.

#[path = "../fuzz/src/lib.rs"]
#[allow(dead_code)]
mod fuzz_cases;

#[test]
fn fuzz_findings_and_seeds_replay_without_a_crash() {
    let fuzz = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut replayed = 0;
    for kind in ["regressions", "seeds"] {
        for target in fuzz_cases::TARGETS {
            let Ok(entries) = std::fs::read_dir(fuzz.join(kind).join(target)) else {
                continue;
            };
            let mut paths: Vec<_> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
            paths.sort();
            for path in paths {
                let data = std::fs::read(&path).expect("readable input");
                let what = format!("{target} {}", path.display());
                LARGEST.with(|largest| largest.set(0));
                let outcome = catch_unwind(AssertUnwindSafe(|| fuzz_cases::run(target, &data)));
                let largest = LARGEST.with(std::cell::Cell::get);
                assert!(matches!(outcome, Ok(true)), "{what}: panicked");
                assert!(
                    largest <= MAX_CASE_ALLOCATION,
                    "{what}: allocated {largest} bytes at once"
                );
                replayed += 1;
            }
        }
    }
    assert!(
        replayed >= 12,
        "only {replayed} inputs under fuzz/regressions and fuzz/seeds"
    );
}

// ---------------------------------------------------------------------------------------
// Teaching statistics and the command line's numbers

#[test]
fn filter_components_of_a_huge_patch_embedding() {
    refused(
        "PCA of 2048 filters of 3·32·32 values",
        &["2048", "filters"],
        || {
            let weight = vit_lens::checkpoint::WeightTensor::new(
                vec![2048, 3, 32, 32],
                vec![0.5; 2048 * 3072],
            );
            vit_lens::teach::filter_pca(&weight, 28)
                .map(|_| ())
                .map_err(|e| e.to_string())
        },
    );
}

/// Runs the CLI, which must fail with exit code 1 and one `error:` line naming `names`.
fn cli_refuses(args: &[&str], names: &[&str]) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vit-lens"))
        .args(args)
        .output()
        .expect("vit-lens runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
    assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
    refused(&format!("vit-lens {}", args.join(" ")), names, || {
        Err(stderr.trim_start_matches("error: ").to_string())
    });
}

#[test]
fn cli_bench_numbers_out_of_range() {
    cli_refuses(&["bench", "--runs", "2305843009213693952"], &["--runs"]);
    cli_refuses(&["bench", "--batch", "4611686018427387904"], &["--batch"]);
    cli_refuses(
        &["bench", "--warmup", "18446744073709551615"],
        &["--warmup"],
    );
    cli_refuses(
        &["bench", "--threads", "1152921504606846976"],
        &["--threads"],
    );
    cli_refuses(&["bench", "--runs", "0"], &["--runs"]);
}

#[test]
fn cli_explain_class_and_ratio_out_of_range() {
    let model = common::fixture_dir("tiny_vit_hf");
    let model = model.to_str().expect("utf-8 path");
    let image = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/images/gray.png"
    );
    cli_refuses(
        &[
            "explain", "--model", model, "--image", image, "--class", "99",
        ],
        &["class 99"],
    );
    cli_refuses(
        &[
            "explain",
            "--model",
            model,
            "--image",
            image,
            "--discard-ratio",
            "1.5",
        ],
        &["--discard-ratio"],
    );
}
