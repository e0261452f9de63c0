//! Pictures and numbers of the teaching views, from a [`Teaching`](crate::teach::Teaching):
//! pure computation, tested natively; the page only puts the pixels on canvases.

use crate::render::Colormap;
use crate::teach::PositionSimilarity;

/// The teaching views, in the order of their tabs (keys 1–5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TeachView {
    Tokens,
    Attention,
    Figure7,
    Tour,
    Card,
}

impl TeachView {
    pub const ALL: [TeachView; 5] = [
        TeachView::Tokens,
        TeachView::Attention,
        TeachView::Figure7,
        TeachView::Tour,
        TeachView::Card,
    ];

    pub fn title(self) -> &'static str {
        match self {
            TeachView::Tokens => "Tokens",
            TeachView::Attention => "Attention explorer",
            TeachView::Figure7 => "What it learned",
            TeachView::Tour => "Forward pass tour",
            TeachView::Card => "Model card",
        }
    }

    /// The `data-testid` suffix of the view.
    pub fn id(self) -> &'static str {
        match self {
            TeachView::Tokens => "tokens",
            TeachView::Attention => "attention",
            TeachView::Figure7 => "fig7",
            TeachView::Tour => "tour",
            TeachView::Card => "card",
        }
    }
}

/// One principal component (channels × p × p, channel-major) as a p × p RGBA patch, scaled
/// so its smallest value is black and its largest full intensity (the sign of a component is
/// arbitrary, its contrast is not). Grey channels are repeated when there are fewer than 3.
pub fn component_rgba(component: &[f32], channels: usize, patch: usize) -> Vec<u8> {
    let plane = patch * patch;
    let (lo, hi) = component
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    let span = if hi > lo { hi - lo } else { 1.0 };
    let mut out = Vec::with_capacity(plane * 4);
    for i in 0..plane {
        for c in 0..3 {
            let channel = c.min(channels.saturating_sub(1));
            let v = component.get(channel * plane + i).copied().unwrap_or(lo);
            out.push(((v - lo) / span * 255.0).round().clamp(0.0, 255.0) as u8);
        }
        out.push(255);
    }
    out
}

/// The position-similarity figure: one tile per patch, laid out on the patch grid; tile
/// `(r, c)` shows that patch's cosine similarity to every patch as a `rows × cols` map of
/// `cell`-pixel squares, tiles `gap` pixels apart. Each tile is scaled from its own minimum
/// (the colormap's start) to 1 (its end), because trained position embeddings are all fairly
/// similar and one shared scale would hide the structure. Returns (width, height, RGBA).
pub fn similarity_grid_rgba(
    sim: &PositionSimilarity,
    cell: usize,
    gap: usize,
    colormap: Colormap,
) -> (u32, u32, Vec<u8>) {
    let (rows, cols) = (sim.grid_rows, sim.grid_cols);
    let patches = rows * cols;
    let tile_w = cols * cell;
    let tile_h = rows * cell;
    let width = cols * tile_w + cols.saturating_sub(1) * gap;
    let height = rows * tile_h + rows.saturating_sub(1) * gap;
    let mut out = vec![0u8; width * height * 4];
    for tile in 0..patches {
        let (tr, tc) = (tile / cols, tile % cols);
        let x0 = tc * (tile_w + gap);
        let y0 = tr * (tile_h + gap);
        let row = sim
            .values
            .get(tile * patches..(tile + 1) * patches)
            .unwrap_or(&[]);
        let lo = row.iter().copied().fold(1.0f32, f32::min);
        let span = if lo < 1.0 { 1.0 - lo } else { 1.0 };
        for key in 0..patches {
            let v = row.get(key).copied().unwrap_or(lo);
            let color = colormap.color(((v - lo) / span).clamp(0.0, 1.0));
            let (kr, kc) = (key / cols, key % cols);
            for dy in 0..cell {
                let y = y0 + kr * cell + dy;
                for dx in 0..cell {
                    let x = x0 + kc * cell + dx;
                    let at = (y * width + x) * 4;
                    out[at..at + 3].copy_from_slice(&color);
                    out[at + 3] = 255;
                }
            }
        }
    }
    (width as u32, height as u32, out)
}

/// How many patches' similarity rows peak at the patch itself.
pub fn peaks_at_self(sim: &PositionSimilarity) -> usize {
    let patches = sim.grid_rows * sim.grid_cols;
    (0..patches)
        .filter(|&r| {
            let row = &sim.values[r * patches..(r + 1) * patches];
            row.iter().all(|&v| v <= row[r])
        })
        .count()
}

/// The patch (raster index) under point (x, y) of a `width × height` picture of a
/// `grid` of patches, if any.
pub fn patch_at(x: f64, y: f64, width: f64, height: f64, grid: (usize, usize)) -> Option<usize> {
    if !(0.0..width).contains(&x) || !(0.0..height).contains(&y) {
        return None;
    }
    let r = ((y / height) * grid.0 as f64) as usize;
    let c = ((x / width) * grid.1 as f64) as usize;
    (r < grid.0 && c < grid.1).then_some(r * grid.1 + c)
}

