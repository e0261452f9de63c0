//! The logit lens: the model's final LayerNorm and classifier applied to the hidden state
//! after every layer, as if the network stopped there. The last layer's entry is the
//! model's own output.

use serde::{Deserialize, Serialize};

use super::network::{ExplainModel, Trace};
use super::ExplainError;
use crate::analysis::{softmax, top_k, Prediction};

/// What the classifier reads after one layer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LensLayer {
    /// The `k` most probable classes (softmax over that layer's logits), most probable first.
    pub top: Vec<Prediction>,
    /// The explained class's probability after this layer.
    pub class_prob: f32,
}

impl ExplainModel {
    /// Logits (classes,) of the final LayerNorm + head(s) on the prefix tokens after each
    /// layer, in layer order (distilled DeiT: both heads on their tokens, averaged).
    pub fn lens_logits(&self, trace: &Trace) -> Result<Vec<Vec<f32>>, ExplainError> {
        let layers = trace.prefix_hidden.len();
        let rows: Vec<f32> = trace.prefix_hidden.concat();
        let (logits, _) = self.classify(rows, layers, false)?;
        Ok(logits
            .chunks_exact(self.config.num_classes)
            .map(<[f32]>::to_vec)
            .collect())
    }

    /// The logit lens for class `class`: per layer the top `k` and the class's probability.
    pub fn logit_lens(
        &self,
        trace: &Trace,
        class: usize,
        k: usize,
    ) -> Result<Vec<LensLayer>, ExplainError> {
        if class >= self.config.num_classes {
            return Err(ExplainError::ClassOutOfRange {
                class,
                classes: self.config.num_classes,
            });
        }
        Ok(self
            .lens_logits(trace)?
            .iter()
            .map(|logits| {
                let probs = softmax(logits);
                LensLayer {
                    top: top_k(&probs, &self.labels, k),
                    class_prob: probs[class],
                }
            })
            .collect())
    }
}
