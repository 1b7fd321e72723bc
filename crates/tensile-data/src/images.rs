//! Reading a folder of images, one sub-folder per class, into a [`Dataset`].
//!
//! Class names are the sub-folder names, sorted; images inside each are read in sorted file-name
//! order, so the row order (and hence every seeded split) does not depend on the file system.
//! Each PNG or JPEG is resized to the configured size with `image`'s triangle (bilinear) filter,
//! whatever its own size, and becomes one row of C x H x W features (channel-first, C = 1 for
//! grayscale, 3 for RGB) in [0, 1]; the sample shape is [C, H, W]. Names
//! starting with a dot (`.DS_Store`) are skipped; any other file that is not a PNG or JPEG is an
//! error naming it, rather than silently training on fewer images than the user thinks. Without
//! a configured size nothing is resized, and an image of another size than the first is an
//! error: silently stretching a stray image would train on a distorted sample.

use std::path::{Path, PathBuf};

use image::imageops::{self, FilterType};

use crate::dataset::{Dataset, Features, Targets};
use crate::error::{Error, Result};

/// The size images are read at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ImageSize {
    /// Every image resized to `(width W, height H)`.
    Resize(u32, u32),
    /// Every image must already be `(width W, height H)` (prediction data for a model trained
    /// without resizing); another size is an error naming the file.
    Exactly(u32, u32),
    /// Nothing is resized: every image must have the size of the first one.
    #[default]
    First,
}

/// How images become rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ImageOptions {
    /// The size of every row's image.
    pub size: ImageSize,
    /// One channel (luma) instead of three (RGB).
    pub grayscale: bool,
}

/// Reads the image folder `dir`: N images in K class sub-folders, each resized to
/// `size = (width W, height H)`, as N rows of C x H x W values (C = 1 if `grayscale`, else 3).
/// See [`read_image_folder_with`].
pub fn read_image_folder(dir: &Path, size: (u32, u32), grayscale: bool) -> Result<Dataset> {
    read_image_folder_with(dir, &ImageOptions { size: ImageSize::Resize(size.0, size.1), grayscale })
}

/// Reads the image folder `dir`: N images in K class sub-folders as N rows of C x H x W values
/// (C = 1 if grayscale, else 3) with sample shape `[C, H, W]`. Feature names are
/// `c{c}_y{y}_x{x}`.
pub fn read_image_folder_with(dir: &Path, options: &ImageOptions) -> Result<Dataset> {
    let classes = class_folders(dir)?;
    if classes.is_empty() {
        return Err(format_error(dir, "no sub-folders".into(), "one sub-folder of images per class"));
    }
    let mut pixels = Pixels::new(options)?;
    let mut labels = Vec::new();
    let mut class_names = Vec::with_capacity(classes.len());
    for (k, class_dir) in classes.iter().enumerate() {
        let files = image_files(class_dir)?;
        if files.is_empty() {
            return Err(format_error(class_dir, "an empty class folder".into(), "at least one PNG or JPEG image"));
        }
        for file in files {
            pixels.read(&file)?;
            labels.push(k as u32);
        }
        class_names.push(class_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
    }
    let (names, shape) = pixels.names_and_shape();
    Dataset::new(pixels.values, names, Targets::Classes { labels, class_names })?.with_sample_shape(shape)
}

/// Reads images for prediction: `path` is a folder of class sub-folders (as for training; the
/// classes are ignored), a folder of images, or one image file. Rows follow sorted paths and
/// are named by their path below `path` (the file name for a single file).
pub fn read_image_files(path: &Path, options: &ImageOptions) -> Result<Features> {
    let mut files = Vec::new();
    let root = if path.is_dir() {
        let classes = class_folders(path)?;
        if classes.is_empty() {
            files = image_files(path)?;
        } else {
            for class_dir in &classes {
                files.extend(image_files(class_dir)?);
            }
        }
        if files.is_empty() {
            return Err(format_error(path, "a folder with no images".into(), "PNG or JPEG images"));
        }
        path
    } else {
        files.push(path.to_path_buf());
        path.parent().unwrap_or(Path::new(""))
    };
    let mut pixels = Pixels::new(options)?;
    let mut row_names = Vec::with_capacity(files.len());
    for file in &files {
        pixels.read(file)?;
        row_names.push(file.strip_prefix(root).unwrap_or(file).display().to_string());
    }
    let (names, shape) = pixels.names_and_shape();
    Features::new(pixels.values, names)?.with_sample_shape(shape)?.with_row_names(row_names)
}

/// The class sub-folders of `dir`, sorted; a file beside them is an error.
fn class_folders(dir: &Path) -> Result<Vec<PathBuf>> {
    let all = entries(dir)?;
    let classes: Vec<PathBuf> = all.iter().filter(|p| p.is_dir()).cloned().collect();
    if !classes.is_empty()
        && let Some(file) = all.iter().find(|p| !p.is_dir())
    {
        return Err(format_error(file, "a file beside the class folders".into(), "only one sub-folder per class"));
    }
    Ok(classes)
}

/// The files of a folder of images, sorted; a sub-folder is an error.
fn image_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let files = entries(dir)?;
    if let Some(sub) = files.iter().find(|p| p.is_dir()) {
        return Err(format_error(sub, "a folder among the images".into(), "only PNG or JPEG files in an image folder"));
    }
    Ok(files)
}

