//! Learning-rate schedules: every schedule's rate over 100 steps against its formula (written out
//! here) and against torch.optim.lr_scheduler, warmup composition, reduce-on-plateau's patience
//! and cooldown, and exact resume from a saved state.

mod common;

use std::f64::consts::PI;

use tensile_core::Tensor;
use tensile_nn::schedule::{Anneal, OneCycleConfig, PlateauConfig, PlateauMode, ThresholdMode};
use tensile_nn::{Optimizer, Schedule, ScheduleConfig, Scheduler, SchedulerState, Sgd, SgdConfig, StepUnit, Warmup};

const BASE: f64 = 0.1;

fn config(schedule: Schedule) -> ScheduleConfig {
    ScheduleConfig { schedule, ..Default::default() }
}

/// The rate of each of the first `n` steps, stepping the scheduler as a trainer would.
fn rates(config: &ScheduleConfig, n: usize) -> Vec<f64> {
    let mut s = Scheduler::new(config.clone(), BASE).unwrap();
    let mut out = vec![s.lr()];
    for _ in 1..n {
        out.push(s.step());
    }
    for (t, lr) in out.iter().enumerate() {
        assert_eq!(*lr, s.lr_at(t as u64), "lr_at agrees with stepping at {t}");
    }
    out
}

fn assert_formula(label: &str, config: &ScheduleConfig, formula: impl Fn(u64) -> f64) {
    for (t, lr) in rates(config, 100).into_iter().enumerate() {
        let want = formula(t as u64);
        assert!((lr - want).abs() <= 1e-12 * want.abs().max(1e-3), "{label} step {t}: {lr} vs {want}");
    }
}

/// Printed by tests/reference/schedule.py (torch.optim.lr_scheduler, base rate 0.1): the rate of
/// step t, after t calls to `scheduler.step()`.
fn torch(case: &str) -> Vec<(u64, f64)> {
    match case {
        "step" => vec![
            (0, 0.1),
            (1, 0.1),
            (2, 0.1),
            (3, 0.1),
            (5, 0.1),
            (8, 0.05),
            (13, 0.05),
            (21, 0.0125),
            (34, 0.00625),
            (55, 0.00078125),
            (89, 2.44140625e-05),
            (99, 6.103515625e-06),
        ],
        "multi_step" => vec![
            (0, 0.1),
            (1, 0.1),
            (2, 0.1),
            (3, 0.1),
            (5, 0.1),
            (8, 0.1),
            (13, 0.03),
            (21, 0.03),
            (34, 0.0026999999999999997),
            (55, 0.0026999999999999997),
            (89, 0.0008099999999999998),
            (99, 0.0008099999999999998),
        ],
        "exponential" => vec![
            (0, 0.1),
            (1, 0.097),
            (2, 0.09409000000000001),
            (3, 0.09126730000000001),
            (5, 0.08587340257),
            (8, 0.0783743359437696),
            (13, 0.06730270901655745),
            (21, 0.05274805126389444),
            (34, 0.03550086745404345),
            (55, 0.018726015763786068),
            (89, 0.006647898035724973),
            (99, 0.004902320404680996),
        ],
        "cosine" => vec![
            (0, 0.1),
            (1, 0.09984740801978985),
            (2, 0.09939057285945933),
            (3, 0.09863231105968501),
            (5, 0.0962320368593087),
            (8, 0.09054634122155991),
            (13, 0.07636367895343947),
            (21, 0.046616274761471684),
            (34, 0.006395177052675793),
            (55, 0.03155717009792915),
            (89, 0.08814009529720458),
            (99, 0.05438372523853019),
        ],
        "warm_restarts_mult2" => vec![
            (0, 0.1),
            (1, 0.0975650616856839),
            (2, 0.09049859547015364),
            (3, 0.07949231630155054),
            (5, 0.05025),
            (8, 0.01000140452984637),
            (13, 0.0945775745783713),
            (21, 0.04246738536424853),
            (34, 0.0975650616856839),
            (55, 0.03121149923983679),
            (89, 0.08678254484442537),
            (99, 0.07107832194248706),
        ],
        "warm_restarts_mult1" => vec![
            (0, 0.1),
            (1, 0.09890738003669029),
            (2, 0.09567727288213004),
            (3, 0.09045084971874738),
            (5, 0.07500000000000001),
            (8, 0.04477357683661734),
            (13, 0.004322727117869951),
            (21, 0.06545084971874737),
            (34, 0.08345653031794292),
            (55, 0.025000000000000012),
            (89, 0.0010926199633097156),
            (99, 0.03454915028125263),
        ],
        "one_cycle" => vec![
            (0, 0.020000000000000018),
            (1, 0.021406890282953728),
            (2, 0.025611066629579238),
            (3, 0.032563238916127446),
            (5, 0.05435427771977863),
            (8, 0.10462729165236134),
            (13, 0.22117232082733645),
            (21, 0.4153727083476386),
            (34, 0.49373200311754367),
            (55, 0.34825686488844926),
            (89, 0.024759683993263143),
            (99, 2e-06),
        ],
        "one_cycle_three_phase_linear" => vec![
            (0, 0.05),
            (1, 0.06875),
            (2, 0.0875),
            (3, 0.10625000000000001),
            (5, 0.14375),
            (8, 0.2),
            (13, 0.29375),
            (21, 0.44375),
            (34, 0.3125),
            (55, 0.04320588235294118),
            (89, 0.010205882352941176),
            (99, 0.0005000000000000004),
        ],
        "warmup_cosine" => vec![
            (0, 0.010000000000000002),
            (1, 0.028000000000000004),
            (2, 0.046000000000000006),
            (3, 0.064),
            (5, 0.1),
            (8, 0.0945503262094184),
            (13, 0.06545084971874739),
            (21, 0.009549150281252633),
            (34, 0.042178276747988436),
            (55, 0.04999999999999998),
            (89, 0.09045084971874659),
            (99, 0.020610737385376117),
        ],
        other => panic!("no torch reference for {other}"),
    }
}

