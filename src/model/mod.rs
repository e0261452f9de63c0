//! The ViT forward pass on the CPU (candle).

pub mod gemm;
mod interpolate;
pub mod kernels;
mod vit;

pub use interpolate::resize_position_grid;
pub use vit::{CpuOptions, Recorder, Stage, VisionTransformer};

/// Why a forward pass failed.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("invalid model input: {0}")]
    Input(String),
    #[error("tensor computation failed: {0}")]
    Candle(#[from] candle_core::Error),
}
