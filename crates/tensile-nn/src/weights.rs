//! Saving and loading a model's weights in the safetensors format, under the parameter names
//! (`0.weight`, `encoder.1.running_mean`), so files open in any safetensors reader (PyTorch,
//! candle, burn) and PyTorch state dicts with the same names load here.
//!
//! safetensors was chosen over a pickle-like or bespoke format because loading runs no code, the
//! header size is capped, and the layout is documented. Loading is strict, like PyTorch's
//! `load_state_dict(strict=True)`: every parameter and buffer must be present with its shape, and
//! nothing unexpected may be in the file; the error lists what is missing or extra. Values are
//! written into the existing tensors, so optimizers holding them stay valid.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use tensile_core::{DType, Tensor};

use crate::error::{Error, Result, invalid};
use crate::module::Module;

/// Every parameter and buffer of `m` by name, in visiting order.
pub fn named_tensors(m: &dyn Module) -> Vec<(String, Tensor)> {
    let mut out = Vec::new();
    m.visit_params("", &mut |n, t| out.push((n.to_string(), t.clone())));
    m.visit_buffers("", &mut |n, t| out.push((n.to_string(), t.clone())));
    out
}

fn to_bytes(name: &str, t: &Tensor) -> Result<(Dtype, Vec<u8>)> {
    Ok(match t.dtype() {
        DType::F32 => (Dtype::F32, t.to_vec::<f32>()?.iter().flat_map(|v| v.to_le_bytes()).collect()),
        DType::F64 => (Dtype::F64, t.to_vec::<f64>()?.iter().flat_map(|v| v.to_le_bytes()).collect()),
        other => return invalid("save weights", format!("tensor '{name}' has dtype {other:?}, expected f32 or f64")),
    })
}

/// The safetensors encoding of `tensors`, with optional string metadata in the header.
pub fn encode(tensors: &[(String, Tensor)], metadata: Option<HashMap<String, String>>) -> Result<Vec<u8>> {
    let mut encoded = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        let (dtype, bytes) = to_bytes(name, t)?;
        encoded.push((name.clone(), dtype, t.dims().to_vec(), bytes));
    }
    let views = encoded
        .iter()
        .map(|(n, d, s, b)| Ok((n.as_str(), TensorView::new(*d, s.clone(), b).map_err(|e| st_error("encode", e))?)))
        .collect::<Result<Vec<_>>>()?;
    safetensors::serialize(views, metadata).map_err(|e| st_error("encode", e))
}

fn st_error(what: &str, e: safetensors::SafeTensorError) -> Error {
    Error::Invalid { what: format!("safetensors {what}"), msg: e.to_string() }
}

/// Decodes a safetensors buffer into tensors by name (f32 and f64 only).
pub fn decode(bytes: &[u8]) -> Result<BTreeMap<String, Tensor>> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| st_error("decode", e))?;
    let mut out = BTreeMap::new();
    for (name, view) in st.iter() {
        let data = view.data();
        let t = match view.dtype() {
            Dtype::F32 => {
                // Copy out element by element: safetensors does not promise aligned data.
                let v: Vec<f32> = data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
                Tensor::from_vec(v, view.shape())?
            }
            Dtype::F64 => {
                let v: Vec<f64> = data
                    .chunks_exact(8)
                    .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                    .collect();
                Tensor::from_vec(v, view.shape())?
            }
            other => {
                return invalid("load weights", format!("tensor '{name}' has dtype {other:?}, expected F32 or F64"));
            }
        };
        out.insert(name.to_string(), t);
    }
    Ok(out)
}

/// The model's weights as safetensors bytes.
pub fn to_safetensors(m: &dyn Module) -> Result<Vec<u8>> {
    encode(&named_tensors(m), None)
}

/// Loads weights from safetensors bytes into the model's existing tensors (strict by name and
/// shape; values are converted to each tensor's dtype).
pub fn load_safetensors(m: &dyn Module, bytes: &[u8]) -> Result<()> {
    let mut file = decode(bytes)?;
    let mine = named_tensors(m);
    let missing: Vec<&str> = mine.iter().filter(|(n, _)| !file.contains_key(n)).map(|(n, _)| n.as_str()).collect();
    let known: std::collections::HashSet<&str> = mine.iter().map(|(n, _)| n.as_str()).collect();
    let extra: Vec<&str> = file.keys().filter(|n| !known.contains(n.as_str())).map(|n| n.as_str()).collect();
    if !missing.is_empty() || !extra.is_empty() {
        return invalid(
            "load weights",
            format!("names do not match the model: missing {missing:?}, unexpected {extra:?}"),
        );
    }
    for (name, t) in &mine {
        let src = file.remove(name).expect("internal: presence checked above");
        if src.shape() != t.shape() {
            return invalid(
                "load weights",
                format!("'{name}' has shape {} in the file but {} in the model", src.shape(), t.shape()),
            );
        }
        t.assign_(&src.to_dtype(t.dtype())?)?;
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, flushed to disk,
/// renamed over `path`, then the directory flushed. A crash leaves either the old file or the
/// new one, never a half-written one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.tmp{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        // The rename itself is durable only once the directory entry is on disk.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Saves the model's weights to a safetensors file, atomically.
pub fn save_weights(m: &dyn Module, path: &Path) -> Result<()> {
    let bytes = to_safetensors(m)?;
    write_atomic(path, &bytes)
        .map_err(|e| Error::Invalid { what: format!("writing {}", path.display()), msg: e.to_string() })
}

/// Loads a safetensors file written by [`save_weights`] (or by PyTorch with the same names).
pub fn load_weights(m: &dyn Module, path: &Path) -> Result<()> {
    let bytes = std::fs::read(path)
        .map_err(|e| Error::Invalid { what: format!("reading {}", path.display()), msg: e.to_string() })?;
    load_safetensors(m, &bytes).map_err(|e| match e {
        Error::Invalid { what, msg } => Error::Invalid { what: format!("{} ({what})", path.display()), msg },
        other => other,
    })
}
