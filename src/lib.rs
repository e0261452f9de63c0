//! vit-lens: a Vision Transformer (ViT / DeiT) that shows its work.
//!
//! Layers, each calling only downward:
//! `teach`/`engine`/`analysis`/`render` → `model` → `checkpoint`/`preprocess`.
pub mod analysis;
pub mod app;
pub mod checkpoint;
pub mod engine;
pub mod explain;
pub mod gpu;
pub mod model;
pub mod preprocess;
pub mod render;
pub mod teach;
