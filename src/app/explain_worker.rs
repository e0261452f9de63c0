//! The worker's side of the explanation views: explains the latest classified image with
//! [`ExplainModel`], on the CPU whichever backend classified it, and runs it again with
//! patches hidden or heads switched off. The model is prepared once per loaded checkpoint
//! and kept beside it.

use candle_core::{Device, Tensor};

use super::protocol::Reply;
use crate::analysis::{softmax, top_k};
use crate::checkpoint::Checkpoint;
use crate::explain::{ExplainModel, ExplainOptions, HeadId};
use crate::preprocess::Preprocessed;

/// The prepared model (built on first use into `model`) and the model input of image `id`,
/// which must be the latest classified one, `last`.
fn prepare<'m>(
    model: &'m mut Option<ExplainModel>,
    checkpoint: &Checkpoint,
    last: Option<&(u64, Preprocessed)>,
    id: u64,
) -> Result<(&'m ExplainModel, Tensor), String> {
    let pre =
        match last {
            Some((last, pre)) if *last == id => pre,
            _ => return Err(
                "this image is no longer the latest one; explanations cover the latest image only"
                    .to_string(),
            ),
        };
    if model.is_none() {
        *model = Some(ExplainModel::new(checkpoint).map_err(|e| e.to_string())?);
    }
    let explainer = model.as_ref().ok_or("the explanation model is missing")?;
    let pixels = Tensor::from_slice(
        &pre.pixel_values,
        (
            1,
            checkpoint.config.num_channels,
            pre.height as usize,
            pre.width as usize,
        ),
        &Device::Cpu,
    )
    .map_err(|e| e.to_string())?;
    Ok((explainer, pixels))
}

/// Answers `Request::Explain { id, class, interventions }`.
pub fn explain(
    model: &mut Option<ExplainModel>,
    checkpoint: &Checkpoint,
    last: Option<&(u64, Preprocessed)>,
    id: u64,
    class: Option<usize>,
    interventions: bool,
) -> Result<Reply, String> {
    let (explainer, pixels) = prepare(model, checkpoint, last, id)?;
    let options = ExplainOptions {
        occlusion: interventions,
        head_effects: interventions,
        faithfulness: interventions,
        ..ExplainOptions::default()
    };
    let explanation = explainer
        .explain(&pixels, class, &options)
        .map_err(|e| e.to_string())?;
    Ok(Reply::Explanation {
        id,
        interventions,
        explanation: Box::new(explanation),
    })
}

/// Answers `Request::WhatIf`: the top classes of image `id` with `hidden` patches dropped
/// and `heads_off` (layer, head) zeroed.
pub fn what_if(
    model: &mut Option<ExplainModel>,
    checkpoint: &Checkpoint,
    last: Option<&(u64, Preprocessed)>,
    id: u64,
    hidden: Vec<usize>,
    heads_off: Vec<(usize, usize)>,
) -> Result<Reply, String> {
    let (explainer, pixels) = prepare(model, checkpoint, last, id)?;
    let heads: Vec<HeadId> = heads_off
        .iter()
        .map(|&(layer, head)| HeadId { layer, head })
        .collect();
    // The same check and pass as `vit-lens explain --hide … --heads-off …`.
    let logits = explainer
        .what_if(&pixels, &hidden, &heads)
        .map_err(|e| e.to_string())?;
    let predictions = top_k(&softmax(&logits), &checkpoint.labels, 5);
    Ok(Reply::WhatIf {
        id,
        hidden_patches: hidden,
        heads_off,
        predictions,
    })
}
