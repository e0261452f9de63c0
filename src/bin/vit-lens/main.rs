//! `vit-lens`: classify an image with a ViT / DeiT checkpoint and show where it looked.
//!
//! ```text
//! vit-lens classify --model DIR --image cat.jpg --rollout-png cat-rollout.png
//! vit-lens classify --model DIR --pixels pixel_values.safetensors --json
//! vit-lens bench --model DIR --threads 1 --batch 1
//! ```

#[cfg(not(target_arch = "wasm32"))]
mod cli;

#[cfg(not(target_arch = "wasm32"))]
fn main() -> std::process::ExitCode {
    cli::main()
}

/// The command line is native only; in a browser vit-lens is the web app.
#[cfg(target_arch = "wasm32")]
fn main() {}
