//! vit-lens: a Vision Transformer (ViT / DeiT) that shows its work.
//!
//! Layers, each calling only downward:
//! `teach`/`engine`/`analysis`/`render` → `model`/`gpu` → `geometry` → `checkpoint`/`preprocess`.
pub mod analysis;
pub mod app;
pub mod budget;
pub mod checkpoint;
pub mod engine;
pub mod geometry;
pub mod gpu;
mod json;
pub mod model;
pub mod preprocess;
pub mod render;
pub mod teach;
