//! `vit-lens classify`: one image's top classes and attention rollout, as a table, JSON or a PNG.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::json;

use vit_lens::analysis::{rollout, softmax, top_k, HeadFusion, RolloutOptions};
use vit_lens::preprocess::{preprocess_bytes, DecodeLimits, Preprocessed};
use vit_lens::render::{encode_png, overlay, Colormap};

use super::common::{
    backend_line, build_engine, configure_threads, image_from_pixels, load_checkpoint, ms_since,
    read, read_pixels, write_pixels, InputArgs, ModelArgs,
};

#[derive(Args)]
pub struct ClassifyArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub input: InputArgs,
    /// How many classes to list.
    #[arg(long, default_value_t = 5, value_name = "K")]
    pub top: usize,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Write the preprocessed input as safetensors (`pixel_values`, [1,3,H,W], f32).
    #[arg(long, value_name = "FILE")]
    pub save_pixels: Option<PathBuf>,
    /// Write the rollout heatmap over the model's crop as a PNG.
    #[arg(long, value_name = "OUT.png")]
    pub rollout_png: Option<PathBuf>,
    /// Layer of the rollout drawn by --rollout-png, 1-based (default: the last).
    #[arg(long, value_name = "L")]
    pub layer: Option<usize>,
    /// How the heads of a layer are fused: mean, max or min.
    #[arg(long, default_value = "mean")]
    pub head_fusion: HeadFusion,
    /// Fraction of the weakest attention links dropped before rollout, in [0, 1).
    #[arg(long, default_value_t = 0.0, value_name = "R")]
    pub discard_ratio: f32,
    /// Roll out from the distillation token instead of CLS (distilled DeiT only).
    #[arg(long)]
    pub from_distillation_token: bool,
    /// Colormap of --rollout-png.
    #[arg(long, default_value = "turbo")]
    pub colormap: Colormap,
    /// Heatmap opacity of --rollout-png, in [0, 1].
    #[arg(long, default_value_t = 0.6)]
    pub opacity: f32,
}

pub fn run(args: ClassifyArgs) -> Result<()> {
    let threads = configure_threads(args.model.threads)?;
    if !(0.0..1.0).contains(&args.discard_ratio) {
        bail!(
            "--discard-ratio must be in [0, 1), got {}",
            args.discard_ratio
        );
    }
    if !(0.0..=1.0).contains(&args.opacity) {
        bail!("--opacity must be in [0, 1], got {}", args.opacity);
    }
    let t0 = Instant::now();
    let checkpoint = load_checkpoint(args.model.model.as_deref())?;
    let engine = build_engine(&checkpoint, args.model.backend)?;
    let load_ms = ms_since(t0);
    let channels = checkpoint.config.num_channels;

    let t0 = Instant::now();
    let (pixels, height, width, crop) = match (&args.input.image, &args.input.pixels) {
        (Some(path), _) => {
            let bytes = read(path)?;
            let Preprocessed {
                pixel_values,
                height,
                width,
                crop,
            } = preprocess_bytes(&bytes, &checkpoint.preprocess, &DecodeLimits::default())
                .with_context(|| format!("cannot use the image {}", path.display()))?;
            (pixel_values, height as usize, width as usize, Some(crop))
        }
        (None, Some(path)) => {
            let (pixels, h, w) = read_pixels(path, channels)?;
            (pixels, h, w, None)
        }
        (None, None) => bail!("give an image with --image FILE or model input with --pixels FILE"),
    };
    let preprocess_ms = ms_since(t0);
    if let Some(path) = &args.save_pixels {
        write_pixels(path, &pixels, channels, height, width)?;
    }

    let t0 = Instant::now();
    let result = engine.infer_batch(&pixels, 1, height, width)?.remove(0);
    let forward_ms = ms_since(t0);

    let t0 = Instant::now();
    let options = RolloutOptions {
        head_fusion: args.head_fusion,
        discard_ratio: args.discard_ratio,
        start_token: usize::from(args.from_distillation_token),
    };
    if args.from_distillation_token && result.prefix_tokens < 2 {
        bail!("--from-distillation-token needs a distilled DeiT; this model has no distillation token");
    }
    let maps = rollout(&result.attentions, result.prefix_tokens, &options)?;
    let rollout_ms = ms_since(t0);

    let probs = softmax(&result.logits);
    let top = top_k(&probs, &checkpoint.labels, args.top);

    let layers = maps.len();
    let layer = args.layer.unwrap_or(layers);
    if layer == 0 || layer > layers {
        bail!("--layer must be between 1 and {layers}, got {layer}");
    }
    if let Some(path) = &args.rollout_png {
        let crop = crop.unwrap_or_else(|| image_from_pixels(&pixels, height, width, &checkpoint));
        let rgba = overlay(
            &crop,
            &maps[layer - 1],
            result.patch_grid,
            args.colormap,
            args.opacity,
        )?;
        std::fs::write(path, encode_png(&rgba)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }

    if args.json {
        let out = json!({
            "model": {
                "architecture": checkpoint.architecture,
                "layout": checkpoint.layout,
                "stored_dtype": checkpoint.stored_dtype,
                "parameters": checkpoint.parameter_count(),
                "config": checkpoint.config,
            },
            "input": {"height": height, "width": width},
            "top": top,
            "logits": result.logits,
            "rollout": {
                "grid": [result.patch_grid.0, result.patch_grid.1],
                "head_fusion": options.head_fusion,
                "discard_ratio": options.discard_ratio,
                "start_token": if args.from_distillation_token { "distillation" } else { "cls" },
                "layers": maps,
            },
            "backend": engine.backend(),
            "adapter": engine.adapter(),
            "fallback_reason": engine.fallback_reason(),
            "threads": threads,
            "timings_ms": {
                "load": load_ms,
                "preprocess": preprocess_ms,
                "forward": forward_ms,
                "rollout": rollout_ms,
            },
        });
        println!("{out}");
    } else {
        println!(
            "{} ({} layout, {} layers, {} classes) on {}",
            checkpoint.architecture,
            checkpoint.layout,
            checkpoint.config.num_layers,
            checkpoint.config.num_classes,
            backend_line(&engine)
        );
        for p in &top {
            println!("{:>7.3}%  {:>5}  {}", p.prob * 100.0, p.index, p.label);
        }
        println!(
            "timings: load {load_ms:.1} ms, preprocess {preprocess_ms:.1} ms, forward {forward_ms:.1} ms, rollout {rollout_ms:.1} ms"
        );
        if let Some(path) = &args.rollout_png {
            println!(
                "rollout of layer {layer}/{layers} written to {}",
                path.display()
            );
        }
    }
    Ok(())
}
