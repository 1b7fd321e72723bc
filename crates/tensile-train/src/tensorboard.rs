//! TensorBoard event files: a [`TensorBoardLogger`] callback that writes a run's scalars where
//! `tensorboard --logdir <run dir>` shows them while the run is going, and the [`EventWriter`]
//! underneath it.
//!
//! The trainer adds a `TensorBoardLogger` for the run directory whenever one is set, so every
//! run with a directory can be watched in TensorBoard; it only reads what the loop hands every
//! callback (the [`EpochRecord`] of each evaluation, the loss of each step).
//!
//! # Format
//!
//! A file `events.out.tfevents.<unix seconds>.<hostname>` (TensorBoard reads every file whose
//! name contains `tfevents`) holds records of
//!
//! ```text
//! u64 LE length | masked CRC32C of those 8 bytes | payload (one Event) | masked CRC32C of payload
//! ```
//!
//! with `mask(crc) = crc.rotate_right(15) + 0xa282ead8` (wrapping). The payload is a protobuf
//! `tensorflow.Event`; the first one has `file_version = "brain.Event:2"`, scalars travel in
//! `Summary.Value.simple_value`. The three messages needed are written by hand as prost structs
//! in [`proto`] (field numbers from tensorflow's `event.proto` and `summary.proto`) rather than
//! generated from the `.proto` files: that needs `protoc` at build time for ~40 lines of structs.
//!
//! # Resume
//!
//! Each [`Trainer::fit`](crate::Trainer::fit) opens a new file (never appends to an old one: a
//! run killed mid-write leaves a torn last record, which TensorBoard skips at the end of a file
//! but not in its middle). TensorBoard merges the files of a directory in name order. A resumed
//! run first writes a `SessionLog` `START` event at the step after the checkpoint's, which makes
//! TensorBoard drop what the killed run logged after that checkpoint (it purges every point
//! with a step at or past a `START`), so the curves show one consistent run.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use prost::Message;

use crate::callback::{Callback, Context};
use crate::error::{Error, Result};
use crate::history::EpochRecord;

/// The protobuf messages of an event file, written by hand: only the fields this crate writes.
/// Unknown fields are skipped by any protobuf reader, so these decode TensorFlow's files too.
pub mod proto {
    /// `tensorflow.Event` (`tensorflow/core/util/event.proto`).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Event {
        /// Seconds since the Unix epoch.
        #[prost(double, tag = "1")]
        pub wall_time: f64,
        /// The x axis of the plots.
        #[prost(int64, tag = "2")]
        pub step: i64,
        #[prost(oneof = "event::What", tags = "3, 5, 7")]
        pub what: Option<event::What>,
    }

    pub mod event {
        /// `oneof what` of `tensorflow.Event`.
        #[derive(Clone, PartialEq, prost::Oneof)]
        pub enum What {
            #[prost(string, tag = "3")]
            FileVersion(String),
            #[prost(message, tag = "5")]
            Summary(super::Summary),
            #[prost(message, tag = "7")]
            SessionLog(super::SessionLog),
        }
    }

    /// `tensorflow.Summary` (`tensorflow/core/framework/summary.proto`).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Summary {
        #[prost(message, repeated, tag = "1")]
        pub value: Vec<summary::Value>,
    }

    pub mod summary {
        /// `tensorflow.Summary.Value`.
        #[derive(Clone, PartialEq, prost::Message)]
        pub struct Value {
            #[prost(string, tag = "1")]
            pub tag: String,
            #[prost(oneof = "value::Value", tags = "2")]
            pub value: Option<value::Value>,
        }

        pub mod value {
            /// `oneof value` of `tensorflow.Summary.Value`.
            #[derive(Clone, PartialEq, prost::Oneof)]
            pub enum Value {
                #[prost(float, tag = "2")]
                SimpleValue(f32),
            }
        }
    }

    /// `tensorflow.SessionLog`. `status` is the `SessionStatus` enum, kept as its number
    /// (same wire format) rather than a prost enumeration for one value.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SessionLog {
        #[prost(int32, tag = "1")]
        pub status: i32,
        #[prost(string, tag = "2")]
        pub checkpoint_path: String,
        #[prost(string, tag = "3")]
        pub msg: String,
    }

    /// `SessionLog.SessionStatus.START`: a (re)start; TensorBoard drops points at or after its step.
    pub const SESSION_START: i32 = 1;
}

