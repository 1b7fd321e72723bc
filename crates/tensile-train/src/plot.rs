//! Loss and metric curves (`curves.png`, `curves.svg`) and the learning-rate finder's plot
//! (`lr_finder.png`, `lr_finder.svg`), drawn from a [`History`] with `plotters`.
//!
//! Text is drawn with DejaVu Sans embedded in the binary (the `dejavu` crate) and registered with
//! plotters' `ab_glyph` renderer, so plots render the same on a machine with no fonts installed;
//! plotters' default `ttf` feature was rejected because it needs fontconfig and system fonts.
//!
//! Non-finite values (a diverged epoch) are skipped, breaking the line there rather than wrecking
//! the axis range. Every file is written atomically: the SVG is rendered in memory and written
//! through a temporary file; the PNG is rendered to a temporary file in the same directory,
//! fsynced and renamed, so a reader never sees half a plot.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::error::Result;
use crate::history::{History, Mode, write_error, write_file};

/// Pixel size of every plot.
const SIZE: (u32, u32) = (960, 720);
const FONT: &str = "sans-serif";
const TRAIN_COLOR: RGBColor = RGBColor(31, 119, 180);
const VAL_COLOR: RGBColor = RGBColor(255, 127, 14);
const BEST_COLOR: RGBColor = RGBColor(214, 39, 40);

/// Registers the embedded font under the family name plotters asks for by default. Once per
/// process; plotters keeps the table behind a lock, so concurrent plots are safe. Only the
/// regular face is embedded (about 0.7 MB): other styles fall back to it, and no text here is
/// bold.
fn register_fonts() -> std::result::Result<(), String> {
    static REGISTERED: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular())
                .map_err(|_| "the embedded DejaVu font could not be loaded".to_string())
        })
        .clone()
}

/// A figure that can be drawn on any plotters backend (the same code for SVG and PNG).
trait Figure {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> std::result::Result<(), String>;
}

/// Turns a plotters error into a message.
fn msg<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// Writes `<stem>.svg` and `<stem>.png` into `dir`, atomically.
fn save(fig: &impl Figure, dir: &Path, stem: &str) -> Result<()> {
    let svg_path = dir.join(format!("{stem}.svg"));
    register_fonts().map_err(|e| write_error(&svg_path, e))?;

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        fig.draw(&root).and_then(|()| root.present().map_err(msg)).map_err(|e| write_error(&svg_path, e))?;
    }
    write_file(&svg_path, svg.as_bytes())?;

    let png_path = dir.join(format!("{stem}.png"));
    // The bitmap backend picks the image format from the extension, so the temporary name
    // keeps `.png` at its end.
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(".{stem}.png.tmp{}-{n}.png", std::process::id()));
    let result = render_png(fig, &tmp).and_then(|()| persist(&tmp, &png_path).map_err(msg));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(|e| write_error(&png_path, e))
}

fn render_png(fig: &impl Figure, tmp: &Path) -> std::result::Result<(), String> {
    // The backend is dropped at the end of this function, so the file is complete (or the
    // error known) before it is renamed.
    let root = BitMapBackend::new(tmp, SIZE).into_drawing_area();
    fig.draw(&root)?;
    root.present().map_err(msg)
}

