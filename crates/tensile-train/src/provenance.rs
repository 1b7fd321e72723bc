//! Where a run's results came from: the seed, the tensile version, the fully resolved trainer
//! config, a hash of the training data, the machine and the start time, written as
//! `provenance.json` next to the run's other files so a result can be traced and repeated.
//!
//! The data hash is SHA-256 over a fixed, length-prefixed encoding of the dataset (see
//! [`dataset_sha256`]), so it depends on the values alone — not on the file they were read from,
//! its formatting or the platform. The time is formatted here (a dozen lines of civil-date
//! arithmetic) rather than with `chrono` or `time`: one timestamp does not justify a dependency.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tensile_data::{Dataset, Targets};

use crate::config::TrainerConfig;
use crate::error::{Error, Result};

/// The file [`Provenance::write`] writes in a run directory.
pub const FILE_NAME: &str = "provenance.json";

/// The machine a run started on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Machine {
    /// `linux`, `macos`, `windows`, … (`std::env::consts::OS`).
    pub os: String,
    /// `x86_64`, `aarch64`, … (`std::env::consts::ARCH`).
    pub arch: String,
    /// CPUs this process may use (`std::thread::available_parallelism`), when known.
    pub cpus: Option<usize>,
    /// Threads tensile's kernels run on.
    pub threads: usize,
    /// The CPU's `model name` from `/proc/cpuinfo`, where there is one.
    pub cpu_model: Option<String>,
}

impl Machine {
    /// Describes the machine this process runs on.
    pub fn current() -> Machine {
        Machine {
            os: std::env::consts::OS.to_string(),
            arch: std::env::consts::ARCH.to_string(),
            cpus: std::thread::available_parallelism().ok().map(|n| n.get()),
            threads: tensile_core::threads::current(),
            cpu_model: std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|s| cpu_model(&s)),
        }
    }
}

/// The first `model name` value in the text of `/proc/cpuinfo`.
fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == "model name" && !value.trim().is_empty()).then(|| value.trim().to_string())
    })
}

/// The record of where a run came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    pub seed: u64,
    /// The version of tensile-train that ran.
    pub tensile_version: String,
    /// The trainer config as resolved, every field written out, defaults included.
    pub config: serde_json::Value,
    /// [`dataset_sha256`] of the training data, as 64 lowercase hex digits.
    pub data_sha256: String,
    /// N, rows of the training data.
    pub rows: usize,
    /// D, features per row.
    pub features: usize,
    pub machine: Machine,
    /// When [`Provenance::collect`] ran, RFC 3339 in UTC to the second (`2024-05-01T12:00:00Z`).
    pub started_at: String,
}

impl Provenance {
    /// Collects the provenance of a run of `config` on the training data `data`. Call it when
    /// the run starts: that moment is recorded as `started_at`.
    pub fn collect(config: &TrainerConfig, data: &Dataset) -> Result<Provenance> {
        let config_json = serde_json::to_value(config).map_err(|e| Error::Config {
            key: "provenance",
            msg: format!("the config could not be serialized: {e}"),
        })?;
        // A clock before 1970 is a broken clock; the epoch itself is an obviously wrong stand-in.
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        Ok(Provenance {
            seed: config.seed,
            tensile_version: env!("CARGO_PKG_VERSION").to_string(),
            config: config_json,
            data_sha256: dataset_sha256(data),
            rows: data.len(),
            features: data.n_features(),
            machine: Machine::current(),
            started_at: rfc3339_utc(now),
        })
    }

    /// The path [`Provenance::write`] writes to in `dir`.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(FILE_NAME)
    }

    /// Writes `dir/provenance.json` (pretty JSON) atomically, creating `dir` if needed.
    pub fn write(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io { path: dir.display().to_string(), source })?;
        let path = Provenance::path(dir);
        let mut bytes = serde_json::to_vec_pretty(self).map_err(|e| Error::Io {
            path: path.display().to_string(),
            source: std::io::Error::other(e.to_string()),
        })?;
        bytes.push(b'\n');
        tensile_nn::weights::write_atomic(&path, &bytes)
            .map_err(|source| Error::Io { path: path.display().to_string(), source })
    }
}

