//! The command-line interface: argument parsing and the `classify` / `bench` commands.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use serde_json::json;

use vit_lens::analysis::{
    localize, rollout, softmax, top_k, HeadFusion, PixelMask, RolloutOptions,
};
use vit_lens::checkpoint::{Checkpoint, CheckpointFiles};
use vit_lens::engine::{BackendChoice, Engine};
use vit_lens::preprocess::{preprocess_bytes, DecodeLimits, Preprocessed};
use vit_lens::render::{encode_png, overlay, Colormap};

#[derive(Parser)]
#[command(
    name = "vit-lens",
    version,
    about = "Watch a Vision Transformer classify an image, with attention rollout for every layer"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Classify one image and report the top classes and the attention rollout.
    Classify(ClassifyArgs),
    /// Time the forward pass: median, min and max per image after warm-up.
    Bench(BenchArgs),
    /// Score a labelled image set: accuracy, and whether the rollout points at the object.
    Eval(EvalArgs),
    /// Print the teaching statistics the web app shows, as JSON: model card, principal
    /// components of the patch-embedding filters, position-embedding similarity and, with an
    /// image, every step of the forward pass and each head's mean attention distance.
    Teach(TeachArgs),
}

#[derive(Args)]
struct TeachArgs {
    /// Checkpoint directory [default: the built-in shapes model].
    #[arg(long, value_name = "DIR")]
    model: Option<PathBuf>,
    /// An image file; without it (and without --pixels) only the model's statistics are printed.
    #[arg(long, value_name = "FILE", conflicts_with = "pixels")]
    image: Option<PathBuf>,
    /// Model input as a safetensors file with one f32 tensor `pixel_values` of shape [1,3,H,W].
    #[arg(long, value_name = "FILE")]
    pixels: Option<PathBuf>,
    /// Write the JSON here instead of standard output.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

#[derive(Args)]
struct ModelArgs {
    /// Checkpoint directory: config.json, model.safetensors, optional preprocessor_config.json
    /// [default: the built-in shapes model, assets/model, compiled into this binary].
    #[arg(long, value_name = "DIR")]
    model: Option<PathBuf>,
    /// CPU threads for the forward pass (default: all cores).
    #[arg(long, value_name = "T")]
    threads: Option<usize>,
    /// Where the model runs: auto (the GPU if one is usable, else the CPU), gpu or cpu.
    #[arg(long, default_value = "auto")]
    backend: BackendChoice,
}

#[derive(Args)]
struct ClassifyArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// An image file (PNG, JPEG, WebP, GIF), preprocessed as the checkpoint says.
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with = "pixels",
        required_unless_present = "pixels"
    )]
    image: Option<PathBuf>,
    /// Model input as a safetensors file with one f32 tensor `pixel_values` of shape [1,3,H,W].
    #[arg(long, value_name = "FILE")]
    pixels: Option<PathBuf>,
    /// How many classes to list.
    #[arg(long, default_value_t = 5, value_name = "K")]
    top: usize,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Write the preprocessed input as safetensors (`pixel_values`, [1,3,H,W], f32).
    #[arg(long, value_name = "FILE")]
    save_pixels: Option<PathBuf>,
    /// Write the rollout heatmap over the model's crop as a PNG.
    #[arg(long, value_name = "OUT.png")]
    rollout_png: Option<PathBuf>,
    /// Layer of the rollout drawn by --rollout-png, 1-based (default: the last).
    #[arg(long, value_name = "L")]
    layer: Option<usize>,
    /// How the heads of a layer are fused: mean, max or min.
    #[arg(long, default_value = "mean")]
    head_fusion: HeadFusion,
    /// Fraction of the weakest attention links dropped before rollout, in [0, 1).
    #[arg(long, default_value_t = 0.0, value_name = "R")]
    discard_ratio: f32,
    /// Roll out from the distillation token instead of CLS (distilled DeiT only).
    #[arg(long)]
    from_distillation_token: bool,
    /// Colormap of --rollout-png.
    #[arg(long, default_value = "turbo")]
    colormap: Colormap,
    /// Heatmap opacity of --rollout-png, in [0, 1].
    #[arg(long, default_value_t = 0.6)]
    opacity: f32,
}

