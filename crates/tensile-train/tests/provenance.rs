//! Provenance's promises: the data hash follows the documented encoding, depends on every value
//! and name and on nothing else; the record carries the seed, version, every config default and
//! the machine; timestamps are correct RFC 3339; the file is written atomically.

mod common;

use tensile_data::{Dataset, Targets};
use tensile_train::provenance::{FILE_NAME, dataset_sha256, rfc3339_utc};
use tensile_train::{Provenance, TrainerConfig};

fn strings(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// `digits` with `change` applied to a copy of its parts.
fn digits_with(change: impl FnOnce(&mut Vec<f32>, &mut Vec<String>, &mut Targets)) -> Dataset {
    let d = tensile_data::digits();
    let (mut f, mut n, mut t) = (d.features().to_vec(), d.feature_names().to_vec(), d.targets().clone());
    change(&mut f, &mut n, &mut t);
    Dataset::new(f, n, t).unwrap()
}

#[test]
fn the_hash_matches_the_documented_encoding() {
    // Expected values computed independently, with Python's hashlib over the encoding that
    // `dataset_sha256` documents. A change here changes every recorded hash: bump the tag.
    let classes = Dataset::new(
        vec![1.0, -0.5, 2.25, 0.0],
        strings(&["a", "b"]),
        Targets::Classes { labels: vec![1, 0], class_names: strings(&["no", "yes"]) },
    )
    .unwrap();
    assert_eq!(dataset_sha256(&classes), "9f77a1fca9145c555e47e2245dd1b6397f04a2e2a8b7fde654ce9b45ce14efc8");
    let values = Dataset::new(vec![3.0, 4.0], strings(&["x"]), Targets::Values(vec![0.5, -1.5])).unwrap();
    assert_eq!(dataset_sha256(&values), "142001c4f1fb7608cec2d0507cc1501c833bae4897eaff7314a22af25647e92f");
}

#[test]
fn the_same_data_gives_the_same_hash() {
    let a = dataset_sha256(&tensile_data::digits());
    assert_eq!(a.len(), 64);
    assert!(a.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()), "{a}");
    assert_eq!(dataset_sha256(&tensile_data::digits()), a);
    assert_eq!(dataset_sha256(&digits_with(|_, _, _| {})), a, "rebuilt from its parts");
}

#[test]
fn any_one_change_changes_the_hash() {
    let base = dataset_sha256(&tensile_data::digits());
    let changed = [
        ("one feature value", digits_with(|f, _, _| f[1000] += 1.0)),
        ("zero to minus zero", digits_with(|f, _, _| f[0] = if f[0] == 0.0 { -0.0 } else { 0.0 })),
        ("one feature name", digits_with(|_, n, _| n[3].push('x'))),
        (
            "one label",
            digits_with(|_, _, t| {
                let Targets::Classes { labels, .. } = t else { unreachable!() };
                labels[5] = (labels[5] + 1) % 10;
            }),
        ),
        (
            "one class name",
            digits_with(|_, _, t| {
                let Targets::Classes { class_names, .. } = t else { unreachable!() };
                class_names[9] = "nine".into();
            }),
        ),
    ];
    for (what, ds) in changed {
        assert_ne!(dataset_sha256(&ds), base, "{what}");
    }
    let rows: Vec<usize> = (0..100).collect();
    let d = tensile_data::digits();
    assert_ne!(dataset_sha256(&d.subset(&rows)), dataset_sha256(&d.subset(&rows[..99])), "one row fewer");
}

#[test]
fn names_are_length_prefixed_so_moving_a_boundary_changes_the_hash() {
    let make = |names: &[&str]| {
        Dataset::new(vec![1.0, 2.0], strings(names), Targets::Values(vec![0.0])).map(|d| dataset_sha256(&d)).unwrap()
    };
    assert_ne!(make(&["ab", "c"]), make(&["a", "bc"]));
}