/// SHA-256 of a dataset, as 64 lowercase hex digits.
///
/// The hashed encoding (every integer u64 little-endian, every string its byte length then its
/// UTF-8 bytes): a version tag; N and D; the N x D features as f32 little-endian bits, row-major;
/// the D feature names; then the targets — a `0` byte, the class names and the N labels as u32
/// little-endian for classes, or a `1` byte and the N values as f32 little-endian for regression.
/// Lengths come first so no two datasets encode the same (names `["ab", "c"]` and `["a", "bc"]`
/// differ). Float bits are hashed as they are: `-0.0` and `0.0` differ, as do NaN payloads.
pub fn dataset_sha256(ds: &Dataset) -> String {
    let mut h = Sha256::new();
    h.update(b"tensile-dataset-v1");
    h.update((ds.len() as u64).to_le_bytes());
    h.update((ds.n_features() as u64).to_le_bytes());
    update_f32s(&mut h, ds.features());
    update_strings(&mut h, ds.feature_names());
    match ds.targets() {
        Targets::Classes { labels, class_names } => {
            h.update([0u8]);
            update_strings(&mut h, class_names);
            let mut buf = Vec::with_capacity(labels.len().min(CHUNK) * 4);
            for chunk in labels.chunks(CHUNK) {
                buf.clear();
                buf.extend(chunk.iter().flat_map(|l| l.to_le_bytes()));
                h.update(&buf);
            }
        }
        Targets::Values(values) => {
            h.update([1u8]);
            update_f32s(&mut h, values);
        }
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Elements converted to bytes at a time, so hashing a large table needs no copy of it.
const CHUNK: usize = 16 * 1024;

fn update_f32s(h: &mut Sha256, values: &[f32]) {
    let mut buf = Vec::with_capacity(values.len().min(CHUNK) * 4);
    for chunk in values.chunks(CHUNK) {
        buf.clear();
        buf.extend(chunk.iter().flat_map(|v| v.to_le_bytes()));
        h.update(&buf);
    }
}

fn update_strings(h: &mut Sha256, strings: &[String]) {
    h.update((strings.len() as u64).to_le_bytes());
    for s in strings {
        h.update((s.len() as u64).to_le_bytes());
        h.update(s.as_bytes());
    }
}

/// `unix_seconds` (seconds since 1970-01-01T00:00:00Z) as RFC 3339 in UTC:
/// `YYYY-MM-DDTHH:MM:SSZ`.
pub fn rfc3339_utc(unix_seconds: u64) -> String {
    let days = (unix_seconds / 86_400) as i64;
    let secs = unix_seconds % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", secs / 3600, secs / 60 % 60, secs % 60)
}

/// The proleptic Gregorian date of the day `days` after 1970-01-01, by Howard Hinnant's
/// `civil_from_days` (<https://howardhinnant.github.io/date_algorithms.html>): count in 400-year
/// eras (146,097 days each) from 0000-03-01, so the leap day falls at the end of each year.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468; // days from 0000-03-01
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of era, [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // year of era, [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of year from March 1, [0, 365]
    let mp = (5 * doy + 2) / 153; // month from March, [0, 11]
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = (if mp < 10 { mp + 3 } else { mp - 9 }) as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_model_reads_the_first_model_name() {
        let text = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\n\
                    processor\t: 1\nmodel name\t: other\n";
        assert_eq!(cpu_model(text).as_deref(), Some("Intel(R) Xeon(R) CPU @ 2.20GHz"));
        assert_eq!(cpu_model("processor : 0\nFeatures : fp asimd\n"), None);
    }
}
