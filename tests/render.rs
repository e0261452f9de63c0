//! Tests of `vit_lens::render`: bilinear upsampling (by hand and against
//! torch `F.interpolate`), normalization, colormaps, overlay and PNG.

use image::{Rgb, RgbImage, RgbaImage};
use serde::Deserialize;
use vit_lens::render::{encode_png, normalize, overlay, upsample_bilinear, Colormap, RenderError};

#[derive(Deserialize)]
struct BilinearReference {
    cases: Vec<BilinearCase>,
}

#[derive(Deserialize)]
struct BilinearCase {
    /// (grid_h, grid_w)
    grid: (usize, usize),
    /// (out_h, out_w)
    out: (u32, u32),
    map: Vec<f32>,
    /// torch F.interpolate(mode="bilinear", align_corners=False), row-major.
    expected: Vec<f32>,
}

fn assert_close(found: &[f32], expected: &[f32], tolerance: f32, what: &str) {
    assert_eq!(found.len(), expected.len(), "{what}: length");
    for (i, (f, e)) in found.iter().zip(expected).enumerate() {
        assert!(
            (f - e).abs() <= tolerance,
            "{what}[{i}]: found {f}, expected {e}"
        );
    }
}

/// A crop with a different colour at every pixel.
fn gradient_crop(width: u32, height: u32) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| {
        Rgb([(x * 40 + 3) as u8, (y * 50 + 7) as u8, ((x + y) * 20) as u8])
    })
}

#[test]
fn upsample_of_constant_map_is_constant() {
    let map = vec![0.375f32; 6];
    let up = upsample_bilinear(&map, (2, 3), (13, 7)).expect("upsample");
    assert_eq!(up.len(), 13 * 7);
    assert!(up.iter().all(|&v| v == 0.375));
}

#[test]
fn upsample_2x2_by_hand() {
    // Grid [[0, 1], [2, 3]] to 4×4: output x samples grid x = (x + 0.5)/2 − 0.5
    // = −0.25 → 0, 0.25, 0.75, 1.25 → 1, and rows the same.
    let up = upsample_bilinear(&[0.0, 1.0, 2.0, 3.0], (2, 2), (4, 4)).expect("upsample");
    #[rustfmt::skip]
    let expected = [
        0.0, 0.25, 0.75, 1.0,
        0.5, 0.75, 1.25, 1.5,
        1.5, 1.75, 2.25, 2.5,
        2.0, 2.25, 2.75, 3.0,
    ];
    assert_close(&up, &expected, 0.0, "2x2 → 4x4");
}

#[test]
fn upsample_is_height_first_and_identity_at_same_size() {
    let map = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
    // (2 rows, 3 columns) to (2 rows, 3 columns): unchanged.
    assert_eq!(upsample_bilinear(&map, (2, 3), (2, 3)).expect("same"), map);
    // (2, 3) to (4, 3): columns untouched, rows interpolated.
    let up = upsample_bilinear(&map, (2, 3), (4, 3)).expect("rows");
    #[rustfmt::skip]
    let expected = [
        1.0, 2.0, 3.0,
        1.75, 2.75, 3.75,
        3.25, 4.25, 5.25,
        4.0, 5.0, 6.0,
    ];
    assert_close(&up, &expected, 1e-6, "(2,3) → (4,3)");
}

#[test]
fn upsample_matches_torch_interpolate() {
    let reference: BilinearReference =
        serde_json::from_str(include_str!("fixtures/analysis/bilinear_reference.json"))
            .expect("fixture parses");
    assert!(!reference.cases.is_empty());
    let mut worst = 0.0f32;
    for case in &reference.cases {
        let up = upsample_bilinear(&case.map, case.grid, case.out).expect("upsample");
        let what = format!("{:?} → {:?}", case.grid, case.out);
        assert_close(&up, &case.expected, 1e-6, &what);
        worst = up
            .iter()
            .zip(&case.expected)
            .fold(worst, |w, (a, b)| w.max((a - b).abs()));
    }
    println!("worst |upsample - torch| = {worst:e}");
}