/// fsync `tmp`, rename it to `path`, fsync the directory.
fn persist(tmp: &Path, path: &Path) -> std::io::Result<()> {
    std::fs::File::open(tmp)?.sync_all()?;
    std::fs::rename(tmp, path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Draws `curves.png` and `curves.svg` into `dir`: the top panel has `train_loss` and `val_loss`
/// per epoch; the bottom panel, present when `monitor` is not a loss and the history has it,
/// has the monitored metric (and its `train_` counterpart, if recorded). The best epoch of
/// `monitor` is marked, with a dashed line through both panels. Works with a single epoch and
/// skips non-finite values.
pub fn write_curves(history: &History, monitor: &str, dir: &Path) -> Result<()> {
    save(&Curves::new(history, monitor), dir, "curves")
}

/// Draws `lr_finder.png` and `lr_finder.svg` into `dir`: loss against learning rate on a log
/// axis, with a dashed line at `suggestion`. Points with a non-positive or non-finite rate or
/// loss are skipped. The loss axis is cut a little above the highest loss seen before the
/// minimum, because losses explode at the largest rates and would flatten the rest of the curve.
pub fn write_lr_finder_plot(lrs: &[f64], losses: &[f64], suggestion: Option<f64>, dir: &Path) -> Result<()> {
    save(&LrFinder::new(lrs, losses, suggestion), dir, "lr_finder")
}

/// The paths [`write_curves`] writes into `dir`.
pub fn curve_paths(dir: &Path) -> [PathBuf; 2] {
    [dir.join("curves.png"), dir.join("curves.svg")]
}

/// One curve: a name, a colour, points `(x, y)` in order (non-finite `y` allowed).
struct Series {
    name: String,
    color: RGBColor,
    points: Vec<(f64, f64)>,
}

impl Series {
    fn from_history(history: &History, key: &str, color: RGBColor) -> Option<Series> {
        let points: Vec<(f64, f64)> = history.values(key).into_iter().map(|(e, v)| (e as f64, v)).collect();
        (!points.is_empty()).then(|| Series { name: key.to_string(), color, points })
    }
    /// Runs of consecutive finite points: the pieces of the line.
    fn runs(&self) -> Vec<Vec<(f64, f64)>> {
        let mut runs = vec![Vec::new()];
        for &(x, y) in &self.points {
            if x.is_finite() && y.is_finite() {
                runs.last_mut().expect("internal: runs is never empty").push((x, y));
            } else if !runs.last().expect("internal: runs is never empty").is_empty() {
                runs.push(Vec::new());
            }
        }
        runs.retain(|r| !r.is_empty());
        runs
    }
}

/// A range that covers `values` (finite ones only) with a margin, never empty.
fn padded_range(values: impl Iterator<Item = f64>, margin: f64) -> (f64, f64) {
    let (lo, hi) =
        values.filter(|v| v.is_finite()).fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if lo > hi {
        return (0.0, 1.0);
    }
    let pad = if hi > lo { (hi - lo) * margin } else { (lo.abs() * 0.1).max(0.5) };
    (lo - pad, hi + pad)
}

/// The panel a set of series is drawn in.
struct Panel {
    caption: String,
    y_desc: String,
    series: Vec<Series>,
    /// `(epoch, value, label)` of the best epoch, if it is in this panel.
    best: Option<(f64, f64, String)>,
    /// Where the legend goes: the corner the curves head away from (losses fall, scores rise).
    legend: SeriesLabelPosition,
}

struct Curves {
    x_range: (f64, f64),
    best_x: Option<f64>,
    panels: Vec<Panel>,
}

fn is_loss(name: &str) -> bool {
    name.to_ascii_lowercase().contains("loss")
}

impl Curves {
    fn new(history: &History, monitor: &str) -> Curves {
        let mode = Mode::for_metric(monitor);
        let best = history
            .best(monitor, mode)
            .map(|(e, v)| (e as f64, v, format!("best {monitor}: {} at epoch {e}", short(v))));
        let mut loss = Panel {
            caption: "Loss".into(),
            y_desc: "loss".into(),
            series: Vec::new(),
            best: None,
            legend: SeriesLabelPosition::UpperRight,
        };
        loss.series.extend(Series::from_history(history, "train_loss", TRAIN_COLOR));
        loss.series.extend(Series::from_history(history, "val_loss", VAL_COLOR));
        let mut panels = Vec::new();
        if is_loss(monitor) {
            if monitor != "train_loss" && monitor != "val_loss" {
                loss.series.extend(Series::from_history(history, monitor, GREEN));
            }
            loss.best = best.clone();
            panels.push(loss);
        } else {
            panels.push(loss);
            if let Some(s) = Series::from_history(history, monitor, VAL_COLOR) {
                let mut series = Vec::new();
                if let Some(train_key) = monitor.strip_prefix("val_").map(|m| format!("train_{m}")) {
                    series.extend(Series::from_history(history, &train_key, TRAIN_COLOR));
                }
                series.push(s);
                panels.push(Panel {
                    caption: monitor.to_string(),
                    y_desc: monitor.to_string(),
                    series,
                    best: best.clone(),
                    legend: match mode {
                        Mode::Min => SeriesLabelPosition::UpperRight,
                        Mode::Max => SeriesLabelPosition::LowerRight,
                    },
                });
            }
        }
        let epochs = history.epochs.iter().map(|e| e.epoch as f64);
        let (lo, hi) = epochs.clone().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
        let x_range = if lo > hi {
            (0.0, 2.0)
        } else if lo == hi {
            (lo - 1.0, hi + 1.0)
        } else {
            (lo - 0.5, hi + 0.5)
        };
        Curves { x_range, best_x: best.map(|b| b.0), panels }
    }
}

/// A value in a legend: four decimals, trailing zeros dropped.
fn short(v: f64) -> String {
    let a = v.abs();
    if v == 0.0 || !v.is_finite() {
        format!("{v}")
    } else if (1e-3..1e5).contains(&a) {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        format!("{v:.3e}")
    }
}

fn epoch_label(x: &f64) -> String {
    if (x - x.round()).abs() < 1e-9 { format!("{}", x.round()) } else { String::new() }
}

fn value_label(y: &f64) -> String {
    let a = y.abs();
    if a != 0.0 && !(1e-3..1e5).contains(&a) { format!("{y:.1e}") } else { format!("{}", (y * 1e4).round() / 1e4) }
}

/// Draws the lines, points and legend entries of `series` on `chart`.
fn draw_series<DB: DrawingBackend, X, Y>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<X, Y>>,
    series: &[Series],
) -> std::result::Result<(), String>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    for s in series {
        let color = s.color;
        let style = ShapeStyle::from(&color).stroke_width(2);
        for (i, run) in s.runs().into_iter().enumerate() {
            let line = chart.draw_series(LineSeries::new(run.clone(), style)).map_err(msg)?;
            if i == 0 {
                line.label(s.name.as_str()).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], ShapeStyle::from(&color).stroke_width(2))
                });
            }
            chart.draw_series(run.iter().map(|&p| Circle::new(p, 3, color.filled()))).map_err(msg)?;
        }
    }
    Ok(())
}