fn assert_torch(case: &str, config: &ScheduleConfig) {
    let ours = rates(config, 100);
    for (t, want) in torch(case) {
        let got = ours[t as usize];
        // PyTorch steps most schedules recursively, so it drifts from the closed form by rounding.
        assert!((got - want).abs() <= 1e-12 + 1e-9 * want.abs(), "{case} step {t}: {got} vs torch {want}");
    }
}

#[test]
fn constant_step_multistep_and_exponential_follow_their_formulas_and_torch() {
    assert_formula("constant", &config(Schedule::Constant), |_| BASE);
    let step = config(Schedule::Step { step_size: 7, gamma: 0.5 });
    assert_formula("step", &step, |t| (0..t / 7).fold(BASE, |lr, _| lr * 0.5));
    assert_torch("step", &step);
    // 25 twice: two reductions there, as PyTorch counts repeated milestones.
    let multi = config(Schedule::MultiStep { milestones: vec![60, 10, 25, 25], gamma: 0.3 });
    assert_formula("multi_step", &multi, |t| {
        let n = if t >= 60 {
            4
        } else if t >= 25 {
            3
        } else if t >= 10 {
            1
        } else {
            0
        };
        BASE * 0.3f64.powi(n)
    });
    assert_torch("multi_step", &config(Schedule::MultiStep { milestones: vec![10, 25, 25, 60], gamma: 0.3 }));
    let exp = config(Schedule::Exponential { gamma: 0.97 });
    assert_formula("exponential", &exp, |t| BASE * 0.97f64.powi(t as i32));
    assert_torch("exponential", &exp);
}

#[test]
fn cosine_annealing_follows_its_formula_and_torch_beyond_t_max() {
    let cos = config(Schedule::Cosine { t_max: 40, eta_min: 0.001 });
    assert_formula("cosine", &cos, |t| 0.001 + (BASE - 0.001) * (1.0 + (PI * t as f64 / 40.0).cos()) / 2.0);
    assert_torch("cosine", &cos);
    let lrs = rates(&cos, 81);
    assert!((lrs[40] - 0.001).abs() < 1e-15 && (lrs[80] - BASE).abs() < 1e-15, "period 2 * t_max, as in PyTorch");
}

#[test]
fn cosine_warm_restarts_restart_at_t0_then_t0_times_t_mult() {
    let mult2 = config(Schedule::CosineWarmRestarts { t_0: 10, t_mult: 2, eta_min: 0.0005 });
    // Cycles [0, 10), [10, 30), [30, 70), [70, 150).
    assert_formula("warm_restarts_mult2", &mult2, |t| {
        let (start, len) = [(0, 10), (10, 20), (30, 40), (70, 80)].into_iter().rfind(|&(s, _)| t >= s).unwrap();
        0.0005 + (BASE - 0.0005) * (1.0 + (PI * (t - start) as f64 / len as f64).cos()) / 2.0
    });
    assert_torch("warm_restarts_mult2", &mult2);
    let mult1 = config(Schedule::CosineWarmRestarts { t_0: 15, t_mult: 1, eta_min: 0.0 });
    assert_formula("warm_restarts_mult1", &mult1, |t| BASE * (1.0 + (PI * (t % 15) as f64 / 15.0).cos()) / 2.0);
    assert_torch("warm_restarts_mult1", &mult1);
}

