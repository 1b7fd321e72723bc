//! Reading the tables a config names: the training file decides the task and the class names,
//! and the validation and test files are read as the same task and mapped onto those classes.

use std::path::Path;

use anyhow::{Result, bail};
use tensile_data::{Dataset, Task, read_csv};

use crate::artifacts::align;
use crate::config::{Loaded, TaskName, resolve};

/// The data of a run.
pub struct RunData {
    pub train: Dataset,
    pub validation: Option<Dataset>,
    pub test: Option<Dataset>,
    /// A short name for messages (`iris.csv`, `digits`).
    pub name: String,
    pub task: TaskName,
}

/// Reads the files in `[data]`, or the built-in digits when no training file is named.
pub fn read(loaded: &Loaded) -> Result<RunData> {
    let data = &loaded.config.data;
    let Some(train_path) = &data.train else {
        let train = tensile_data::digits();
        return Ok(RunData {
            train,
            validation: None,
            test: None,
            name: "digits".into(),
            task: TaskName::Classification,
        });
    };
    let task = match data.task {
        None => Task::Infer,
        Some(TaskName::Classification) => Task::Classification,
        Some(TaskName::Regression) => Task::Regression,
    };
    let path = resolve(&loaded.base, train_path);
    let train = read_table(&path, &data.target, task)?;
    let (task, fixed) = match train.class_names() {
        Some(_) => (TaskName::Classification, Task::Classification),
        None => (TaskName::Regression, Task::Regression),
    };
    let class_names = train.class_names().map(<[String]>::to_vec);
    let other = |p: &Option<std::path::PathBuf>| -> Result<Option<Dataset>> {
        p.as_ref()
            .map(|p| {
                let path = resolve(&loaded.base, p);
                let ds = read_table(&path, &data.target, fixed)?;
                align(ds, train.feature_names(), class_names.as_deref(), &data.target, &path.display().to_string())
            })
            .transpose()
    };
    let (validation, test) = (other(&data.validation)?, other(&data.test)?);
    let name = path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned());
    Ok(RunData { train, validation, test, name, task })
}

/// Reads one CSV table. Only CSV is read for now; other extensions are refused by name.
pub fn read_table(path: &Path, target: &str, task: Task) -> Result<Dataset> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    if !matches!(ext.as_str(), "csv" | "tsv" | "txt" | "") {
        bail!("{}: only CSV files are read for now (found a .{ext} file)", path.display());
    }
    // The reader's errors already name the file (and the line and column).
    Ok(read_csv(path, target, task)?)
}
