//! vit-lens: a Vision Transformer (ViT / DeiT) that shows its work.
//!
//! Layers, each calling only downward (nothing below `app` knows about the DOM):
//!
//! ```text
//! app (the page and its worker; wasm32)              bin/vit-lens (the command line)
//!   │
//! engine · explain · teach · analysis · render       what callers use
//!   │
//! model (CPU: simd ← gemm ← attention ← ops ← vit)   gpu (WGSL kernels through wgpu)
//!   │
//! geometry                                           shapes, input checks, position table,
//!   │                                                the per-image split of a batch
//! checkpoint → preprocess · budget · json            files → Checkpoint; image → input;
//!                                                    resource limits; JSON field reader
//! ```
pub mod analysis;
pub mod app;
pub mod budget;
pub mod checkpoint;
pub mod engine;
pub mod explain;
pub mod geometry;
pub mod gpu;
mod json;
pub mod model;
pub mod preprocess;
pub mod render;
pub mod teach;
