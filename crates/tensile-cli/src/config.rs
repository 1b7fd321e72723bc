//! The run config file (TOML): `[data]`, `[model]`, `[training]`, `[output]`.
//!
//! A config is read in three steps, each with its own errors: TOML syntax (file, line, column),
//! then the key names (every key checked against the known ones, so a typo is named with its
//! section path and the closest valid key), then types (serde, with line and column). `--set`
//! overrides are applied to the parsed table between the first two steps, so an override is
//! checked exactly like a key written in the file.
//!
//! `[training]` is `tensile_train::TrainerConfig` itself, so every trainer option is reachable
//! without a second list to keep in sync. Two conveniences are rewritten before checking:
//! `data.validation_split` moves to `training.validation_split`, and the flat single-condition
//! `early_stopping = { monitor, patience, min_delta }` becomes `{ conditions = [ … ] }`, an
//! `optimizer` table without a `type` is Adam, the older `standardize = true|false` becomes
//! `scaling = "standard"|"none"`, and the flat schedule
//! `schedule = { type = "cosine", warmup_epochs = 2 }` becomes the nested
//! `{ schedule = { kind = "cosine", t_max = … }, warmup = { steps = 2 } }` (see
//! [`normalize_schedule`]).
//! The resolved config written to a run directory uses the canonical forms only.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use serde::{Deserialize, Serialize};
use tensile_nn::{LayerSpec, Schedule};
use tensile_train::TrainerConfig;

/// The whole config file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunConfig {
    pub data: DataConfig,
    pub model: ModelConfig,
    pub training: TrainerConfig,
    pub output: OutputConfig,
}

/// Where the data is. Paths are relative to the config file's folder.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// A CSV or Parquet table, a `.npy` or `.npz` array file, or a folder of images with one
    /// sub-folder per class (see `crate::data`).
    pub train: Option<PathBuf>,
    pub validation: Option<PathBuf>,
    pub test: Option<PathBuf>,
    /// The target column of a table.
    pub target: String,
    /// `None`: inferred from the target column.
    pub task: Option<TaskName>,
    /// Tables: fill missing cells (`mean`, `median`, `most_frequent`); `None`: they are errors.
    pub impute: Option<crate::data::ImputeName>,
    /// Tables: columns to one-hot encode though their cells are numbers.
    pub categorical: Vec<String>,
    /// Tables: the most distinct training values a categorical column is one-hot encoded with;
    /// a column with more becomes one index feature that the model looks up in a learned
    /// embedding (`model.embedding_dim`), whether the file is read whole or streamed.
    pub one_hot_max: usize,
    /// Images: `[height, width]` every image is resized to; `None`: all must be of one size.
    pub image_size: Option<[u32; 2]>,
    /// Images: `grayscale` (1 channel) or `rgb` (3).
    pub color: crate::data::Color,
    /// `.npz` archives: the names of the features and the targets arrays.
    pub features: String,
    pub targets: String,
    /// `.npy` features files: the `.npy` file of their targets.
    pub train_targets: Option<PathBuf>,
    pub validation_targets: Option<PathBuf>,
    pub test_targets: Option<PathBuf>,
    /// CSV and Parquet training files: stream the file (a window of blocks in memory at a time) instead of
    /// reading it whole. Also on, by itself, for a file larger than `memory_budget`.
    pub stream: bool,
    /// What a streamed training file may occupy in memory (`"256MiB"`, `"2GiB"`, `"500MB"`): a
    /// quarter for the shuffle window, up to half for the validation rows. `None`: 256 MiB when
    /// streaming, and no file is streamed for its size alone.
    pub memory_budget: Option<String>,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            train: None,
            validation: None,
            test: None,
            target: "target".into(),
            task: None,
            impute: None,
            categorical: Vec::new(),
            one_hot_max: 16,
            image_size: None,
            color: crate::data::Color::Rgb,
            features: tensile_data::NPZ_FEATURES_KEY.into(),
            targets: tensile_data::NPZ_TARGETS_KEY.into(),
            train_targets: None,
            validation_targets: None,
            test_targets: None,
            stream: false,
            memory_budget: None,
        }
    }
}