impl Figure for Curves {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> std::result::Result<(), String> {
        root.fill(&WHITE).map_err(msg)?;
        let areas = if self.panels.len() == 2 {
            let (top, bottom) = root.split_vertically(SIZE.1 / 2);
            vec![top, bottom]
        } else {
            vec![root.clone()]
        };
        for (panel, area) in self.panels.iter().zip(&areas) {
            let y_range = padded_range(
                panel.series.iter().flat_map(|s| s.points.iter().map(|p| p.1)).chain(panel.best.as_ref().map(|b| b.1)),
                0.05,
            );
            let mut chart = ChartBuilder::on(area)
                .caption(&panel.caption, (FONT, 20))
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(70)
                .build_cartesian_2d(self.x_range.0..self.x_range.1, y_range.0..y_range.1)
                .map_err(msg)?;
            chart
                .configure_mesh()
                .x_desc("epoch")
                .y_desc(panel.y_desc.as_str())
                .x_label_formatter(&epoch_label)
                .y_label_formatter(&value_label)
                .label_style((FONT, 13))
                .axis_desc_style((FONT, 15))
                .light_line_style(RGBColor(235, 235, 235))
                .draw()
                .map_err(msg)?;
            if let Some(x) = self.best_x {
                let style = ShapeStyle::from(&BEST_COLOR.mix(0.5)).stroke_width(1);
                chart.draw_series(DashedLineSeries::new([(x, y_range.0), (x, y_range.1)], 6, 4, style)).map_err(msg)?;
            }
            draw_series(&mut chart, &panel.series)?;
            if let Some((x, y, label)) = &panel.best {
                chart
                    .draw_series([Circle::new((*x, *y), 7, BEST_COLOR.stroke_width(3))])
                    .map_err(msg)?
                    .label(label.as_str())
                    .legend(|(x, y)| Circle::new((x + 10, y), 5, BEST_COLOR.stroke_width(2)));
            }
            chart
                .configure_series_labels()
                .position(panel.legend.clone())
                .label_font((FONT, 13))
                .background_style(WHITE.mix(0.85))
                .border_style(RGBColor(180, 180, 180))
                .draw()
                .map_err(msg)?;
        }
        Ok(())
    }
}

