//! The `tensile` command. Thin glue: parse arguments, build the model and the configuration,
//! call tensile-train, print. Errors from the libraries are printed as a chain, with exit
//! status 1 for bad input and 2 for bad usage (clap's own).

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use tensile_nn::{AdamConfig, Linear, Relu, Sequential, SgdConfig, parameter_count};
use tensile_train::{OptimizerConfig, ProgressMode, Trainer, TrainerConfig, TrainingData};

#[derive(Parser)]
#[command(name = "tensile", version, about = "Train neural networks from data, natively in Rust.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a model. With no arguments, trains an MLP on the built-in digits dataset.
    #[command(after_help = "Example:\n  tensile train --epochs 30 --optimizer sgd --lr 0.05")]
    Train(TrainArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum OptimizerKind {
    Adam,
    Sgd,
}

#[derive(clap::Args)]
struct TrainArgs {
    /// Passes over the training data.
    #[arg(long, default_value_t = 20)]
    epochs: usize,
    /// Rows per mini-batch.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Learning rate (default: 0.001 for Adam, 0.05 for SGD).
    #[arg(long)]
    lr: Option<f64>,
    /// Optimizer.
    #[arg(long, value_enum, default_value_t = OptimizerKind::Adam)]
    optimizer: OptimizerKind,
    /// Units in each hidden layer, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "128")]
    hidden: Vec<usize>,
    /// Fraction of the rows held out for validation.
    #[arg(long, default_value_t = 0.2)]
    validation_split: f64,
    /// Seed of every random stream (initialization, split, batch order).
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

fn train(args: &TrainArgs) -> Result<()> {
    tensile_core::threads::init();
    if args.hidden.contains(&0) {
        anyhow::bail!("--hidden: every layer needs at least one unit, found {:?}", args.hidden);
    }
    let data = tensile_data::digits();
    let n_classes = data.n_classes().context("internal: digits has class targets")?;
    let optimizer = match args.optimizer {
        OptimizerKind::Adam => OptimizerConfig::Adam(AdamConfig { lr: args.lr.unwrap_or(1e-3), ..Default::default() }),
        OptimizerKind::Sgd => {
            OptimizerConfig::Sgd(SgdConfig { lr: args.lr.unwrap_or(0.05), momentum: 0.9, ..Default::default() })
        }
    };
    let config = TrainerConfig {
        epochs: args.epochs,
        batch_size: args.batch_size,
        validation_split: args.validation_split,
        optimizer,
        seed: args.seed,
        ..Default::default()
    };
    let mut rng = config.init_rng();
    let mut model = Sequential::new();
    let mut width = data.n_features();
    for &h in &args.hidden {
        model = model.with(Linear::new(width, h, true, &mut rng)).with(Relu);
        width = h;
    }
    model = model.with(Linear::new(width, n_classes, true, &mut rng));
    println!(
        "digits: {} rows, {} features, {} classes; MLP {}-{}-{}, {} parameters; {} threads",
        data.len(),
        data.n_features(),
        n_classes,
        data.n_features(),
        args.hidden.iter().map(|h| h.to_string()).collect::<Vec<_>>().join("-"),
        n_classes,
        parameter_count(&model),
        tensile_core::threads::current(),
    );
    let mut trainer = Trainer::new(config)?.progress(ProgressMode::Auto);
    let result = trainer.fit(&mut model, &TrainingData { train: &data, validation: None, test: None })?;
    let total: f64 = result.history.epochs.iter().map(|r| r.seconds).sum();
    if let Some((epoch, _)) = result.best {
        let acc = result.history.epochs.iter().find(|r| r.epoch == epoch).and_then(|r| r.values.get("val_accuracy"));
        println!(
            "best epoch {epoch} (weights restored): validation accuracy {:.2}%; {:.2} s in all",
            acc.copied().unwrap_or(f64::NAN) * 100.0,
            total
        );
    }
    for finding in &result.diagnosis {
        println!("- {}", finding.message);
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Train(args) => train(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
