//! `vit-lens explain`: why the model chose a class for one image — class-specific maps for
//! every layer, the logit lens, the occlusion map, head knockout effects and faithfulness
//! curves — as a table or as JSON, computed by the same code as the web app's views.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::{json, Value};

use vit_lens::analysis::{softmax, top_k};
use vit_lens::explain::{ExplainModel, ExplainOptions, Explanation, HeadId};

use super::common::{load_checkpoint, read_input, InputArgs};

#[derive(Args)]
pub struct ExplainArgs {
    /// Checkpoint directory [default: the built-in shapes model].
    #[arg(long, value_name = "DIR")]
    pub model: Option<PathBuf>,
    #[command(flatten)]
    pub input: InputArgs,
    /// The class to explain, by index [default: the model's top-1].
    #[arg(long, value_name = "K")]
    pub class: Option<usize>,
    /// Fraction of the weakest attention links dropped by rollout and gradient rollout, in
    /// [0, 1).
    #[arg(long, default_value_t = 0.0, value_name = "R")]
    pub discard_ratio: f32,
    /// Skip the interventions (occlusion, head knockout, faithfulness): maps and logit lens
    /// only.
    #[arg(long)]
    pub no_interventions: bool,
    /// "What if": patches to hide (row-major on the patch grid, comma-separated), as the
    /// page's explain mode hides them; adds `what_if` (the top classes without them).
    #[arg(long, value_name = "P,P,…", value_delimiter = ',')]
    pub hide: Vec<usize>,
    /// "What if": heads to switch off, as LAYER:HEAD pairs counted from 0 (e.g. 2:1,3:0).
    #[arg(long, value_name = "L:H,…", value_delimiter = ',', value_parser = parse_head)]
    pub heads_off: Vec<HeadId>,
    /// Print one JSON object instead of a summary.
    #[arg(long)]
    pub json: bool,
}

/// `L:H` → the head H of layer L (both from 0).
fn parse_head(text: &str) -> Result<HeadId, String> {
    let parse = |part: &str| part.trim().parse::<usize>().ok();
    match text.split_once(':') {
        Some((layer, head)) => match (parse(layer), parse(head)) {
            (Some(layer), Some(head)) => Ok(HeadId { layer, head }),
            _ => Err(format!(
                "`{text}` is not LAYER:HEAD; give two numbers such as 2:1"
            )),
        },
        None => Err(format!(
            "`{text}` is not LAYER:HEAD; give two numbers such as 2:1"
        )),
    }
}

pub fn run(args: ExplainArgs) -> Result<()> {
    if !(0.0..1.0).contains(&args.discard_ratio) {
        bail!(
            "--discard-ratio {} is out of range; give a value in [0, 1)",
            args.discard_ratio
        );
    }
    let checkpoint = load_checkpoint(args.model.as_deref())?;
    let (values, height, width) = read_input(
        &checkpoint,
        args.input.image.as_deref(),
        args.input.pixels.as_deref(),
    )?
    .context("give an image with --image or model input with --pixels")?;
    let channels = checkpoint.config.num_channels;
    let pixels = candle_core::Tensor::from_vec(
        values,
        (1, channels, height, width),
        &candle_core::Device::Cpu,
    )?;
    let interventions = !args.no_interventions;
    let options = ExplainOptions {
        discard_ratio: args.discard_ratio,
        occlusion: interventions,
        head_effects: interventions,
        faithfulness: interventions,
        ..ExplainOptions::default()
    };
    let model = ExplainModel::new(&checkpoint).context("cannot explain this model")?;
    let explanation = model
        .explain(&pixels, args.class, &options)
        .context("cannot explain the prediction")?;
    let what_if = if args.hide.is_empty() && args.heads_off.is_empty() {
        None
    } else {
        let logits = model
            .what_if(&pixels, &args.hide, &args.heads_off)
            .context("cannot run the image with those patches hidden or heads off")?;
        Some(top_k(&softmax(&logits), &checkpoint.labels, 5))
    };
    if args.json {
        let mut json = to_json(&explanation);
        if let Some(top) = &what_if {
            json["what_if"] = json!({
                "hidden_patches": args.hide,
                "heads_off": args.heads_off,
                "top": top,
            });
        }
        println!("{json}");
    } else {
        print_summary(&explanation);
        if let Some(top) = &what_if {
            let parts: Vec<String> = top
                .iter()
                .map(|p| format!("{} {:.2} %", p.label, p.prob * 100.0))
                .collect();
            println!("what if: {}", parts.join(", "));
        }
    }
    Ok(())
}

