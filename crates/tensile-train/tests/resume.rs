//! Exact resume: a run killed with SIGKILL at arbitrary moments (mid-epoch, mid-checkpoint
//! write) and resumed each time ends with weights bit-identical to a run never interrupted —
//! with dropout, shuffling, gradient accumulation and a learning-rate schedule all active.
//!
//! The killed runs are child processes: this test binary re-runs itself with
//! `TENSILE_RESUME_CHILD_DIR` set, which makes `resume_child` train into that directory.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use tensile_nn::schedule::{Schedule, ScheduleConfig};
use tensile_nn::weights;
use tensile_train::{CheckpointConfig, Trainer, TrainerConfig, TrainingData};

fn config() -> TrainerConfig {
    TrainerConfig {
        epochs: 6,
        batch_size: 16,
        accumulate_batches: 2,
        schedule: Some(ScheduleConfig { schedule: Schedule::Cosine { t_max: 6, eta_min: 0.0 }, ..Default::default() }),
        checkpoint: CheckpointConfig { every_epochs: 1, every_steps: Some(7), keep: 2 },
        seed: 5,
        ..Default::default()
    }
}

/// Trains (resuming from whatever is in `dir`) and saves the final weights as `final.safetensors`.
fn train_into(dir: &Path) {
    let cfg = config();
    let mut model = common::mlp(256, 0.2, &mut cfg.init_rng());
    let data = tensile_data::digits();
    let mut trainer = Trainer::new(cfg).unwrap().run_dir(dir).resume(true);
    trainer.fit(&mut model, &TrainingData { train: &data, validation: None, test: None }).unwrap();
    weights::save_weights(&model, &dir.join("final.safetensors")).unwrap();
}

#[test]
fn resume_child() {
    if let Ok(dir) = std::env::var("TENSILE_RESUME_CHILD_DIR") {
        train_into(Path::new(&dir));
    }
}

fn spawn_child(dir: &Path) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "resume_child", "--test-threads=1", "--quiet"])
        .env("TENSILE_RESUME_CHILD_DIR", dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn killed_and_resumed_runs_end_bit_identical_to_an_uninterrupted_run() {
    let reference = common::temp_dir("resume-ref");
    assert!(spawn_child(&reference).wait().unwrap().success());
    let full = std::fs::read(reference.join("final.safetensors")).unwrap();
    let full_time = {
        let again = common::temp_dir("resume-timing");
        let t = Instant::now();
        assert!(spawn_child(&again).wait().unwrap().success());
        std::fs::remove_dir_all(&again).unwrap();
        t.elapsed()
    };

    let killed = common::temp_dir("resume-killed");
    // Kill at fractions of a full run's time, so kills land before, during and after checkpoint
    // writes; each restart resumes from the newest complete checkpoint.
    let mut kills = 0;
    for fraction in [0.15, 0.3, 0.45, 0.55, 0.7, 0.85, 0.2, 0.4] {
        let mut child = spawn_child(&killed);
        std::thread::sleep(full_time.mul_f64(fraction));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL on Unix
            kills += 1;
        }
        child.wait().unwrap();
        if killed.join("final.safetensors").exists() {
            break;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while !killed.join("final.safetensors").exists() && Instant::now() < deadline {
        assert!(spawn_child(&killed).wait().unwrap().success());
    }
    assert!(kills >= 2, "the run finished before it could be interrupted ({kills} kills)");
    let resumed = std::fs::read(killed.join("final.safetensors")).unwrap();
    assert!(full == resumed, "resumed weights differ from the uninterrupted run's");
    for d in [reference, killed] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

#[test]
fn a_damaged_newest_checkpoint_is_refused_and_the_previous_one_is_used() {
    let dir = common::temp_dir("resume-damaged");
    let cfg = TrainerConfig { epochs: 4, ..config() };
    let data = tensile_data::digits();
    let run = |resume: bool, epochs: usize| {
        let cfg = TrainerConfig { epochs, ..cfg.clone() };
        let mut model = common::mlp(32, 0.2, &mut cfg.init_rng());
        let mut trainer = Trainer::new(cfg).unwrap().run_dir(&dir).resume(resume);
        let result = trainer.fit(&mut model, &TrainingData { train: &data, validation: None, test: None }).unwrap();
        (common::weight_bits(&model), result)
    };
    let (uninterrupted, _) = {
        let other = common::temp_dir("resume-damaged-ref");
        let cfg = TrainerConfig { epochs: 4, ..cfg.clone() };
        let mut model = common::mlp(32, 0.2, &mut cfg.init_rng());
        let mut trainer = Trainer::new(cfg).unwrap().run_dir(&other);
        let r = trainer.fit(&mut model, &TrainingData { train: &data, validation: None, test: None }).unwrap();
        std::fs::remove_dir_all(&other).unwrap();
        (common::weight_bits(&model), r)
    };
    // Train 2 of 4 epochs, damage the newest checkpoint, then resume to 4.
    run(false, 2);
    let ckpts = tensile_train::checkpoint::list(&dir.join("checkpoints")).unwrap();
    let newest = &ckpts.last().unwrap().1;
    let bytes = std::fs::read(newest).unwrap();
    std::fs::write(newest, &bytes[..bytes.len() / 2]).unwrap();
    let (resumed, result) = run(true, 4);
    assert_eq!(uninterrupted, resumed);
    let messages: Vec<&str> = result.history.events().map(|e| e.message.as_str()).collect();
    assert!(messages.iter().any(|m| m.contains("truncated")), "{messages:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}
