//! `bench/compare.py`, the script that turns side-by-side result lines into the target tables:
//! the ratio targets are taken against the right peer and the memory target against the
//! smallest one. Needs `python3` (standard library only), as the README's test command does.

use std::path::PathBuf;
use std::process::Command;

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../bench/compare.py")
}

/// Runs the script on `lines` (one JSON object per line) and returns its output.
fn compare(lines: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw.jsonl");
    std::fs::write(&raw, lines.join("\n") + "\n").unwrap();
    let out = Command::new("python3").arg(script()).arg(&raw).output();
    let out = out.unwrap_or_else(|e| panic!("this test needs python3 on the PATH: {e}"));
    assert!(out.status.success(), "compare.py failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// The one line of `text` that contains `needle`.
fn line<'a>(text: &'a str, needle: &str) -> &'a str {
    let hits: Vec<&str> = text.lines().filter(|l| l.contains(needle)).collect();
    assert_eq!(hits.len(), 1, "expected one line with {needle:?} in:\n{text}");
    hits[0]
}

const RUN: &[&str] = &[
    r#"{"peer": "torch 2.15.0", "work": "w1", "epoch_s": 2.2, "rss_mib": 880}"#,
    r#"{"peer": "torch 2.15.0 fused-Adam", "work": "w1", "epoch_s": 1.25, "rss_mib": 884}"#,
    r#"{"peer": "keras 3.15.1 (jax)", "work": "w1", "epoch_s": 1.2, "rss_mib": 620}"#,
    r#"{"peer": "burn-ndarray", "work": "w1", "epoch_s": 3.7, "rss_mib": 381}"#,
    r#"{"peer": "tensile 0.1.0", "work": "w1", "epoch_s": 0.82, "rss_mib": 219}"#,
    r#"{"peer": "torch 2.15.0", "work": "w2", "epoch_s": 2.7, "rss_mib": 860}"#,
    r#"{"peer": "torch 2.15.0 fused-Adam", "work": "w2", "epoch_s": 2.6, "rss_mib": 870}"#,
    r#"{"peer": "burn-ndarray", "work": "w2", "epoch_s": 1.5, "rss_mib": 60}"#,
    r#"{"peer": "tensile 0.1.0", "work": "w2", "epoch_s": 1.25, "rss_mib": 89}"#,
    r#"{"peer": "candle", "work": "w3", "us_per_step": 111.0, "rss_mib": 30}"#,
    r#"{"peer": "torch 2.15.0", "work": "w3", "us_per_step": 500.0, "rss_mib": 800}"#,
    r#"{"peer": "tensile 0.1.0", "work": "w3", "us_per_step": 20.0, "rss_mib": 16}"#,
];

#[test]
fn ratio_targets_use_the_fastest_peer_or_pytorch() {
    let out = compare(RUN);
    // W1 against Keras (1.2 s), the fastest of all peers, not PyTorch: 1.46x, short of 1.5x.
    let w1 = line(&out, "W1 at least 1.5x faster than the fastest peer");
    assert!(w1.contains("1.46x") && w1.contains("keras 3.15.1 (jax) 1.2"), "{w1}");
    assert!(w1.ends_with("| **no** |"), "{w1}");
    // W2 against PyTorch's faster run (2.6 s), even though another peer is faster than it.
    let w2 = line(&out, "W2 over 2x faster than PyTorch");
    assert!(w2.contains("2.08x") && w2.contains("fused-Adam 2.6"), "{w2}");
    assert!(w2.ends_with("| yes |"), "{w2}");
    // W3 against candle: 111 / 20 = 5.55x.
    let w3 = line(&out, "W3 at least 5x faster than the fastest peer");
    assert!(w3.contains("5.55x") && w3.contains("candle 111"), "{w3}");
    assert!(w3.ends_with("| yes |"), "{w3}");
}

#[test]
fn memory_is_checked_against_the_smallest_peer() {
    let out = compare(RUN);
    let w1 = line(&out, "| W1 MLP 784-512-256-10 | 219 |");
    assert!(w1.contains("burn-ndarray 381") && w1.ends_with("| yes |"), "{w1}");
    let w2 = line(&out, "| W2 CNN | 89 |");
    assert!(w2.contains("burn-ndarray 60") && w2.ends_with("| **no** |"), "{w2}");
    let w3 = line(&out, "| W3 MLP 16-64-64-1 | 16 |");
    assert!(w3.contains("candle 30") && w3.ends_with("| yes |"), "{w3}");
}

#[test]
fn a_target_without_its_peer_is_left_out() {
    // Only tensile and a non-PyTorch peer on W2: no PyTorch run to take the ratio against.
    let out = compare(&[
        r#"{"peer": "burn-ndarray", "work": "w2", "epoch_s": 6.5}"#,
        r#"{"peer": "tensile 0.1.0", "work": "w2", "epoch_s": 1.1}"#,
    ]);
    assert!(!out.contains("W2 over 2x faster than PyTorch"), "{out}");
    assert!(!out.contains("Peak resident memory"), "{out}");
    assert!(out.contains("| W2 CNN | s/epoch | 1.1 | <= 1.2 | yes | 6.5 (5.91x) |"), "{out}");
}
