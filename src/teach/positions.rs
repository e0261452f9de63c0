//! How alike the position embeddings are (ViT paper, Fig. 7 centre).

use serde::{Deserialize, Serialize};

use super::TeachError;
use crate::checkpoint::WeightTensor;

/// Cosine similarity between the position embeddings of every pair of patches, at the
/// checkpoint's native grid.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PositionSimilarity {
    pub grid_rows: usize,
    pub grid_cols: usize,
    /// (patches, patches), row-major; patches in raster order.
    pub values: Vec<f32>,
}

/// `pos_embed`: (tokens, hidden) with `prefix_tokens` rows before the patches, which lie on a
/// `grid`.
pub fn position_similarity(
    pos_embed: &WeightTensor,
    prefix_tokens: usize,
    grid: (usize, usize),
) -> Result<PositionSimilarity, TeachError> {
    let patches = grid.0 * grid.1;
    let hidden = match pos_embed.shape.as_slice() {
        &[t, h] | &[1, t, h]
            if t == prefix_tokens + patches && h > 0 && pos_embed.data.len() == t * h =>
        {
            h
        }
        other => {
            return Err(TeachError::Shape {
                what: "the position embeddings",
                shape: other.to_vec(),
                expected: format!(
                    "({} tokens, hidden) for a {}×{} grid",
                    prefix_tokens + patches,
                    grid.0,
                    grid.1
                ),
            })
        }
    };
    let rows: Vec<&[f32]> = pos_embed.data[prefix_tokens * hidden..]
        .chunks_exact(hidden)
        .collect();
    let norms: Vec<f64> = rows
        .iter()
        .map(|r| {
            r.iter()
                .map(|&v| f64::from(v) * f64::from(v))
                .sum::<f64>()
                .sqrt()
        })
        .collect();
    let mut values = vec![0.0f32; patches * patches];
    for i in 0..patches {
        for j in i..patches {
            let dot: f64 = rows[i]
                .iter()
                .zip(rows[j])
                .map(|(&a, &b)| f64::from(a) * f64::from(b))
                .sum();
            let denom = norms[i] * norms[j];
            let cos = if denom > 0.0 { dot / denom } else { 0.0 } as f32;
            values[i * patches + j] = cos;
            values[j * patches + i] = cos;
        }
    }
    Ok(PositionSimilarity {
        grid_rows: grid.0,
        grid_cols: grid.1,
        values,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_shapes() {
        let pos = WeightTensor::new(vec![5, 2], vec![1.0; 10]);
        assert!(position_similarity(&pos, 1, (2, 2)).is_ok());
        assert!(position_similarity(&pos, 0, (2, 2)).is_err());
    }
}