/// The `file_version` of the first event of every file; TensorBoard's accumulator only honours
/// `SessionLog` restarts from version 2 on.
pub const FILE_VERSION: &str = "brain.Event:2";

/// CRC32C masked as TFRecord files store it: a CRC of data that itself contains CRCs is
/// otherwise easy to get accidentally right.
fn masked_crc32c(bytes: &[u8]) -> u32 {
    crc32c::crc32c(bytes).rotate_right(15).wrapping_add(0xa282_ead8)
}

fn io_error(path: &Path, source: std::io::Error) -> Error {
    Error::Io { path: path.display().to_string(), source }
}

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// The host name for file names, reduced to characters safe in a file name.
fn hostname() -> String {
    let raw = ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok().filter(|s| !s.trim().is_empty()))
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .unwrap_or_default();
    let clean: String =
        raw.trim().chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')).collect();
    if clean.is_empty() { "localhost".into() } else { clean }
}

/// Writes one event file. Records are buffered; [`EventWriter::flush`] makes them visible.
pub struct EventWriter {
    path: PathBuf,
    out: BufWriter<File>,
}

impl EventWriter {
    /// Creates `dir` if needed and a new event file in it, `events.out.tfevents.<unix
    /// seconds>.<hostname>`, and writes the `file_version` event. A file of that name is never
    /// overwritten: a second writer in the same second gets a suffix `.0001`, `.0002`, … (which
    /// sorts after the plain name, so TensorBoard still reads the files in creation order).
    pub fn create(dir: &Path) -> Result<EventWriter> {
        std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
        let seconds = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let base = format!("events.out.tfevents.{seconds}.{}", hostname());
        let mut n = 0u32;
        let (path, file) = loop {
            let name = if n == 0 { base.clone() } else { format!("{base}.{n:04}") };
            let path = dir.join(name);
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(f) => break (path, f),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 9999 => n += 1,
                Err(e) => return Err(io_error(&path, e)),
            }
        };
        let mut w = EventWriter { path, out: BufWriter::new(file) };
        w.write_event(0, proto::event::What::FileVersion(FILE_VERSION.into()))?;
        w.flush()?;
        Ok(w)
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes one event holding the scalars `(tag, value)` at `step`. Values are stored as f32
    /// (`simple_value`); non-finite values are kept (TensorBoard shows them as such).
    pub fn add_scalars<'a>(&mut self, step: i64, scalars: impl IntoIterator<Item = (&'a str, f64)>) -> Result<()> {
        let value = scalars
            .into_iter()
            .map(|(tag, v)| proto::summary::Value {
                tag: tag.to_string(),
                value: Some(proto::summary::value::Value::SimpleValue(v as f32)),
            })
            .collect();
        self.write_event(step, proto::event::What::Summary(proto::Summary { value }))
    }

    /// Writes a `SessionLog` `START` at `step`: TensorBoard then drops every point with a step
    /// at or past `step` read before it (from this file or earlier ones).
    pub fn restart(&mut self, step: i64) -> Result<()> {
        let log = proto::SessionLog { status: proto::SESSION_START, ..Default::default() };
        self.write_event(step, proto::event::What::SessionLog(log))
    }

    /// Pushes buffered records to the file.
    pub fn flush(&mut self) -> Result<()> {
        self.out.flush().map_err(|e| io_error(&self.path, e))
    }

    fn write_event(&mut self, step: i64, what: proto::event::What) -> Result<()> {
        let payload = proto::Event { wall_time: now(), step, what: Some(what) }.encode_to_vec();
        let len = (payload.len() as u64).to_le_bytes();
        let mut record = Vec::with_capacity(payload.len() + 16);
        record.extend_from_slice(&len);
        record.extend_from_slice(&masked_crc32c(&len).to_le_bytes());
        record.extend_from_slice(&payload);
        record.extend_from_slice(&masked_crc32c(&payload).to_le_bytes());
        self.out.write_all(&record).map_err(|e| io_error(&self.path, e))
    }
}

