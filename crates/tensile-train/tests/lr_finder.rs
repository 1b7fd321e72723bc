//! The learning-rate finder's promises: a geometric sweep of rates with the loss of every step,
//! a suggestion in a sensible place that early noise cannot move, an early stop when the loss
//! explodes, the same result for the same seed, and the caller's model left exactly as it was.

mod common;

use tensile_core::{DType, Rng, Tensor};
use tensile_nn::{Module, SgdConfig};
use tensile_train::lr_finder::{MIN_POINTS, suggest};
use tensile_train::{Error, LrFinderConfig, LrFinderResult, OptimizerConfig, TrainerConfig, lr_find};

fn run(config: &TrainerConfig, cfg: &LrFinderConfig) -> LrFinderResult {
    let mut model = common::mlp(64, 0.0, &mut config.init_rng());
    lr_find(&mut model, &tensile_data::digits(), config, cfg).unwrap()
}

/// `n` rates from `start` to `end`, geometrically spaced.
fn geometric(start: f64, end: f64, n: usize) -> Vec<f64> {
    (0..n).map(|i| start * (end / start).powf(i as f64 / (n - 1) as f64)).collect()
}

/// A loss that falls fastest at `lr = 1e-3` (a tanh step in `ln(lr)`), bottoms out, then rises
/// steeply past `lr = 0.1`.
fn synthetic_loss(lr: f64) -> f64 {
    2.0 - (lr / 1e-3).ln().tanh() + (lr / 0.1).ln().max(0.0).powi(2)
}

/// Whether `s` is within one grid step (ratio `ratio`) of `target`.
fn near(s: f64, target: f64, ratio: f64) -> bool {
    (s / target).ln().abs() <= ratio.ln() + 1e-12
}

#[test]
fn adam_on_digits_records_a_geometric_sweep_and_suggests_a_rate_inside_it() {
    let config = TrainerConfig::default();
    let cfg = LrFinderConfig::default();
    let r = run(&config, &cfg);

    assert!(r.lrs.len() > 20, "only {} points", r.lrs.len());
    assert_eq!(r.losses.len(), r.lrs.len());
    assert_eq!(r.raw_losses.len(), r.lrs.len());
    assert_eq!(r.lrs[0], cfg.start_lr);
    let ratio = (cfg.end_lr / cfg.start_lr).powf(1.0 / (cfg.num_steps - 1) as f64);
    for w in r.lrs.windows(2) {
        assert!((w[1] / w[0] / ratio - 1.0).abs() < 1e-9, "{} -> {}", w[0], w[1]);
    }
    // Ten classes, freshly initialized: the first loss is near ln(10), and bias correction makes
    // the first smoothed value the first loss itself.
    assert!((r.raw_losses[0] - 10f64.ln()).abs() < 0.5, "first loss {}", r.raw_losses[0]);
    assert!((r.losses[0] - r.raw_losses[0]).abs() < 1e-9);
    let lowest = r.losses.iter().copied().fold(f64::INFINITY, f64::min);
    assert!(lowest < 0.8 * r.losses[0], "the loss never fell: {:?}", r.losses);

    let s = r.suggestion.expect("a suggestion");
    assert!(cfg.start_lr < s && s < cfg.end_lr, "{s}");
    assert!((1e-4..1e-1).contains(&s), "suggested {s:e} for Adam on digits");
    assert!(r.lrs.contains(&s), "the suggestion is one of the rates tried");
    assert_eq!(r.suggestion, suggest(&r.lrs, &r.losses));
}

#[test]
fn the_loss_exploding_stops_the_sweep_early() {
    let config = TrainerConfig {
        optimizer: OptimizerConfig::Sgd(SgdConfig { lr: 0.1, ..Default::default() }),
        ..Default::default()
    };
    let cfg = LrFinderConfig { end_lr: 1e3, ..Default::default() };
    let r = run(&config, &cfg);
    assert!(r.stopped_early);
    assert!(r.lrs.len() < cfg.num_steps, "{} steps", r.lrs.len());
    let (last, before) = r.losses.split_last().unwrap();
    let best = before.iter().copied().fold(f64::INFINITY, f64::min);
    assert!(!last.is_finite() || *last > cfg.diverge_factor * best, "last {last}, best {best}");
    assert!(r.suggestion.is_some_and(|s| s < *r.lrs.last().unwrap()));
}

