//! Progress output while training: what a person watching (or a log file) sees.
//!
//! - On a terminal (standard error is one): an `indicatif` bar per epoch with steps done,
//!   steps per second, the epoch's ETA, the latest loss and an estimate of the whole run's
//!   remaining time (from the mean epoch time so far), then one summary line per epoch.
//! - Otherwise (a pipe, a log file, CI): nothing per step, and one plain line per epoch on
//!   standard output, e.g.
//!   `epoch 3/20  train_loss 0.4123  val_loss 0.3812  val_accuracy 0.9120  lr 1.00e-3  2.31s  eta 39s`,
//!   followed by one indented line per notable event (a rollback, early stop, …). Redrawn bars
//!   in a log file are unreadable, which is why the two differ.
//! - Quiet: nothing at all.
//!
//! [`Progress`] is driven by the trainer through its [`Callback`] hooks, or by hand with
//! [`Progress::start_epoch`], [`Progress::step`], [`Progress::end_epoch`] and
//! [`Progress::finish`].

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::callback::{Callback, Context};
use crate::error::Result;
use crate::history::{EpochRecord, EventKind};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProgressMode {
    /// A bar when standard error is a terminal, plain lines otherwise.
    #[default]
    Auto,
    /// Always a bar (on standard error), plus a line per epoch.
    Bar,
    /// One plain line per epoch on standard output, nothing per step.
    Lines,
    /// Nothing.
    Quiet,
}

/// Reports training progress; see the module doc.
pub struct Progress {
    mode: ProgressMode,
    total_epochs: usize,
    steps_per_epoch: u64,
    monitor: String,
    out: Box<dyn Write + Send>,
    bar: Option<ProgressBar>,
    epoch: usize,
    epoch_started: Instant,
    last_message: Option<Instant>,
    /// Seconds of the epochs reported so far, for the run's ETA.
    epoch_seconds: Vec<f64>,
    last_reported: Option<usize>,
}

impl Progress {
    /// A reporter for a run of `total_epochs` epochs of `steps_per_epoch` optimizer steps each
    /// (0 when unknown). [`ProgressMode::Auto`] is resolved here.
    pub fn new(mode: ProgressMode, total_epochs: usize, steps_per_epoch: u64) -> Progress {
        let mode = match mode {
            ProgressMode::Auto if std::io::stderr().is_terminal() => ProgressMode::Bar,
            ProgressMode::Auto => ProgressMode::Lines,
            m => m,
        };
        Progress {
            mode,
            total_epochs,
            steps_per_epoch,
            monitor: "val_loss".into(),
            out: Box::new(std::io::stdout()),
            bar: None,
            epoch: 0,
            epoch_started: Instant::now(),
            last_message: None,
            epoch_seconds: Vec::new(),
            last_reported: None,
        }
    }

    /// Also print `monitor` in each epoch line (when it is not `train_loss` or `val_loss`,
    /// which are always printed).
    pub fn with_monitor(mut self, monitor: &str) -> Progress {
        self.monitor = monitor.to_string();
        self
    }

    /// Send the epoch lines to `out` instead of standard output.
    pub fn with_writer(mut self, out: impl Write + Send + 'static) -> Progress {
        self.out = Box::new(out);
        self
    }

    /// The mode in effect (never `Auto`).
    pub fn mode(&self) -> ProgressMode {
        self.mode
    }

    /// An epoch (1-based) begins.
    pub fn start_epoch(&mut self, epoch: usize) {
        self.epoch = epoch;
        self.epoch_started = Instant::now();
        self.last_message = None;
        if self.mode != ProgressMode::Bar {
            return;
        }
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        let (bar, template) = if self.steps_per_epoch > 0 {
            (
                ProgressBar::new(self.steps_per_epoch),
                "{prefix} [{bar:30.cyan/blue}] {pos}/{len} steps  {per_sec}  epoch eta {eta}  {msg}",
            )
        } else {
            (ProgressBar::no_length(), "{prefix} {spinner} {pos} steps  {per_sec}  {msg}")
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(format!("epoch {epoch}/{}", self.total_epochs));
        self.bar = Some(bar);
    }

    /// One optimizer step finished with training loss `loss`.
    pub fn step(&mut self, loss: f64) {
        let Some(bar) = &self.bar else { return };
        bar.inc(1);
        // Formatting the message costs an allocation; a few updates a second are plenty.
        let now = Instant::now();
        if self.last_message.is_some_and(|t| now.duration_since(t) < Duration::from_millis(200)) {
            return;
        }
        self.last_message = Some(now);
        let mut msg = format!("loss {}", value(loss));
        if let Some(eta) = self.run_eta(bar) {
            msg.push_str(&format!("  run eta {}", duration(eta)));
        }
        bar.set_message(msg);
    }

    /// The run's remaining time: the rest of this epoch plus the remaining epochs at the mean
    /// epoch time so far (or this epoch's projected time during the first epoch).
    fn run_eta(&self, bar: &ProgressBar) -> Option<f64> {
        let remaining_epochs = self.total_epochs.saturating_sub(self.epoch) as f64;
        let elapsed = self.epoch_started.elapsed().as_secs_f64();
        let done = bar.position();
        let this_epoch_left = if self.steps_per_epoch > 0 && done > 0 {
            elapsed / done as f64 * self.steps_per_epoch.saturating_sub(done) as f64
        } else {
            0.0
        };
        let per_epoch = if self.epoch_seconds.is_empty() {
            (self.steps_per_epoch > 0 && done > 0).then(|| elapsed / done as f64 * self.steps_per_epoch as f64)?
        } else {
            self.epoch_seconds.iter().sum::<f64>() / self.epoch_seconds.len() as f64
        };
        Some(this_epoch_left + remaining_epochs * per_epoch)
    }

    /// An epoch (or an evaluation) finished with `record`: prints its line.
    pub fn end_epoch(&mut self, record: &EpochRecord) {
        if self.last_reported == Some(record.epoch) {
            return;
        }
        self.last_reported = Some(record.epoch);
        self.epoch_seconds.push(record.seconds);
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        if self.mode == ProgressMode::Quiet {
            return;
        }
        let remaining = self.total_epochs.saturating_sub(record.epoch) as f64;
        let mean = self.epoch_seconds.iter().sum::<f64>() / self.epoch_seconds.len() as f64;
        let mut text = epoch_line(record, self.total_epochs, &self.monitor);
        if remaining > 0.0 {
            text.push_str(&format!("  eta {}", duration(remaining * mean)));
        }
        for e in &record.events {
            if e.kind != EventKind::CheckpointSaved {
                text.push_str(&format!("\n  {}", e.message));
            }
        }
        // A closed pipe must not stop training: printing is best effort.
        let _ = writeln!(self.out, "{text}");
        let _ = self.out.flush();
    }

    /// Training ended: clears any bar left.
    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        let _ = self.out.flush();
    }
}

