//! What the page keeps of one classification, and the heatmaps it derives from it without
//! running the model again. Pure computation, tested natively.

use image::{RgbImage, RgbaImage};

use crate::analysis::{
    query_attention, rollout, softmax, top_k, HeadFusion, LayerAttention, Prediction,
    RolloutOptions,
};
use crate::render::{overlay, Colormap};

use super::protocol::{BackendInfo, ResultMeta};

/// Which map the heatmap shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapKind {
    /// Attention rollout up to the chosen layer.
    Rollout,
    /// The CLS token's raw attention in the chosen layer: one head, or all heads fused.
    ClsAttention { head: Option<usize> },
}

/// Everything the heatmap controls set.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ViewOptions {
    /// 1-based: the rollout up to layer `layer`, or layer `layer`'s attention.
    pub layer: usize,
    pub kind: MapKind,
    pub fusion: HeadFusion,
    pub discard_ratio: f32,
    pub opacity: f32,
    pub colormap: Colormap,
}

impl Default for ViewOptions {
    fn default() -> Self {
        Self {
            layer: 1,
            kind: MapKind::Rollout,
            fusion: HeadFusion::Mean,
            discard_ratio: 0.0,
            opacity: 0.6,
            colormap: Colormap::Turbo,
        }
    }
}

/// One classification as the page stores it.
#[derive(Clone, Debug)]
pub struct StoredInference {
    /// The id of the request that produced it.
    pub id: u64,
    /// The image's name as the user gave it (file name, "pasted image", sample name).
    pub name: String,
    /// What the model saw.
    pub crop: RgbImage,
    pub probs: Vec<f32>,
    pub top: Vec<Prediction>,
    pub attentions: Vec<LayerAttention>,
    pub grid: (usize, usize),
    pub prefix_tokens: usize,
    pub preprocess_ms: f64,
    pub forward_ms: f64,
    pub backend: BackendInfo,
}

