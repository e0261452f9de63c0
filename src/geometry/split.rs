//! Batched results → per-image results, for both backends: logits (batch, classes) and each
//! layer's attention (batch, heads, tokens, tokens), batch-major.

use super::shapes::{Geometry, GeometryError};

/// One image's share of a batch's results.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageSlices<'a> {
    /// (classes,)
    pub logits: &'a [f32],
    /// One per layer, each (heads, tokens, tokens).
    pub attentions: Vec<&'a [f32]>,
}

/// Image `image`'s part of a batch-major buffer of `batch` equal parts; empty when `image` is
/// past the batch.
pub fn image_part(values: &[f32], batch: usize, image: usize) -> &[f32] {
    let per_image = values.len() / batch.max(1);
    values
        .get(image * per_image..(image + 1) * per_image)
        .unwrap_or_default()
}

/// Splits a pass's results into one [`ImageSlices`] per image of `geometry`'s batch, after
/// checking every length: `geometry.classes` logits and one
/// [`Geometry::attention_len`] block per layer and image.
pub fn split_batch<'a, L: AsRef<[f32]>>(
    geometry: &Geometry,
    logits: &'a [f32],
    attentions: &'a [L],
) -> Result<Vec<ImageSlices<'a>>, GeometryError> {
    let batch = geometry.batch;
    let check = |what, got: usize, per_image: usize| {
        let expected = batch * per_image;
        if got == expected {
            return Ok(());
        }
        Err(GeometryError::Results {
            what,
            batch,
            got,
            expected,
        })
    };
    check("logits", logits.len(), geometry.classes)?;
    for layer in attentions {
        check("attention", layer.as_ref().len(), geometry.attention_len())?;
    }
    Ok((0..batch)
        .map(|image| ImageSlices {
            logits: image_part(logits, batch, image),
            attentions: attentions
                .iter()
                .map(|layer| image_part(layer.as_ref(), batch, image))
                .collect(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::deit_tiny;

    #[test]
    fn splits_by_image_and_checks_lengths() {
        let cfg = crate::checkpoint::ModelConfig {
            num_classes: 2,
            num_heads: 1,
            hidden_size: 4,
            patch_size: 16,
            ..deit_tiny()
        };
        let g = Geometry::new(&cfg, 2, 16, 16).expect("1 patch");
        assert_eq!(g.tokens, 2);
        let logits = [1.0, 2.0, 3.0, 4.0];
        let layer: Vec<f32> = (0..8).map(|i| i as f32).collect();
        let layers = [layer.clone(), layer.clone()];
        let images = split_batch(&g, &logits, &layers).expect("ok");
        assert_eq!(images.len(), 2);
        assert_eq!(images[1].logits, &[3.0, 4.0]);
        assert_eq!(images[1].attentions, vec![&layer[4..], &layer[4..]]);
        let short = split_batch(&g, &logits, &[&layer[..7]]).expect_err("short layer");
        assert!(short.to_string().contains("attention"), "{short}");
        assert!(image_part(&logits, 2, 2).is_empty());
    }
}
