//! What every command shares: model and thread options, loading checkpoints (the built-in
//! one or a directory), reading and writing pixel tensors, and the process set-up.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;

use vit_lens::checkpoint::{Checkpoint, CheckpointFiles};
use vit_lens::engine::{BackendChoice, Engine};
use vit_lens::preprocess::{preprocess_bytes, DecodeLimits};

#[derive(Args)]
pub struct ModelArgs {
    /// Checkpoint directory: config.json, model.safetensors, optional preprocessor_config.json
    /// [default: the built-in shapes model, assets/model, compiled into this binary].
    #[arg(long, value_name = "DIR")]
    pub model: Option<PathBuf>,
    /// CPU threads for the forward pass (default: all cores).
    #[arg(long, value_name = "T")]
    pub threads: Option<usize>,
    /// Where the model runs: auto (the GPU if one is usable, else the CPU), gpu or cpu.
    #[arg(long, default_value = "auto")]
    pub backend: BackendChoice,
}

/// Keeps freed memory in the process instead of handing it back to the kernel. A forward
/// pass allocates and frees the same large activation buffers again and again; with glibc's
/// defaults each comes back from the kernel as fresh pages, and the page faults cost as much
/// as a third of a batched forward pass.
pub fn keep_freed_memory() {
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
pub fn ensure_runtime_dir() {
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

pub fn ms_since(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1e3
}

/// Sets the thread count before anything starts a thread pool; returns the count in use.
pub fn configure_threads(threads: Option<usize>) -> Result<usize> {
    if let Some(t) = threads {
        // Each thread gets a stack and a share of the work; far past the core count that is
        // only overhead, and an absurd count would exhaust the process.
        const MAX_THREADS: usize = 1024;
        if !(1..=MAX_THREADS).contains(&t) {
            bail!("--threads {t} is out of range; give 1 to {MAX_THREADS}");
        }
        // candle's kernels and its GEMM both size their pools from this variable.
        std::env::set_var("RAYON_NUM_THREADS", t.to_string());
    }
    Ok(candle_core::utils::get_num_threads())
}

/// Builds the engine on the chosen backend (blocking until the GPU device is ready).
pub fn build_engine(checkpoint: &Checkpoint, choice: BackendChoice) -> Result<Engine> {
    vit_lens::gpu::block_on(Engine::new(checkpoint, choice)).with_context(|| match choice {
        BackendChoice::Gpu => "cannot run the model on the GPU (try --backend cpu)".to_string(),
        _ => "cannot build the model".to_string(),
    })
}

pub fn backend_line(engine: &Engine) -> String {
    match (engine.adapter(), engine.fallback_reason()) {
        (Some(adapter), _) => format!("gpu ({adapter})"),
        (None, Some(reason)) => format!("cpu (no usable GPU: {reason})"),
        (None, None) => "cpu".to_string(),
    }
}

pub fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// The built-in model (assets/model): a ViT trained on procedurally generated shapes.
mod builtin {
    pub const CONFIG: &[u8] = include_bytes!("../../../../assets/model/config.json");
    pub const PREPROCESSOR: &[u8] =
        include_bytes!("../../../../assets/model/preprocessor_config.json");
    pub const WEIGHTS: &[u8] = include_bytes!("../../../../assets/model/model.safetensors");
}

/// The checkpoint in `dir`, or the built-in one.
pub fn load_checkpoint(dir: Option<&Path>) -> Result<Checkpoint> {
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
pub fn read_pixels(path: &Path, channels: usize) -> Result<(Vec<f32>, usize, usize)> {
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

pub fn write_pixels(
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
pub fn image_from_pixels(
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

/// The image to run: a file, or the model input itself.
#[derive(Args)]
pub struct InputArgs {
    /// An image file (PNG, JPEG, WebP, GIF), preprocessed as the checkpoint says.
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with = "pixels",
        required_unless_present = "pixels"
    )]
    pub image: Option<PathBuf>,
    /// Model input as a safetensors file with one f32 tensor `pixel_values` of shape [1,3,H,W].
    #[arg(long, value_name = "FILE")]
    pub pixels: Option<PathBuf>,
}

/// The model input from `--image` (preprocessed as the checkpoint says) or `--pixels`:
/// (values, height, width), or `None` when neither is given.
pub fn read_input(
    checkpoint: &Checkpoint,
    image: Option<&Path>,
    pixels: Option<&Path>,
) -> Result<Option<(Vec<f32>, usize, usize)>> {
    match (image, pixels) {
        (Some(path), _) => {
            let pre = preprocess_bytes(
                &read(path)?,
                &checkpoint.preprocess,
                &DecodeLimits::default(),
            )
            .with_context(|| format!("cannot use the image {}", path.display()))?;
            Ok(Some((
                pre.pixel_values,
                pre.height as usize,
                pre.width as usize,
            )))
        }
        (None, Some(path)) => Ok(Some(read_pixels(path, checkpoint.config.num_channels)?)),
        (None, None) => Ok(None),
    }
}