struct LrFinder {
    series: Series,
    suggestion: Option<f64>,
    x_range: (f64, f64),
    y_range: (f64, f64),
}

impl LrFinder {
    fn new(lrs: &[f64], losses: &[f64], suggestion: Option<f64>) -> LrFinder {
        let valid: Vec<(f64, f64)> = lrs
            .iter()
            .zip(losses)
            .filter(|&(&lr, &l)| lr > 0.0 && lr.is_finite() && l.is_finite())
            .map(|(&lr, &l)| (lr, l))
            .collect();
        let suggestion = suggestion.filter(|s| *s > 0.0 && s.is_finite());
        let (lo, hi) = valid
            .iter()
            .map(|p| p.0)
            .chain(suggestion)
            .fold((f64::INFINITY, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
        let x_range = if lo > hi {
            (1e-7, 1.0)
        } else if lo == hi {
            (lo / 10.0, hi * 10.0)
        } else {
            (lo / 1.2, hi * 1.2)
        };
        let y_lo = valid.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
        let y_max = valid.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
        let argmin = valid.iter().position(|p| p.1 == y_lo).unwrap_or(0);
        let before = valid.iter().take(argmin + 1).map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
        let cut = before + 0.5 * (before - y_lo);
        let y_hi = if before > y_lo && y_max > cut { cut } else { y_max };
        // Points above the cut become gaps in the line.
        let points = valid.into_iter().map(|(x, y)| (x, if y <= y_hi { y } else { f64::NAN })).collect();
        let y_range = padded_range([y_lo, y_hi].into_iter(), 0.05);
        LrFinder { series: Series { name: "loss".into(), color: TRAIN_COLOR, points }, suggestion, x_range, y_range }
    }
}

impl Figure for LrFinder {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> std::result::Result<(), String> {
        root.fill(&WHITE).map_err(msg)?;
        let (y0, y1) = self.y_range;
        let mut chart = ChartBuilder::on(root)
            .caption("Learning-rate finder", (FONT, 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d((self.x_range.0..self.x_range.1).log_scale(), y0..y1)
            .map_err(msg)?;
        chart
            .configure_mesh()
            .x_desc("learning rate (log scale)")
            .y_desc("loss")
            .x_label_formatter(&|x| format!("{x:.0e}"))
            .y_label_formatter(&value_label)
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 15))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(msg)?;
        draw_series(&mut chart, std::slice::from_ref(&self.series))?;
        if let Some(s) = self.suggestion {
            let style = ShapeStyle::from(&BEST_COLOR).stroke_width(2);
            chart
                .draw_series(DashedLineSeries::new([(s, y0), (s, y1)], 8, 5, style))
                .map_err(msg)?
                .label(format!("suggested lr: {s:.2e}"))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .label_font((FONT, 13))
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(180, 180, 180))
            .draw()
            .map_err(msg)?;
        Ok(())
    }
}
