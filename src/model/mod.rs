//! The ViT forward pass on the CPU: candle tensors, our own kernels.
//!
//! Modules, each using only those before it:
//! * `simd`: vectorizable `exp`, `erf`, GELU and the row kernels (softmax, LayerNorm);
//! * `gemm`: the packed AVX-512 GEMM for the dense layers;
//! * `attention`: multi-head attention on the GEMM's register tiles;
//! * `ops`: all of them as candle custom ops;
//! * `vit`: the model, [`VisionTransformer`].
//!
//! Shapes, input checks and position embeddings come from [`crate::geometry`], which the GPU
//! path shares.

mod attention;
mod gemm;
mod ops;
pub(crate) mod simd;
mod vit;

pub use crate::geometry::resize_position_grid;
pub use vit::{CpuOptions, ModelError, Recorder, Stage, VisionTransformer};