#[test]
fn upsample_errors() {
    let err = upsample_bilinear(&[0.0; 3], (2, 2), (4, 4)).unwrap_err();
    assert!(matches!(
        err,
        RenderError::MapLength {
            expected: 4,
            found: 3,
            ..
        }
    ));
    let text = err.to_string();
    assert!(text.contains("expected 4 values, found 3"), "{text}");
    assert!(text.contains("2x2 patch grid"), "{text}");

    let err = upsample_bilinear(&[], (0, 2), (4, 4)).unwrap_err();
    assert!(
        err.to_string().contains("patch grid has zero size"),
        "{err}"
    );
    let err = upsample_bilinear(&[0.0; 4], (2, 2), (4, 0)).unwrap_err();
    assert!(
        err.to_string().contains("output has zero size: 4x0"),
        "{err}"
    );
}

#[test]
fn normalize_spans_zero_to_one() {
    assert_eq!(normalize(&[1.0, 3.0, 2.0]), vec![0.0, 1.0, 0.5]);
    assert_eq!(normalize(&[-2.0, 0.0, 6.0]), vec![0.0, 0.25, 1.0]);
    assert_eq!(normalize(&[f32::MIN, 0.0, f32::MAX]), vec![0.0, 0.5, 1.0]);
    // A range smaller than f32 resolution near the values still works.
    let tiny = normalize(&[1.0, 1.0 + f32::EPSILON]);
    assert_eq!(tiny, vec![0.0, 1.0]);
}

#[test]
fn normalize_edge_cases_are_nan_free() {
    assert!(normalize(&[]).is_empty());
    assert_eq!(normalize(&[7.0]), vec![0.5]);
    assert_eq!(normalize(&[0.2; 5]), vec![0.5; 5]);
    assert_eq!(
        normalize(&[f32::NAN, 1.0, f32::INFINITY, 3.0, f32::NEG_INFINITY]),
        vec![0.0, 0.0, 1.0, 1.0, 0.0]
    );
    let odd = normalize(&[f32::NAN, f32::NAN, 2.0]);
    assert_eq!(odd, vec![0.0, 0.0, 0.5]);
    assert!(normalize(&[f32::NAN; 3]).iter().all(|v| v.is_finite()));
}

#[test]
fn colormap_names() {
    assert_eq!(Colormap::ALL.len(), 6);
    assert_eq!(Colormap::default(), Colormap::Turbo);
    let names: Vec<String> = Colormap::ALL.iter().map(|c| c.to_string()).collect();
    assert_eq!(
        names,
        ["turbo", "viridis", "inferno", "magma", "plasma", "cividis"]
    );
    for colormap in Colormap::ALL {
        assert_eq!(
            colormap.to_string().parse::<Colormap>().expect("parses"),
            colormap
        );
        let json = serde_json::to_string(&colormap).expect("serializes");
        assert_eq!(json, format!("\"{colormap}\""));
    }
    assert_eq!(
        "Viridis".parse::<Colormap>().expect("parses"),
        Colormap::Viridis
    );
    let err = "jet".parse::<Colormap>().unwrap_err();
    assert!(matches!(err, RenderError::UnknownColormap(ref name) if name == "jet"));
    let text = err.to_string();
    assert!(
        text.contains("\"jet\"") && text.contains("turbo, viridis"),
        "{text}"
    );
}

#[test]
fn colormap_colors_come_from_colorous() {
    let pairs = [
        (Colormap::Turbo, colorous::TURBO),
        (Colormap::Viridis, colorous::VIRIDIS),
        (Colormap::Inferno, colorous::INFERNO),
        (Colormap::Magma, colorous::MAGMA),
        (Colormap::Plasma, colorous::PLASMA),
        (Colormap::Cividis, colorous::CIVIDIS),
    ];
    for (colormap, gradient) in pairs {
        for t in [0.0f32, 0.3, 0.5, 1.0] {
            let expected = gradient.eval_continuous(f64::from(t)).into_array();
            assert_eq!(colormap.color(t), expected, "{colormap} at {t}");
        }
        assert_eq!(colormap.color(-1.0), colormap.color(0.0));
        assert_eq!(colormap.color(2.0), colormap.color(1.0));
        assert_eq!(colormap.color(f32::NAN), colormap.color(0.0));
    }
}