/// The task, as written in configs and in `model.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskName {
    Classification,
    Regression,
}

/// The model: an explicit layer list, or (when `layers` is left out) an MLP with `hidden` units
/// per hidden layer and an output layer sized for the task.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    pub layers: Option<Vec<LayerSpec>>,
    pub hidden: Vec<usize>,
    /// The width of every learned embedding of an index column (see `data.one_hot_max`);
    /// `None`: min(50, round(1.6 * n^0.56)) for a column of n categories.
    pub embedding_dim: Option<usize>,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig { layers: None, hidden: vec![128], embedding_dim: None }
    }
}

impl ModelConfig {
    /// The layer list for samples of `sample_shape` and `outputs` output units (classes, or 1 for
    /// regression). The default MLP reads rows of D values, so samples of more dimensions (images)
    /// are flattened first.
    pub fn layers_for(&self, sample_shape: &[usize], outputs: usize) -> Result<Vec<LayerSpec>> {
        if let Some(layers) = &self.layers {
            return Ok(layers.clone());
        }
        if self.hidden.contains(&0) {
            bail!("model.hidden: every layer needs at least one unit, found {:?}", self.hidden);
        }
        let mut layers = Vec::new();
        if sample_shape.len() > 1 {
            layers.push(LayerSpec::Flatten);
        }
        for &units in &self.hidden {
            layers.push(LayerSpec::Linear { units, bias: true });
            layers.push(LayerSpec::Relu);
        }
        layers.push(LayerSpec::Linear { units: outputs, bias: true });
        Ok(layers)
    }
}

/// Where results go.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutputConfig {
    /// The run directory, relative to the working directory. `None`: `runs/<config name>`.
    pub dir: Option<PathBuf>,
}

/// Keys whose tables have several shapes (a `type` tag, optional sub-tables): serde checks
/// their insides, and its message is given a suggestion by [`suggest_in_message`].
const OPEN_KEYS: &[&str] =
    &["training.optimizer", "training.schedule.schedule", "training.early_stopping", "model.layers"];

/// Reads a config file's text into a table, naming the file, line and column of a syntax error.
pub fn parse_table(text: &str, origin: &str) -> Result<toml::Table> {
    text.parse::<toml::Table>().map_err(|e| toml_error(e.message(), e.span(), text, origin, true))
}

/// Applies `--set key=value` (dotted path; the value is TOML, or else taken as a string).
pub fn apply_set(table: &mut toml::Table, assignment: &str) -> Result<()> {
    let (key, raw) = assignment
        .split_once('=')
        .ok_or_else(|| anyhow!("--set {assignment}: expected KEY=VALUE, e.g. training.epochs=5"))?;
    let (key, raw) = (key.trim(), raw.trim());
    let value = match format!("v = {raw}").parse::<toml::Table>() {
        Ok(mut t) => t.remove("v").context("internal: parsed value")?,
        Err(_) => toml::Value::String(raw.to_string()),
    };
    let parts: Vec<&str> = key.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        bail!("--set {assignment}: `{key}` is not a dotted key path such as training.epochs");
    }
    let mut t = table;
    for (i, part) in parts[..parts.len() - 1].iter().enumerate() {
        let entry = t.entry(part.to_string()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        t = entry
            .as_table_mut()
            .ok_or_else(|| anyhow!("--set {assignment}: `{}` is not a table", parts[..=i].join(".")))?;
    }
    t.insert(parts[parts.len() - 1].to_string(), value);
    Ok(())
}

/// Checks key names and types and builds the config. `origin` names the file in messages;
/// `text` (when the table came from a file) lets type errors give a line and column.
pub fn from_table(mut table: toml::Table, origin: &str, text: &str) -> Result<RunConfig> {
    normalize(&mut table, origin)?;
    let known = serde_json::to_value(RunConfig::default()).context("internal: the default config serializes")?;
    check_keys(&table, &known, "", origin)?;
    // Type errors point into the text the user wrote when the table is unchanged; a table
    // changed by `--set` or a shorthand is checked as re-serialized, so positions refer to that.
    let rendered = toml::to_string(&table).context("internal: a parsed table serializes")?;
    let same = text.parse::<toml::Table>().is_ok_and(|t| t == table);
    let source = if same { text } else { rendered.as_str() };
    let config: RunConfig = toml::from_str(source).map_err(|e| {
        let msg = suggest_in_message(e.message());
        toml_error(&msg, e.span(), source, origin, same)
    })?;
    config.training.validate().with_context(|| format!("invalid [training] settings in {origin}"))?;
    Ok(config)
}

