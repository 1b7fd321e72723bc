//! Checkpoint files: everything a run needs to continue, in one file per checkpoint, written
//! atomically and verified on load.
//!
//! A file is `MAGIC`, a format version (u32 LE), the payload length (u64 LE), the SHA-256 of the
//! payload, then the payload: a safetensors buffer holding the tensors (model weights and
//! buffers, best weights) with the rest of the state as JSON in its metadata under `state`.
//! One file (rather than a directory of parts) makes the checkpoint appear all at once through
//! one rename; the checksum catches truncation and flipped bytes, which safetensors alone would
//! not always notice in the tensor data.
//!
//! Files are named `ckpt-<step>.tensile` in the run's `checkpoints/` folder; the newest `keep`
//! are kept, and the trainer keeps the best weights so far beside them as `best.safetensors`. [`newest_valid`] returns the newest checkpoint that verifies, skipping (and
//! reporting) any that do not, so a run killed while writing resumes from the previous one.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tensile_core::Tensor;
use tensile_nn::weights;

use crate::error::{Error, Result};

const MAGIC: &[u8; 12] = b"TENSILE-CKPT";
const VERSION: u32 = 1;
const HEADER: usize = 12 + 4 + 8 + 32;

/// The contents of a checkpoint.
pub struct Checkpoint {
    /// Named tensors (`model.*`, `best.*`).
    pub tensors: BTreeMap<String, Tensor>,
    /// Everything else, as JSON.
    pub state: serde_json::Value,
}

fn io_error(path: &Path, e: std::io::Error) -> Error {
    Error::Checkpoint { path: path.display().to_string(), msg: e.to_string() }
}

fn corrupt(path: &Path, msg: impl Into<String>) -> Error {
    Error::Checkpoint { path: path.display().to_string(), msg: msg.into() }
}

/// Encodes a checkpoint into bytes.
pub fn encode(tensors: &[(String, Tensor)], state: &serde_json::Value) -> Result<Vec<u8>> {
    let metadata = HashMap::from([("state".to_string(), serde_json::to_string(state).map_err(json_error)?)]);
    let payload = weights::encode(tensors, Some(metadata))?;
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&Sha256::digest(&payload));
    out.extend_from_slice(&payload);
    Ok(out)
}

fn json_error(e: serde_json::Error) -> Error {
    Error::Config { key: "checkpoint state", msg: e.to_string() }
}

/// Decodes and verifies checkpoint bytes read from `path` (named in errors).
pub fn decode(path: &Path, bytes: &[u8]) -> Result<Checkpoint> {
    if bytes.len() < HEADER || &bytes[..12] != MAGIC {
        return Err(corrupt(path, "not a tensile checkpoint (bad header or too short)"));
    }
    let version = u32::from_le_bytes(bytes[12..16].try_into().expect("internal: 4 bytes"));
    if version != VERSION {
        return Err(corrupt(path, format!("format version {version}, this tensile reads version {VERSION}")));
    }
    let len = u64::from_le_bytes(bytes[16..24].try_into().expect("internal: 8 bytes")) as usize;
    let payload = &bytes[HEADER..];
    if payload.len() != len {
        return Err(corrupt(path, format!("truncated: {} payload bytes of {len}", payload.len())));
    }
    if Sha256::digest(payload).as_slice() != &bytes[24..56] {
        return Err(corrupt(path, "checksum mismatch: the file is damaged"));
    }
    let st = safetensors::SafeTensors::read_metadata(payload).map_err(|e| corrupt(path, e.to_string()))?;
    let state_json =
        st.1.metadata()
            .as_ref()
            .and_then(|m| m.get("state"))
            .ok_or_else(|| corrupt(path, "no state in the checkpoint"))?;
    let state = serde_json::from_str(state_json).map_err(|e| corrupt(path, format!("state: {e}")))?;
    let tensors = weights::decode(payload).map_err(|e| corrupt(path, e.to_string()))?;
    Ok(Checkpoint { tensors, state })
}

