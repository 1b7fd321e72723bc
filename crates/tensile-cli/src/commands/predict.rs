//! `tensile predict`: a trained run's predictions for a table, as CSV. Columns are found by
//! name (the target column, if present, and any extra columns are ignored), the saved feature
//! scaling is applied (and a regressor's scaled target mapped back to its units), and rows
//! stream through in chunks so memory stays bounded by the chunk, not the file. With `--out`, the file is written beside its final name and renamed
//! into place at the end, so a failed run leaves nothing half-written.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};

use crate::artifacts::LoadedModel;
use crate::data::{self, Format};
use crate::stdout::Stdout;

pub const EXAMPLES: &str = "\
Examples:
  tensile predict runs/iris --data new-flowers.csv                # CSV on standard output
  tensile predict runs/iris --data new-flowers.csv --out predictions.csv

  tensile predict runs/digits --data new-images/                  # rows named in a `file` column

Classifiers write `prediction` (the class name) and `p_<class>` (its probability) per class;
regressors write `prediction`.";

/// Rows per forward pass.
const CHUNK_ROWS: usize = 4096;

#[derive(clap::Args)]
pub struct Args {
    /// A run directory written by `tensile train`.
    run_dir: PathBuf,
    /// A CSV or Parquet table with (at least) the model's feature columns, by name; a .npy or
    /// .npz array file; or an image, a folder of images, or a folder of class sub-folders.
    #[arg(long, value_name = "FILE")]
    data: PathBuf,
    /// Write the predictions to this file (atomically) instead of standard output.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

pub fn run(args: &Args) -> Result<()> {
    let loaded = LoadedModel::load(&args.run_dir)?;
    match &args.out {
        // A reader that stops early (`| head`) ends the command quietly (see `crate::stdout`).
        None => predict(&loaded, &args.data, &mut BufWriter::new(Stdout)),
        Some(path) => {
            let name = path.file_name().ok_or_else(|| anyhow!("--out {}: not a file name", path.display()))?;
            let tmp = path.with_file_name(format!(".{}.tmp-{}", name.to_string_lossy(), std::process::id()));
            let result = File::create(&tmp)
                .with_context(|| format!("cannot create {}", tmp.display()))
                .and_then(|f| {
                    let mut w = BufWriter::new(f);
                    predict(&loaded, &args.data, &mut w)?;
                    let f = w.into_inner().map_err(|e| e.into_error())?;
                    f.sync_all()?;
                    Ok(())
                })
                .and_then(|()| std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display())));
            if result.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            result
        }
    }
}

fn predict(loaded: &LoadedModel, data: &Path, w: &mut dyn Write) -> Result<()> {
    if data::format_of(data)? != Format::Csv || !loaded.info.input.plain_numeric() {
        return predict_read_whole(loaded, data, w);
    }
    let source = data.display().to_string();
    let file = File::open(data).with_context(|| format!("cannot read the data file {source}"))?;
    let mut rdr = csv::ReaderBuilder::new().trim(csv::Trim::All).flexible(true).from_reader(file);
    let header = rdr.headers().with_context(|| format!("{source}: cannot read the header row"))?.clone();
    let names = &loaded.info.feature_names;
    let columns: Vec<usize> = names
        .iter()
        .map(|n| {
            header.iter().position(|h| h == n).ok_or_else(|| {
                anyhow!(
                    "{source}: no column `{n}` (the model reads [{}]; the file has [{}])",
                    names.join(", "),
                    header.iter().collect::<Vec<_>>().join(", ")
                )
            })
        })
        .collect::<Result<_>>()?;
    let mut out = csv::Writer::from_writer(w);
    let classes = loaded.info.class_names.clone();
    let mut head = vec!["prediction".to_string()];
    if let Some(classes) = &classes {
        head.extend(classes.iter().map(|c| format!("p_{c}")));
    }
    out.write_record(&head)?;

    let d = names.len();
    let mut features: Vec<f32> = Vec::with_capacity(CHUNK_ROWS * d);
    let mut record = csv::StringRecord::new();
    loop {
        let more = rdr.read_record(&mut record).with_context(|| format!("{source}: malformed CSV"))?;
        if more {
            let line = record.position().map_or(0, csv::Position::line);
            if record.len() != header.len() {
                bail!(
                    "{source}, line {line}: found {} fields, expected {} as in the header",
                    record.len(),
                    header.len()
                );
            }
            for (&j, name) in columns.iter().zip(names) {
                let cell = &record[j];
                match cell.parse::<f32>() {
                    Ok(v) if v.is_finite() => features.push(v),
                    _ => bail!("{source}, line {line}, column `{name}`: found {cell:?}, expected a finite number"),
                }
            }
        }
        if features.len() >= CHUNK_ROWS * d || (!more && !features.is_empty()) {
            loaded.prepare(&mut features)?;
            let outputs = loaded.forward(&features)?;
            write_rows(&mut out, &outputs, classes.as_deref(), None)?;
            features.clear();
        }
        if !more {
            break;
        }
    }
    out.flush()?;
    Ok(())
}

/// Every format but plain numeric CSV: the file is read whole, the way training read its data
/// (categories, imputation, image size and color, array names from `model.json`), then run
/// through the model in chunks. Image rows are named in a first `file` column.
fn predict_read_whole(loaded: &LoadedModel, data: &Path, w: &mut dyn Write) -> Result<()> {
    let info = &loaded.info;
    let features = data::read_features(data, &info.input, &info.feature_names, &info.input_shape)?;
    let mut out = csv::Writer::from_writer(w);
    let classes = info.class_names.as_deref();
    let row_names = features.row_names();
    let mut head: Vec<String> = row_names.map(|_| "file".to_string()).into_iter().collect();
    head.push("prediction".into());
    head.extend(classes.into_iter().flatten().map(|c| format!("p_{c}")));
    out.write_record(&head)?;
    let d = info.feature_names.len();
    for (k, chunk) in features.values().chunks(CHUNK_ROWS * d).enumerate() {
        let mut x = chunk.to_vec();
        loaded.prepare(&mut x)?;
        let outputs = loaded.forward(&x)?;
        let names = row_names.map(|n| &n[k * CHUNK_ROWS..(k * CHUNK_ROWS + chunk.len() / d)]);
        write_rows(&mut out, &outputs, classes, names)?;
    }
    out.flush()?;
    Ok(())
}

/// One CSV row per sample of `outputs` (`[B, C]` logits, or `[B, 1]` values), after the row's
/// name when `names` (B of them) are given.
fn write_rows<W: Write>(
    out: &mut csv::Writer<W>,
    outputs: &[f32],
    classes: Option<&[String]>,
    names: Option<&[String]>,
) -> Result<()> {
    let name = |i: usize| names.map(|n| n[i].clone()).into_iter();
    let Some(classes) = classes else {
        for (i, v) in outputs.iter().enumerate() {
            out.write_record(name(i).chain([v.to_string()]))?;
        }
        return Ok(());
    };
    for (i, row) in outputs.chunks(classes.len()).enumerate() {
        let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        let exps: Vec<f64> = row.iter().map(|&v| (v as f64 - m).exp()).collect();
        let sum: f64 = exps.iter().sum();
        // Ties go to the lower class, as argmax does everywhere else.
        let best = row.iter().enumerate().fold(0, |b, (i, &v)| if v > row[b] { i } else { b });
        let mut rec: Vec<String> = name(i).collect();
        rec.push(classes[best].clone());
        rec.extend(exps.iter().map(|e| format!("{:.6}", e / sum)));
        out.write_record(&rec)?;
    }
    Ok(())
}
