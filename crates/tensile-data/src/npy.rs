//! Reading NumPy arrays (`.npy` files, `.npz` archives) into a [`Dataset`].
//!
//! Features are one array of N rows, of any float or integer dtype (converted to `f32`; C or
//! Fortran order): `[N, D]` for a table, or more dimensions (`[N, C, H, W]`, `[N, H, W]`) whose
//! trailing ones become each row's sample shape. Targets are one array of N values, shape `[N]` or `[N, 1]`: an
//! integer dtype means class labels (numbered by sorted value, as the CSV reader numbers numeric
//! classes), a float dtype means regression values. Every error is an [`Error::Format`] naming
//! the file (and, in an archive, the array). Parsing is `npyz`'s; this module only checks what a
//! dataset needs, so NumPy's own files are read without `ndarray`.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use npyz::{DType, NpyFile, Order, TypeChar};

use crate::csv::numeric_classes;
use crate::dataset::{Dataset, Features, Targets};
use crate::error::{Error, Result};

/// The array name [`read_npz`] callers use for features by convention (`np.savez(f, x=…, y=…)`).
pub const NPZ_FEATURES_KEY: &str = "x";
/// The array name [`read_npz`] callers use for targets by convention.
pub const NPZ_TARGETS_KEY: &str = "y";

/// Reads features (N x D, or N x a sample shape) from the `.npy` file `features` and N targets
/// from the `.npy` file `targets`. Feature names are `x0 … x{D-1}`.
pub fn read_npy(features: &Path, targets: &Path) -> Result<Dataset> {
    let x = read_npy_features(features)?;
    let t = open_npy(targets, |npy, place| read_targets(npy, place, x.len()))?;
    build(x, t)
}

/// Reads only a features array (N x D, or N x a sample shape) from a `.npy` file, for
/// prediction.
pub fn read_npy_features(path: &Path) -> Result<Features> {
    open_npy(path, read_features)
}

/// Reads only the features array named `features_key` from the `.npz` archive at `path`, for
/// prediction (a targets array, if present, is ignored).
pub fn read_npz_features(path: &Path, features_key: &str) -> Result<Features> {
    let name = path.display().to_string();
    let mut archive = open_npz(path, &name)?;
    let (npy, place) = npz_array(&mut archive, &name, features_key)?;
    read_features(npy, &place)
}

/// Reads features (N x D) and N targets from the arrays named `features_key` and `targets_key`
/// in the `.npz` archive at `path` (usually [`NPZ_FEATURES_KEY`] and [`NPZ_TARGETS_KEY`]).
pub fn read_npz(path: &Path, features_key: &str, targets_key: &str) -> Result<Dataset> {
    let name = path.display().to_string();
    let mut archive = open_npz(path, &name)?;
    let x = {
        let (npy, place) = npz_array(&mut archive, &name, features_key)?;
        read_features(npy, &place)?
    };
    let t = {
        let (npy, place) = npz_array(&mut archive, &name, targets_key)?;
        read_targets(npy, &place, x.len())?
    };
    build(x, t)
}

fn open_npz(path: &Path, name: &str) -> Result<npyz::npz::NpzArchive<BufReader<File>>> {
    npyz::npz::NpzArchive::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied => {
            Error::Io { path: name.into(), source: e }
        }
        _ => format_error(name, None, format!("a file that is not a zip archive ({e})"), "an NPZ archive"),
    })
}

type NpzEntry<'a> = NpyFile<npyz::zip::read::ZipFile<'a>>;

fn npz_array<'a>(
    archive: &'a mut npyz::npz::NpzArchive<BufReader<File>>,
    name: &str,
    key: &str,
) -> Result<(NpzEntry<'a>, Place)> {
    // Sorted: the zip crate lists names in hash order, which would make messages vary.
    let mut names: Vec<String> = archive.array_names().map(str::to_owned).collect();
    names.sort_unstable();
    let place = Place { path: name.into(), within: Some(format!("array '{key}'")) };
    match archive.by_name(key) {
        Ok(Some(npy)) => Ok((npy, place)),
        Ok(None) => Err(format_error(
            name,
            None,
            format!("arrays {}", if names.is_empty() { "(none)".into() } else { names.join(", ") }),
            &format!("an array named '{key}'"),
        )),
        Err(e) => Err(place.error(format!("an unreadable array ({e})"), "an NPY array".into())),
    }
}

fn build(x: Features, targets: Targets) -> Result<Dataset> {
    let shape = x.sample_shape().to_vec();
    let names = x.feature_names().to_vec();
    Dataset::new(x.into_values(), names, targets)?.with_sample_shape(shape)
}

/// Where an array lives, for messages.
struct Place {
    path: String,
    within: Option<String>,
}

impl Place {
    fn error(&self, found: String, expected: String) -> Error {
        Error::Format { path: self.path.clone(), within: self.within.clone(), found, expected }
    }
}

fn format_error(path: &str, within: Option<String>, found: String, expected: &str) -> Error {
    Error::Format { path: path.into(), within, found, expected: expected.into() }
}

fn open_npy<T>(path: &Path, read: impl FnOnce(NpyFile<BufReader<File>>, &Place) -> Result<T>) -> Result<T> {
    let place = Place { path: path.display().to_string(), within: None };
    let file = File::open(path).map_err(|source| Error::Io { path: place.path.clone(), source })?;
    let npy = NpyFile::new(BufReader::new(file))
        .map_err(|e| place.error(format!("no valid NPY header ({e})"), "an NPY file (numpy.save)".into()))?;
    read(npy, &place)
}