#[test]
fn the_record_has_the_seed_version_every_config_default_and_the_machine() {
    let config = TrainerConfig { seed: 1234, ..Default::default() };
    let data = tensile_data::digits();
    let before = rfc3339_utc(now());
    let p = Provenance::collect(&config, &data).unwrap();
    let after = rfc3339_utc(now());
    let json = serde_json::to_value(&p).unwrap();

    assert_eq!(json["seed"], 1234);
    assert_eq!(json["tensile_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(json["data_sha256"], dataset_sha256(&data));
    assert_eq!((json["rows"].as_u64(), json["features"].as_u64()), (Some(1797), Some(64)));
    // Every field of the resolved config is written out, defaults and empty options included.
    let c = &json["config"];
    assert_eq!(c["seed"], 1234);
    assert_eq!(c["batch_size"], 32);
    assert_eq!(c["epochs"], 20);
    assert_eq!(c["optimizer"]["type"], "adam");
    assert!(c["optimizer"]["lr"].is_number());
    assert!(c.get("schedule").is_some_and(|v| v.is_null()), "{c}");
    let back: TrainerConfig = serde_json::from_value(c.clone()).unwrap();
    assert_eq!(back, config);

    let m = &json["machine"];
    assert_eq!(m["os"], std::env::consts::OS);
    assert_eq!(m["arch"], std::env::consts::ARCH);
    assert!(m["cpus"].as_u64().is_some_and(|n| n >= 1), "{m}");
    assert!(m["threads"].as_u64().is_some_and(|n| n >= 1), "{m}");
    assert!(m.get("cpu_model").is_some(), "{m}");
    if cfg!(target_os = "linux")
        && std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|s| s.lines().any(|l| l.starts_with("model name")))
    {
        assert!(m["cpu_model"].as_str().is_some_and(|s| !s.is_empty()), "{m}");
    }

    // Same-width RFC 3339 strings sort as the times they name.
    assert!(before <= p.started_at && p.started_at <= after, "{before} {} {after}", p.started_at);
}

#[test]
fn the_file_is_written_atomically_and_reads_back() {
    let dir = common::temp_dir("provenance");
    let p = Provenance::collect(&TrainerConfig::default(), &tensile_data::digits()).unwrap();
    p.write(&dir).unwrap();
    p.write(&dir).unwrap(); // overwriting works the same way
    let names: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(names, [FILE_NAME], "no temporary file left behind");
    let text = std::fs::read_to_string(Provenance::path(&dir)).unwrap();
    assert!(text.contains("\"batch_size\": 32"), "{text}");
    let back: Provenance = serde_json::from_str(&text).unwrap();
    assert_eq!(back, p);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn timestamps_are_rfc3339_utc() {
    // Reference strings from `date -u -d @SECONDS`.
    let cases = [
        (0, "1970-01-01T00:00:00Z"),
        (68_169_600, "1972-02-29T00:00:00Z"),
        (951_782_400, "2000-02-29T00:00:00Z"),
        (1_234_567_890, "2009-02-13T23:31:30Z"),
        (1_709_164_800, "2024-02-29T00:00:00Z"),
        (4_102_444_799, "2099-12-31T23:59:59Z"),
    ];
    for (secs, want) in cases {
        assert_eq!(rfc3339_utc(secs), want, "{secs}");
    }
}

#[test]
fn consecutive_days_step_through_the_gregorian_calendar() {
    // Walk every day from 1970 to 2400 (1900 and 2100 are not leap years, 2000 and 2400 are)
    // and check each date follows the one before.
    let leap = |y: u32| (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400);
    let days_in = |y: u32, m: u32| match m {
        2 if leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    let parse = |s: &str| -> (u32, u32, u32) {
        (s[0..4].parse().unwrap(), s[5..7].parse().unwrap(), s[8..10].parse().unwrap())
    };
    let mut prev = (1970, 1, 1);
    let mut day = 1u64;
    loop {
        let s = rfc3339_utc(day * 86_400 + 86_399);
        assert!(s.ends_with("T23:59:59Z"), "{s}");
        let (y, m, d) = parse(&s);
        let expected = if prev.2 < days_in(prev.0, prev.1) {
            (prev.0, prev.1, prev.2 + 1)
        } else if prev.1 < 12 {
            (prev.0, prev.1 + 1, 1)
        } else {
            (prev.0 + 1, 1, 1)
        };
        assert_eq!((y, m, d), expected, "day {day}: {s}");
        if y == 2400 && m == 12 && d == 31 {
            break;
        }
        prev = (y, m, d);
        day += 1;
    }
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}
