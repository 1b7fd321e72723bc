//! TensorBoard event files: read back by a small independent reader here (both CRCs checked,
//! events decoded with prost), by TensorBoard's own `EventAccumulator` through
//! `tests/tensorboard_read.py`, and written by a real training run (resume included).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use prost::Message;
use tensile_train::tensorboard::{EventWriter, FILE_VERSION, proto, tag_for};
use tensile_train::{Trainer, TrainerConfig, TrainingData};

fn masked_crc(bytes: &[u8]) -> u32 {
    crc32c::crc32c(bytes).rotate_right(15).wrapping_add(0xa282_ead8)
}

/// Reads every record of an event file, checking both CRCs of each, and decodes the events.
fn read_events(path: &Path) -> Result<Vec<proto::Event>, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let mut rest = &bytes[..];
    let mut events = Vec::new();
    while !rest.is_empty() {
        let take = |rest: &mut &[u8], n: usize| -> Result<Vec<u8>, String> {
            if rest.len() < n {
                return Err(format!("truncated record: {} bytes left, {n} needed", rest.len()));
            }
            let (head, tail) = rest.split_at(n);
            *rest = tail;
            Ok(head.to_vec())
        };
        let u32_le = |b: Vec<u8>| u32::from_le_bytes(b.try_into().expect("4 bytes"));
        let len = take(&mut rest, 8)?;
        if u32_le(take(&mut rest, 4)?) != masked_crc(&len) {
            return Err("length CRC mismatch".into());
        }
        let len = u64::from_le_bytes(len.try_into().expect("8 bytes")) as usize;
        let payload = take(&mut rest, len)?;
        if u32_le(take(&mut rest, 4)?) != masked_crc(&payload) {
            return Err("payload CRC mismatch".into());
        }
        events.push(proto::Event::decode(&payload[..]).map_err(|e| e.to_string())?);
    }
    Ok(events)
}

/// The event files of `dir`, in name order (TensorBoard's reading order).
fn event_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().contains("tfevents"))
        .collect();
    files.sort();
    files
}

/// `tag -> [(step, value)]` of the scalar events, in order.
fn scalars(events: &[proto::Event]) -> BTreeMap<String, Vec<(i64, f32)>> {
    let mut out: BTreeMap<String, Vec<(i64, f32)>> = BTreeMap::new();
    for e in events {
        if let Some(proto::event::What::Summary(s)) = &e.what {
            for v in &s.value {
                let Some(proto::summary::value::Value::SimpleValue(x)) = v.value else { panic!("not a scalar") };
                out.entry(v.tag.clone()).or_default().push((e.step, x));
            }
        }
    }
    out
}

fn is_restart(e: &proto::Event) -> bool {
    matches!(&e.what, Some(proto::event::What::SessionLog(l)) if l.status == proto::SESSION_START)
}

#[test]
fn written_events_read_back_with_checked_crcs() {
    let dir = common::temp_dir("tb-roundtrip");
    let mut w = EventWriter::create(&dir).unwrap();
    w.add_scalars(1, [("loss/train", 0.75), ("val/accuracy", 0.5)]).unwrap();
    w.add_scalars(2, [("loss/train", 0.25)]).unwrap();
    w.restart(3).unwrap();
    w.flush().unwrap();
    let name = w.path().file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("events.out.tfevents."), "{name}");
    let seconds: u64 = name.split('.').nth(3).unwrap().parse().unwrap();
    assert!(seconds > 1_700_000_000, "{name}");

    let events = read_events(w.path()).unwrap();
    assert_eq!(events.len(), 4);
    assert_eq!(events[0].what, Some(proto::event::What::FileVersion(FILE_VERSION.into())));
    assert!(events.iter().all(|e| e.wall_time > 1.7e9));
    let expected: BTreeMap<String, Vec<(i64, f32)>> =
        [("loss/train".to_string(), vec![(1, 0.75), (2, 0.25)]), ("val/accuracy".to_string(), vec![(1, 0.5)])].into();
    assert_eq!(scalars(&events), expected);
    assert!(is_restart(&events[3]) && events[3].step == 3);
}

#[test]
fn a_flipped_byte_is_detected() {
    let dir = common::temp_dir("tb-flip");
    let mut w = EventWriter::create(&dir).unwrap();
    w.add_scalars(7, [("lr", 0.125)]).unwrap();
    w.flush().unwrap();
    let path = w.path().to_path_buf();
    drop(w);
    let good = std::fs::read(&path).unwrap();
    assert!(read_events(&path).is_ok());
    // Every byte of the file, length, CRCs and payload alike, is covered by a CRC.
    for i in 0..good.len() {
        let mut bad = good.clone();
        bad[i] ^= 0x10;
        std::fs::write(&path, &bad).unwrap();
        assert!(read_events(&path).is_err(), "flipping byte {i} went unnoticed");
    }
}

#[test]
fn writers_in_the_same_second_get_distinct_files_in_creation_order() {
    let dir = common::temp_dir("tb-names");
    let paths: Vec<PathBuf> = (0..3)
        .map(|i| {
            let mut w = EventWriter::create(&dir).unwrap();
            w.add_scalars(1, [("n", i as f64)]).unwrap();
            w.flush().unwrap();
            w.path().to_path_buf()
        })
        .collect();
    // Name order is creation order, which is the order TensorBoard merges them in.
    assert_eq!(event_files(&dir), paths);
    for (i, p) in paths.iter().enumerate() {
        assert_eq!(scalars(&read_events(p).unwrap())["n"], vec![(1, i as f32)]);
    }
}

