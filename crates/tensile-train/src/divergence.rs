//! Recovery from divergence: what to do when a step's loss or gradient is NaN or infinite.
//!
//! The default policy never lets a bad step touch the weights: the step is skipped; if
//! `max_bad_steps` bad steps happen within `window` attempted steps, the trainer rolls back to
//! the last good state (the weights and optimizer state of the last finite evaluation), lowers
//! the learning rate by `lr_factor`, and continues; after `max_rollbacks` rollbacks it stops with
//! a clear message. The state is plain data, saved in checkpoints.

use serde::{Deserialize, Serialize};

use crate::config::{DivergenceConfig, DivergencePolicy};

/// Divergence bookkeeping for one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Divergence {
    /// Attempted-step numbers of recent bad steps.
    pub bad_steps: Vec<u64>,
    /// Steps attempted so far (bad ones included).
    pub attempts: u64,
    pub rollbacks: usize,
    /// Product of every rollback's learning-rate factor.
    pub lr_scale: f64,
}

impl Default for Divergence {
    fn default() -> Self {
        Divergence { bad_steps: Vec::new(), attempts: 0, rollbacks: 0, lr_scale: 1.0 }
    }
}

/// What the trainer should do with the current step.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Apply,
    Skip,
    Rollback,
    Stop(String),
}

impl Divergence {
    /// Records one attempted step (`bad` when its loss or gradient norm was not finite).
    pub fn observe(&mut self, cfg: &DivergenceConfig, _step: u64, bad: bool) -> Outcome {
        self.attempts += 1;
        if !bad {
            return Outcome::Apply;
        }
        match cfg.policy {
            DivergencePolicy::Ignore => Outcome::Apply,
            DivergencePolicy::Stop => Outcome::Stop(
                "the loss or a gradient became NaN or infinite (policy: stop); try a lower learning rate or gradient clipping".into(),
            ),
            DivergencePolicy::Rollback => {
                let now = self.attempts;
                self.bad_steps.push(now);
                self.bad_steps.retain(|&s| now - s < cfg.window);
                if self.bad_steps.len() < cfg.max_bad_steps {
                    return Outcome::Skip;
                }
                self.bad_steps.clear();
                if self.rollbacks >= cfg.max_rollbacks {
                    return Outcome::Stop(format!(
                        "training diverged: {} bad steps within {} steps after {} rollbacks, each lowering the learning rate by {}; try a lower learning rate, gradient clipping or normalized inputs",
                        cfg.max_bad_steps, cfg.window, self.rollbacks, cfg.lr_factor
                    ));
                }
                self.rollbacks += 1;
                Outcome::Rollback
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_then_rolls_back_then_stops() {
        let cfg = DivergenceConfig { max_bad_steps: 2, window: 10, max_rollbacks: 1, ..Default::default() };
        let mut d = Divergence::default();
        assert_eq!(d.observe(&cfg, 0, false), Outcome::Apply);
        assert_eq!(d.observe(&cfg, 1, true), Outcome::Skip);
        assert_eq!(d.observe(&cfg, 1, true), Outcome::Rollback);
        assert_eq!(d.observe(&cfg, 1, true), Outcome::Skip);
        assert!(matches!(d.observe(&cfg, 1, true), Outcome::Stop(m) if m.contains("diverged")));
    }

    #[test]
    fn bad_steps_outside_the_window_are_forgotten() {
        let cfg = DivergenceConfig { max_bad_steps: 2, window: 3, ..Default::default() };
        let mut d = Divergence::default();
        assert_eq!(d.observe(&cfg, 0, true), Outcome::Skip);
        for _ in 0..3 {
            assert_eq!(d.observe(&cfg, 0, false), Outcome::Apply);
        }
        assert_eq!(d.observe(&cfg, 0, true), Outcome::Skip);
    }
}