#[test]
fn one_cycle_two_phase_cos_and_three_phase_linear_follow_their_formulas_and_torch() {
    let oc = config(Schedule::OneCycle(OneCycleConfig::new(0.5, 100)));
    assert_eq!(oc.unit(), StepUnit::Batch, "one-cycle steps per batch");
    let (initial, min) = (0.5 / 25.0, 0.5 / 25.0 / 1e4);
    let cos = |from: f64, to: f64, pct: f64| to + (from - to) / 2.0 * ((PI * pct).cos() + 1.0);
    assert_formula("one_cycle", &oc, |t| {
        // Up over steps 0..=29 (pct_start * total - 1 = 29), down over 29..=99.
        if t <= 29 { cos(initial, 0.5, t as f64 / 29.0) } else { cos(0.5, min, (t - 29) as f64 / 70.0) }
    });
    assert_torch("one_cycle", &oc);

    let three = config(Schedule::OneCycle(OneCycleConfig {
        pct_start: 0.25,
        anneal: Anneal::Linear,
        div_factor: 10.0,
        final_div_factor: 100.0,
        three_phase: true,
        ..OneCycleConfig::new(0.5, 100)
    }));
    let lin = |from: f64, to: f64, pct: f64| from + (to - from) * pct;
    assert_formula("one_cycle_three_phase_linear", &three, |t| {
        let t = t as f64;
        if t <= 24.0 {
            lin(0.05, 0.5, t / 24.0)
        } else if t <= 48.0 {
            lin(0.5, 0.05, (t - 24.0) / 24.0)
        } else {
            lin(0.05, 0.0005, (t - 48.0) / 51.0)
        }
    });
    assert_torch("one_cycle_three_phase_linear", &three);
    let s = Scheduler::new(oc, BASE).unwrap();
    assert_eq!(s.lr_at(150), s.lr_at(99), "holds the last rate past total_steps");
}

#[test]
fn warmup_ramps_to_the_main_schedule_which_then_starts_from_its_step_zero() {
    let warm_cos = ScheduleConfig {
        schedule: Schedule::Cosine { t_max: 20, eta_min: 0.0 },
        warmup: Some(Warmup { steps: 5, start_factor: 0.1 }),
        unit: None,
    };
    assert_formula("warmup_cosine", &warm_cos, |t| {
        if t < 5 {
            BASE * (0.1 + 0.9 * t as f64 / 5.0)
        } else {
            BASE * (1.0 + (PI * (t - 5) as f64 / 20.0).cos()) / 2.0
        }
    });
    assert_torch("warmup_cosine", &warm_cos);

    let warm_step = ScheduleConfig {
        schedule: Schedule::Step { step_size: 10, gamma: 0.5 },
        warmup: Some(Warmup { steps: 4, start_factor: 0.0 }),
        unit: Some(StepUnit::Batch),
    };
    assert_eq!(warm_step.unit(), StepUnit::Batch);
    assert_formula("warmup_step", &warm_step, |t| {
        if t < 4 { BASE * t as f64 / 4.0 } else { BASE * 0.5f64.powi(((t - 4) / 10) as i32) }
    });

    // One-cycle's first rate is max_lr / div_factor: warmup ramps towards that, not the base.
    let warm_oc = ScheduleConfig {
        schedule: Schedule::OneCycle(OneCycleConfig::new(0.5, 50)),
        warmup: Some(Warmup { steps: 2, start_factor: 0.5 }),
        unit: None,
    };
    let lrs = rates(&warm_oc, 3);
    assert!((lrs[0] - 0.01).abs() < 1e-15 && (lrs[1] - 0.015).abs() < 1e-15 && (lrs[2] - 0.02).abs() < 1e-15);
}

