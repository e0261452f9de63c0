//! Teaching statistics, computed from the loaded checkpoint and one image's forward pass:
//!
//! - what the model learned, as in Fig. 7 of the ViT paper (Dosovitskiy et al. 2020):
//!   the principal components of the patch-embedding filters ([`filter_pca`]) and the
//!   cosine similarity of the position embeddings ([`position_similarity`]);
//! - what it does with an image: the mean attention distance of every head
//!   ([`mean_attention_distance`]) and the forward pass as a list of steps with shapes and
//!   real values ([`inspect_image`]).
//!
//! The app's teaching views and `vit-lens teach` both show a [`Teaching`], so the numbers on
//! the page and on the command line are the same computation.

mod card;
mod distance;
mod filters;
mod positions;
mod tour;

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::checkpoint::Checkpoint;
use crate::model::{ModelError, VisionTransformer};

pub use card::{model_stats, ModelCard, ModelStats};
pub use distance::mean_attention_distance;
pub use filters::{filter_pca, FilterPca};
pub use positions::{position_similarity, PositionSimilarity};
pub use tour::{inspect_image, ImageStats, TourStage, TourStep};

/// How many principal components of the patch-embedding filters are reported (the paper
/// shows 28).
pub const FILTER_COMPONENTS: usize = 28;

/// How many values of a step's focus row are reported.
pub const STEP_VALUES: usize = 6;

#[derive(Debug, thiserror::Error)]
pub enum TeachError {
    #[error("{what} has shape {shape:?}; expected {expected}")]
    Shape {
        what: &'static str,
        shape: Vec<usize>,
        expected: String,
    },
    #[error(
        "computing {what} is too much work for a teaching view; vit-lens computes it for {limit} \
         — use a smaller model for this view"
    )]
    TooLarge { what: String, limit: String },
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("tensor computation failed: {0}")]
    Candle(#[from] candle_core::Error),
}

/// Everything the teaching views show.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Teaching {
    pub model: ModelStats,
    pub image: Option<ImageStats>,
}

/// Model statistics, and the image's when `pixels` is given: what `vit-lens teach` prints and
/// the app's teaching views show.
pub fn teaching(
    checkpoint: &Checkpoint,
    model: &VisionTransformer,
    pixels: Option<&Tensor>,
) -> Result<Teaching, TeachError> {
    Ok(Teaching {
        model: model_stats(checkpoint)?,
        image: pixels.map(|p| inspect_image(model, p)).transpose()?,
    })
}
