//! `vit-lens bench`: times the forward pass (median, min and max per image after warm-up).

use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::json;

use super::common::{
    backend_line, build_engine, configure_threads, load_checkpoint, ms_since, ModelArgs,
};

/// The most timed or warm-up runs one bench asks for (a day of the slowest model).
const MAX_RUNS: usize = 100_000;
/// The most images in one forward pass: past this the activations alone outgrow most memory.
const MAX_BATCH: usize = 256;

#[derive(Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Timed runs after warm-up.
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub runs: usize,
    /// Untimed runs first.
    #[arg(long, default_value_t = 3, value_name = "W")]
    pub warmup: usize,
    /// Images per forward pass.
    #[arg(long, default_value_t = 1, value_name = "B")]
    pub batch: usize,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: BenchArgs) -> Result<()> {
    let threads = configure_threads(args.model.threads)?;
    if !(1..=MAX_RUNS).contains(&args.runs) {
        bail!("--runs {} is out of range; give 1 to {MAX_RUNS}", args.runs);
    }
    if args.warmup > MAX_RUNS {
        bail!(
            "--warmup {} is out of range; give 0 to {MAX_RUNS}",
            args.warmup
        );
    }
    if !(1..=MAX_BATCH).contains(&args.batch) {
        bail!(
            "--batch {} is out of range; give 1 to {MAX_BATCH}",
            args.batch
        );
    }
    let checkpoint = load_checkpoint(args.model.model.as_deref())?;
    let t0 = Instant::now();
    let engine = build_engine(&checkpoint, args.model.backend)?;
    let setup_ms = ms_since(t0);
    let cfg = &checkpoint.config;
    let side = cfg.image_size;
    let len = [cfg.num_channels, side, side]
        .iter()
        .try_fold(args.batch, |n, &d| n.checked_mul(d))
        .context("the benchmark input's size overflows; use a smaller --batch")?;
    // A smooth deterministic input: timings do not depend on the values, but NaNs would hide work.
    let pixels: Vec<f32> = (0..len).map(|i| ((i as f32) * 0.013).sin()).collect();

    let t0 = Instant::now();
    engine.infer_batch(&pixels, args.batch, side, side)?;
    let first_ms = ms_since(t0) / args.batch as f64;
    let kernel_ms = engine.profile_batch(&pixels, args.batch, side, side)?;
    for _ in 0..args.warmup {
        engine.infer_batch(&pixels, args.batch, side, side)?;
    }
    let mut per_image: Vec<f64> = Vec::with_capacity(args.runs);
    for _ in 0..args.runs {
        let t0 = Instant::now();
        engine.infer_batch(&pixels, args.batch, side, side)?;
        per_image.push(ms_since(t0) / args.batch as f64);
    }
    per_image.sort_by(f64::total_cmp);
    let n = per_image.len();
    let median = if n % 2 == 1 {
        per_image[n / 2]
    } else {
        (per_image[n / 2 - 1] + per_image[n / 2]) / 2.0
    };
    let (min, max) = (per_image[0], per_image[n - 1]);
    let gflops = 2.0 * cfg.macs() as f64 / 1e9;
    if args.json {
        println!(
            "{}",
            json!({
                "median_ms": median,
                "min_ms": min,
                "max_ms": max,
                "first_ms": first_ms,
                "runs": args.runs,
                "warmup": args.warmup,
                "batch": args.batch,
                "threads": threads,
                "backend": engine.backend(),
                "adapter": engine.adapter(),
                "fallback_reason": engine.fallback_reason(),
                "setup_ms": setup_ms,
                "kernel_ms": kernel_ms.as_ref().map(|k| k.iter().map(|(name, ms)| (name.clone(), json!(ms / args.batch as f64))).collect::<serde_json::Map<String, serde_json::Value>>()),
                "gflop_per_image": gflops,
                "architecture": checkpoint.architecture,
            })
        );
    } else {
        println!(
            "{} on {}, {threads} thread(s), batch {}: median {median:.2} ms/image (min {min:.2}, max {max:.2}; first run {first_ms:.2}, setup {setup_ms:.0} ms) over {} runs — {:.1} GFLOP/s",
            checkpoint.architecture,
            backend_line(&engine),
            args.batch,
            args.runs,
            gflops / (median / 1e3)
        );
        if let Some(kernels) = &kernel_ms {
            let parts: Vec<String> = kernels
                .iter()
                .map(|(name, ms)| format!("{name} {:.3}", ms / args.batch as f64))
                .collect();
            println!("GPU time per image by kernel (ms): {}", parts.join(", "));
        }
    }
    Ok(())
}
