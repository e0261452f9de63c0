//! The position embeddings for a patch grid, cached per grid: one table for both backends,
//! each keeping the grids it saw last in its own form (a candle tensor, a GPU buffer).

use std::borrow::Cow;
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::interpolate::resize_position_grid;
use crate::checkpoint::ModelConfig;

/// How many patch grids' position embeddings a model keeps: the native grid and a few input
/// sizes seen last. Resizing takes milliseconds; the cache only spares repeating it.
pub const POSITION_CACHE_GRIDS: usize = 4;

/// A checkpoint's position embeddings, (prefix + rows·cols, hidden) at its native grid, and
/// the tables of the last [`POSITION_CACHE_GRIDS`] grids asked for, in a backend's form `T`.
pub struct PositionTable<T> {
    /// As stored: (prefix + native rows·cols, hidden).
    native: Vec<f32>,
    native_grid: (usize, usize),
    hidden: usize,
    prefix: usize,
    /// Most recently used first.
    cache: Mutex<Vec<((usize, usize), T)>>,
}

impl<T: Clone> PositionTable<T> {
    /// `pos_embed`: the checkpoint's (prefix + grid², hidden) values for `cfg`.
    pub fn new(cfg: &ModelConfig, pos_embed: &[f32]) -> Self {
        let native = cfg.patch_grid();
        Self {
            native: pos_embed.to_vec(),
            native_grid: (native, native),
            hidden: cfg.hidden_size,
            prefix: cfg.prefix_tokens(),
            cache: Mutex::new(Vec::with_capacity(POSITION_CACHE_GRIDS)),
        }
    }

    /// The (prefix + rows·cols, hidden) values for `grid`: the stored ones at the native grid,
    /// else bicubically resized as transformers' `interpolate_pos_encoding` does.
    pub fn values(&self, grid: (usize, usize)) -> Cow<'_, [f32]> {
        if grid == self.native_grid {
            return Cow::Borrowed(&self.native);
        }
        Cow::Owned(resize_position_grid(
            &self.native,
            self.hidden,
            self.prefix,
            self.native_grid,
            grid,
        ))
    }

    /// The table for `grid` in the backend's form: cached, or made by `make` from
    /// [`PositionTable::values`] and cached (the least recently used grid leaves when full).
    pub fn get<E>(
        &self,
        grid: (usize, usize),
        make: impl FnOnce(&[f32]) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut cache = self.lock();
        if let Some(at) = cache.iter().position(|(g, _)| *g == grid) {
            let entry = cache.remove(at);
            let table = entry.1.clone();
            cache.insert(0, entry);
            return Ok(table);
        }
        let table = make(&self.values(grid))?;
        cache.truncate(POSITION_CACHE_GRIDS - 1);
        cache.insert(0, (grid, table.clone()));
        Ok(table)
    }

    /// The grids cached, most recently used first.
    pub fn cached_grids(&self) -> Vec<(usize, usize)> {
        self.lock().iter().map(|(grid, _)| *grid).collect()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<((usize, usize), T)>> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<T: Clone> Clone for PositionTable<T> {
    fn clone(&self) -> Self {
        Self {
            native: self.native.clone(),
            native_grid: self.native_grid,
            hidden: self.hidden,
            prefix: self.prefix,
            cache: Mutex::new(self.lock().clone()),
        }
    }
}

impl<T: Clone> std::fmt::Debug for PositionTable<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PositionTable")
            .field("native_grid", &self.native_grid)
            .field("hidden", &self.hidden)
            .field("prefix", &self.prefix)
            .field("cached_grids", &self.cached_grids())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::deit_tiny;

    fn tiny() -> ModelConfig {
        ModelConfig {
            hidden_size: 2,
            patch_size: 8,
            image_size: 16,
            ..deit_tiny()
        }
    }

    #[test]
    fn native_grid_is_the_stored_table() {
        let pos: Vec<f32> = (0..(1 + 4) * 2).map(|i| i as f32).collect();
        let table = PositionTable::<usize>::new(&tiny(), &pos);
        assert_eq!(&*table.values((2, 2)), pos.as_slice());
        assert_eq!(table.values((3, 2)).len(), (1 + 6) * 2);
    }

    #[test]
    fn cache_keeps_the_last_grids() {
        let pos = vec![0.5f32; (1 + 4) * 2];
        let table = PositionTable::new(&tiny(), &pos);
        let made = std::cell::Cell::new(0);
        let get = |grid: (usize, usize)| {
            table
                .get(grid, |values| {
                    made.set(made.get() + 1);
                    Ok::<usize, ()>(values.len())
                })
                .expect("made")
        };
        assert_eq!(get((2, 2)), 10);
        assert_eq!(get((2, 2)), 10);
        assert_eq!(made.get(), 1, "a hit makes nothing");
        for side in 3..3 + POSITION_CACHE_GRIDS {
            get((side, side));
        }
        assert_eq!(table.cached_grids().len(), POSITION_CACHE_GRIDS);
        assert!(!table.cached_grids().contains(&(2, 2)), "least recent left");
        assert_eq!(table.cached_grids()[0], (6, 6));
    }
}
