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
//! `early_stopping = { monitor, patience, min_delta }` becomes `{ conditions = [ … ] }`, and an
//! `optimizer` table without a `type` is Adam.
//! The resolved config written to a run directory uses the canonical forms only.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use serde::{Deserialize, Serialize};
use tensile_nn::LayerSpec;
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
    pub train: Option<PathBuf>,
    pub validation: Option<PathBuf>,
    pub test: Option<PathBuf>,
    /// The target column of a table.
    pub target: String,
    /// `None`: inferred from the target column.
    pub task: Option<TaskName>,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig { train: None, validation: None, test: None, target: "target".into(), task: None }
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
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig { layers: None, hidden: vec![128] }
    }
}

impl ModelConfig {
    /// The layer list for `outputs` output units (classes, or 1 for regression).
    pub fn layers_for(&self, outputs: usize) -> Result<Vec<LayerSpec>> {
        if let Some(layers) = &self.layers {
            return Ok(layers.clone());
        }
        if self.hidden.contains(&0) {
            bail!("model.hidden: every layer needs at least one unit, found {:?}", self.hidden);
        }
        let mut layers = Vec::new();
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
    normalize(&mut table)?;
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
fn normalize(table: &mut toml::Table) -> Result<()> {
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
    Ok(())
}

fn check_keys(table: &toml::Table, known: &serde_json::Value, path: &str, origin: &str) -> Result<()> {
    let Some(known) = known.as_object() else { return Ok(()) };
    for (key, value) in table {
        let full = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
        // Optional sections are `null` in the defaults; these are checked against their own
        // defaults because serde would ignore unknown keys in them.
        let optional = match full.as_str() {
            "training.schedule" => Some(serde_json::to_value(tensile_nn::ScheduleConfig::default())?),
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