/// Rewrites the documented shorthands into the canonical forms.
fn normalize(table: &mut toml::Table, origin: &str) -> Result<()> {
    let split = table.get_mut("data").and_then(|d| d.as_table_mut()).and_then(|d| d.remove("validation_split"));
    if let Some(split) = split {
        let training = table.entry("training").or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let training = training.as_table_mut().ok_or_else(|| anyhow!("`training` must be a table"))?;
        if training.contains_key("validation_split") {
            bail!("validation_split is set in both [data] and [training]; keep one");
        }
        training.insert("validation_split".into(), split);
    }
    // `optimizer = { lr = 0.01 }` keeps the default optimizer (Adam) with another rate.
    if let Some(opt) = table.get_mut("training").and_then(|t| t.as_table_mut()).and_then(|t| t.get_mut("optimizer"))
        && let Some(opt) = opt.as_table_mut()
        && !opt.contains_key("type")
    {
        opt.insert("type".into(), toml::Value::String("adam".into()));
    }
    if let Some(es) = table.get_mut("training").and_then(|t| t.as_table_mut()).and_then(|t| t.get_mut("early_stopping"))
        && let Some(flat) = es.as_table()
        && !flat.contains_key("conditions")
        && !flat.contains_key("combine")
    {
        let mut full = toml::Table::new();
        full.insert("conditions".into(), toml::Value::Array(vec![toml::Value::Table(flat.clone())]));
        *es = toml::Value::Table(full);
    }
    if let Some(training) = table.get_mut("training").and_then(|t| t.as_table_mut()) {
        if let Some(old) = training.remove("standardize") {
            let Some(on) = old.as_bool() else {
                bail!(
                    "training.standardize in {origin}: expected true or false, found {old} \
                     (it is the older form of training.scaling = \"standard\" | \"minmax\" | \"none\")"
                );
            };
            if training.contains_key("scaling") {
                bail!("{origin} sets both training.standardize and training.scaling; keep training.scaling");
            }
            training.insert("scaling".into(), toml::Value::String(if on { "standard" } else { "none" }.into()));
        }
        normalize_schedule(training, origin)?;
    }
    Ok(())
}

/// The keys of the flat schedule form besides the schedule's own settings.
const SCHEDULE_FLAT_KEYS: [&str; 5] = ["type", "unit", "warmup_epochs", "warmup_steps", "warmup_start_factor"];

/// Each schedule kind (`Schedule`'s `kind` tag) with its settings, read off one example of
/// each so the lists cannot drift from `tensile_nn::Schedule`.
fn schedule_kinds() -> Vec<(String, Vec<String>)> {
    use tensile_nn::schedule::{OneCycleConfig, PlateauConfig};
    let examples = [
        Schedule::Constant,
        Schedule::Step { step_size: 1, gamma: 0.1 },
        Schedule::MultiStep { milestones: vec![1], gamma: 0.1 },
        Schedule::Exponential { gamma: 0.9 },
        Schedule::Cosine { t_max: 1, eta_min: 0.0 },
        Schedule::CosineWarmRestarts { t_0: 1, t_mult: 1, eta_min: 0.0 },
        Schedule::OneCycle(OneCycleConfig::new(0.1, 1)),
        Schedule::ReduceOnPlateau(PlateauConfig::default()),
    ];
    examples
        .iter()
        .filter_map(|s| {
            let v = serde_json::to_value(s).ok()?;
            let v = v.as_object()?;
            let kind = v.get("kind")?.as_str()?.to_string();
            Some((kind, v.keys().filter(|k| *k != "kind").cloned().collect()))
        })
        .collect()
}

