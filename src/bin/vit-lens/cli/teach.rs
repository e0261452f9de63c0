//! `vit-lens teach`: the teaching statistics of the web app's teaching views, as JSON.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use super::common::{load_checkpoint, read_input};

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
    let input = read_input(&checkpoint, args.image.as_deref(), args.pixels.as_deref())?;
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