fn read_features<R: Read>(npy: NpyFile<R>, place: &Place) -> Result<Features> {
    let shape = npy.shape().to_vec();
    if shape.len() < 2 {
        return Err(place.error(
            format!("a {}-D array of shape {shape:?}", shape.len()),
            "a features array of 2 or more dimensions (rows x features, or rows x a sample shape)".into(),
        ));
    }
    let dims = shape.iter().map(|&v| to_usize(v, place)).collect::<Result<Vec<usize>>>()?;
    let (n, sample) = (dims[0], dims[1..].to_vec());
    let d = sample.iter().try_fold(1usize, |a, &b| a.checked_mul(b));
    let d = match d {
        Some(d) if n > 0 && d > 0 && n.checked_mul(d).is_some() => d,
        _ => return Err(place.error(format!("shape {shape:?}"), "at least one row and one feature".into())),
    };
    let fortran = npy.order() == Order::Fortran;
    let (values, _) = read_numbers(npy, place)?;
    // Fortran strides grow from the front: 1 for the row, n for the first sample axis,
    // n * sample[0] for the next, and so on.
    let strides: Vec<usize> = sample.iter().scan(n, |s, &dim| Some(std::mem::replace(s, *s * dim))).collect();
    let mut x = Vec::with_capacity(n * d);
    for i in 0..n {
        for j in 0..d {
            let v = if fortran { values[fortran_index(i, j, &sample, &strides)] } else { values[i * d + j] };
            let v32 = v as f32;
            if !v32.is_finite() {
                return Err(place.error(
                    format!("{v} at row {i}, feature {j} (0-based)"),
                    "finite values within the f32 range (about ±3.4e38)".into(),
                ));
            }
            x.push(v32);
        }
    }
    Features::new(x, (0..d).map(|j| format!("x{j}")).collect())?.with_sample_shape(sample)
}

/// Where element (row `i`, row-major feature `j`) of an `[n, sample…]` array lies in Fortran
/// order, where the first index varies fastest; `strides` are the sample axes' strides.
fn fortran_index(i: usize, j: usize, sample: &[usize], strides: &[usize]) -> usize {
    let (mut rest, mut index) = (j, i);
    for (&dim, &stride) in sample.iter().zip(strides).rev() {
        index += (rest % dim) * stride;
        rest /= dim;
    }
    index
}

fn read_targets<R: Read>(npy: NpyFile<R>, place: &Place, n: usize) -> Result<Targets> {
    let shape = npy.shape().to_vec();
    let rows = match shape[..] {
        [rows] | [rows, 1] => to_usize(rows, place)?,
        _ => {
            return Err(place.error(
                format!("a {}-D array of shape {shape:?}", shape.len()),
                format!("a 1-D targets array of shape [{n}] (or [{n}, 1])"),
            ));
        }
    };
    if rows != n {
        return Err(place.error(format!("{rows} targets"), format!("{n}, one per row of the features")));
    }
    let (values, integer) = read_numbers(npy, place)?;
    if let Some(i) = values.iter().position(|v| !(*v as f32).is_finite()) {
        return Err(
            place.error(format!("{} at index {i}", values[i]), "finite target values within the f32 range".into())
        );
    }
    Ok(if integer { numeric_classes(&values) } else { Targets::Values(values.iter().map(|&v| v as f32).collect()) })
}

fn to_usize(v: u64, place: &Place) -> Result<usize> {
    usize::try_from(v).map_err(|_| place.error(format!("a dimension of {v}"), "an array that fits in memory".into()))
}

/// All elements as `f64`, and whether the dtype is an integer one. Integers above 2^53 lose
/// precision, which is far below what an `f32` feature keeps anyway.
fn read_numbers<R: Read>(npy: NpyFile<R>, place: &Place) -> Result<(Vec<f64>, bool)> {
    let dtype = npy.dtype();
    let DType::Plain(ts) = &dtype else {
        return Err(
            place.error(format!("the structured dtype {}", dtype.descr()), "a plain float or integer dtype".into())
        );
    };
    let truncated = |e: std::io::Error| {
        let found = if e.kind() == std::io::ErrorKind::UnexpectedEof {
            "the end of the data early (a truncated file)".to_owned()
        } else {
            format!("unreadable data ({e})")
        };
        place.error(found, format!("as many {} values as the header's shape declares", dtype.descr()))
    };
    macro_rules! read_as {
        ($t:ty, $int:expr) => {
            npy.into_vec::<$t>()
                .map(|v| (v.into_iter().map(|x| x as f64).collect::<Vec<f64>>(), $int))
                .map_err(truncated)
        };
    }
    match (ts.type_char(), ts.size_field()) {
        (TypeChar::Float, 4) => read_as!(f32, false),
        (TypeChar::Float, 8) => read_as!(f64, false),
        (TypeChar::Int, 1) => read_as!(i8, true),
        (TypeChar::Int, 2) => read_as!(i16, true),
        (TypeChar::Int, 4) => read_as!(i32, true),
        (TypeChar::Int, 8) => read_as!(i64, true),
        (TypeChar::Uint, 1) => read_as!(u8, true),
        (TypeChar::Uint, 2) => read_as!(u16, true),
        (TypeChar::Uint, 4) => read_as!(u32, true),
        (TypeChar::Uint, 8) => read_as!(u64, true),
        _ => Err(place.error(
            format!("dtype {}", dtype.descr()),
            "float32, float64 or an integer dtype (int8…int64, uint8…uint64)".into(),
        )),
    }
}