/// Printed by tests/reference/schedule.py: the rate after each metric of METRICS.
fn torch_plateau(case: &str) -> Vec<f64> {
    match case {
        "plateau_min_rel" => vec![
            0.1, 0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.025, 0.025, 0.025, 0.025, 0.025, 0.02,
        ],
        "plateau_max_abs" => vec![
            0.1,
            0.1,
            0.03,
            0.03,
            0.009,
            0.009,
            0.0026999999999999997,
            0.0026999999999999997,
            0.0008099999999999998,
            0.0008099999999999998,
            0.00024299999999999994,
            0.00024299999999999994,
            7.289999999999998e-05,
            7.289999999999998e-05,
            2.1869999999999996e-05,
            2.1869999999999996e-05,
            6.560999999999999e-06,
            6.560999999999999e-06,
        ],
        other => panic!("no torch reference for {other}"),
    }
}

const METRICS: [f64; 18] =
    [1.0, 0.9, 0.85, 0.849, 0.86, 0.8499, 0.9, 0.9, 0.9, 0.8, 0.8, 0.8, 0.8, 0.8, 0.79, 0.79, 0.79, 0.79];

fn plateau_rates(config: &ScheduleConfig, metrics: &[f64]) -> Vec<f64> {
    let mut s = Scheduler::new(config.clone(), BASE).unwrap();
    metrics.iter().map(|&m| s.step_with_metric(m)).collect()
}

#[test]
fn reduce_on_plateau_waits_patience_epochs_then_cools_down_as_torch() {
    let min_rel = config(Schedule::ReduceOnPlateau(PlateauConfig {
        factor: 0.5,
        patience: 2,
        threshold: 0.01,
        cooldown: 1,
        min_lr: 0.02,
        ..Default::default()
    }));
    let got = plateau_rates(&min_rel, &METRICS);
    // By hand: 0.849 is not 1% better than 0.85, so epochs 4-6 are bad and the third (> patience
    // 2) halves the rate; epoch 7 falls in the cooldown; 0.8 at epoch 10 is a new best; 11-13
    // bad: halve again; 14 cooldown; 0.79 at 15 is 1% better than 0.8; 16-18 bad: the halving
    // stops at min_lr.
    let mut want = vec![0.1; 5];
    want.extend([0.05; 7]);
    want.extend([0.025; 5]);
    want.push(0.02);
    assert_eq!(got, want);
    assert_eq!(got, torch_plateau("plateau_min_rel"));

    let max_abs = config(Schedule::ReduceOnPlateau(PlateauConfig {
        mode: PlateauMode::Max,
        factor: 0.3,
        patience: 1,
        threshold: 0.05,
        threshold_mode: ThresholdMode::Abs,
        ..Default::default()
    }));
    // Higher is better and nothing beats the first 1.0 by 0.05: every second epoch cuts the rate.
    assert_eq!(plateau_rates(&max_abs, &METRICS), torch_plateau("plateau_max_abs"));
}

#[test]
fn reduce_on_plateau_counts_nan_as_bad_ignores_metrics_during_warmup_and_plain_steps() {
    let c = ScheduleConfig {
        schedule: Schedule::ReduceOnPlateau(PlateauConfig { patience: 1, ..Default::default() }),
        warmup: Some(Warmup { steps: 2, start_factor: 0.5 }),
        unit: None,
    };
    let mut s = Scheduler::new(c, BASE).unwrap();
    assert_eq!(s.lr(), 0.05);
    // Two warmup epochs with terrible metrics: not counted.
    s.step_with_metric(f64::NAN);
    assert_eq!(s.step_with_metric(f64::NAN), BASE);
    assert_eq!(s.step_with_metric(1.0), BASE);
    assert_eq!(s.step(), BASE, "a plain step does not feed the plateau");
    assert_eq!(s.step_with_metric(f64::NAN), BASE);
    assert!((s.step_with_metric(f64::NEG_INFINITY) - 0.01).abs() < 1e-15, "NaN and -inf are bad epochs");
    assert_eq!(s.state().plateau.unwrap().best, Some(1.0));
}

