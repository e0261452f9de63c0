//! `vit-lens teach`: the teaching statistics of the web app's teaching views, as JSON.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use vit_lens::preprocess::{preprocess_bytes, DecodeLimits};

use super::common::{load_checkpoint, read, read_pixels};

#[derive(Args)]
pub struct TeachArgs {
    /// Checkpoint directory [default: the built-in shapes model].
    #[arg(long, value_name = "DIR")]
    pub model: Option<PathBuf>,
    /// An image file; without it (and without --pixels) only the model's statistics are printed.
    #[arg(long, value_name = "FILE", conflicts_with = "pixels")]
    pub image: Option<PathBuf>,
    /// Model input as a safetensors file with one f32 tensor `pixel_values` of shape [1,3,H,W].
    #[arg(long, value_name = "FILE")]
    pub pixels: Option<PathBuf>,
    /// Write the JSON here instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

pub fn run(args: TeachArgs) -> Result<()> {
    let checkpoint = load_checkpoint(args.model.as_deref())?;
    let model = vit_lens::model::VisionTransformer::new(&checkpoint, &candle_core::Device::Cpu)
        .context("cannot build the model on the CPU")?;
    let channels = checkpoint.config.num_channels;
    let input = match (&args.image, &args.pixels) {
        (Some(path), _) => {
            let pre = preprocess_bytes(
                &read(path)?,
                &checkpoint.preprocess,
                &DecodeLimits::default(),
            )
            .with_context(|| format!("cannot use the image {}", path.display()))?;
            Some((pre.pixel_values, pre.height as usize, pre.width as usize))
        }
        (None, Some(path)) => Some(read_pixels(path, channels)?),
        (None, None) => None,
    };
    let pixels = input
        .map(|(values, h, w)| {
            candle_core::Tensor::from_vec(values, (1, channels, h, w), &candle_core::Device::Cpu)
        })
        .transpose()?;
    let teaching = vit_lens::teach::teaching(&checkpoint, &model, pixels.as_ref())
        .context("cannot compute the teaching statistics")?;
    let json = serde_json::to_string(&teaching)?;
    match &args.out {
        Some(path) => std::fs::write(path, json)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => println!("{json}"),
    }
    Ok(())
}
