//! Readers on good and malformed input: CSV options (delimiters, BOM, categories, missing
//! values) and NPY/NPZ arrays. Binary fixtures are written by the tests into temporary folders.

use std::path::{Path, PathBuf};

use tensile_data::{
    ColumnEncoding, CsvOptions, Error, FeatureColumn, Impute, Targets, read_csv_from_with, read_npy, read_npz,
};

fn read_with(text: &[u8], options: &CsvOptions) -> tensile_data::Result<tensile_data::Dataset> {
    read_csv_from_with(text, "t.csv", "y", options)
}

fn error_with(text: &[u8], options: &CsvOptions) -> String {
    match read_with(text, options) {
        Ok(ds) => panic!("expected an error, read {} rows", ds.len()),
        Err(e) => e.to_string(),
    }
}

fn error(text: &[u8]) -> String {
    error_with(text, &CsvOptions::default())
}

#[test]
fn semicolon_tab_and_pipe_delimiters_are_detected_from_the_header() {
    for text in ["a;b;y\n1,5;2;0\n3;4;1\n", "a\tb\ty\n1,5\t2\t0\n3\t4\t1\n", "a|b|y\n1,5|2|0\n3|4|1\n"] {
        let e = read_with(text.as_bytes(), &CsvOptions::default()).expect_err("1,5 is not a number");
        assert!(e.to_string().starts_with("t.csv, line 2, column 'a': found '1,5'"), "{e}");
        let ds = read_with(text.replace("1,5", "1.5").as_bytes(), &CsvOptions::default()).expect("valid");
        assert_eq!(ds.features(), &[1.5, 2.0, 3.0, 4.0]);
    }
    let forced = CsvOptions { delimiter: Some(b';'), ..CsvOptions::default() };
    assert_eq!(read_with(b"a;y\n1;0\n", &forced).expect("valid").features(), &[1.0]);
}

#[test]
fn a_utf8_byte_order_mark_is_stripped_and_utf16_is_an_error() {
    let ds = read_with(b"\xEF\xBB\xBFa,y\n1,0\n", &CsvOptions::default()).expect("valid");
    assert_eq!(ds.feature_names(), &["a"]);
    assert_eq!(error(b"\xFF\xFEa\0,\0y\0\n\0"), "t.csv, line 1: found a UTF-16 byte order mark, expected UTF-8 text");
}

#[test]
fn unbalanced_quote_names_the_line_that_opened_it() {
    let e = error(b"a,y\n1,0\n\"2,1\n3,0\n");
    assert_eq!(
        e,
        "t.csv, line 3: found a quote (\") that is never closed, expected a closing quote before the end of the \
         file (write a quote inside a quoted field as \"\")"
    );
    // Quotes inside an unquoted field and escaped quotes are fine.
    let ds = read_with(b"a,b,y\n1,5\" screen,0\n2,\"say \"\"hi\"\"\",1\n", &CsvOptions::default()).expect("valid");
    assert_eq!(
        ds.columns().columns()[1],
        FeatureColumn::Categorical { name: "b".into(), categories: vec!["5\" screen".into(), "say \"hi\"".into()] }
    );
}

#[test]
fn bad_utf8_in_the_header_names_line_one() {
    assert_eq!(error(b"a\xff,y\n1,0\n"), "t.csv, line 1: found bytes that are not valid UTF-8, expected UTF-8 text");
}

#[test]
fn text_columns_become_one_hot_categories() {
    let ds = read_with(b"x,color,y\n1,red,0\n2,green,1\n3,red,0\n", &CsvOptions::default()).expect("valid");
    assert_eq!(ds.feature_names(), &["x", "color=green", "color=red"]);
    assert_eq!(ds.features(), &[1.0, 0.0, 1.0, 2.0, 1.0, 0.0, 3.0, 0.0, 1.0]);
    assert_eq!(
        ds.columns(),
        &ColumnEncoding::new(vec![
            FeatureColumn::Numeric { name: "x".into() },
            FeatureColumn::Categorical { name: "color".into(), categories: vec!["green".into(), "red".into()] },
        ])
    );
    // Declared categorical: numbers are category names.
    let declared = CsvOptions { categorical: vec!["zip".into()], ..CsvOptions::default() };
    let ds = read_with(b"zip,y\n10115,0\n80331,1\n", &declared).expect("valid");
    assert_eq!(ds.feature_names(), &["zip=10115", "zip=80331"]);
    let unknown = CsvOptions { categorical: vec!["nope".into()], ..CsvOptions::default() };
    assert!(error_with(b"zip,y\n1,0\n", &unknown).contains("found no column named 'nope'"));
}