#[test]
fn overlay_with_opacity_zero_is_the_crop() {
    let crop = gradient_crop(6, 4);
    let map = [0.1, 0.9, 0.4, 0.3, 0.2, 0.8];
    let out = overlay(&crop, &map, (2, 3), Colormap::Magma, 0.0).expect("overlay");
    assert_eq!(out.dimensions(), (6, 4));
    for (source, target) in crop.pixels().zip(out.pixels()) {
        assert_eq!(target.0, [source.0[0], source.0[1], source.0[2], 255]);
    }
}

#[test]
fn overlay_with_opacity_one_is_the_colormap() {
    let crop = gradient_crop(4, 4);
    let map = [0.0, 1.0, 2.0, 3.0];
    for colormap in Colormap::ALL {
        let out = overlay(&crop, &map, (2, 2), colormap, 1.0).expect("overlay");
        let heat = upsample_bilinear(&normalize(&map), (2, 2), (4, 4)).expect("upsample");
        for (target, &t) in out.pixels().zip(&heat) {
            let [r, g, b] = colormap.color(t);
            assert_eq!(target.0, [r, g, b, 255]);
        }
        // Corners sit exactly on the grid's lowest and highest cells.
        let low = colormap.color(0.0);
        let high = colormap.color(1.0);
        assert_eq!(out.get_pixel(0, 0).0[..3], low);
        assert_eq!(out.get_pixel(3, 3).0[..3], high);
    }
}

#[test]
fn overlay_blends_linearly() {
    let crop = RgbImage::from_pixel(2, 2, Rgb([100, 0, 255]));
    let out = overlay(&crop, &[5.0], (1, 1), Colormap::Viridis, 0.25).expect("overlay");
    // A constant map normalizes to 0.5.
    let colour = Colormap::Viridis.color(0.5);
    let blend = |c: u8, m: u8| (f32::from(c) * 0.75 + f32::from(m) * 0.25).round() as u8;
    let expected = [
        blend(100, colour[0]),
        blend(0, colour[1]),
        blend(255, colour[2]),
        255,
    ];
    assert!(out.pixels().all(|p| p.0 == expected));
}

#[test]
fn overlay_errors() {
    let crop = gradient_crop(4, 4);
    for opacity in [-0.1, 1.01, f32::NAN] {
        let err = overlay(&crop, &[0.0; 4], (2, 2), Colormap::Turbo, opacity).unwrap_err();
        assert!(matches!(err, RenderError::Opacity(_)));
        assert!(err.to_string().contains("outside [0, 1]"), "{err}");
    }
    let err = overlay(&crop, &[0.0; 5], (2, 2), Colormap::Turbo, 0.5).unwrap_err();
    assert!(
        err.to_string().contains("expected 4 values, found 5"),
        "{err}"
    );
    let empty = RgbImage::new(0, 3);
    let err = overlay(&empty, &[0.0; 4], (2, 2), Colormap::Turbo, 0.5).unwrap_err();
    assert!(err.to_string().contains("crop has zero size: 3x0"), "{err}");
    let err = overlay(&crop, &[], (0, 0), Colormap::Turbo, 0.5).unwrap_err();
    assert!(matches!(
        err,
        RenderError::ZeroSize {
            what: "patch grid",
            ..
        }
    ));
}

#[test]
fn encode_png_round_trips() {
    let crop = gradient_crop(5, 3);
    let image =
        overlay(&crop, &[0.1, 0.5, 0.2, 0.9], (2, 2), Colormap::Inferno, 0.6).expect("overlay");
    let bytes = encode_png(&image).expect("encode");
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    let decoded = image::load_from_memory(&bytes).expect("decode").to_rgba8();
    assert_eq!(decoded, image);
}

#[test]
fn encode_png_rejects_empty_image() {
    let err = encode_png(&RgbaImage::new(0, 0)).unwrap_err();
    assert!(matches!(err, RenderError::ZeroSize { what: "image", .. }));
    assert!(err.to_string().contains("image has zero size"), "{err}");
}
