//! `vit-lens eval`: accuracy on a labelled image set, and whether the rollout points at the object.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::json;

use vit_lens::analysis::{localize, rollout, softmax, top_k, PixelMask, RolloutOptions};
use vit_lens::preprocess::{preprocess_bytes, DecodeLimits};

use super::common::{
    backend_line, build_engine, configure_threads, load_checkpoint, read, ModelArgs,
};

#[derive(Args)]
pub struct EvalArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// A labelled set: DIR/index.json = {"classes": [names], "items": [{"image": FILE,
    /// "label": INDEX, "mask": FILE (optional, white on the object)}]}.
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(serde::Deserialize)]
struct EvalIndex {
    classes: Vec<String>,
    items: Vec<EvalItem>,
}

#[derive(serde::Deserialize)]
struct EvalItem {
    image: String,
    label: usize,
    mask: Option<String>,
}

pub fn run(args: EvalArgs) -> Result<()> {
    configure_threads(args.model.threads)?;
    let index_path = args.data.join("index.json");
    let index: EvalIndex = serde_json::from_slice(&read(&index_path)?)
        .with_context(|| format!("{} is not a valid index", index_path.display()))?;
    let checkpoint = load_checkpoint(args.model.model.as_deref())?;
    let engine = build_engine(&checkpoint, args.model.backend)?;
    // The set's class names, looked up among the model's labels.
    let model_class = |name: &str| {
        checkpoint
            .labels
            .iter()
            .position(|l| l.eq_ignore_ascii_case(name))
    };
    let class_map: Vec<usize> = index
        .classes
        .iter()
        .map(|name| {
            model_class(name).with_context(|| {
                format!(
                    "the model has no class named `{name}` (its classes: {:?})",
                    checkpoint.labels
                )
            })
        })
        .collect::<Result<_>>()?;
    if index.items.is_empty() {
        bail!("{} lists no items", index_path.display());
    }

    let options = RolloutOptions::default();
    let mut correct = 0usize;
    let mut per_class = vec![(0usize, 0usize); index.classes.len()];
    let (mut masked, mut hits, mut mass, mut area) = (0usize, 0usize, 0f64, 0f64);
    let mut misses = Vec::new();
    for item in &index.items {
        let expected = *class_map.get(item.label).with_context(|| {
            format!(
                "{}: label {} is not one of the {} classes",
                item.image,
                item.label,
                index.classes.len()
            )
        })?;
        let path = args.data.join(&item.image);
        let pre = preprocess_bytes(
            &read(&path)?,
            &checkpoint.preprocess,
            &DecodeLimits::default(),
        )
        .with_context(|| format!("cannot use the image {}", path.display()))?;
        let result = engine
            .infer_batch(
                &pre.pixel_values,
                1,
                pre.height as usize,
                pre.width as usize,
            )?
            .remove(0);
        let probs = softmax(&result.logits);
        let predicted = top_k(&probs, &checkpoint.labels, 1).remove(0);
        let ok = predicted.index == expected;
        correct += usize::from(ok);
        per_class[item.label].0 += usize::from(ok);
        per_class[item.label].1 += 1;
        if !ok {
            misses.push(json!({"image": item.image, "expected": index.classes[item.label], "predicted": predicted.label}));
        }
        if let Some(mask_file) = &item.mask {
            let mask_path = args.data.join(mask_file);
            let mask = image::load_from_memory(&read(&mask_path)?)
                .with_context(|| format!("cannot read the mask {}", mask_path.display()))?
                .to_luma8();
            let (h, w, inside) =
                vit_lens::preprocess::transform_mask(&mask, &checkpoint.preprocess)
                    .with_context(|| format!("cannot use the mask {}", mask_path.display()))?;
            let mask = PixelMask::new(h as usize, w as usize, inside)?;
            let maps = rollout(&result.attentions, result.prefix_tokens, &options)?;
            let last = maps.last().context("the model has no layers")?;
            let scores = localize(last, result.patch_grid, &mask)?;
            masked += 1;
            hits += usize::from(scores.pointing_hit);
            mass += f64::from(scores.mass_inside);
            area += f64::from(scores.area_fraction);
        }
    }
    let n = index.items.len();
    let accuracy = correct as f64 / n as f64;
    let pointing = (masked > 0).then(|| hits as f64 / masked as f64);
    let mean_mass = (masked > 0).then(|| mass / masked as f64);
    let mean_area = (masked > 0).then(|| area / masked as f64);
    let per_class_json: serde_json::Map<String, serde_json::Value> = index
        .classes
        .iter()
        .zip(&per_class)
        .map(|(name, (ok, total))| (name.clone(), json!({"correct": ok, "total": total})))
        .collect();
    if args.json {
        println!(
            "{}",
            json!({
                "images": n,
                "accuracy": accuracy,
                "per_class": per_class_json,
                "misclassified": misses,
                "pointing_game": pointing,
                "masked_images": masked,
                "rollout_mass_in_mask": mean_mass,
                "mask_area_fraction": mean_area,
                "backend": engine.backend(),
                "adapter": engine.adapter(),
            })
        );
    } else {
        println!(
            "{n} images on {}: accuracy {:.1}% ({correct}/{n})",
            backend_line(&engine),
            accuracy * 100.0
        );
        for (name, (ok, total)) in index.classes.iter().zip(&per_class) {
            println!("  {name:>12}: {ok}/{total}");
        }
        if let (Some(p), Some(m), Some(a)) = (pointing, mean_mass, mean_area) {
            println!(
                "rollout (last layer, mean fusion) over {masked} masks: pointing game {:.1}%, mass in mask {:.1}% vs mask area {:.1}%",
                p * 100.0,
                m * 100.0,
                a * 100.0
            );
        }
    }
    Ok(())
}