#[test]
fn mostly_numeric_column_with_one_text_cell_names_that_cell() {
    assert_eq!(
        error(b"a,y\n1,0\n2,1\nthree,0\n"),
        "t.csv, line 4, column 'a': found 'three', expected a number (feature columns must be numeric)"
    );
}

#[test]
fn a_training_encoding_is_reused_and_unseen_categories_are_errors() {
    let train = read_with(b"x,color,y\n1,red,0\n2,green,1\n", &CsvOptions::default()).expect("valid");
    let reuse = CsvOptions { columns: Some(train.columns().clone()), ..CsvOptions::default() };
    let ds = read_with(b"color,x,y\ngreen,5,1\n", &reuse).expect("same columns, another order");
    assert_eq!(ds.features(), &[5.0, 1.0, 0.0]);
    assert_eq!(
        error_with(b"x,color,y\n1,red,0\n2,blue,1\n", &reuse),
        "t.csv, line 3, column 'color': found 'blue', expected one of the categories seen in training: 'green', 'red'"
    );
    assert_eq!(
        error_with(b"x,color,extra,y\n1,red,2,0\n", &reuse),
        "t.csv, line 1, column 'extra': found a column 'extra' that training did not have, expected only the \
         columns the model was trained on (and the target)"
    );
}

#[test]
fn missing_values_are_errors_by_default() {
    assert_eq!(
        error(b"a,b,y\n1,2,0\n3,NA,1\n"),
        "t.csv, line 3, column 'b': found 'NA', expected a number (NA marks a missing value; impute can fill it)"
    );
    assert_eq!(
        error(b"a,c,y\n1,red,0\n3,,1\n"),
        "t.csv, line 3, column 'c': found an empty cell, expected a category (an empty, NA or NaN cell is a \
         missing value; impute can fill it)"
    );
    assert_eq!(
        error(b"a,y\n1,0\n2,NA\n"),
        "t.csv, line 3, column 'y': found 'NA', expected a target value (NA marks a missing value; targets are \
         never imputed)"
    );
}

#[test]
fn imputation_fills_from_the_rows_read() {
    let text = b"a,c,y\n1,red,0\n,NA,1\n5,blue,0\n6,red,1\nNaN,,0\n";
    let with = |how| read_with(text, &CsvOptions { impute: Some(how), ..CsvOptions::default() }).expect("valid");
    let column_a = |ds: &tensile_data::Dataset| (0..ds.len()).map(|i| ds.row(i)[0]).collect::<Vec<_>>();
    assert_eq!(column_a(&with(Impute::Mean)), [1.0, 4.0, 5.0, 6.0, 4.0]);
    assert_eq!(column_a(&with(Impute::Median)), [1.0, 5.0, 5.0, 6.0, 5.0]);
    assert_eq!(column_a(&with(Impute::MostFrequent)), [1.0, 1.0, 5.0, 6.0, 1.0]);
    // Categorical columns take the most frequent category ("red") under every strategy.
    assert_eq!(with(Impute::Mean).row(1), &[4.0, 0.0, 1.0]);
    let all_missing = CsvOptions { impute: Some(Impute::Mean), ..CsvOptions::default() };
    assert_eq!(
        error_with(b"a,b,y\n1,,0\n2,NA,1\n", &all_missing),
        "t.csv, line 2, column 'b': found a missing value in a column with no values, expected at least one value \
         to impute from"
    );
}

#[test]
fn overflow_to_infinity_names_row_and_column() {
    assert_eq!(
        error(b"a,y\n1,0\n1e400,1\n"),
        "t.csv, line 3, column 'a': found '1e400', expected a finite number within the f32 range (about ±3.4e38)"
    );
}

#[test]
fn empty_and_header_only_files_with_a_bom() {
    assert_eq!(
        error(b"\xEF\xBB\xBF"),
        "t.csv, line 1: found the end of the file, expected a header row naming the columns"
    );
    assert_eq!(
        error(b"a;y\n"),
        "t.csv, line 2: found the end of the file, expected at least one data row after the header"
    );
}

#[test]
fn ragged_row_in_a_semicolon_file() {
    assert_eq!(error(b"a;b;y\n1;2;0\n3;4\n"), "t.csv, line 3: found 2 fields, expected 3 fields, as in the header");
}