#[derive(Args)]
struct BenchArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Timed runs after warm-up.
    #[arg(long, default_value_t = 20, value_name = "N")]
    runs: usize,
    /// Untimed runs first.
    #[arg(long, default_value_t = 3, value_name = "W")]
    warmup: usize,
    /// Images per forward pass.
    #[arg(long, default_value_t = 1, value_name = "B")]
    batch: usize,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct EvalArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// A labelled set: DIR/index.json = {"classes": [names], "items": [{"image": FILE,
    /// "label": INDEX, "mask": FILE (optional, white on the object)}]}.
    #[arg(long, value_name = "DIR")]
    data: PathBuf,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// Keeps freed memory in the process instead of handing it back to the kernel. A forward
/// pass allocates and frees the same large activation buffers again and again; with glibc's
/// defaults each comes back from the kernel as fresh pages, and the page faults cost as much
/// as a third of a batched forward pass.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning parameters; it is called before any
    // thread starts.
    unsafe {
        const LIMIT: libc::c_int = 1 << 30;
        libc::mallopt(libc::M_MMAP_THRESHOLD, LIMIT);
        libc::mallopt(libc::M_TRIM_THRESHOLD, LIMIT);
    }
}

/// Mesa's Vulkan drivers complain on stderr when `XDG_RUNTIME_DIR` is missing (containers,
/// CI). Give them a private one so the only errors a user sees are ours.
fn ensure_runtime_dir() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::unix::fs::PermissionsExt;
        let usable = std::env::var_os("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .is_some_and(|dir| dir.is_dir());
        if usable {
            return;
        }
        // SAFETY: getuid has no preconditions and cannot fail.
        let uid = unsafe { libc::getuid() };
        let dir = std::env::temp_dir().join(format!("vit-lens-runtime-{uid}"));
        let made = std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)));
        if made.is_ok() {
            // Set before any thread starts.
            std::env::set_var("XDG_RUNTIME_DIR", &dir);
        }
    }
}