/// A vector as a 1-pixel-high RGBA strip: blue for negative, white for 0, red for positive,
/// scaled by the largest magnitude.
pub fn strip_rgba(values: &[f32]) -> Vec<u8> {
    let scale = values.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let scale = if scale > 0.0 { scale } else { 1.0 };
    values
        .iter()
        .flat_map(|&v| {
            let t = (v / scale).clamp(-1.0, 1.0);
            let fade = |x: f32| (255.0 * (1.0 - x)).round() as u8;
            if t >= 0.0 {
                [255, fade(t), fade(t), 255]
            } else {
                [fade(-t), fade(-t), 255, 255]
            }
        })
        .collect()
}

/// The `k` largest values with their indices, largest first.
pub fn top_entries(values: &[f32], k: usize) -> Vec<(usize, f32)> {
    let mut order: Vec<(usize, f32)> = values.iter().copied().enumerate().collect();
    order.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    order.truncate(k);
    order
}

/// "(197, 192)"
pub fn format_shape(shape: &[usize]) -> String {
    let inner: Vec<String> = shape.iter().map(usize::to_string).collect();
    format!("({})", inner.join(", "))
}

/// 874199040 → "874.2 M"; 1.26e9 → "1.26 G".
pub fn format_count(n: u64) -> String {
    let n = n as f64;
    if n >= 1e9 {
        format!("{:.2} G", n / 1e9)
    } else if n >= 1e6 {
        format!("{:.1} M", n / 1e6)
    } else if n >= 1e3 {
        format!("{:.1} k", n / 1e3)
    } else {
        format!("{n}")
    }
}

/// Values as the page prints them and tests read them back: 6 decimals, comma separated.
pub fn format_values(values: &[f32]) -> String {
    let parts: Vec<String> = values.iter().map(|v| format!("{v:.6}")).collect();
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_span_black_to_full_intensity() {
        // 3 channels × 2×2: red ramps, green constant, blue negative.
        let comp = [
            0.0, 1.0, 2.0, 3.0, 1.5, 1.5, 1.5, 1.5, -1.0, -1.0, -1.0, -1.0,
        ];
        let rgba = component_rgba(&comp, 3, 2);
        assert_eq!(rgba.len(), 16);
        // Scaled over the whole component: -1 → 0, 3 → 255.
        assert_eq!(&rgba[0..4], &[64, 159, 0, 255]);
        assert_eq!(&rgba[12..16], &[255, 159, 0, 255]);
    }

    #[test]
    fn similarity_tiles_sit_on_the_grid() {
        // 2×2 grid; every patch is similar only to itself, 0 to its row neighbour and −1 to
        // the other two.
        let mut values = vec![-1.0; 16];
        for i in 0..4 {
            values[i * 4 + i] = 1.0;
            values[i * 4 + (i ^ 1)] = 0.0;
        }
        let sim = PositionSimilarity {
            grid_rows: 2,
            grid_cols: 2,
            values,
        };
        let cmap = Colormap::Viridis;
        let (w, h, rgba) = similarity_grid_rgba(&sim, 2, 1, cmap);
        assert_eq!((w, h), (9, 9));
        // Tile 0's first cell (its own patch) has the top colour, its second cell the middle.
        assert_eq!(&rgba[0..3], &cmap.color(1.0));
        assert_eq!(&rgba[2 * 4..2 * 4 + 3], &cmap.color(0.5));
        // Tile 3 (bottom right) starts after the gap, at (5, 5), and peaks at its own cell.
        let at = |x: usize, y: usize| &rgba[(y * 9 + x) * 4..(y * 9 + x) * 4 + 3];
        assert_eq!(at(5 + 2, 5 + 2), &cmap.color(1.0));
        assert_eq!(at(5, 5 + 2), &cmap.color(0.5));
        assert_eq!(at(5, 5), &cmap.color(0.0));
        // The gap column stays transparent.
        assert_eq!(rgba[4 * 4 + 3], 0);
        assert_eq!(peaks_at_self(&sim), 4);
    }

    #[test]
    fn patch_under_the_pointer() {
        assert_eq!(patch_at(0.0, 0.0, 224.0, 224.0, (14, 14)), Some(0));
        assert_eq!(patch_at(223.9, 223.9, 224.0, 224.0, (14, 14)), Some(195));
        assert_eq!(
            patch_at(17.0, 33.0, 224.0, 224.0, (14, 14)),
            Some(2 * 14 + 1)
        );
        assert_eq!(patch_at(-1.0, 3.0, 224.0, 224.0, (14, 14)), None);
        assert_eq!(patch_at(3.0, 224.0, 224.0, 224.0, (14, 14)), None);
    }

    #[test]
    fn strips_and_formatting() {
        let strip = strip_rgba(&[-2.0, 0.0, 1.0]);
        assert_eq!(&strip[0..4], &[0, 0, 255, 255]);
        assert_eq!(&strip[4..8], &[255, 255, 255, 255]);
        assert_eq!(&strip[8..12], &[255, 128, 128, 255]);
        assert_eq!(
            top_entries(&[0.1, 0.5, 0.2, 0.5], 3),
            vec![(1, 0.5), (3, 0.5), (2, 0.2)]
        );
        assert_eq!(format_shape(&[197, 192]), "(197, 192)");
        assert_eq!(format_count(874_199_040), "874.2 M");
        assert_eq!(format_count(2_520_000_000), "2.52 G");
        assert_eq!(format_values(&[0.5, -1.25]), "0.500000, -1.250000");
    }
}