impl StoredInference {
    /// Assembles a stored inference from a worker's result message and buffers.
    pub fn from_parts(
        name: String,
        meta: &ResultMeta,
        crop_rgb: Vec<u8>,
        logits: &[f32],
        attention: &[f32],
        labels: &[String],
    ) -> Result<Self, String> {
        meta.check_buffers(crop_rgb.len(), logits.len(), attention.len())?;
        let crop = RgbImage::from_raw(meta.crop_width, meta.crop_height, crop_rgb)
            .ok_or_else(|| "the crop does not match its size".to_string())?;
        // check_buffers has bounded every product of these sizes.
        let plane = meta.heads * meta.tokens * meta.tokens;
        let attentions = attention
            .chunks_exact(plane.max(1))
            .map(|chunk| LayerAttention::new(meta.heads, meta.tokens, chunk.to_vec()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        let probs = softmax(logits);
        let top = top_k(&probs, labels, 5);
        Ok(Self {
            id: meta.id,
            name,
            crop,
            probs,
            top,
            attentions,
            grid: (meta.grid_rows, meta.grid_cols),
            prefix_tokens: meta.prefix_tokens,
            preprocess_ms: meta.preprocess_ms,
            forward_ms: meta.forward_ms,
            backend: meta.backend.clone(),
        })
    }

    pub fn layers(&self) -> usize {
        self.attentions.len()
    }

    pub fn heads(&self) -> usize {
        self.attentions.first().map_or(0, |a| a.heads)
    }

    /// The crop the model saw, as opaque RGBA for a canvas.
    pub fn crop_rgba(&self) -> Vec<u8> {
        self.crop
            .pixels()
            .flat_map(|p| [p.0[0], p.0[1], p.0[2], 255])
            .collect()
    }

    /// Rollout maps for every layer with these options (the page caches them per
    /// fusion and discard ratio, so moving the layer slider costs nothing).
    pub fn rollouts(
        &self,
        fusion: HeadFusion,
        discard_ratio: f32,
    ) -> Result<Vec<Vec<f32>>, String> {
        let opts = RolloutOptions {
            head_fusion: fusion,
            discard_ratio,
            start_token: 0,
        };
        rollout(&self.attentions, self.prefix_tokens, &opts).map_err(|e| e.to_string())
    }

    /// The map `opts` asks for, over the patch grid (row-major). `rollouts` are this
    /// inference's [`StoredInference::rollouts`] for `opts.fusion` and `opts.discard_ratio`.
    pub fn map(&self, opts: &ViewOptions, rollouts: &[Vec<f32>]) -> Result<Vec<f32>, String> {
        let layers = self.layers();
        if opts.layer == 0 || opts.layer > layers {
            return Err(format!("layer {} is not in 1..={layers}", opts.layer));
        }
        match opts.kind {
            MapKind::Rollout => rollouts
                .get(opts.layer - 1)
                .cloned()
                .ok_or_else(|| "no rollout for this layer".to_string()),
            MapKind::ClsAttention { head } => query_attention(
                &self.attentions[opts.layer - 1],
                head,
                opts.fusion,
                0,
                self.prefix_tokens,
            )
            .map_err(|e| e.to_string()),
        }
    }

    /// The crop with the heatmap laid over it.
    pub fn render(&self, opts: &ViewOptions, map: &[f32]) -> Result<RgbaImage, String> {
        overlay(&self.crop, map, self.grid, opts.colormap, opts.opacity).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 2-layer, 2-head model on a 2×2 grid (5 tokens), with attention rows that are
    /// valid distributions.
    fn stored() -> StoredInference {
        let (layers, heads, tokens) = (2usize, 2usize, 5usize);
        let mut attention = Vec::new();
        for l in 0..layers {
            for h in 0..heads {
                for q in 0..tokens {
                    let row: Vec<f32> = (0..tokens)
                        .map(|k| 1.0 + ((l * 7 + h * 3 + q * 2 + k * 5) % 11) as f32)
                        .collect();
                    let sum: f32 = row.iter().sum();
                    attention.extend(row.iter().map(|v| v / sum));
                }
            }
        }
        let meta = ResultMeta {
            id: 1,
            crop_width: 4,
            crop_height: 4,
            layers,
            heads,
            tokens,
            grid_rows: 2,
            grid_cols: 2,
            prefix_tokens: 1,
            preprocess_ms: 1.0,
            forward_ms: 2.0,
            backend: BackendInfo::cpu(None),
        };
        let labels: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        StoredInference::from_parts(
            "x.png".into(),
            &meta,
            vec![100; 48],
            &[0.5, 2.0, -1.0],
            &attention,
            &labels,
        )
        .unwrap()
    }

    #[test]
    fn predictions_come_from_the_logits() {
        let s = stored();
        assert_eq!(s.top[0].label, "b");
        assert_eq!(s.top.len(), 3);
        let sum: f32 = s.probs.iter().sum();
        assert!((sum - 1.0).abs() < 1e-6);
    }

    #[test]
    fn the_crop_becomes_opaque_rgba() {
        let s = stored();
        let rgba = s.crop_rgba();
        assert_eq!(rgba.len(), 4 * 4 * 4);
        assert!(rgba.chunks_exact(4).all(|p| p == [100, 100, 100, 255]));
    }

    #[test]
    fn maps_follow_the_layer_and_the_kind() {
        let s = stored();
        let rollouts = s.rollouts(HeadFusion::Mean, 0.0).unwrap();
        assert_eq!(rollouts.len(), 2);
        let mut opts = ViewOptions {
            layer: 1,
            ..ViewOptions::default()
        };
        let first = s.map(&opts, &rollouts).unwrap();
        opts.layer = 2;
        let second = s.map(&opts, &rollouts).unwrap();
        assert_eq!(first.len(), 4);
        assert_ne!(first, second);
        assert_eq!(second, rollouts[1]);

        opts.kind = MapKind::ClsAttention { head: Some(1) };
        let raw = s.map(&opts, &rollouts).unwrap();
        assert_eq!(raw, s.attentions[1].row(1, 0)[1..].to_vec());

        opts.layer = 3;
        assert!(s.map(&opts, &rollouts).is_err());
        opts.layer = 0;
        assert!(s.map(&opts, &rollouts).is_err());
    }

    #[test]
    fn rendering_keeps_the_crop_size_and_obeys_opacity() {
        let s = stored();
        let rollouts = s.rollouts(HeadFusion::Max, 0.5).unwrap();
        let opts = ViewOptions {
            opacity: 0.0,
            ..ViewOptions::default()
        };
        let map = s.map(&opts, &rollouts).unwrap();
        let image = s.render(&opts, &map).unwrap();
        assert_eq!(image.dimensions(), (4, 4));
        assert!(image.pixels().all(|p| p.0 == [100, 100, 100, 255]));
        let bad = ViewOptions {
            opacity: 2.0,
            ..opts
        };
        assert!(s.render(&bad, &map).is_err());
    }

    #[test]
    fn malformed_results_are_refused() {
        let meta = ResultMeta {
            id: 1,
            crop_width: 4,
            crop_height: 4,
            layers: 1,
            heads: 1,
            tokens: 5,
            grid_rows: 2,
            grid_cols: 2,
            prefix_tokens: 1,
            preprocess_ms: 0.0,
            forward_ms: 0.0,
            backend: BackendInfo::cpu(None),
        };
        let err =
            StoredInference::from_parts("x".into(), &meta, vec![0; 48], &[1.0], &[0.0; 24], &[])
                .unwrap_err();
        assert!(err.contains("attention"), "{err}");
    }
}