/// The JSON of `vit-lens explain --json`: `class`, `maps.{rollout,chefer,grad_rollout}` as
/// `[L][N]`, `logit_lens` as `[L][k]` of `{index, label, prob}`, `occlusion` as `[N]`,
/// `faithfulness.{method}.{deletion,insertion,deletion_auc,insertion_auc}`, and the rest of
/// the explanation beside them.
fn to_json(e: &Explanation) -> Value {
    let faithfulness: serde_json::Map<String, Value> = e
        .faithfulness
        .iter()
        .flatten()
        .map(|curve| {
            (
                curve.order.clone(),
                json!({
                    "deletion": curve.deletion,
                    "insertion": curve.insertion,
                    "deletion_auc": curve.deletion_auc,
                    "insertion_auc": curve.insertion_auc,
                }),
            )
        })
        .collect();
    json!({
        "class": e.class,
        "label": e.label,
        "logit": e.logit,
        "prob": e.prob,
        "predictions": e.predictions,
        "patch_grid": [e.patch_grid.0, e.patch_grid.1],
        "prefix_tokens": e.prefix_tokens,
        "maps": {
            "rollout": e.rollout,
            "chefer": e.chefer,
            "grad_rollout": e.grad_rollout,
        },
        "logit_lens": e.logit_lens.iter().map(|layer| &layer.top).collect::<Vec<_>>(),
        "logit_lens_class_prob": e.logit_lens.iter().map(|layer| layer.class_prob).collect::<Vec<_>>(),
        "occlusion": e.occlusion,
        "head_effects": e.head_effects,
        "faithfulness": faithfulness,
        "random_seed": e.random_seed,
    })
}

fn print_summary(e: &Explanation) {
    println!(
        "class {} ({}): logit {:.4}, probability {:.2} %",
        e.class,
        e.label,
        e.logit,
        e.prob * 100.0
    );
    let (rows, cols) = e.patch_grid;
    for (name, maps) in [
        ("rollout", &e.rollout),
        ("chefer", &e.chefer),
        ("grad_rollout", &e.grad_rollout),
    ] {
        if let Some(last) = maps.last() {
            let (best, _) =
                last.iter()
                    .enumerate()
                    .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &v)| {
                        if v > bv {
                            (i, v)
                        } else {
                            (bi, bv)
                        }
                    });
            println!(
                "{name:>12}: most relevant patch {best} (row {}, column {} of {rows}×{cols})",
                best / cols.max(1),
                best % cols.max(1)
            );
        }
    }
    println!("logit lens (top class after each layer):");
    for (l, layer) in e.logit_lens.iter().enumerate() {
        if let Some(top) = layer.top.first() {
            println!(
                "  layer {:>2}: {} {:.2} %  (class {}: {:.2} %)",
                l + 1,
                top.label,
                top.prob * 100.0,
                e.class,
                layer.class_prob * 100.0
            );
        }
    }
    if let Some(effects) = &e.head_effects {
        let top: Vec<String> = effects
            .ranking
            .iter()
            .take(5)
            .map(|h| format!("L{}H{} {:+.3}", h.layer + 1, h.head + 1, h.effect))
            .collect();
        println!("heads that support the class most: {}", top.join(", "));
    }
    for curve in e.faithfulness.iter().flatten() {
        println!(
            "{:>12}: deletion AUC {:.4}, insertion AUC {:.4}",
            curve.order, curve.deletion_auc, curve.insertion_auc
        );
    }
}