// ---- NPY / NPZ ----

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("tensile-readers-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn write_npy<T: npyz::Serialize + npyz::AutoSerialize + Copy>(path: &Path, shape: &[u64], data: &[T]) {
    use npyz::WriterBuilder;
    let file = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
    let mut w = npyz::WriteOptions::new().default_dtype().shape(shape).writer(file).begin_nd().expect("begin");
    w.extend(data.iter().copied()).expect("write");
    w.finish().expect("finish");
}

#[test]
fn npy_features_and_integer_or_float_targets() {
    let dir = TempDir::new("npy");
    write_npy(&dir.path("x.npy"), &[3, 2], &[1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0]);
    write_npy(&dir.path("x_int.npy"), &[3, 2], &[1i32, 2, 3, 4, 5, 6]);
    write_npy(&dir.path("labels.npy"), &[3], &[2i64, 0, 2]);
    write_npy(&dir.path("values.npy"), &[3, 1], &[0.5f32, 1.5, 2.5]);
    let ds = read_npy(&dir.path("x.npy"), &dir.path("labels.npy")).expect("valid");
    assert_eq!(ds.features(), &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    assert_eq!(ds.targets(), &Targets::Classes { labels: vec![1, 0, 1], class_names: vec!["0".into(), "2".into()] });
    let ds = read_npy(&dir.path("x_int.npy"), &dir.path("values.npy")).expect("valid");
    assert_eq!(ds.values(), Some(&[0.5, 1.5, 2.5][..]));
    assert_eq!(ds.feature_names(), &["x0", "x1"]);
}

#[test]
fn npy_errors_name_the_file_and_what_was_found() {
    let dir = TempDir::new("npy-bad");
    let p = |n: &str| dir.path(n);
    let name = |n: &str| p(n).display().to_string();
    write_npy(&p("x.npy"), &[2, 2], &[1.0f32, 2.0, 3.0, 4.0]);
    write_npy(&p("x1d.npy"), &[4], &[1.0f32, 2.0, 3.0, 4.0]);
    write_npy(&p("y.npy"), &[2], &[0u8, 1]);
    write_npy(&p("y3.npy"), &[3], &[0u8, 1, 1]);
    write_npy(&p("y_bool.npy"), &[2], &[true, false]);

    let e = read_npy(&p("x1d.npy"), &p("y.npy")).expect_err("rank");
    assert_eq!(
        e.to_string(),
        format!(
            "{}: found a 1-D array of shape [4], expected a features array of 2 or more dimensions (rows x \
             features, or rows x a sample shape)",
            name("x1d.npy")
        )
    );
    let e = read_npy(&p("x.npy"), &p("y3.npy")).expect_err("length");
    assert_eq!(e.to_string(), format!("{}: found 3 targets, expected 2, one per row of the features", name("y3.npy")));
    let e = read_npy(&p("x.npy"), &p("y_bool.npy")).expect_err("dtype");
    assert_eq!(
        e.to_string(),
        format!(
            "{}: found dtype '|b1', expected float32, float64 or an integer dtype (int8…int64, uint8…uint64)",
            name("y_bool.npy")
        )
    );

    let bytes = std::fs::read(p("x.npy")).expect("read");
    std::fs::write(p("short.npy"), &bytes[..bytes.len() - 3]).expect("write");
    let e = read_npy(&p("short.npy"), &p("y.npy")).expect_err("truncated");
    assert!(matches!(e, Error::Format { .. }));
    assert!(
        e.to_string()
            .starts_with(&format!("{}: found the end of the data early (a truncated file)", name("short.npy"))),
        "{e}"
    );
    std::fs::write(p("text.npy"), "not numpy").expect("write");
    let e = read_npy(&p("text.npy"), &p("y.npy")).expect_err("not npy");
    assert!(e.to_string().starts_with(&format!("{}: found no valid NPY header", name("text.npy"))), "{e}");
}

#[test]
fn npy_arrays_of_more_dimensions_keep_their_sample_shape_in_either_order() {
    let dir = TempDir::new("npy-nd");
    // Two samples of shape [1, 2, 3]; values 0..12 in C order.
    let c: Vec<f32> = (0..12).map(|v| v as f32).collect();
    write_npy(&dir.path("c.npy"), &[2, 1, 2, 3], &c);
    write_npy(&dir.path("y.npy"), &[2], &[0i32, 1]);
    let ds = read_npy(&dir.path("c.npy"), &dir.path("y.npy")).expect("4-D features");
    assert_eq!((ds.n_features(), ds.sample_shape()), (6, &[1, 2, 3][..]));
    assert_eq!(ds.features(), &c[..]);
    // The same array written in Fortran order (first index fastest) reads back identically.
    let mut f = [0.0f32; 12];
    for i in 0..2 {
        for y in 0..2 {
            for x in 0..3 {
                f[i + 2 * (y + 2 * x)] = c[i * 6 + y * 3 + x];
            }
        }
    }
    {
        use npyz::WriterBuilder;
        let file = std::io::BufWriter::new(std::fs::File::create(dir.path("f.npy")).expect("create"));
        let mut w = npyz::WriteOptions::new()
            .default_dtype()
            .shape(&[2, 1, 2, 3])
            .order(npyz::Order::Fortran)
            .writer(file)
            .begin_nd()
            .expect("begin");
        w.extend(f.iter().copied()).expect("write");
        w.finish().expect("finish");
    }
    let fortran = read_npy(&dir.path("f.npy"), &dir.path("y.npy")).expect("Fortran order");
    assert_eq!(fortran.features(), &c[..]);
    let only = tensile_data::read_npy_features(&dir.path("c.npy")).expect("features");
    assert_eq!((only.len(), only.sample_shape()), (2, &[1, 2, 3][..]));
}

#[test]
fn npz_archives_by_array_name() {
    let dir = TempDir::new("npz");
    let path = dir.path("d.npz");
    {
        use npyz::WriterBuilder;
        let mut npz = npyz::npz::NpzWriter::create(&path).expect("create");
        let mut x =
            npz.array::<f32>("x", Default::default()).expect("x").default_dtype().shape(&[2, 2]).begin_nd().expect("x");
        x.extend([1.0f32, 2.0, 3.0, 4.0]).expect("x");
        x.finish().expect("x");
        let mut y =
            npz.array::<i64>("y", Default::default()).expect("y").default_dtype().shape(&[2]).begin_nd().expect("y");
        y.extend([0i64, 1]).expect("y");
        y.finish().expect("y");
    }
    let ds = read_npz(&path, "x", "y").expect("valid");
    assert_eq!((ds.len(), ds.n_features(), ds.n_classes()), (2, 2, Some(2)));
    let e = read_npz(&path, "features", "y").expect_err("no such array");
    assert_eq!(e.to_string(), format!("{}: found arrays x, y, expected an array named 'features'", path.display()));
    let e = read_npz(&path, "y", "x").expect_err("rank");
    assert_eq!(
        e.to_string(),
        format!(
            "{}, array 'y': found a 1-D array of shape [2], expected a features array of 2 or more dimensions \
             (rows x features, or rows x a sample shape)",
            path.display()
        )
    );
    let f = tensile_data::read_npz_features(&path, "x").expect("features only");
    assert_eq!((f.len(), f.values()), (2, &[1.0, 2.0, 3.0, 4.0][..]));
    std::fs::write(dir.path("bad.npz"), "zip? no").expect("write");
    let e = read_npz(&dir.path("bad.npz"), "x", "y").expect_err("not a zip");
    assert!(
        e.to_string()
            .starts_with(&format!("{}: found a file that is not a zip archive", dir.path("bad.npz").display())),
        "{e}"
    );
}

// ---- image folders ----

#[test]
fn image_folders_resize_mixed_sizes_channel_first() {
    let dir = TempDir::new("images");
    std::fs::create_dir_all(dir.path("cat")).expect("dir");
    std::fs::create_dir_all(dir.path("dog")).expect("dir");
    image::RgbImage::from_pixel(4, 6, image::Rgb([255, 0, 51])).save(dir.path("cat/a.png")).expect("png");
    image::RgbImage::from_pixel(3, 3, image::Rgb([0, 255, 0])).save(dir.path("dog/b.jpg")).expect("jpeg");
    let ds = tensile_data::read_image_folder(&dir.0, (2, 2), false).expect("valid");
    assert_eq!((ds.len(), ds.n_features()), (2, 3 * 2 * 2));
    assert_eq!(ds.class_names().expect("classes"), &["cat", "dog"]);
    assert_eq!(ds.row(0), &[1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.2, 0.2, 0.2, 0.2]);
    assert!(ds.row(1)[4..8].iter().all(|&v| v > 0.9), "green channel of the JPEG: {:?}", ds.row(1));
    let gray = tensile_data::read_image_folder(&dir.0, (3, 1), true).expect("valid");
    assert_eq!((gray.n_features(), gray.sample_shape()), (3, &[1, 1, 3][..]));
    assert_eq!(ds.sample_shape(), &[3, 2, 2]);
}

#[test]
fn without_a_size_images_must_share_the_first_ones_size() {
    use tensile_data::{ImageOptions, ImageSize, read_image_files, read_image_folder_with};
    let dir = TempDir::new("images-sizes");
    for class in ["a", "b"] {
        std::fs::create_dir_all(dir.path(class)).expect("dir");
    }
    image::GrayImage::from_pixel(3, 2, image::Luma([255])).save(dir.path("a/1.png")).expect("png");
    image::GrayImage::from_pixel(3, 2, image::Luma([0])).save(dir.path("b/1.png")).expect("png");
    let gray = ImageOptions { size: ImageSize::First, grayscale: true };
    let ds = read_image_folder_with(&dir.0, &gray).expect("one size");
    assert_eq!(ds.sample_shape(), &[1, 2, 3]);
    assert_eq!(ds.row(0), &[1.0; 6]);

    // Prediction reads the class layout, a flat folder or one file, rows named by path.
    let f = read_image_files(&dir.0, &gray).expect("class layout");
    assert_eq!(f.row_names(), Some(&["a/1.png".to_string(), "b/1.png".to_string()][..]));
    let f = read_image_files(&dir.path("b/1.png"), &gray).expect("one file");
    assert_eq!((f.len(), f.row_names()), (1, Some(&["1.png".to_string()][..])));
    let exactly = ImageOptions { size: ImageSize::Exactly(2, 2), grayscale: true };
    let e = read_image_files(&dir.path("a"), &exactly).expect_err("training size");
    assert_eq!(
        e.to_string(),
        format!(
            "{}: found an image of 3x2 pixels (width x height), expected 2x2 like the training images (or an \
             image size to resize every image to)",
            dir.path("a/1.png").display()
        )
    );

    image::GrayImage::from_pixel(4, 4, image::Luma([0])).save(dir.path("b/2.png")).expect("png");
    let e = read_image_folder_with(&dir.0, &gray).expect_err("mixed sizes");
    assert_eq!(
        e.to_string(),
        format!(
            "{}: found an image of 4x4 pixels (width x height), expected 3x2 like the first image, {} (or an \
             image size to resize every image to)",
            dir.path("b/2.png").display(),
            dir.path("a/1.png").display()
        )
    );
    let resized = ImageOptions { size: ImageSize::Resize(2, 2), grayscale: true };
    assert_eq!(read_image_folder_with(&dir.0, &resized).expect("resized").len(), 3);
}

#[test]
fn image_folder_errors_name_the_file_or_folder() {
    let dir = TempDir::new("images-bad");
    std::fs::create_dir_all(dir.path("a")).expect("dir");
    std::fs::create_dir_all(dir.path("b")).expect("dir");
    image::GrayImage::from_pixel(2, 2, image::Luma([9])).save(dir.path("a/x.png")).expect("png");
    let e = tensile_data::read_image_folder(&dir.0, (2, 2), true).expect_err("empty class");
    assert_eq!(
        e.to_string(),
        format!("{}: found an empty class folder, expected at least one PNG or JPEG image", dir.path("b").display())
    );
    std::fs::write(dir.path("b/notes.txt"), "hello").expect("write");
    let e = tensile_data::read_image_folder(&dir.0, (2, 2), true).expect_err("not an image");
    assert_eq!(
        e.to_string(),
        format!(
            "{}: found a file that is not an image, expected PNG or JPEG images (.png, .jpg, .jpeg)",
            dir.path("b/notes.txt").display()
        )
    );
    std::fs::remove_file(dir.path("b/notes.txt")).expect("rm");
    std::fs::write(dir.path("b/broken.png"), b"\x89PNG\r\n\x1a\nnot really").expect("write");
    let e = tensile_data::read_image_folder(&dir.0, (2, 2), true).expect_err("corrupt");
    assert!(
        e.to_string()
            .starts_with(&format!("{}: found an image that cannot be decoded", dir.path("b/broken.png").display())),
        "{e}"
    );
    let empty = TempDir::new("images-empty");
    let e = tensile_data::read_image_folder(&empty.0, (2, 2), true).expect_err("no classes");
    assert_eq!(
        e.to_string(),
        format!("{}: found no sub-folders, expected one sub-folder of images per class", empty.0.display())
    );
}
