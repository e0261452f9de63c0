//! What each fuzz target does with one input, and how an input is cut into the several files
//! an entry point takes. The targets under `fuzz_targets/` only call [`run`]; the native test
//! suite (`tests/hostile.rs`) includes this file to replay every saved finding under
//! `fuzz/regressions/<target>/` without libFuzzer.
//!
//! The byte `0xFF` never occurs in UTF-8, so it never occurs in a JSON document: it separates a
//! JSON part from the binary part that follows it, and a seed can be written by hand as
//! `cat config.json <(printf '\xff') model.safetensors`.

use vit_lens::app::hub::{
    parse_model_ref, Remote, CONFIG_FILE, DEFAULT_HUB, PREPROCESSOR_FILE, WEIGHTS_FILE,
};
use vit_lens::app::protocol::{Reply, Request, ResultMeta};
use vit_lens::app::view::{MapKind, StoredInference, ViewOptions};
use vit_lens::checkpoint::{read_safetensors, Checkpoint, CheckpointFiles};
use vit_lens::engine::{BackendChoice, Engine};
use vit_lens::preprocess::{preprocess_bytes, DecodeLimits, PreprocessConfig};

/// Separates the JSON parts of an input from each other and from the binary tail.
pub const SEPARATOR: u8 = 0xFF;

/// Splits `data` at the first [`SEPARATOR`]: (before, after). Without one, all of `data` is
/// the first part and the second is empty.
pub fn split_once(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == SEPARATOR) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[]),
    }
}

/// The files of a checkpoint, as cut from one input.
pub struct CheckpointParts<'a> {
    pub config_json: &'a [u8],
    pub preprocessor_config_json: Option<&'a [u8]>,
    pub safetensors: &'a [u8],
}

/// `config.json`, `0xFF`, optionally `preprocessor_config.json` and `0xFF`, then
/// `model.safetensors`. The preprocessor part is present when the bytes after the first
/// separator start with `{` (a safetensors file starts with its 8-byte header length).
pub fn checkpoint_parts(data: &[u8]) -> CheckpointParts<'_> {
    let (config_json, rest) = split_once(data);
    if rest.first() == Some(&b'{') {
        let (preprocessor, safetensors) = split_once(rest);
        CheckpointParts {
            config_json,
            preprocessor_config_json: Some(preprocessor),
            safetensors,
        }
    } else {
        CheckpointParts {
            config_json,
            preprocessor_config_json: None,
            safetensors: rest,
        }
    }
}

/// Reads a little-endian u64 from up to 8 bytes at `at` (missing bytes count as zero).
pub fn read_u64(data: &[u8], at: usize) -> u64 {
    let mut bytes = [0u8; 8];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = data.get(at + i).copied().unwrap_or(0);
    }
    u64::from_le_bytes(bytes)
}

/// The model's `image_size` the Hugging Face processor defaults fall back to.
const IMAGE_SIZE: u32 = 224;

/// Buffers larger than this are not built (the checks above already saw their lengths).
const MAX_BUFFER: usize = 1 << 20;

/// (crop bytes, attention values) the message announces, when both are small enough to build.
fn announced_lengths(meta: &ResultMeta) -> Option<(usize, usize)> {
    let crop = (meta.crop_width as usize)
        .checked_mul(meta.crop_height as usize)?
        .checked_mul(3)?;
    let attention = meta
        .layers
        .checked_mul(meta.heads)?
        .checked_mul(meta.tokens)?
        .checked_mul(meta.tokens)?;
    (crop <= MAX_BUFFER && attention <= MAX_BUFFER).then_some((crop, attention))
}

/// A 1×1 RGB PNG; the checkpoint's preprocessing resizes it to the model's input.
const IMAGE: &[u8] = include_bytes!("../../tests/fixtures/images/tiny.png");

/// The fuzz targets, by name.
pub const TARGETS: [&str; 6] = [
    "safetensors",
    "checkpoint",
    "preprocess",
    "hub_ref",
    "protocol",
    "engine",
];

/// Runs the target called `target` on `data`; false for an unknown name.
pub fn run(target: &str, data: &[u8]) -> bool {
    match target {
        "safetensors" => safetensors(data),
        "checkpoint" => checkpoint(data),
        "preprocess" => preprocess(data),
        "hub_ref" => hub_ref(data),
        "protocol" => protocol(data),
        "engine" => engine(data),
        _ => return false,
    }
    true
}

/// Any bytes as `model.safetensors`: `read_safetensors` must answer with tensors or an error.
pub fn safetensors(data: &[u8]) {
    if let Ok(raw) = read_safetensors(data) {
        for tensor in raw.tensors.values() {
            assert_eq!(tensor.shape.iter().product::<usize>(), tensor.len());
        }
    }
}

/// A whole checkpoint from one input (see `vit_lens_fuzz::checkpoint_parts` for the cut): `Checkpoint::from_bytes` must load it or say why not, and what it loads must be usable.
pub fn checkpoint(data: &[u8]) {
    let parts = checkpoint_parts(data);
    let files = CheckpointFiles {
        config_json: parts.config_json,
        preprocessor_config_json: parts.preprocessor_config_json,
        safetensors: parts.safetensors,
    };
    if let Ok(checkpoint) = Checkpoint::from_bytes(files) {
        // What the page and the CLI show right after loading.
        let config = &checkpoint.config;
        let _ = (config.tokens(), config.head_dim(), config.macs());
        let _ = checkpoint.parameter_count();
        let _ = checkpoint.preprocess.output_size();
        let _ = vit_lens::app::protocol::ModelInfo::of(&checkpoint, "fuzz");
    }
}

