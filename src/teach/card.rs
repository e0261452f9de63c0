//! The model card and the image-independent statistics of a checkpoint.

use serde::{Deserialize, Serialize};

use super::filters::{filter_pca, FilterPca};
use super::positions::{position_similarity, PositionSimilarity};
use super::{TeachError, FILTER_COMPONENTS};
use crate::checkpoint::{Checkpoint, WeightTensor};

/// The model card: geometry and size of the loaded checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    pub architecture: String,
    /// "transformers" or "timm".
    pub layout: String,
    pub stored_dtype: String,
    pub image_size: usize,
    pub patch_size: usize,
    pub channels: usize,
    pub grid: usize,
    pub patches: usize,
    pub prefix_tokens: usize,
    pub tokens: usize,
    pub layers: usize,
    pub heads: usize,
    pub head_dim: usize,
    pub hidden_size: usize,
    pub mlp_size: usize,
    pub classes: usize,
    pub parameters: usize,
    /// Floating-point operations per image at the native resolution (2 per multiply-add).
    pub flops: u64,
}

impl ModelCard {
    pub fn of(checkpoint: &Checkpoint) -> Self {
        let c = &checkpoint.config;
        Self {
            architecture: checkpoint.architecture.clone(),
            layout: checkpoint.layout.to_string(),
            stored_dtype: checkpoint.stored_dtype.to_string(),
            image_size: c.image_size,
            patch_size: c.patch_size,
            channels: c.num_channels,
            grid: c.patch_grid(),
            patches: c.patch_grid() * c.patch_grid(),
            prefix_tokens: c.prefix_tokens(),
            tokens: c.tokens(),
            layers: c.num_layers,
            heads: c.num_heads,
            head_dim: c.head_dim(),
            hidden_size: c.hidden_size,
            mlp_size: c.intermediate_size,
            classes: c.num_classes,
            parameters: checkpoint.parameter_count(),
            flops: 2 * c.macs(),
        }
    }
}

/// What the checkpoint itself shows, independent of any image.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelStats {
    pub card: ModelCard,
    pub filter_pca: FilterPca,
    pub position_similarity: PositionSimilarity,
}

/// Card, filter components and position similarity of a checkpoint.
pub fn model_stats(checkpoint: &Checkpoint) -> Result<ModelStats, TeachError> {
    let c = &checkpoint.config;
    let w = &checkpoint.weights;
    let filters = WeightTensor::new(
        vec![c.hidden_size, c.num_channels, c.patch_size, c.patch_size],
        w.patch_embed.weight.data.clone(),
    );
    Ok(ModelStats {
        card: ModelCard::of(checkpoint),
        filter_pca: filter_pca(&filters, FILTER_COMPONENTS)?,
        position_similarity: position_similarity(
            &w.pos_embed,
            c.prefix_tokens(),
            (c.patch_grid(), c.patch_grid()),
        )?,
    })
}