/// The rows read so far, all of one size: the configured one, or else the first image's.
struct Pixels {
    grayscale: bool,
    /// `(W, H)` once known.
    size: Option<(u32, u32)>,
    resize: bool,
    /// The image that fixed the size, when none was given (for messages).
    first: Option<PathBuf>,
    values: Vec<f32>,
}

impl Pixels {
    fn new(options: &ImageOptions) -> Result<Self> {
        let (size, resize) = match options.size {
            ImageSize::Resize(w, h) => (Some((w, h)), true),
            ImageSize::Exactly(w, h) => (Some((w, h)), false),
            ImageSize::First => (None, false),
        };
        if let Some((w, h)) = size
            && (w == 0 || h == 0)
        {
            return Err(Error::InvalidArgument { what: format!("image size {w}x{h}: both sides must be at least 1") });
        }
        Ok(Pixels { grayscale: options.grayscale, size, resize, first: None, values: Vec::new() })
    }

    /// Appends one image's C x H x W values in [0, 1].
    fn read(&mut self, file: &Path) -> Result<()> {
        let ext = file.extension().map(|e| e.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
        if !matches!(ext.as_str(), "png" | "jpg" | "jpeg") {
            return Err(format_error(
                file,
                "a file that is not an image".into(),
                "PNG or JPEG images (.png, .jpg, .jpeg)",
            ));
        }
        let img = image::ImageReader::open(file)
            .map_err(|source| Error::Io { path: file.display().to_string(), source })?
            .with_guessed_format()
            .map_err(|source| Error::Io { path: file.display().to_string(), source })?
            .decode()
            .map_err(|e| {
                format_error(file, format!("an image that cannot be decoded ({e})"), "a valid PNG or JPEG image")
            })?;
        let (w, h) = match self.size {
            Some(size) => size,
            None => {
                self.first = Some(file.to_path_buf());
                *self.size.insert((img.width(), img.height()))
            }
        };
        if !self.resize && (img.width(), img.height()) != (w, h) {
            let like = match &self.first {
                Some(first) => format!("like the first image, {}", first.display()),
                None => "like the training images".into(),
            };
            return Err(format_error(
                file,
                format!("an image of {}x{} pixels (width x height)", img.width(), img.height()),
                &format!("{w}x{h} {like} (or an image size to resize every image to)"),
            ));
        }
        // Resized after conversion to 8-bit so every source depth ends up in the same [0, 1] scale.
        if self.grayscale {
            let px = imageops::resize(&img.to_luma8(), w, h, FilterType::Triangle);
            self.values.extend(px.as_raw().iter().map(|&v| f32::from(v) / 255.0));
        } else {
            let px = imageops::resize(&img.to_rgb8(), w, h, FilterType::Triangle);
            let raw = px.as_raw();
            for c in 0..3 {
                self.values.extend(raw.iter().skip(c).step_by(3).map(|&v| f32::from(v) / 255.0));
            }
        }
        Ok(())
    }

    /// The feature names `c{c}_y{y}_x{x}` and the sample shape `[C, H, W]`.
    fn names_and_shape(&self) -> (Vec<String>, Vec<usize>) {
        let (w, h) = self.size.unwrap_or((1, 1));
        let channels = if self.grayscale { 1 } else { 3 };
        let mut names = Vec::with_capacity(channels * h as usize * w as usize);
        for c in 0..channels {
            for y in 0..h {
                for x in 0..w {
                    names.push(format!("c{c}_y{y}_x{x}"));
                }
            }
        }
        (names, vec![channels, h as usize, w as usize])
    }
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