/// The path of the checkpoint taken after optimizer step `step`.
pub fn path_for(dir: &Path, step: u64) -> PathBuf {
    dir.join(format!("ckpt-{step:012}.tensile"))
}

/// Writes a checkpoint atomically and keeps only the newest `keep` in `dir`.
pub fn save(
    dir: &Path,
    step: u64,
    tensors: &[(String, Tensor)],
    state: &serde_json::Value,
    keep: usize,
) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
    let path = path_for(dir, step);
    let bytes = encode(tensors, state)?;
    weights::write_atomic(&path, &bytes).map_err(|e| io_error(&path, e))?;
    let all = list(dir)?;
    for (_, old) in all.iter().rev().skip(keep.max(1)) {
        let _ = std::fs::remove_file(old);
    }
    Ok(path)
}

/// Checkpoint files in `dir`, oldest first, with their step numbers. Temporary files left by
/// an interrupted write are not listed.
pub fn list(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| io_error(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let step = name.strip_prefix("ckpt-").and_then(|s| s.strip_suffix(".tensile")).and_then(|s| s.parse().ok());
        if let Some(step) = step {
            out.push((step, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// A checkpoint found on disk, with its path.
pub type Found = (PathBuf, Checkpoint);

/// The newest checkpoint in `dir` that reads back and verifies, plus a message for each newer
/// one that did not (so the caller can say why it fell back).
pub fn newest_valid(dir: &Path) -> Result<(Option<Found>, Vec<String>)> {
    let mut skipped = Vec::new();
    for (_, path) in list(dir)?.into_iter().rev() {
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) => {
                skipped.push(format!("{}: {e}", path.display()));
                continue;
            }
        };
        match decode(&path, &bytes) {
            Ok(c) => return Ok((Some((path, c)), skipped)),
            Err(e) => skipped.push(e.to_string()),
        }
    }
    Ok((None, skipped))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("tensile-ckpt-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn sample() -> (Vec<(String, Tensor)>, serde_json::Value) {
        let t = Tensor::from_vec(vec![1.0f32, 2.0, 3.0], 3).unwrap();
        (vec![("model.w".into(), t)], serde_json::json!({ "step": 7, "note": "x" }))
    }

    #[test]
    fn round_trips_and_keeps_only_the_newest() {
        let dir = tmpdir("keep");
        let (t, s) = sample();
        for step in [1, 2, 3, 4] {
            save(&dir, step, &t, &s, 2).unwrap();
        }
        let steps: Vec<u64> = list(&dir).unwrap().into_iter().map(|(s, _)| s).collect();
        assert_eq!(steps, vec![3, 4]);
        let (found, skipped) = newest_valid(&dir).unwrap();
        let (path, c) = found.unwrap();
        assert!(skipped.is_empty());
        assert_eq!(path, path_for(&dir, 4));
        assert_eq!(c.state, s);
        assert_eq!(c.tensors["model.w"].to_vec::<f32>().unwrap(), vec![1.0, 2.0, 3.0]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn truncated_or_flipped_checkpoints_are_refused_and_the_previous_one_is_used() {
        let dir = tmpdir("corrupt");
        let (t, s) = sample();
        save(&dir, 1, &t, &s, 5).unwrap();
        save(&dir, 2, &t, &s, 5).unwrap();
        save(&dir, 3, &t, &s, 5).unwrap();
        let p3 = path_for(&dir, 3);
        let bytes = std::fs::read(&p3).unwrap();
        std::fs::write(&p3, &bytes[..bytes.len() - 5]).unwrap();
        let p2 = path_for(&dir, 2);
        let mut flipped = std::fs::read(&p2).unwrap();
        let last = flipped.len() - 1;
        flipped[last] ^= 0x40;
        std::fs::write(&p2, flipped).unwrap();
        let (found, skipped) = newest_valid(&dir).unwrap();
        assert_eq!(found.unwrap().0, path_for(&dir, 1));
        assert_eq!(skipped.len(), 2);
        assert!(skipped[0].contains("truncated"), "{skipped:?}");
        assert!(skipped[1].contains("checksum mismatch"), "{skipped:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