#[test]
fn state_restored_into_a_fresh_scheduler_continues_identically() {
    let configs = [
        config(Schedule::OneCycle(OneCycleConfig::new(0.5, 100))),
        ScheduleConfig {
            schedule: Schedule::CosineWarmRestarts { t_0: 3, t_mult: 2, eta_min: 0.0 },
            warmup: Some(Warmup { steps: 3, start_factor: 0.2 }),
            unit: None,
        },
        config(Schedule::ReduceOnPlateau(PlateauConfig { patience: 1, cooldown: 2, ..Default::default() })),
    ];
    let metric = |t: usize| 1.0 / (1.0 + (t % 7) as f64);
    for c in configs {
        let mut a = Scheduler::new(c.clone(), BASE).unwrap();
        for t in 0..37 {
            a.step_with_metric(metric(t));
        }
        let json = serde_json::to_string(&a.state()).unwrap();
        let mut b = Scheduler::new(c.clone(), BASE).unwrap();
        b.load_state(&serde_json::from_str::<SchedulerState>(&json).unwrap()).unwrap();
        assert_eq!(b.current_step(), 37);
        for t in 37..100 {
            assert_eq!(
                a.step_with_metric(metric(t)).to_bits(),
                b.step_with_metric(metric(t)).to_bits(),
                "{c:?} at {t}"
            );
        }
        assert_eq!(a.state(), b.state());
    }
    let mut cos = Scheduler::new(config(Schedule::Cosine { t_max: 5, eta_min: 0.0 }), BASE).unwrap();
    let plateau_state = Scheduler::new(configs_plateau(), BASE).unwrap().state();
    assert!(cos.load_state(&plateau_state).is_err());
}

fn configs_plateau() -> ScheduleConfig {
    config(Schedule::ReduceOnPlateau(PlateauConfig::default()))
}

#[test]
fn schedule_configs_round_trip_through_json_with_pytorch_defaults() {
    let c: ScheduleConfig = serde_json::from_str(
        r#"{"schedule": {"kind": "one_cycle", "max_lr": 0.1, "total_steps": 1000}, "warmup": {"steps": 10}}"#,
    )
    .unwrap();
    assert_eq!(c.schedule, Schedule::OneCycle(OneCycleConfig::new(0.1, 1000)));
    assert_eq!(c.warmup, Some(Warmup { steps: 10, start_factor: 0.0 }));
    let p: Schedule = serde_json::from_str(r#"{"kind": "reduce_on_plateau", "mode": "max"}"#).unwrap();
    assert_eq!(p, Schedule::ReduceOnPlateau(PlateauConfig { mode: PlateauMode::Max, ..Default::default() }));
    for s in [
        Schedule::Constant,
        Schedule::MultiStep { milestones: vec![3, 5], gamma: 0.1 },
        Schedule::CosineWarmRestarts { t_0: 4, t_mult: 2, eta_min: 1e-5 },
    ] {
        let c = ScheduleConfig { schedule: s, warmup: None, unit: Some(StepUnit::Epoch) };
        assert_eq!(serde_json::from_str::<ScheduleConfig>(&serde_json::to_string(&c).unwrap()).unwrap(), c);
    }
}

#[test]
fn invalid_schedules_are_refused_naming_the_field() {
    let bad = [
        (Schedule::Step { step_size: 0, gamma: 0.5 }, "step_size"),
        (Schedule::Cosine { t_max: 0, eta_min: 0.0 }, "t_max"),
        (Schedule::CosineWarmRestarts { t_0: 5, t_mult: 0, eta_min: 0.0 }, "t_mult"),
        (Schedule::OneCycle(OneCycleConfig { pct_start: 1.5, ..OneCycleConfig::new(0.1, 10) }), "pct_start"),
        (Schedule::ReduceOnPlateau(PlateauConfig { factor: 1.0, ..Default::default() }), "factor"),
        (Schedule::Exponential { gamma: f64::NAN }, "gamma"),
    ];
    for (s, field) in bad {
        let err = Scheduler::new(config(s), BASE).unwrap_err().to_string();
        assert!(err.contains(field), "{err}");
    }
    let warm = ScheduleConfig { warmup: Some(Warmup { steps: 3, start_factor: 2.0 }), ..Default::default() };
    assert!(Scheduler::new(warm, BASE).unwrap_err().to_string().contains("start_factor"));
    assert!(Scheduler::new(ScheduleConfig::default(), -1.0).is_err());
}

#[test]
fn apply_sets_the_optimizer_rate_each_step() {
    let p = Tensor::from_vec(vec![1.0f32], 1).unwrap().requires_grad();
    let mut opt = Sgd::new(vec![("p".into(), p)], SgdConfig { lr: BASE, ..Default::default() });
    let mut s = Scheduler::new(config(Schedule::Exponential { gamma: 0.5 }), opt.learning_rate()).unwrap();
    s.apply(&mut opt);
    assert_eq!(opt.learning_rate(), BASE);
    s.step();
    s.apply(&mut opt);
    assert_eq!(opt.learning_rate(), 0.05);
    assert_eq!(config(Schedule::Exponential { gamma: 0.5 }).unit(), StepUnit::Epoch);
}
