//! The shapes of one forward pass, the same for both backends: the CPU path
//! ([`crate::model`]) and the GPU path ([`crate::gpu`]) check their input, size their work and
//! split their batched results through this module, so they cannot disagree.
//!
//! * [`Geometry`]: batch, patch grid, token count and every width, from a checkpoint's
//!   [`ModelConfig`] and an input size, with the input checks ([`GeometryError`]).
//! * [`PositionTable`]: the position embeddings for a patch grid — the stored ones at the
//!   checkpoint's grid, bicubically resized otherwise ([`resize_position_grid`]) — kept in a
//!   small cache per grid in whatever form a backend uses.
//! * [`split_batch`]: batch-major logits and attention → one slice set per image.

mod interpolate;
mod positions;
mod shapes;
mod split;

pub use interpolate::resize_position_grid;
pub use positions::{PositionTable, POSITION_CACHE_GRIDS};
pub use shapes::{Geometry, GeometryError};
pub use split::{image_part, split_batch, ImageSlices};

#[cfg(test)]
pub(crate) use shapes::tests::deit_tiny;