#[test]
fn a_gentle_sweep_runs_every_step_without_stopping() {
    let cfg = LrFinderConfig { end_lr: 1e-4, num_steps: 30, ..Default::default() };
    let r = run(&TrainerConfig::default(), &cfg);
    assert!(!r.stopped_early);
    assert_eq!(r.lrs.len(), 30);
    assert!((r.lrs[29] / 1e-4 - 1.0).abs() < 1e-12);
}

#[test]
fn the_same_seed_gives_the_same_bits_and_another_seed_does_not() {
    let cfg = LrFinderConfig { num_steps: 40, ..Default::default() };
    let bits = |r: &LrFinderResult| -> Vec<u64> { r.raw_losses.iter().chain(&r.losses).map(|v| v.to_bits()).collect() };
    let a = run(&TrainerConfig::default(), &cfg);
    let b = run(&TrainerConfig::default(), &cfg);
    assert_eq!(bits(&a), bits(&b));
    assert_eq!(a.suggestion.map(f64::to_bits), b.suggestion.map(f64::to_bits));
    let c = run(&TrainerConfig { seed: 7, ..Default::default() }, &cfg);
    assert_ne!(bits(&a), bits(&c));
}

#[test]
fn the_callers_model_weights_and_dropout_stream_are_unchanged() {
    let config = TrainerConfig::default();
    let data = tensile_data::digits();
    let mut model = common::mlp(32, 0.2, &mut config.init_rng());
    let twin = common::mlp(32, 0.2, &mut config.init_rng());
    let before = common::weight_bits(&model);
    let first = lr_find(&mut model, &data, &config, &LrFinderConfig::default()).unwrap();
    assert!(first.lrs.len() > 20);
    assert_eq!(common::weight_bits(&model), before);
    // A second search on the same model sees the same model, random streams included, and
    // finds the same curve.
    let second = lr_find(&mut model, &data, &config, &LrFinderConfig::default()).unwrap();
    assert_eq!(first, second);
    assert_eq!(common::weight_bits(&model), before);
    // The dropout stream was put back: the next training-mode forward drops the same units as
    // an untouched twin's.
    let x = Tensor::randn((8, 64), 0.0, 1.0, DType::F32, &mut Rng::seed(3));
    let bits = |m: &dyn Module| -> Vec<u32> {
        m.forward(&x).unwrap().to_vec::<f32>().unwrap().iter().map(|v| v.to_bits()).collect()
    };
    assert_eq!(bits(&model), bits(&twin));
}