pub fn main() -> ExitCode {
    keep_freed_memory();
    ensure_runtime_dir();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Classify(args) => classify(args),
        Command::Bench(args) => bench(args),
        Command::Eval(args) => eval(args),
        Command::Teach(args) => teach(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // One line: causes joined, and multi-line messages (wgpu's) folded.
            let chain: Vec<String> = err
                .chain()
                .map(|cause| {
                    cause
                        .to_string()
                        .split_whitespace()
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .collect();
            eprintln!("error: {}", chain.join(": "));
            ExitCode::FAILURE
        }
    }
}

fn ms_since(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1e3
}

/// Sets the thread count before anything starts a thread pool; returns the count in use.
fn configure_threads(threads: Option<usize>) -> Result<usize> {
    if let Some(t) = threads {
        if t == 0 {
            bail!("--threads must be at least 1");
        }
        // candle's kernels and its GEMM both size their pools from this variable.
        std::env::set_var("RAYON_NUM_THREADS", t.to_string());
    }
    Ok(candle_core::utils::get_num_threads())
}

/// Builds the engine on the chosen backend (blocking until the GPU device is ready).
fn build_engine(checkpoint: &Checkpoint, choice: BackendChoice) -> Result<Engine> {
    vit_lens::gpu::block_on(Engine::new(checkpoint, choice)).with_context(|| match choice {
        BackendChoice::Gpu => "cannot run the model on the GPU (try --backend cpu)".to_string(),
        _ => "cannot build the model".to_string(),
    })
}

fn backend_line(engine: &Engine) -> String {
    match (engine.adapter(), engine.fallback_reason()) {
        (Some(adapter), _) => format!("gpu ({adapter})"),
        (None, Some(reason)) => format!("cpu (no usable GPU: {reason})"),
        (None, None) => "cpu".to_string(),
    }
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// The built-in model (assets/model): a ViT trained on procedurally generated shapes.
mod builtin {
    pub const CONFIG: &[u8] = include_bytes!("../../../assets/model/config.json");
    pub const PREPROCESSOR: &[u8] =
        include_bytes!("../../../assets/model/preprocessor_config.json");
    pub const WEIGHTS: &[u8] = include_bytes!("../../../assets/model/model.safetensors");
}

/// The checkpoint in `dir`, or the built-in one.
fn load_checkpoint(dir: Option<&Path>) -> Result<Checkpoint> {
    let Some(dir) = dir else {
        return Checkpoint::from_bytes(CheckpointFiles {
            config_json: builtin::CONFIG,
            preprocessor_config_json: Some(builtin::PREPROCESSOR),
            safetensors: builtin::WEIGHTS,
        })
        .context("the built-in model (assets/model) does not load");
    };
    if !dir.is_dir() {
        bail!(
            "model directory {} does not exist (it should hold config.json and model.safetensors)",
            dir.display()
        );
    }
    let config = read(&dir.join("config.json"))?;
    let weights = read(&dir.join("model.safetensors"))?;
    let preprocessor_path = dir.join("preprocessor_config.json");
    let preprocessor = if preprocessor_path.exists() {
        Some(read(&preprocessor_path)?)
    } else {
        None
    };
    Checkpoint::from_bytes(CheckpointFiles {
        config_json: &config,
        preprocessor_config_json: preprocessor.as_deref(),
        safetensors: &weights,
    })
    .with_context(|| format!("cannot load the checkpoint in {}", dir.display()))
}

/// Model input read from a `pixel_values` safetensors file: (values, height, width).
fn read_pixels(path: &Path, channels: usize) -> Result<(Vec<f32>, usize, usize)> {
    let bytes = read(path)?;
    let raw = vit_lens::checkpoint::read_safetensors(&bytes)
        .with_context(|| format!("cannot read pixels from {}", path.display()))?;
    let tensor = raw.tensors.get("pixel_values").with_context(|| {
        format!(
            "{} has no tensor named `pixel_values` (found: {:?})",
            path.display(),
            raw.tensors.keys().collect::<Vec<_>>()
        )
    })?;
    match tensor.shape.as_slice() {
        [1, c, h, w] if *c == channels => Ok((tensor.data.clone(), *h, *w)),
        other => bail!(
            "`pixel_values` in {} has shape {other:?}; expected [1, {channels}, height, width]",
            path.display()
        ),
    }
}

fn write_pixels(
    path: &Path,
    pixels: &[f32],
    channels: usize,
    height: usize,
    width: usize,
) -> Result<()> {
    let bytes: Vec<u8> = pixels.iter().flat_map(|v| v.to_le_bytes()).collect();
    let view = safetensors::tensor::TensorView::new(
        safetensors::Dtype::F32,
        vec![1, channels, height, width],
        &bytes,
    )
    .context("cannot build the pixel tensor")?;
    let file = safetensors::serialize([("pixel_values", view)], None)
        .context("cannot serialize pixels")?;
    std::fs::write(path, file).with_context(|| format!("cannot write {}", path.display()))
}

/// Undoes normalization so an input given as pixels can be drawn under its heatmap.
fn image_from_pixels(
    pixels: &[f32],
    height: usize,
    width: usize,
    checkpoint: &Checkpoint,
) -> image::RgbImage {
    let mean = checkpoint.preprocess.mean;
    let std = checkpoint.preprocess.std;
    let plane = height * width;
    image::RgbImage::from_fn(width as u32, height as u32, |x, y| {
        let i = y as usize * width + x as usize;
        image::Rgb(std::array::from_fn(|c| {
            let v = (pixels[c * plane + i] * std[c] + mean[c]) * 255.0;
            v.round().clamp(0.0, 255.0) as u8
        }))
    })
}

fn teach(args: TeachArgs) -> Result<()> {
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

fn classify(args: ClassifyArgs) -> Result<()> {
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
    let (pixels, height, width, crop) = match (&args.image, &args.pixels) {
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

fn bench(args: BenchArgs) -> Result<()> {
    let threads = configure_threads(args.model.threads)?;
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    if args.batch == 0 {
        bail!("--batch must be at least 1");
    }
    let checkpoint = load_checkpoint(args.model.model.as_deref())?;
    let t0 = Instant::now();
    let engine = build_engine(&checkpoint, args.model.backend)?;
    let setup_ms = ms_since(t0);
    let cfg = &checkpoint.config;
    let side = cfg.image_size;
    let len = args.batch * cfg.num_channels * side * side;
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

#[derive(serde::Deserialize)]
struct EvalIndex {
    classes: Vec<String>,
    items: Vec<EvalItem>,
}

#[derive(serde::Deserialize)]
struct EvalItem {
    image: String,
    label: usize,
    mask: Option<String>,
}

fn eval(args: EvalArgs) -> Result<()> {
    configure_threads(args.model.threads)?;
    let index_path = args.data.join("index.json");
    let index: EvalIndex = serde_json::from_slice(&read(&index_path)?)
        .with_context(|| format!("{} is not a valid index", index_path.display()))?;
    let checkpoint = load_checkpoint(args.model.model.as_deref())?;
    let engine = build_engine(&checkpoint, args.model.backend)?;
    // The set's class names, looked up among the model's labels.
    let model_class = |name: &str| {
        checkpoint
            .labels
            .iter()
            .position(|l| l.eq_ignore_ascii_case(name))
    };
    let class_map: Vec<usize> = index
        .classes
        .iter()
        .map(|name| {
            model_class(name).with_context(|| {
                format!(
                    "the model has no class named `{name}` (its classes: {:?})",
                    checkpoint.labels
                )
            })
        })
        .collect::<Result<_>>()?;
    if index.items.is_empty() {
        bail!("{} lists no items", index_path.display());
    }

    let options = RolloutOptions::default();
    let mut correct = 0usize;
    let mut per_class = vec![(0usize, 0usize); index.classes.len()];
    let (mut masked, mut hits, mut mass, mut area) = (0usize, 0usize, 0f64, 0f64);
    let mut misses = Vec::new();
    for item in &index.items {
        let expected = *class_map.get(item.label).with_context(|| {
            format!(
                "{}: label {} is not one of the {} classes",
                item.image,
                item.label,
                index.classes.len()
            )
        })?;
        let path = args.data.join(&item.image);
        let pre = preprocess_bytes(
            &read(&path)?,
            &checkpoint.preprocess,
            &DecodeLimits::default(),
        )
        .with_context(|| format!("cannot use the image {}", path.display()))?;
        let result = engine
            .infer_batch(
                &pre.pixel_values,
                1,
                pre.height as usize,
                pre.width as usize,
            )?
            .remove(0);
        let probs = softmax(&result.logits);
        let predicted = top_k(&probs, &checkpoint.labels, 1).remove(0);
        let ok = predicted.index == expected;
        correct += usize::from(ok);
        per_class[item.label].0 += usize::from(ok);
        per_class[item.label].1 += 1;
        if !ok {
            misses.push(json!({"image": item.image, "expected": index.classes[item.label], "predicted": predicted.label}));
        }
        if let Some(mask_file) = &item.mask {
            let mask_path = args.data.join(mask_file);
            let mask = image::load_from_memory(&read(&mask_path)?)
                .with_context(|| format!("cannot read the mask {}", mask_path.display()))?
                .to_luma8();
            let (h, w, inside) =
                vit_lens::preprocess::transform_mask(&mask, &checkpoint.preprocess)
                    .with_context(|| format!("cannot use the mask {}", mask_path.display()))?;
            let mask = PixelMask::new(h as usize, w as usize, inside)?;
            let maps = rollout(&result.attentions, result.prefix_tokens, &options)?;
            let last = maps.last().context("the model has no layers")?;
            let scores = localize(last, result.patch_grid, &mask)?;
            masked += 1;
            hits += usize::from(scores.pointing_hit);
            mass += f64::from(scores.mass_inside);
            area += f64::from(scores.area_fraction);
        }
    }
    let n = index.items.len();
    let accuracy = correct as f64 / n as f64;
    let pointing = (masked > 0).then(|| hits as f64 / masked as f64);
    let mean_mass = (masked > 0).then(|| mass / masked as f64);
    let mean_area = (masked > 0).then(|| area / masked as f64);
    let per_class_json: serde_json::Map<String, serde_json::Value> = index
        .classes
        .iter()
        .zip(&per_class)
        .map(|(name, (ok, total))| (name.clone(), json!({"correct": ok, "total": total})))
        .collect();
    if args.json {
        println!(
            "{}",
            json!({
                "images": n,
                "accuracy": accuracy,
                "per_class": per_class_json,
                "misclassified": misses,
                "pointing_game": pointing,
                "masked_images": masked,
                "rollout_mass_in_mask": mean_mass,
                "mask_area_fraction": mean_area,
                "backend": engine.backend(),
                "adapter": engine.adapter(),
            })
        );
    } else {
        println!(
            "{n} images on {}: accuracy {:.1}% ({correct}/{n})",
            backend_line(&engine),
            accuracy * 100.0
        );
        for (name, (ok, total)) in index.classes.iter().zip(&per_class) {
            println!("  {name:>12}: {ok}/{total}");
        }
        if let (Some(p), Some(m), Some(a)) = (pointing, mean_mass, mean_area) {
            println!(
                "rollout (last layer, mean fusion) over {masked} masks: pointing game {:.1}%, mass in mask {:.1}% vs mask area {:.1}%",
                p * 100.0,
                m * 100.0,
                a * 100.0
            );
        }
    }
    Ok(())
}
