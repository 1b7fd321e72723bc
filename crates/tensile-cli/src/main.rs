//! The `tensile` command. Thin glue: parse arguments, read the config and the data, call the
//! libraries, print. Every error is printed as one paragraph (`error: ...` with its chain of
//! causes); exit status 1 for bad input or config, 2 for bad usage (clap's own).
//!
//! Module map: `config` (the TOML run config: keys, overrides, checks), `data` (reading the
//! tables a config names), `artifacts` (`model.json` and loading a trained run), `stdout`
//! (printing, with a closed pipe as a quiet exit), and one module per command under `commands`.

mod artifacts;
mod commands;
mod config;
mod data;
mod stdout;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::commands::{eval, lr_find, predict, report, summary, train};

// A training step frees and makes many short-lived tensors of the same few sizes; mimalloc
// serves them from per-thread free lists where glibc's malloc spent a quarter of a small step
// (BENCHMARKS.md, "Allocator").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const EXAMPLES: &str = "\
Examples:
  tensile train                                   # the built-in digits demo
  tensile train run.toml --set training.epochs=5  # train from a config file
  tensile train --data iris.csv --target species  # a default model for a table, no config
  tensile summary run.toml                        # layers, output shapes, parameters, memory
  tensile lr-find run.toml                        # a learning rate from a range test
  tensile eval runs/run --data test.csv           # loss, metrics, confusion matrix
  tensile predict runs/run --data new.csv --out predictions.csv
  tensile report runs/run                         # rebuild the run's report.html";

#[derive(Parser)]
#[command(name = "tensile", version, about = "Train neural networks from data, natively in Rust.", after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a model from a config file, from a table with --data, or (with neither) on the
    /// built-in digits dataset.
    #[command(after_help = train::EXAMPLES)]
    Train(train::Args),
    /// Show the model a config builds: layers, output shapes, parameters and a memory estimate.
    #[command(after_help = summary::EXAMPLES)]
    Summary(summary::Args),
    /// Find a learning rate: train briefly while the rate grows from tiny to huge, plot the loss
    /// against the rate and suggest the rate where the loss falls fastest.
    #[command(after_help = lr_find::EXAMPLES)]
    LrFind(lr_find::Args),
    /// Score a trained model on a table: loss, metrics and (for classifiers) a confusion matrix.
    #[command(after_help = eval::EXAMPLES)]
    Eval(eval::Args),
    /// Write a trained model's predictions for a table as CSV.
    #[command(after_help = predict::EXAMPLES)]
    Predict(predict::Args),
    /// Rebuild a run's report.html (curves, scores, confusion matrix, diagnosis, config,
    /// provenance) from its run directory alone.
    #[command(after_help = report::EXAMPLES)]
    Report(report::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Train(args) => train::run(args),
        Command::Summary(args) => summary::run(args),
        Command::LrFind(args) => lr_find::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Predict(args) => predict::run(args),
        Command::Report(args) => report::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of standard output has gone (`| head`): nothing left to tell it.
        Err(e) if stdout::closed_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", chain(&e));
            ExitCode::from(1)
        }
    }
}

/// The error and its causes in one line, each cause left out when the message before it already
/// says it (some library errors print their source in their own message).
fn chain(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let msg = cause.to_string();
        if !text.contains(&msg) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&msg);
        }
    }
    text
}