/// A preprocessor configuration and an image file: `preprocessor_config.json` (or a timm `pretrained_cfg`), `0xFF`, then the image bytes. Every configuration that parses is applied to the image with the limits the app and the CLI use.
pub fn preprocess(data: &[u8]) {
    let (json, image) = split_once(data);
    let mut configs = Vec::new();
    if let Ok(cfg) = PreprocessConfig::from_hf_json_auto(json, IMAGE_SIZE) {
        configs.push(cfg);
    }
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(json) {
        if let Ok(cfg) = PreprocessConfig::from_timm_pretrained_cfg(&value) {
            configs.push(cfg);
        }
    }
    if configs.is_empty() {
        configs.push(PreprocessConfig::vit_defaults(IMAGE_SIZE));
    }
    for cfg in &configs {
        if let Ok(pre) = preprocess_bytes(image, cfg, &DecodeLimits::default()) {
            let (w, h) = (pre.width as usize, pre.height as usize);
            assert_eq!(pre.pixel_values.len(), 3 * w * h);
            assert_eq!(pre.crop.dimensions(), (pre.width, pre.height));
        }
    }
}

/// What a user types into the model box: the model reference, then optionally a newline and the hub it is resolved against (the default hub otherwise).
pub fn hub_ref(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (input, hub) = text.split_once('\n').unwrap_or((text, DEFAULT_HUB));
    if let Ok(remote) = parse_model_ref(input, hub) {
        for file in [CONFIG_FILE, WEIGHTS_FILE, PREPROCESSOR_FILE] {
            let _ = remote.file_url(file);
        }
        let _ = (remote.display(), remote.origin());
        if let Remote::Hub { hub, repo, .. } = &remote {
            let _ = Remote::hub(hub, repo).file_url(CONFIG_FILE);
        }
    }
}

/// Messages between the page and the worker: the JSON of a `Request` or `Reply`, `0xFF`, then bytes that stand for the transferred buffers. A `Result` reply goes through the page's own checks (`ResultMeta::check_buffers`, `StoredInference::from_parts`) and, when accepted, on to the heatmaps the page draws from it.
pub fn protocol(data: &[u8]) {
    let (json, tail) = split_once(data);
    let _ = serde_json::from_slice::<Request>(json);
    let Ok(Reply::Result(meta)) = serde_json::from_slice::<Reply>(json) else {
        return;
    };
    // Buffer lengths as they arrive, whatever the message says.
    let _ = meta.check_buffers(
        read_u64(tail, 0) as usize,
        read_u64(tail, 8) as usize,
        read_u64(tail, 16) as usize,
    );
    // Buffers of the lengths the message announces, holding the tail's bytes.
    let Some((crop_len, attention_len)) = announced_lengths(&meta) else {
        return;
    };
    let crop: Vec<u8> = tail.iter().copied().cycle().take(crop_len).collect();
    let floats: Vec<f32> = tail
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let value = |i: usize| floats.get(i % floats.len().max(1)).copied().unwrap_or(0.0);
    let attention: Vec<f32> = (0..attention_len).map(value).collect();
    let logits: Vec<f32> = (0..1 + tail.first().map_or(0, |b| b % 8) as usize)
        .map(value)
        .collect();
    let labels: Vec<String> = (0..3).map(|i| format!("class {i}")).collect();
    let Ok(stored) =
        StoredInference::from_parts("fuzz".into(), &meta, crop, &logits, &attention, &labels)
    else {
        return;
    };
    let defaults = ViewOptions::default();
    let Ok(rollouts) = stored.rollouts(defaults.fusion, defaults.discard_ratio) else {
        return;
    };
    for layer in 1..=stored.layers().min(4) {
        for kind in [
            MapKind::Rollout,
            MapKind::ClsAttention { head: None },
            MapKind::ClsAttention { head: Some(0) },
        ] {
            let opts = ViewOptions {
                layer,
                kind,
                ..defaults
            };
            if let Ok(map) = stored.map(&opts, &rollouts) {
                let _ = stored.render(&opts, &map);
            }
        }
    }
}

/// A checkpoint run end to end on the CPU, as the CLI and the web app's worker do: load it (same input cut as the `checkpoint` target), build the CPU engine, preprocess a small image with the checkpoint's own preprocessing, and run one forward pass.
pub fn engine(data: &[u8]) {
    let parts = checkpoint_parts(data);
    let files = CheckpointFiles {
        config_json: parts.config_json,
        preprocessor_config_json: parts.preprocessor_config_json,
        safetensors: parts.safetensors,
    };
    let Ok(checkpoint) = Checkpoint::from_bytes(files) else {
        return;
    };
    let Ok(engine) = vit_lens::gpu::block_on(Engine::new(&checkpoint, BackendChoice::Cpu)) else {
        return;
    };
    let Ok(image) = preprocess_bytes(IMAGE, &checkpoint.preprocess, &DecodeLimits::default())
    else {
        return;
    };
    if let Ok(result) = engine.infer(&image) {
        assert_eq!(result.attentions.len(), checkpoint.config.num_layers);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_cut_at_the_separators() {
        let parts = checkpoint_parts(b"{\"a\":1}\xff{\"b\":2}\xff\x08\x00\xff");
        assert_eq!(parts.config_json, b"{\"a\":1}");
        assert_eq!(parts.preprocessor_config_json, Some(&b"{\"b\":2}"[..]));
        assert_eq!(parts.safetensors, b"\x08\x00\xff");

        let parts = checkpoint_parts(b"{}\xff\x08\x00{\xff");
        assert_eq!(parts.preprocessor_config_json, None);
        assert_eq!(parts.safetensors, b"\x08\x00{\xff");

        assert_eq!(split_once(b"abc"), (&b"abc"[..], &b""[..]));
        assert_eq!(read_u64(b"\x01\x02", 0), 0x0201);
    }
}
