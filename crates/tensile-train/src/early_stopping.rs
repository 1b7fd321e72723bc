//! Early stopping: watch one or more metrics after every evaluation and stop when they stop
//! improving.
//!
//! Each [`StopCondition`] watches one metric (`val_loss` by default) in a mode (`min`/`max`,
//! inferred from the name when not given), counts evaluations without an improvement of more
//! than `min_delta`, and is met once that count reaches `patience`; evaluations before
//! `start_from_epoch` neither count nor set the best. Several conditions combine with `any` (stop
//! as soon as one is met) or `all`. The state is plain data so a checkpoint can carry it and a
//! resumed run stops exactly where an uninterrupted one would.

use serde::{Deserialize, Serialize};

use crate::history::Mode;

/// One monitored metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StopCondition {
    /// Name of a value in the epoch record, e.g. `val_loss` or `val_accuracy`.
    pub monitor: String,
    /// `None`: inferred from the name (max for accuracy-like metrics, min otherwise).
    pub mode: Option<Mode>,
    /// An improvement must exceed this to count.
    pub min_delta: f64,
    /// Evaluations without improvement before the condition is met.
    pub patience: usize,
    /// Evaluations of earlier epochs are ignored (warm-up).
    pub start_from_epoch: usize,
}

impl Default for StopCondition {
    fn default() -> Self {
        StopCondition { monitor: "val_loss".into(), mode: None, min_delta: 0.0, patience: 5, start_from_epoch: 0 }
    }
}

impl StopCondition {
    pub fn mode(&self) -> Mode {
        self.mode.unwrap_or_else(|| Mode::for_metric(&self.monitor))
    }
}

/// How several conditions combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Combine {
    /// Stop when any condition is met.
    #[default]
    Any,
    /// Stop only when every condition is met.
    All,
}

/// Early-stopping configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EarlyStoppingConfig {
    pub conditions: Vec<StopCondition>,
    pub combine: Combine,
}

impl Default for EarlyStoppingConfig {
    fn default() -> Self {
        EarlyStoppingConfig { conditions: vec![StopCondition::default()], combine: Combine::Any }
    }
}

/// Progress of one condition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ConditionState {
    pub best: Option<f64>,
    pub best_epoch: Option<usize>,
    pub wait: usize,
}

/// The running state of early stopping (serializable for checkpoints).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EarlyStopping {
    pub config: EarlyStoppingConfig,
    pub states: Vec<ConditionState>,
}

/// The verdict after one evaluation.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Continue,
    /// Stop, with a sentence saying why.
    Stop(String),
}

impl EarlyStopping {
    pub fn new(config: EarlyStoppingConfig) -> Self {
        let states = vec![ConditionState::default(); config.conditions.len()];
        EarlyStopping { config, states }
    }

    /// Records the values of one evaluation at `epoch`. A metric missing from `value` (or not
    /// finite) counts as no improvement.
    pub fn update(&mut self, epoch: usize, value: impl Fn(&str) -> Option<f64>) -> Verdict {
        let mut met = Vec::with_capacity(self.states.len());
        for (c, s) in self.config.conditions.iter().zip(&mut self.states) {
            if epoch < c.start_from_epoch {
                met.push(false);
                continue;
            }
            let v = value(&c.monitor).filter(|v| v.is_finite());
            let improved = match (v, s.best) {
                (Some(v), None) => {
                    let _ = v;
                    true
                }
                (Some(v), Some(best)) => match c.mode() {
                    Mode::Min => v < best - c.min_delta,
                    Mode::Max => v > best + c.min_delta,
                },
                (None, _) => false,
            };
            if improved {
                s.best = v;
                s.best_epoch = Some(epoch);
                s.wait = 0;
            } else {
                s.wait += 1;
            }
            met.push(s.wait >= c.patience);
        }
        let stop = match self.config.combine {
            Combine::Any => met.iter().any(|&m| m),
            Combine::All => !met.is_empty() && met.iter().all(|&m| m),
        };
        if !stop {
            return Verdict::Continue;
        }
        let reasons: Vec<String> = self
            .config
            .conditions
            .iter()
            .zip(&self.states)
            .zip(&met)
            .filter(|(_, m)| **m)
            .map(|((c, s), _)| {
                format!(
                    "{} did not improve by more than {} for {} evaluations (best {} at epoch {})",
                    c.monitor,
                    c.min_delta,
                    s.wait,
                    s.best.map(|b| format!("{b:.6}")).unwrap_or_else(|| "none".into()),
                    s.best_epoch.map(|e| e.to_string()).unwrap_or_else(|| "-".into())
                )
            })
            .collect();
        Verdict::Stop(reasons.join("; and "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(es: &mut EarlyStopping, values: &[f64]) -> Option<usize> {
        for (i, &v) in values.iter().enumerate() {
            if let Verdict::Stop(_) = es.update(i + 1, |_| Some(v)) {
                return Some(i + 1);
            }
        }
        None
    }

    #[test]
    fn stops_after_patience_evaluations_without_improvement() {
        let cfg = EarlyStoppingConfig {
            conditions: vec![StopCondition { patience: 2, ..Default::default() }],
            ..Default::default()
        };
        let mut es = EarlyStopping::new(cfg);
        assert_eq!(run(&mut es, &[1.0, 0.8, 0.9, 0.85, 0.7]), Some(4));
        assert_eq!(es.states[0].best_epoch, Some(2));
    }

    #[test]
    fn min_delta_requires_a_real_improvement_and_mode_is_inferred() {
        let cfg = EarlyStoppingConfig {
            conditions: vec![StopCondition {
                monitor: "val_accuracy".into(),
                patience: 2,
                min_delta: 0.01,
                ..Default::default()
            }],
            ..Default::default()
        };
        let mut es = EarlyStopping::new(cfg);
        assert_eq!(run(&mut es, &[0.5, 0.505, 0.509, 0.6]), Some(3));
    }

    #[test]
    fn start_from_epoch_ignores_warm_up_and_all_needs_every_condition() {
        let cfg = EarlyStoppingConfig {
            conditions: vec![
                StopCondition { patience: 1, start_from_epoch: 3, ..Default::default() },
                StopCondition { monitor: "val_accuracy".into(), patience: 3, ..Default::default() },
            ],
            combine: Combine::All,
        };
        let mut es = EarlyStopping::new(cfg);
        let loss = [5.0, 6.0, 1.0, 2.0, 3.0, 4.0];
        let acc = [0.1, 0.2, 0.3, 0.3, 0.3, 0.3];
        let mut stopped = None;
        for e in 1..=6 {
            let v = es.update(e, |m| Some(if m == "val_loss" { loss[e - 1] } else { acc[e - 1] }));
            if let Verdict::Stop(why) = v {
                assert!(why.contains("val_loss") && why.contains("val_accuracy"), "{why}");
                stopped = Some(e);
                break;
            }
        }
        assert_eq!(stopped, Some(6));
    }
}