/// The flat `training.schedule` form, as people write it:
///
/// ```toml
/// schedule = { type = "cosine", warmup_epochs = 2 }        # t_max: the epochs after warmup
/// schedule = { type = "step", step_size = 10 }             # gamma 0.1, as PyTorch's StepLR
/// schedule = { type = "plateau", factor = 0.5, patience = 3 }
/// schedule = { type = "one_cycle", max_lr = 0.01, total_steps = 500, warmup_steps = 0 }
/// ```
///
/// becomes `{ schedule = { kind = …, <settings> }, warmup = { steps, start_factor }, unit }`.
/// `type` takes every `kind` (`-` for `_` too) and `plateau`, `onecycle`, `multistep`. Filled in
/// when left out: a cosine's `t_max` (the run's epochs minus the warmup, when it steps per
/// epoch), `gamma = 0.1` for step and multi-step, and a plateau's `mode` from
/// `training.monitor` (`max` for accuracy-like values), and the warmup's first rate
/// (`warmup_start_factor`): `1 / (warmup_epochs + 1)` of the schedule's, so no epoch runs at
/// rate 0, or 0 for a warmup in batches. `warmup_epochs` needs a schedule that steps per epoch
/// and `warmup_steps` one that steps per batch (one-cycle, or `unit = "batch"`).
/// Unknown keys are named with the closest valid one. The nested form's `schedule` table gets
/// the same key check (serde ignores unknown keys in it).
fn normalize_schedule(training: &mut toml::Table, origin: &str) -> Result<()> {
    let epochs = training.get("epochs").and_then(toml::Value::as_integer);
    let monitor = training.get("monitor").and_then(|m| m.as_str().map(str::to_string));
    let Some(sched) = training.get_mut("schedule").and_then(|s| s.as_table_mut()) else { return Ok(()) };
    let kinds = schedule_kinds();
    let unknown = |path: &str, key: &str, valid: &[&str], what: &str| -> anyhow::Error {
        let hint = suggestion(key, valid).map(|s| format!("; did you mean `{s}`?")).unwrap_or_default();
        anyhow!("unknown key `{path}.{key}` in {origin}{hint} (valid keys {what}: {})", valid.join(", "))
    };
    if !sched.contains_key("type") {
        // The nested form: check the schedule table's keys against its kind.
        if let Some(inner) = sched.get("schedule").and_then(|s| s.as_table())
            && let Some(kind) = inner.get("kind").and_then(|k| k.as_str())
            && let Some((_, fields)) = kinds.iter().find(|(k, _)| k == kind)
        {
            let mut valid: Vec<&str> = fields.iter().map(String::as_str).collect();
            valid.push("kind");
            if let Some(bad) = inner.keys().find(|k| !valid.contains(&k.as_str())) {
                let what = format!("for a `{kind}` schedule");
                return Err(unknown("training.schedule.schedule", bad, &valid, &what));
            }
        }
        return Ok(());
    }
    if sched.contains_key("schedule") {
        bail!(
            "training.schedule in {origin} mixes the flat form (`type = …`) with the nested one (`schedule = {{ … }}`); \
             use one"
        );
    }
    let names: Vec<&str> = kinds.iter().map(|(k, _)| k.as_str()).collect();
    let written = match sched.get("type") {
        Some(toml::Value::String(s)) => s.clone(),
        other => bail!(
            "training.schedule.type in {origin}: expected a schedule name ({}), found {}",
            names.join(", "),
            other.map_or_else(String::new, ToString::to_string)
        ),
    };
    let name = written.to_ascii_lowercase().replace('-', "_");
    let name = match name.as_str() {
        "plateau" => "reduce_on_plateau",
        "onecycle" => "one_cycle",
        "multistep" => "multi_step",
        n => n,
    };
    let Some((kind, fields)) = kinds.iter().find(|(k, _)| k == name) else {
        let hint = suggestion(name, &names).map(|s| format!("; did you mean `{s}`?")).unwrap_or_default();
        bail!(
            "training.schedule.type in {origin}: unknown schedule `{written}`{hint} (known: {}, plateau)",
            names.join(", ")
        );
    };
    let mut valid: Vec<&str> = SCHEDULE_FLAT_KEYS.to_vec();
    valid.extend(fields.iter().map(String::as_str));
    if let Some(bad) = sched.keys().find(|k| !valid.contains(&k.as_str())) {
        return Err(unknown("training.schedule", bad, &valid, &format!("for a `{kind}` schedule")));
    }

    let unit_batch = match sched.get("unit") {
        None => kind == "one_cycle",
        Some(u) => match u.as_str() {
            Some("batch") => true,
            Some("epoch") => false,
            _ => bail!("training.schedule.unit in {origin}: expected \"batch\" or \"epoch\", found {u}"),
        },
    };
    let count = |key: &str| -> Result<Option<i64>> {
        match sched.get(key) {
            None => Ok(None),
            Some(v) => match v.as_integer() {
                Some(n) if n >= 0 => Ok(Some(n)),
                _ => bail!("training.schedule.{key} in {origin}: expected a whole number >= 0, found {v}"),
            },
        }
    };
    let warmup = match (count("warmup_epochs")?, count("warmup_steps")?) {
        (Some(_), Some(_)) => bail!("training.schedule in {origin} sets both warmup_epochs and warmup_steps; keep one"),
        (Some(_), None) if unit_batch => bail!(
            "training.schedule.warmup_epochs in {origin}: a `{kind}` schedule steps per batch here; \
             give its warmup in batches with warmup_steps"
        ),
        (None, Some(_)) if !unit_batch => bail!(
            "training.schedule.warmup_steps in {origin}: a `{kind}` schedule steps per epoch here; \
             give its warmup with warmup_epochs (or set unit = \"batch\")"
        ),
        (e, s) => e.or(s).unwrap_or(0),
    };

    let mut inner = toml::Table::new();
    inner.insert("kind".into(), toml::Value::String(kind.clone()));
    for f in fields {
        if let Some(v) = sched.get(f) {
            inner.insert(f.clone(), v.clone());
        }
    }
    match kind.as_str() {
        "cosine" if !inner.contains_key("t_max") => {
            if unit_batch {
                bail!("training.schedule in {origin}: a cosine schedule stepped per batch needs t_max (in batches)");
            }
            let epochs = epochs.unwrap_or(TrainerConfig::default().epochs as i64);
            inner.insert("t_max".into(), toml::Value::Integer((epochs - warmup).max(1)));
        }
        "step" | "multi_step" if !inner.contains_key("gamma") => {
            inner.insert("gamma".into(), toml::Value::Float(0.1));
        }
        "reduce_on_plateau" if !inner.contains_key("mode") => {
            let monitor = monitor.unwrap_or_else(|| TrainerConfig::default().monitor);
            let mode = match tensile_train::Mode::for_metric(&monitor) {
                tensile_train::Mode::Max => "max",
                tensile_train::Mode::Min => "min",
            };
            inner.insert("mode".into(), toml::Value::String(mode.into()));
        }
        _ => {}
    }
    let mut full = toml::Table::new();
    full.insert("schedule".into(), toml::Value::Table(inner));
    if warmup > 0 {
        let mut w = toml::Table::new();
        w.insert("steps".into(), toml::Value::Integer(warmup));
        // Per epoch, a ramp from 0 would spend the whole first epoch at rate 0: start one step
        // up instead (1/3, 2/3, then the schedule, for two epochs). Per batch, from 0 as usual.
        let start = if unit_batch { 0.0 } else { 1.0 / (warmup + 1) as f64 };
        let start = sched.get("warmup_start_factor").cloned().unwrap_or(toml::Value::Float(start));
        w.insert("start_factor".into(), start);
        full.insert("warmup".into(), toml::Value::Table(w));
    } else if sched.contains_key("warmup_start_factor") {
        bail!("training.schedule.warmup_start_factor in {origin}: there is no warmup (warmup_epochs or warmup_steps)");
    }
    if let Some(u) = sched.get("unit") {
        full.insert("unit".into(), u.clone());
    }
    *sched = full;
    Ok(())
}

