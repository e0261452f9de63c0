//! How far each head looks: mean attention distance in pixels (ViT paper, Fig. 7 right).

use super::TeachError;
use crate::analysis::LayerAttention;

/// Mean attention distance of each head of one layer, in pixels: for every patch query, the
/// distance between patch centres weighted by its attention to the other patches (the row
/// restricted to patch keys and renormalized, so attention to the prefix tokens does not count
/// as "near"), averaged over the patch queries.
pub fn mean_attention_distance(
    layer: &LayerAttention,
    grid: (usize, usize),
    prefix_tokens: usize,
    patch_size: usize,
) -> Result<Vec<f32>, TeachError> {
    let patches = grid.0 * grid.1;
    if layer.tokens != prefix_tokens + patches || patches == 0 {
        return Err(TeachError::Shape {
            what: "the attention",
            shape: vec![layer.heads, layer.tokens, layer.tokens],
            expected: format!(
                "{} tokens ({prefix_tokens} prefix + a {}×{} grid)",
                prefix_tokens + patches,
                grid.0,
                grid.1
            ),
        });
    }
    let cols = grid.1;
    let distance: Vec<f64> = (0..patches * patches)
        .map(|ij| {
            let (i, j) = (ij / patches, ij % patches);
            let dy = (i / cols) as f64 - (j / cols) as f64;
            let dx = (i % cols) as f64 - (j % cols) as f64;
            (dx * dx + dy * dy).sqrt() * patch_size as f64
        })
        .collect();
    Ok((0..layer.heads)
        .map(|h| {
            let mut sum = 0.0;
            for q in 0..patches {
                let row = &layer.row(h, prefix_tokens + q)[prefix_tokens..];
                let mass: f64 = row.iter().map(|&a| f64::from(a)).sum();
                if mass > 0.0 {
                    let weighted: f64 = row
                        .iter()
                        .zip(&distance[q * patches..(q + 1) * patches])
                        .map(|(&a, &dist)| f64::from(a) * dist)
                        .sum();
                    sum += weighted / mass;
                }
            }
            (sum / patches as f64) as f32
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_of_uniform_and_local_attention() {
        // 2×2 grid, no prefix: a head attending only to itself has distance 0; a uniform head
        // averages 0, p, p and p√2 over the keys of every query.
        let p = 16;
        let mut data = vec![0.0f32; 2 * 16];
        for q in 0..4 {
            data[q * 4 + q] = 1.0;
            for k in 0..4 {
                data[16 + q * 4 + k] = 0.25;
            }
        }
        let layer = LayerAttention::new(2, 4, data).unwrap();
        let d = mean_attention_distance(&layer, (2, 2), 0, p).unwrap();
        assert_eq!(d[0], 0.0);
        let want = (2.0 * 16.0 + 16.0 * 2f32.sqrt()) / 4.0;
        assert!((d[1] - want).abs() < 1e-4, "{} vs {want}", d[1]);
        assert!(mean_attention_distance(&layer, (3, 2), 0, p).is_err());
    }
}