/// The TensorBoard tag of a value of an [`EpochRecord`]:
///
/// | record value | tag |
/// | --- | --- |
/// | `train_loss` | `loss/train` |
/// | `val_loss` | `loss/val` |
/// | `val_<m>` (`val_accuracy`, `val_f1`, …) | `val/<m>` (`val/accuracy`, …) |
/// | `train_<m>`, `test_<m>` | `train/<m>`, `test/<m>` |
/// | anything else | unchanged |
///
/// The fields [`EpochRecord::lr`] and [`EpochRecord::seconds`] become `lr` and `time/epoch_seconds`,
/// and each step's loss `loss/step`. Both losses share the `loss/` group so TensorBoard shows
/// them side by side.
pub fn tag_for(name: &str) -> String {
    match name {
        "train_loss" => "loss/train".into(),
        "val_loss" => "loss/val".into(),
        _ => ["train_", "val_", "test_"]
            .iter()
            .find_map(|p| {
                name.strip_prefix(p).filter(|rest| !rest.is_empty()).map(|rest| format!("{}/{rest}", &p[..p.len() - 1]))
            })
            .unwrap_or_else(|| name.to_string()),
    }
}

fn step_i64(step: u64) -> i64 {
    i64::try_from(step).unwrap_or(i64::MAX)
}

/// A callback (name `"tensorboard"`) writing a run's scalars to a new event file in a directory:
/// per optimizer step `loss/step` at the global step; per evaluation every value of the
/// [`EpochRecord`] (tags in [`tag_for`]) at step = `record.epoch`, then a flush so TensorBoard
/// sees a live run. The two kinds use different x axes (steps and epochs) on purpose: epoch
/// curves compare across runs with different batch sizes.
///
/// The file is opened when training starts, so a finished run that is only reported again
/// writes nothing. It keeps no state in checkpoints: a resumed run opens a new file and marks
/// the restart (see the module doc).
pub struct TensorBoardLogger {
    dir: PathBuf,
    writer: Option<EventWriter>,
}

impl TensorBoardLogger {
    /// Logs into `dir` (created when training starts).
    pub fn new(dir: impl Into<PathBuf>) -> TensorBoardLogger {
        TensorBoardLogger { dir: dir.into(), writer: None }
    }

    /// The event file being written, once training has started.
    pub fn path(&self) -> Option<&Path> {
        self.writer.as_ref().map(EventWriter::path)
    }

    fn writer(&mut self) -> Result<&mut EventWriter> {
        if self.writer.is_none() {
            self.writer = Some(EventWriter::create(&self.dir)?);
        }
        Ok(self.writer.as_mut().expect("internal: writer just created"))
    }
}

impl Callback for TensorBoardLogger {
    fn name(&self) -> &str {
        "tensorboard"
    }

    fn on_train_start(&mut self, ctx: &mut Context) -> Result<()> {
        let w = self.writer()?;
        if ctx.step > 0 {
            // Resumed: what an earlier process logged past the checkpoint is stale. One START
            // at the next step covers both x axes: an epoch number past the step count is
            // stale too, and a stale epoch at or below it is written again, with the same
            // values (resume is exact), by this run.
            w.restart(step_i64(ctx.step + 1))?;
        }
        w.flush()
    }

    fn on_step_end(&mut self, ctx: &mut Context, loss: f64) -> Result<()> {
        self.writer()?.add_scalars(step_i64(ctx.step), [("loss/step", loss)])
    }

    fn on_evaluation(&mut self, _ctx: &mut Context, record: &mut EpochRecord) -> Result<()> {
        let tags: Vec<(String, f64)> = record
            .values
            .iter()
            .map(|(k, &v)| (tag_for(k), v))
            .chain([("lr".to_string(), record.lr), ("time/epoch_seconds".to_string(), record.seconds)])
            .collect();
        let step = i64::try_from(record.epoch).unwrap_or(i64::MAX);
        let w = self.writer()?;
        w.add_scalars(step, tags.iter().map(|(t, v)| (t.as_str(), *v)))?;
        w.flush()
    }

    fn on_train_end(&mut self, _ctx: &mut Context) -> Result<()> {
        match &mut self.writer {
            Some(w) => w.flush(),
            None => Ok(()),
        }
    }
}
