//! Does the attention land on the object? Scores of a patch map against a pixel mask of the
//! object, as used to check that rollout points at the shape the model classified.

use super::AnalysisError;

/// A pixel mask in the model's input space: `height`×`width`, row-major, true on the object.
#[derive(Clone, Debug, PartialEq)]
pub struct PixelMask {
    pub height: usize,
    pub width: usize,
    pub inside: Vec<bool>,
}

impl PixelMask {
    pub fn new(height: usize, width: usize, inside: Vec<bool>) -> Result<Self, AnalysisError> {
        if inside.len() != height * width || height == 0 || width == 0 {
            return Err(AnalysisError::MaskSize {
                height,
                width,
                found: inside.len(),
            });
        }
        Ok(Self {
            height,
            width,
            inside,
        })
    }

    /// Fraction of the pixels inside the mask.
    pub fn area_fraction(&self) -> f32 {
        self.inside.iter().filter(|&&v| v).count() as f32 / self.inside.len() as f32
    }

    /// The mask grown by `radius` pixels in every direction (a square structuring element).
    pub fn dilate(&self, radius: usize) -> PixelMask {
        let (h, w) = (self.height, self.width);
        // Separable: rows, then columns.
        let mut rows = vec![false; h * w];
        for y in 0..h {
            for x in 0..w {
                let lo = x.saturating_sub(radius);
                let hi = (x + radius).min(w - 1);
                rows[y * w + x] = (lo..=hi).any(|xx| self.inside[y * w + xx]);
            }
        }
        let mut out = vec![false; h * w];
        for y in 0..h {
            let lo = y.saturating_sub(radius);
            let hi = (y + radius).min(h - 1);
            for x in 0..w {
                out[y * w + x] = (lo..=hi).any(|yy| rows[yy * w + x]);
            }
        }
        PixelMask {
            height: h,
            width: w,
            inside: out,
        }
    }

    /// For each patch of a `grid` = (rows, cols) over the mask, the fraction of its pixels
    /// inside. Patches are `height/rows` × `width/cols` pixels (the model's patch size).
    pub fn patch_coverage(&self, grid: (usize, usize)) -> Vec<f32> {
        let (rows, cols) = grid;
        let ph = self.height / rows.max(1);
        let pw = self.width / cols.max(1);
        let mut coverage = vec![0f32; rows * cols];
        for (i, c) in coverage.iter_mut().enumerate() {
            let (r, q) = (i / cols, i % cols);
            let mut hits = 0usize;
            for y in r * ph..(r + 1) * ph {
                for x in q * pw..(q + 1) * pw {
                    hits += usize::from(self.inside[y * self.width + x]);
                }
            }
            *c = hits as f32 / (ph * pw).max(1) as f32;
        }
        coverage
    }
}

/// How a patch map relates to the object mask.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Localization {
    /// The map's maximum lies on the object: the centre pixel of the arg-max patch is inside
    /// the mask dilated by one patch (the "pointing game").
    pub pointing_hit: bool,
    /// Share of the map's total mass on the object's pixels (each patch's value spread evenly
    /// over its pixels).
    pub mass_inside: f32,
    /// Share of the image the object covers: `mass_inside` of a uniform map.
    pub area_fraction: f32,
}

/// Scores `map` (grid rows × cols, non-negative, e.g. a rollout) against `mask`.
pub fn localize(
    map: &[f32],
    grid: (usize, usize),
    mask: &PixelMask,
) -> Result<Localization, AnalysisError> {
    let (rows, cols) = grid;
    if map.len() != rows * cols || rows == 0 || cols == 0 {
        return Err(AnalysisError::MapLength {
            expected: rows * cols,
            found: map.len(),
        });
    }
    if mask.height < rows || mask.width < cols {
        return Err(AnalysisError::MaskSize {
            height: mask.height,
            width: mask.width,
            found: mask.inside.len(),
        });
    }
    let (ph, pw) = (mask.height / rows, mask.width / cols);
    let best = map
        .iter()
        .enumerate()
        .fold(0, |best, (i, &v)| if v > map[best] { i } else { best });
    let (r, q) = (best / cols, best % cols);
    let dilated = mask.dilate(ph.max(pw));
    let centre = (r * ph + ph / 2) * mask.width + q * pw + pw / 2;
    let coverage = mask.patch_coverage(grid);
    let total: f32 = map.iter().sum();
    let inside: f32 = map.iter().zip(&coverage).map(|(m, c)| m * c).sum();
    Ok(Localization {
        pointing_hit: dilated.inside[centre],
        mass_inside: if total > 0.0 { inside / total } else { 0.0 },
        area_fraction: mask.area_fraction(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn square_mask(size: usize, from: usize, to: usize) -> PixelMask {
        let inside = (0..size * size)
            .map(|i| (from..to).contains(&(i / size)) && (from..to).contains(&(i % size)))
            .collect();
        PixelMask::new(size, size, inside).unwrap()
    }

    #[test]
    fn map_peaking_on_the_object_hits() {
        // 32×32 image, 4×4 grid of 8-px patches; the object covers pixels 8..16 (patch (1,1)).
        let mask = square_mask(32, 8, 16);
        let mut map = vec![0.01f32; 16];
        map[5] = 1.0; // patch (1, 1)
        let l = localize(&map, (4, 4), &mask).unwrap();
        assert!(l.pointing_hit);
        assert!((l.area_fraction - 64.0 / 1024.0).abs() < 1e-6);
        assert!(
            (l.mass_inside - 1.0 / 1.15).abs() < 1e-5,
            "{}",
            l.mass_inside
        );
    }

    #[test]
    fn one_patch_away_still_hits_two_away_misses() {
        let mask = square_mask(32, 8, 16);
        let mut map = vec![0.0f32; 16];
        map[6] = 1.0; // patch (1, 2): centre pixel (12, 20), 4 px from the object
        assert!(localize(&map, (4, 4), &mask).unwrap().pointing_hit);
        let mut map = vec![0.0f32; 16];
        map[15] = 1.0; // patch (3, 3): centre (28, 28), far away
        let l = localize(&map, (4, 4), &mask).unwrap();
        assert!(!l.pointing_hit);
        assert_eq!(l.mass_inside, 0.0);
    }

    #[test]
    fn uniform_map_mass_equals_area() {
        let mask = square_mask(32, 4, 20);
        let l = localize(&[1.0; 16], (4, 4), &mask).unwrap();
        assert!((l.mass_inside - l.area_fraction).abs() < 1e-6);
    }

    #[test]
    fn bad_sizes_are_errors() {
        let mask = square_mask(32, 8, 16);
        assert!(localize(&[1.0; 15], (4, 4), &mask).is_err());
        assert!(PixelMask::new(4, 4, vec![true; 15]).is_err());
    }
}