#[test]
fn the_plot_files_are_written() {
    let dir = common::temp_dir("lr-finder-plot");
    let r = run(&TrainerConfig::default(), &LrFinderConfig { num_steps: 30, ..Default::default() });
    r.write_plots(&dir.join("plots")).unwrap();
    for name in ["lr_finder.png", "lr_finder.svg"] {
        let len = std::fs::metadata(dir.join("plots").join(name)).unwrap().len();
        assert!(len > 1000, "{name} has {len} bytes");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_settings_are_refused_by_name() {
    let cases = [
        (LrFinderConfig { start_lr: 0.0, ..Default::default() }, "lr_finder.start_lr"),
        (LrFinderConfig { end_lr: 1e-8, ..Default::default() }, "lr_finder.end_lr"),
        (LrFinderConfig { num_steps: 1, ..Default::default() }, "lr_finder.num_steps"),
        (LrFinderConfig { smoothing: 1.0, ..Default::default() }, "lr_finder.smoothing"),
        (LrFinderConfig { diverge_factor: 1.0, ..Default::default() }, "lr_finder.diverge_factor"),
    ];
    let config = TrainerConfig::default();
    for (cfg, key) in cases {
        let mut model = common::mlp(8, 0.0, &mut config.init_rng());
        match lr_find(&mut model, &tensile_data::digits(), &config, &cfg) {
            Err(Error::Config { key: k, .. }) => assert_eq!(k, key),
            other => panic!("{key}: {other:?}"),
        }
    }
}

#[test]
fn the_config_has_the_documented_defaults_and_round_trips_through_json() {
    let d = LrFinderConfig::default();
    assert_eq!((d.start_lr, d.end_lr, d.num_steps, d.smoothing, d.diverge_factor), (1e-7, 10.0, 100, 0.98, 4.0));
    let partial: LrFinderConfig = serde_json::from_str(r#"{"num_steps": 50}"#).unwrap();
    assert_eq!(partial, LrFinderConfig { num_steps: 50, ..Default::default() });
    let back: LrFinderConfig = serde_json::from_str(&serde_json::to_string(&d).unwrap()).unwrap();
    assert_eq!(back, d);
    assert!(serde_json::from_str::<LrFinderConfig>(r#"{"num_step": 50}"#).is_err(), "typos are refused");
}

// The suggestion rule on curves with a known answer.

#[test]
fn suggest_finds_the_steepest_descent_of_a_clean_curve() {
    let lrs = geometric(1e-6, 10.0, 100);
    let losses: Vec<f64> = lrs.iter().map(|&lr| synthetic_loss(lr)).collect();
    let s = suggest(&lrs, &losses).unwrap();
    assert!(near(s, 1e-3, lrs[1] / lrs[0]), "{s:e}");
}

#[test]
fn suggest_ignores_noise_in_the_first_points() {
    let lrs = geometric(1e-6, 10.0, 100);
    let mut losses: Vec<f64> = lrs.iter().map(|&lr| synthetic_loss(lr)).collect();
    // Wild swings in the first 10%: far steeper drops than anywhere on the real curve.
    for (i, l) in losses.iter_mut().take(10).enumerate() {
        *l = if i % 2 == 0 { 6.0 } else { 3.0 };
    }
    let s = suggest(&lrs, &losses).unwrap();
    assert!(near(s, 1e-3, lrs[1] / lrs[0]), "{s:e}");
}

#[test]
fn suggest_ignores_a_dip_past_the_lowest_loss() {
    let lrs = geometric(1e-6, 10.0, 100);
    let mut losses: Vec<f64> = lrs.iter().map(|&lr| synthetic_loss(lr)).collect();
    let i = lrs.iter().position(|&lr| lr > 1.0).unwrap();
    losses[i] -= 2.0; // still above the minimum, but a steep fall from its neighbour
    let s = suggest(&lrs, &losses).unwrap();
    assert!(near(s, 1e-3, lrs[1] / lrs[0]), "{s:e}");
}

#[test]
fn suggest_stops_reading_at_the_first_non_finite_loss() {
    let lrs = geometric(1e-6, 10.0, 100);
    let mut losses: Vec<f64> = lrs.iter().map(|&lr| synthetic_loss(lr)).collect();
    let i = lrs.iter().position(|&lr| lr > 1e-2).unwrap();
    losses[i] = f64::NAN;
    losses[i + 2] = -100.0; // after the NaN: never read
    let s = suggest(&lrs, &losses).unwrap();
    assert!(near(s, 1e-3, lrs[1] / lrs[0]), "{s:e}");
}

#[test]
fn suggest_gives_none_without_enough_falling_points() {
    assert_eq!(suggest(&[], &[]), None);
    let lrs = geometric(1e-6, 10.0, MIN_POINTS);
    let losses: Vec<f64> = lrs.iter().map(|&lr| synthetic_loss(lr)).collect();
    assert_eq!(suggest(&lrs, &losses), None, "{MIN_POINTS} points, one of them skipped");
    // A loss that only rises has no descent to read.
    let lrs = geometric(1e-6, 10.0, 100);
    let rising: Vec<f64> = (0..100).map(|i| 1.0 + i as f64 * 0.01).collect();
    assert_eq!(suggest(&lrs, &rising), None);
    // Flat: no negative slope.
    assert_eq!(suggest(&lrs, &[1.0; 100]), None);
}
