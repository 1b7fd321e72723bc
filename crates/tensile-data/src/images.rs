//! Reading a folder of images, one sub-folder per class, into a [`Dataset`].
//!
//! Class names are the sub-folder names, sorted; images inside each are read in sorted file-name
//! order, so the row order (and hence every seeded split) does not depend on the file system.
//! Each PNG or JPEG is resized to the configured size with `image`'s triangle (bilinear) filter,
//! whatever its own size, and becomes one row of C x H x W features (channel-first, C = 1 for
//! grayscale, 3 for RGB) in [0, 1], so a model spec can reshape each row to [C, H, W]. Names
//! starting with a dot (`.DS_Store`) are skipped; any other file that is not a PNG or JPEG is an
//! error naming it, rather than silently training on fewer images than the user thinks.

use std::path::{Path, PathBuf};

use image::imageops::{self, FilterType};

use crate::dataset::{Dataset, Targets};
use crate::error::{Error, Result};

/// Reads the image folder `dir`: N images in K class sub-folders, each resized to
/// `size = (width W, height H)`, as N rows of C x H x W values (C = 1 if `grayscale`, else 3).
/// Feature names are `c{c}_y{y}_x{x}`.
pub fn read_image_folder(dir: &Path, size: (u32, u32), grayscale: bool) -> Result<Dataset> {
    let (w, h) = size;
    if w == 0 || h == 0 {
        return Err(Error::InvalidArgument { what: format!("image size {w}x{h}: both sides must be at least 1") });
    }
    let channels = if grayscale { 1 } else { 3 };
    let classes: Vec<PathBuf> = entries(dir)?.into_iter().filter(|p| p.is_dir()).collect();
    if classes.is_empty() {
        return Err(format_error(dir, "no sub-folders".into(), "one sub-folder of images per class"));
    }
    if let Some(file) = entries(dir)?.into_iter().find(|p| !p.is_dir()) {
        return Err(format_error(&file, "a file beside the class folders".into(), "only one sub-folder per class"));
    }
    let per_image = channels * h as usize * w as usize;
    let mut features = Vec::new();
    let mut labels = Vec::new();
    let mut class_names = Vec::with_capacity(classes.len());
    for (k, class_dir) in classes.iter().enumerate() {
        let files = entries(class_dir)?;
        if files.is_empty() {
            return Err(format_error(class_dir, "an empty class folder".into(), "at least one PNG or JPEG image"));
        }
        for file in files {
            read_image(&file, size, grayscale, &mut features)?;
            labels.push(k as u32);
        }
        class_names.push(class_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
    }
    debug_assert_eq!(features.len(), labels.len() * per_image);
    let mut names = Vec::with_capacity(per_image);
    for c in 0..channels {
        for y in 0..h {
            for x in 0..w {
                names.push(format!("c{c}_y{y}_x{x}"));
            }
        }
    }
    Dataset::new(features, names, Targets::Classes { labels, class_names })
}

/// Appends one image's C x H x W values to `out`.
fn read_image(file: &Path, (w, h): (u32, u32), grayscale: bool, out: &mut Vec<f32>) -> Result<()> {
    let ext = file.extension().map(|e| e.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
    if !matches!(ext.as_str(), "png" | "jpg" | "jpeg") {
        return Err(format_error(file, "a file that is not an image".into(), "PNG or JPEG images (.png, .jpg, .jpeg)"));
    }
    let img = image::ImageReader::open(file)
        .map_err(|source| Error::Io { path: file.display().to_string(), source })?
        .with_guessed_format()
        .map_err(|source| Error::Io { path: file.display().to_string(), source })?
        .decode()
        .map_err(|e| {
            format_error(file, format!("an image that cannot be decoded ({e})"), "a valid PNG or JPEG image")
        })?;
    // Resized after conversion to 8-bit so every source depth ends up in the same [0, 1] scale.
    if grayscale {
        let px = imageops::resize(&img.to_luma8(), w, h, FilterType::Triangle);
        out.extend(px.as_raw().iter().map(|&v| f32::from(v) / 255.0));
    } else {
        let px = imageops::resize(&img.to_rgb8(), w, h, FilterType::Triangle);
        let raw = px.as_raw();
        for c in 0..3 {
            out.extend(raw.iter().skip(c).step_by(3).map(|&v| f32::from(v) / 255.0));
        }
    }
    Ok(())
}

/// The entries of `dir` not starting with a dot, sorted by name.
fn entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let io = |source| Error::Io { path: dir.display().to_string(), source };
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        if !entry.file_name().to_string_lossy().starts_with('.') {
            paths.push(entry.path());
        }
    }
    paths.sort();
    Ok(paths)
}

fn format_error(path: &Path, found: String, expected: &str) -> Error {
    Error::Format { path: path.display().to_string(), within: None, found, expected: expected.into() }
}
