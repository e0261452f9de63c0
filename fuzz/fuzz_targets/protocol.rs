//! Messages between the page and the worker: the JSON of a `Request` or `Reply`, `0xFF`, then
//! bytes that stand for the transferred buffers. A `Result` reply goes through the page's own
//! checks (`ResultMeta::check_buffers`, `StoredInference::from_parts`) and, when accepted, on
//! to the heatmaps the page draws from it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vit_lens::app::protocol::{Reply, Request, ResultMeta};
use vit_lens::app::view::{MapKind, StoredInference, ViewOptions};
use vit_lens_fuzz::{read_u64, split_once};

/// Buffers larger than this are not built (the checks above already saw their lengths).
const MAX_BUFFER: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
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
});

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
