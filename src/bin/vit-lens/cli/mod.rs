//! The command line: parses the arguments, runs one command (each in its own module) and
//! prints a failure as one `error:` line.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench;
mod classify;
mod common;
mod eval;
mod explain;
mod teach;

use common::{ensure_runtime_dir, keep_freed_memory};

#[derive(Parser)]
#[command(
    name = "vit-lens",
    version,
    about = "Watch a Vision Transformer classify an image, with attention rollout for every layer"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Classify one image and report the top classes and the attention rollout.
    Classify(classify::ClassifyArgs),
    /// Time the forward pass: median, min and max per image after warm-up.
    Bench(bench::BenchArgs),
    /// Score a labelled image set: accuracy, and whether the rollout points at the object.
    Eval(eval::EvalArgs),
    /// Print the teaching statistics the web app shows, as JSON: model card, principal
    /// components of the patch-embedding filters, position-embedding similarity and, with an
    /// image, every step of the forward pass and each head's mean attention distance.
    Teach(teach::TeachArgs),
    /// Explain one class for one image, as JSON or a summary: class-specific maps (Chefer et
    /// al., gradient rollout) and rollout for every layer, the logit lens, the occlusion map,
    /// head knockout effects and deletion/insertion curves.
    Explain(explain::ExplainArgs),
}

pub fn main() -> ExitCode {
    keep_freed_memory();
    ensure_runtime_dir();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Classify(args) => classify::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Teach(args) => teach::run(args),
        Command::Explain(args) => explain::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // One line: causes joined, and multi-line messages (wgpu's) folded.
            let chain: Vec<String> = err
                .chain()
                .map(|cause| {
                    cause
                        .to_string()
                        .split_whitespace()
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .collect();
            eprintln!("error: {}", chain.join(": "));
            ExitCode::FAILURE
        }
    }
}