fn check_keys(table: &toml::Table, known: &serde_json::Value, path: &str, origin: &str) -> Result<()> {
    let Some(known) = known.as_object() else { return Ok(()) };
    for (key, value) in table {
        let full = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
        // Optional sections are `null` in the defaults; these are checked against their own
        // defaults because serde would ignore unknown keys in them.
        let optional = match full.as_str() {
            // `type` is listed for suggestions only: the flat form is rewritten before this.
            "training.schedule" => {
                let mut keys = serde_json::to_value(tensile_nn::ScheduleConfig::default())?;
                keys["type"] = serde_json::Value::Null;
                Some(keys)
            }
            _ => None,
        };
        match optional.as_ref().or(known.get(key)) {
            None => {
                let candidates: Vec<&str> = known.keys().map(String::as_str).collect();
                let hint = suggestion(key, &candidates).map(|s| format!("; did you mean `{s}`?")).unwrap_or_default();
                let section = if path.is_empty() { String::new() } else { format!(" in [{path}]") };
                bail!("unknown key `{full}`{section} in {origin}{hint} (valid keys here: {})", candidates.join(", "));
            }
            Some(sub) if sub.is_object() && value.is_table() && !OPEN_KEYS.contains(&full.as_str()) => {
                check_keys(value.as_table().expect("internal: checked is_table"), sub, &full, origin)?;
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// The candidate closest to `word`, when it is close enough to be a likely typo.
pub fn suggestion<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (strsim::damerau_levenshtein(word, c), *c))
        .filter(|&(d, c)| d <= 2.max(c.len() / 3))
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

/// Adds "did you mean" to serde's "unknown field `x`, expected one of `a`, `b`" (and to unknown
/// variants).
fn suggest_in_message(msg: &str) -> String {
    let Some(word) = msg.split('`').nth(1) else { return msg.to_string() };
    if !(msg.starts_with("unknown field") || msg.starts_with("unknown variant")) {
        return msg.to_string();
    }
    let rest = msg.split_once("expected").map_or("", |(_, r)| r);
    let candidates: Vec<&str> = rest.split('`').skip(1).step_by(2).collect();
    match suggestion(word, &candidates) {
        Some(s) => format!("{msg}; did you mean `{s}`?"),
        None => msg.to_string(),
    }
}

/// One paragraph: `file, line L, column C: message (at `line text`)`. Without `positions` (the
/// text is a re-serialized table, not the file) the line and column are left out.
fn toml_error(
    message: &str,
    span: Option<std::ops::Range<usize>>,
    text: &str,
    origin: &str,
    positions: bool,
) -> anyhow::Error {
    let message = message.trim().replace('\n', " ");
    match span {
        Some(span) if span.start <= text.len() => {
            let before = &text[..span.start];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            let line_text = text.lines().nth(line - 1).unwrap_or("").trim();
            if positions {
                anyhow!("{origin}, line {line}, column {column}: {message} (at `{line_text}`)")
            } else {
                anyhow!("{origin}: {message} (at `{line_text}`)")
            }
        }
        _ => anyhow!("{origin}: {message}"),
    }
}

/// Resolves a data path written in a config relative to the config's folder.
pub fn resolve(base: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() { path.to_path_buf() } else { base.join(path) }
}

/// A config as a command uses it: the settings and the folder its data paths are relative to.
pub struct Loaded {
    pub config: RunConfig,
    pub base: PathBuf,
}

/// Reads `path` (or starts from an empty config), applies `overrides` (already `KEY=VALUE`), and
/// checks the result.
pub fn load(path: Option<&Path>, overrides: &[String]) -> Result<Loaded> {
    let (text, base, origin) = match path {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("cannot read the config file {}", p.display()))?;
            let base = p.parent().map(Path::to_path_buf).unwrap_or_default();
            (text, base, p.display().to_string())
        }
        None => (String::new(), PathBuf::new(), "the command line".to_string()),
    };
    let mut table = parse_table(&text, &origin)?;
    for o in overrides {
        apply_set(&mut table, o)?;
    }
    let config = from_table(table, &origin, &text)?;
    Ok(Loaded { config, base })
}
