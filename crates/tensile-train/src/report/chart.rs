//! The report's line charts as inline SVG: one `<svg class="chart">` per group of curves, with
//! round axis steps, gaps where values are not finite, a marker at the best epoch, and point
//! markers with tooltips while they stay apart. Text is drawn with the page's fonts.

use std::fmt::Write as _;

use super::{esc, num};

const COLORS: [&str; 8] = ["#2563eb", "#ea580c", "#16a34a", "#9333ea", "#dc2626", "#0891b2", "#ca8a04", "#db2777"];

/// One line chart: `lines` are `(name, [(epoch, value)])`; non-finite values leave gaps.
pub(super) fn chart(h: &mut String, title: &str, what: &str, lines: &[(String, Vec<(f64, f64)>)], best: Option<usize>) {
    const W: f64 = 960.0;
    const H: f64 = 340.0;
    const L: f64 = 72.0;
    const R: f64 = 20.0;
    const T: f64 = 16.0;
    const B: f64 = 44.0;
    let finite: Vec<(f64, f64)> = lines.iter().flat_map(|l| l.1.iter().copied()).filter(|p| p.1.is_finite()).collect();
    let _ = write!(
        h,
        "<figure class=\"chart\"><figcaption><b>{}</b> <span>{}</span><span class=\"legend\">",
        esc(title),
        esc(what)
    );
    for (i, (name, _)) in lines.iter().enumerate() {
        let _ = write!(h, "<span><i style=\"background:{}\"></i>{}</span>", COLORS[i % COLORS.len()], esc(name));
    }
    h.push_str("</span></figcaption>\n");
    if finite.is_empty() {
        h.push_str("<p class=\"empty\">No finite values to draw.</p></figure>\n");
        return;
    }
    let (x0, x1) = span(finite.iter().map(|p| p.0), 1.0);
    let (lo, hi) = span(finite.iter().map(|p| p.1), 0.0);
    let ystep = nice_step((hi - lo) / 5.0);
    let (y0, y1) = ((lo / ystep).floor() * ystep, (hi / ystep).ceil() * ystep);
    let (y0, y1) = if y1 > y0 { (y0, y1) } else { (y0 - ystep, y1 + ystep) };
    let sx = |x: f64| L + (x - x0) / (x1 - x0) * (W - L - R);
    let sy = |y: f64| T + (y1 - y) / (y1 - y0) * (H - T - B);
    let _ = writeln!(
        h,
        "<svg class=\"chart\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"{}\" xmlns=\"http://www.w3.org/2000/svg\">",
        esc(title)
    );
    // Grid and axes.
    let mut y = y0;
    while y <= y1 + ystep * 1e-6 {
        let py = sy(y);
        let _ = write!(h, "<line class=\"grid\" x1=\"{L}\" x2=\"{:.1}\" y1=\"{py:.1}\" y2=\"{py:.1}\"/>", W - R);
        let _ = writeln!(
            h,
            "<text class=\"tick\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            L - 8.0,
            py + 4.0,
            tick(y, ystep)
        );
        y += ystep;
    }
    let xstep = nice_step((x1 - x0) / 8.0).max(1.0);
    let mut x = (x0 / xstep).ceil() * xstep;
    while x <= x1 + 1e-9 {
        let px = sx(x);
        let _ = write!(
            h,
            "<line class=\"tick-mark\" x1=\"{px:.1}\" x2=\"{px:.1}\" y1=\"{:.1}\" y2=\"{:.1}\"/>",
            H - B,
            H - B + 5.0
        );
        let _ = writeln!(
            h,
            "<text class=\"tick\" x=\"{px:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{x}</text>",
            H - B + 19.0
        );
        x += xstep;
    }
    let _ = write!(h, "<line class=\"axis\" x1=\"{L}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\"/>", W - R, H - B, H - B);
    let _ = writeln!(
        h,
        "<text class=\"axis-label\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">epoch</text>",
        (L + W - R) / 2.0,
        H - 6.0
    );
    if let Some(b) = best.map(|b| b as f64).filter(|b| (x0..=x1).contains(b)) {
        let px = sx(b);
        // The label goes left of the line when there is no room on its right.
        let near_right = px > W - R - 40.0;
        let anchor = if near_right { "end" } else { "start" };
        let _ = writeln!(
            h,
            "<line class=\"best\" x1=\"{px:.1}\" x2=\"{px:.1}\" y1=\"{T}\" y2=\"{:.1}\"/><text class=\"best-label\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"{anchor}\">best</text>",
            H - B,
            if near_right { px - 5.0 } else { px + 5.0 },
            T + 12.0
        );
    }
    h.push_str("<g class=\"plot\">\n");
    for (i, (name, points)) in lines.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let mut d = String::new();
        let mut pen_down = false;
        for &(x, y) in points {
            if y.is_finite() {
                let _ = write!(d, "{}{:.1},{:.1}", if pen_down { "L" } else { "M" }, sx(x), sy(y));
                pen_down = true;
            } else {
                pen_down = false;
            }
        }
        let _ = writeln!(h, "<path class=\"series\" d=\"{d}\" stroke=\"{color}\"/>");
        // Markers with tooltips, while they stay apart.
        if points.len() <= 120 {
            for &(x, y) in points.iter().filter(|p| p.1.is_finite()) {
                let _ = write!(
                    h,
                    "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{color}\"><title>{} · epoch {x}: {}</title></circle>",
                    sx(x),
                    sy(y),
                    esc(name),
                    num(y)
                );
            }
            h.push('\n');
        }
    }
    h.push_str("</g></svg></figure>\n");
}

/// The range of `values`, widened by `pad` on both sides when it is a single point.
fn span(values: impl Iterator<Item = f64>, pad: f64) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    if hi > lo { (lo, hi) } else { (lo - pad, hi + pad) }
}

/// 1, 2 or 5 times a power of ten, the nearest at or above `raw` (1 when `raw` is not positive).
pub(super) fn nice_step(raw: f64) -> f64 {
    if !(raw > 0.0 && raw.is_finite()) {
        return 1.0;
    }
    let p = 10f64.powf(raw.log10().floor());
    let f = raw / p;
    p * if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    }
}

/// A tick label at `v` on an axis with steps of `step`: as many decimals as the step needs.
pub(super) fn tick(v: f64, step: f64) -> String {
    let v = if v.abs() < step * 1e-9 { 0.0 } else { v };
    if v != 0.0 && (v.abs() >= 1e6 || step < 1e-4) {
        return format!("{v:.1e}");
    }
    let decimals = (-step.log10().floor()).clamp(0.0, 6.0) as usize;
    format!("{v:.decimals$}")
}
