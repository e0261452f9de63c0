//! "What if": one forward pass of an image with some patches hidden and some heads switched
//! off, checked and run the same way for the page's explain mode and `vit-lens explain`.

use candle_core::Tensor;

use super::interventions::{HeadId, Intervention};
use super::network::ExplainModel;
use super::ExplainError;

impl ExplainModel {
    /// Logits (classes,) of `pixels` (1, channels, height, width) with the `hidden` patches
    /// dropped (row-major on the patch grid; the rest keep their position embeddings) and
    /// `heads_off` zeroed before the output projection.
    pub fn what_if(
        &self,
        pixels: &Tensor,
        hidden: &[usize],
        heads_off: &[HeadId],
    ) -> Result<Vec<f32>, ExplainError> {
        let embedded = self.embed(pixels)?;
        let patches = embedded.patches();
        if let Some(&patch) = hidden.iter().find(|&&p| p >= patches) {
            return Err(ExplainError::PatchOutOfRange { patch, patches });
        }
        let mut distinct = hidden.to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        if distinct.len() >= patches {
            return Err(ExplainError::Options(
                "hiding every patch leaves the model nothing to see; keep at least one".into(),
            ));
        }
        let (layers, heads) = (self.config().num_layers, self.config().num_heads);
        if let Some(h) = heads_off
            .iter()
            .find(|h| h.layer >= layers || h.head >= heads)
        {
            return Err(ExplainError::HeadOutOfRange {
                layer: h.layer,
                head: h.head,
                layers,
                heads,
            });
        }
        let mut intervention = Intervention::drop_patches(patches, &distinct);
        intervention.heads_off = heads_off.to_vec();
        self.run(&embedded, &[intervention], 1)?
            .pop()
            .ok_or_else(|| ExplainError::Model("no logits came back".into()))
    }
}
