//! The worker's side of the explanation views: explains the latest classified image with
//! [`ExplainModel`], on the CPU whichever backend classified it. The model is prepared once
//! per loaded checkpoint and kept beside it.

use candle_core::{Device, Tensor};

use super::protocol::Reply;
use crate::checkpoint::Checkpoint;
use crate::explain::{ExplainModel, ExplainOptions};
use crate::preprocess::Preprocessed;

/// Answers `Request::Explain { id, class, interventions }` for the image `last` (the latest
/// classified one, with its id); `model` caches the prepared model of `checkpoint`.
pub fn explain(
    model: &mut Option<ExplainModel>,
    checkpoint: &Checkpoint,
    last: Option<&(u64, Preprocessed)>,
    id: u64,
    class: Option<usize>,
    interventions: bool,
) -> Result<Reply, String> {
    let pre =
        match last {
            Some((last, pre)) if *last == id => pre,
            _ => return Err(
                "This image is no longer the latest one; explanations cover the latest image only."
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