impl Callback for Progress {
    fn name(&self) -> &str {
        "progress"
    }
    fn on_epoch_start(&mut self, ctx: &mut Context) -> Result<()> {
        self.start_epoch(ctx.epoch);
        Ok(())
    }
    fn on_step_end(&mut self, _ctx: &mut Context, loss: f64) -> Result<()> {
        self.step(loss);
        Ok(())
    }
    fn on_epoch_end(&mut self, ctx: &mut Context) -> Result<()> {
        if let Some(record) = ctx.history.epochs.last().filter(|r| r.epoch == ctx.epoch) {
            self.end_epoch(record);
        }
        Ok(())
    }
    fn on_train_end(&mut self, _ctx: &mut Context) -> Result<()> {
        self.finish();
        Ok(())
    }
}

/// The plain line for one epoch: epoch, `train_loss`, `val_loss`, the monitored value (when
/// it is neither of those), `val_accuracy` for classifiers, the learning rate and the epoch's
/// seconds. Values the record lacks
/// are left out.
pub fn epoch_line(record: &EpochRecord, total_epochs: usize, monitor: &str) -> String {
    let width = total_epochs.to_string().len();
    let mut line = format!("epoch {:>width$}/{total_epochs}", record.epoch);
    let mut keys = vec!["train_loss", "val_loss"];
    if !keys.contains(&monitor) {
        keys.push(monitor);
    }
    // Accuracy is what most people read first on a classifier, monitored or not.
    if !keys.contains(&"val_accuracy") {
        keys.push("val_accuracy");
    }
    for k in keys {
        if let Some(v) = record.get(k) {
            line.push_str(&format!("  {k} {}", value(v)));
        }
    }
    line.push_str(&format!("  lr {:.2e}  {:.2}s", record.lr, record.seconds));
    line
}

/// A loss or metric: four decimals for ordinary magnitudes, exponent form otherwise.
fn value(v: f64) -> String {
    let a = v.abs();
    if v == 0.0 || !v.is_finite() || (1e-3..1e5).contains(&a) { format!("{v:.4}") } else { format!("{v:.3e}") }
}

/// `45s`, `3m12s`, `1h02m`.
fn duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::history::Event;

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("test lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn record(epoch: usize, values: &[(&str, f64)], events: Vec<Event>) -> EpochRecord {
        EpochRecord {
            epoch,
            step: epoch as u64 * 10,
            lr: 1e-3,
            seconds: 2.5,
            values: values.iter().map(|&(k, v)| (k.to_string(), v)).collect::<BTreeMap<_, _>>(),
            events,
        }
    }

    #[test]
    fn lines_mode_prints_one_line_per_epoch_with_monitor_lr_seconds_and_eta() {
        let sink = Shared::default();
        let mut p = Progress::new(ProgressMode::Lines, 20, 10).with_monitor("val_accuracy").with_writer(sink.clone());
        p.start_epoch(3);
        for _ in 0..10 {
            p.step(0.5);
        }
        let rollback =
            Event { step: 25, epoch: 3, kind: EventKind::Rollback, message: "rolled back to step 20".into() };
        let saved = Event { step: 30, epoch: 3, kind: EventKind::CheckpointSaved, message: "saved".into() };
        p.end_epoch(&record(
            3,
            &[("train_loss", 0.41234), ("val_loss", 0.38123), ("val_accuracy", 0.912), ("val_f1", 0.9)],
            vec![rollback, saved],
        ));
        p.end_epoch(&record(3, &[], vec![])); // reported once only
        p.finish();
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        assert_eq!(
            text,
            "epoch  3/20  train_loss 0.4123  val_loss 0.3812  val_accuracy 0.9120  lr 1.00e-3  2.50s  eta 43s\n  rolled back to step 20\n"
        );
    }

    #[test]
    fn quiet_mode_prints_nothing_and_missing_values_are_left_out() {
        let sink = Shared::default();
        let mut p = Progress::new(ProgressMode::Quiet, 2, 5).with_writer(sink.clone());
        p.start_epoch(1);
        p.step(1.0);
        p.end_epoch(&record(1, &[("train_loss", 1.0)], vec![]));
        p.finish();
        assert!(sink.0.lock().unwrap().is_empty());
        assert_eq!(
            epoch_line(&record(2, &[("train_loss", f64::NAN)], vec![]), 2, "val_loss"),
            "epoch 2/2  train_loss NaN  lr 1.00e-3  2.50s"
        );
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!((duration(44.6), duration(192.0), duration(3725.0)), ("45s".into(), "3m12s".into(), "1h02m".into()));
    }
}
