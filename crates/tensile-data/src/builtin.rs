//! Datasets built into the crate, so examples, tests and `tensile` runs work with no files.
//!
//! The CSV text is embedded with `include_str!` and parsed by the same [`crate::read_csv_from`]
//! users get, so the built-in data goes through the code path it demonstrates. Attribution and
//! licence are in `data/README.md` next to the file.

use crate::csv::{Task, read_csv_from};
use crate::dataset::Dataset;

const DIGITS_CSV: &str = include_str!("../data/digits.csv");

/// UCI Optical Recognition of Handwritten Digits (test part, CC BY 4.0): 1797 rows x 64
/// features (8x8 pixel counts, 0-16), 10 classes named "0".."9"; target column `target`.
pub fn digits() -> Dataset {
    read_csv_from(DIGITS_CSV.as_bytes(), "digits.csv (built in)", "target", Task::Classification)
        .expect("internal: embedded digits.csv is valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_has_1797_rows_64_features_10_classes() {
        let ds = digits();
        assert_eq!(ds.len(), 1797);
        assert_eq!(ds.n_features(), 64);
        assert_eq!(ds.n_classes(), Some(10));
        let names: Vec<String> = (0..10).map(|c| c.to_string()).collect();
        assert_eq!(ds.class_names(), Some(names.as_slice()));
        assert_eq!(ds.feature_names()[0], "pixel_0_0");
        assert!(ds.features().iter().all(|&v| (0.0..=16.0).contains(&v)));
        // The first image in the file is a 0, the second a 1.
        assert_eq!(&ds.labels().expect("classes")[..2], &[0, 1]);
    }
}