#[test]
fn record_values_map_to_grouped_tags() {
    let cases = [
        ("train_loss", "loss/train"),
        ("val_loss", "loss/val"),
        ("val_accuracy", "val/accuracy"),
        ("val_top5_accuracy", "val/top5_accuracy"),
        ("train_accuracy", "train/accuracy"),
        ("test_f1", "test/f1"),
        ("custom", "custom"),
        ("val_", "val_"),
    ];
    for (name, tag) in cases {
        assert_eq!(tag_for(name), tag, "{name}");
    }
}

fn fit(dir: &Path, epochs: usize, resume: bool) -> tensile_train::TrainResult {
    let cfg = TrainerConfig { epochs, batch_size: 128, seed: 3, ..Default::default() };
    let mut model = common::mlp(16, 0.0, &mut cfg.init_rng());
    let data = tensile_data::digits();
    let mut trainer = Trainer::new(cfg).unwrap().run_dir(dir).resume(resume);
    trainer.fit(&mut model, &TrainingData { train: &data, validation: None, test: None }).unwrap()
}

#[test]
fn a_training_run_logs_its_history_and_a_resume_opens_a_marked_new_file() {
    let dir = common::temp_dir("tb-fit");
    let first = fit(&dir, 2, false);
    let files = event_files(&dir);
    assert_eq!(files.len(), 1);
    let events = read_events(&files[0]).unwrap();
    let got = scalars(&events);
    let steps: Vec<(i64, f32)> = first.history.steps.iter().map(|s| (s.step as i64, s.loss as f32)).collect();
    assert_eq!(got["loss/step"], steps);
    for (key, tag) in [("train_loss", "loss/train"), ("val_loss", "loss/val"), ("val_accuracy", "val/accuracy")] {
        let want: Vec<(i64, f32)> = first.history.values(key).iter().map(|&(e, v)| (e as i64, v as f32)).collect();
        assert_eq!(got[tag], want, "{tag}");
    }
    let lr: Vec<(i64, f32)> = first.history.epochs.iter().map(|e| (e.epoch as i64, e.lr as f32)).collect();
    assert_eq!(got["lr"], lr);
    assert!(!events.iter().any(is_restart));

    // Extending the finished run to 3 epochs resumes from its last checkpoint.
    let second = fit(&dir, 3, true);
    let files = event_files(&dir);
    assert_eq!(files.len(), 2, "{files:?}");
    let events = read_events(&files[1]).unwrap();
    let last_step = first.history.steps.last().unwrap().step as i64;
    assert_eq!(events.iter().find(|e| is_restart(e)).map(|e| e.step), Some(last_step + 1));
    let got = scalars(&events);
    assert_eq!(got["loss/train"], vec![(3, second.history.epochs[2].values["train_loss"] as f32)]);
    assert!(got["loss/step"].iter().all(|&(s, _)| s > last_step));
}

/// Runs `tests/tensorboard_read.py` on `dir`: the scalars as TensorBoard's own reader sees them.
fn tensorboard_scalars(dir: &Path) -> BTreeMap<String, Vec<(i64, f64)>> {
    let check = Command::new("python3").args(["-c", "import tensorboard"]).output();
    assert!(
        check.as_ref().is_ok_and(|o| o.status.success()),
        "this test needs python3 with the `tensorboard` package (`.ci/run` installs it with \
         `python3 -m pip install --quiet tensorboard`): {check:?}"
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tensorboard_read.py");
    let out = Command::new("python3").arg(&script).arg(dir).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn tensorboard_reads_the_files_and_honours_a_restart() {
    let dir = common::temp_dir("tb-python");
    let mut w = EventWriter::create(&dir).unwrap();
    for step in 1..=6 {
        w.add_scalars(step, [("loss/step", 1.0 / step as f64)]).unwrap();
    }
    w.add_scalars(1, [("loss/train", 0.5), ("val/accuracy", 0.875)]).unwrap();
    w.add_scalars(2, [("loss/train", 0.25), ("val/accuracy", 0.9375)]).unwrap();
    w.flush().unwrap();
    drop(w);
    // A resumed run from step 3: steps 3.. of the first file are stale and must disappear.
    let mut w = EventWriter::create(&dir).unwrap();
    w.restart(3).unwrap();
    for step in 3..=5 {
        w.add_scalars(step, [("loss/step", 10.0 * step as f64)]).unwrap();
    }
    w.add_scalars(2, [("loss/train", 0.125)]).unwrap();
    w.flush().unwrap();
    drop(w);

    let got = tensorboard_scalars(&dir);
    let expected: BTreeMap<String, Vec<(i64, f64)>> = [
        ("loss/step".to_string(), vec![(1, 1.0), (2, 0.5), (3, 30.0), (4, 40.0), (5, 50.0)]),
        ("loss/train".to_string(), vec![(1, 0.5), (2, 0.25), (2, 0.125)]),
        ("val/accuracy".to_string(), vec![(1, 0.875), (2, 0.9375)]),
    ]
    .into();
    assert_eq!(got, expected);
}

#[test]
fn tensorboard_reads_a_training_run() {
    let dir = common::temp_dir("tb-python-fit");
    let result = fit(&dir, 2, false);
    let got = tensorboard_scalars(&dir);
    let steps: Vec<(i64, f64)> = result.history.steps.iter().map(|s| (s.step as i64, s.loss as f32 as f64)).collect();
    assert_eq!(got["loss/step"], steps);
    let acc: Vec<(i64, f64)> =
        result.history.values("val_accuracy").iter().map(|&(e, v)| (e as i64, v as f32 as f64)).collect();
    assert_eq!(got["val/accuracy"], acc);
}
