//! PNG charts drawn by hand into an [`RgbImage`]: line charts (training curves) and
//! grouped bar charts (before/after per dataset), with axes, "nice" ticks, grid lines,
//! a legend and text from a built-in 5x7 bitmap font (digits, A-Z, a few symbols;
//! lower case is drawn as upper case, anything else as `?`).
use image::{Rgb, RgbImage};

use crate::error::{Error, Result};

/// Distinct, colour-blind-friendly-ish series colours (matplotlib's tab10 order).
pub const PALETTE: [[u8; 3]; 8] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [127, 127, 127],
];
pub const BACKGROUND: [u8; 3] = [255, 255, 255];
const INK: [u8; 3] = [30, 30, 30];
const GRID: [u8; 3] = [225, 225, 225];

/// One 5x7 glyph: 7 rows, top to bottom, bit 4 = leftmost pixel.
const FONT: &[(char, [u8; 7])] = &[
    ('0', [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E]),
    ('1', [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E]),
    ('2', [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F]),
    ('3', [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E]),
    ('4', [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02]),
    ('5', [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E]),
    ('6', [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E]),
    ('7', [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08]),
    ('8', [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E]),
    ('9', [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C]),
    ('A', [0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11]),
    ('B', [0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E]),
    ('C', [0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E]),
    ('D', [0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C]),
    ('E', [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F]),
    ('F', [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10]),
    ('G', [0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F]),
    ('H', [0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11]),
    ('I', [0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E]),
    ('J', [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C]),
    ('K', [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11]),
    ('L', [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F]),
    ('M', [0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11]),
    ('N', [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11]),
    ('O', [0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E]),
    ('P', [0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10]),
    ('Q', [0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D]),
    ('R', [0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11]),
    ('S', [0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E]),
    ('T', [0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04]),
    ('U', [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E]),
    ('V', [0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04]),
    ('W', [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A]),
    ('X', [0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11]),
    ('Y', [0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04]),
    ('Z', [0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F]),
    (' ', [0, 0, 0, 0, 0, 0, 0]),
    ('.', [0, 0, 0, 0, 0, 0x0C, 0x0C]),
    (',', [0, 0, 0, 0, 0x0C, 0x04, 0x08]),
    ('-', [0, 0, 0, 0x1F, 0, 0, 0]),
    ('+', [0, 0x04, 0x04, 0x1F, 0x04, 0x04, 0]),
    ('%', [0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03]),
    (':', [0, 0x0C, 0x0C, 0, 0x0C, 0x0C, 0]),
    ('/', [0, 0x01, 0x02, 0x04, 0x08, 0x10, 0]),
    ('(', [0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02]),
    (')', [0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08]),
    ('_', [0, 0, 0, 0, 0, 0, 0x1F]),
    ('=', [0, 0, 0x1F, 0, 0x1F, 0, 0]),
    ('<', [0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02]),
    ('>', [0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08]),
    ('@', [0x0E, 0x11, 0x01, 0x0D, 0x15, 0x15, 0x0E]),
    ('\'', [0x0C, 0x04, 0x08, 0, 0, 0, 0]),
    ('?', [0x0E, 0x11, 0x01, 0x02, 0x04, 0, 0x04]),
];

fn glyph(c: char) -> [u8; 7] {
    let c = c.to_ascii_uppercase();
    FONT.iter()
        .find(|(k, _)| *k == c)
        .or_else(|| FONT.iter().find(|(k, _)| *k == '?'))
        .map(|(_, g)| *g)
        .unwrap_or([0; 7])
}

/// Width in pixels of `text` drawn at `scale` (6 px advance per character).
pub fn text_width(text: &str, scale: u32) -> u32 {
    (text.chars().count() as u32 * 6).saturating_sub(1) * scale
}

/// Shorten `s` to at most `max` characters, keeping its end (file names are at the end of paths).
pub fn fit(s: &str, max: usize) -> String {
    let n = s.chars().count();
    if n <= max {
        return s.to_string();
    }
    if max <= 2 {
        return s.chars().skip(n - max).collect();
    }
    format!("..{}", s.chars().skip(n - (max - 2)).collect::<String>())
}

fn put(img: &mut RgbImage, x: i64, y: i64, c: [u8; 3]) {
    if x >= 0 && y >= 0 && (x as u32) < img.width() && (y as u32) < img.height() {
        img.put_pixel(x as u32, y as u32, Rgb(c));
    }
}

fn fill_rect(img: &mut RgbImage, x0: i64, y0: i64, x1: i64, y1: i64, c: [u8; 3]) {
    for y in y0.min(y1)..=y0.max(y1) {
        for x in x0.min(x1)..=x0.max(x1) {
            put(img, x, y, c);
        }
    }
}

/// Text with its top-left corner at (x, y).
pub fn draw_text(img: &mut RgbImage, x: i64, y: i64, text: &str, scale: u32, c: [u8; 3]) {
    let s = scale as i64;
    for (i, ch) in text.chars().enumerate() {
        let g = glyph(ch);
        for (row, bits) in g.iter().enumerate() {
            for col in 0..5 {
                if bits & (0x10 >> col) != 0 {
                    let px = x + (i as i64 * 6 + col) * s;
                    let py = y + row as i64 * s;
                    fill_rect(img, px, py, px + s - 1, py + s - 1, c);
                }
            }
        }
    }
}

/// Text rotated 90 degrees counter-clockwise (read bottom to top), its first character's
/// bottom-left corner at (x, y_bottom).
fn draw_text_vertical(img: &mut RgbImage, x: i64, y_bottom: i64, text: &str, scale: u32, c: [u8; 3]) {
    let s = scale as i64;
    for (i, ch) in text.chars().enumerate() {
        let g = glyph(ch);
        for (row, bits) in g.iter().enumerate() {
            for col in 0..5 {
                if bits & (0x10 >> col) != 0 {
                    let px = x + row as i64 * s;
                    let py = y_bottom - (i as i64 * 6 + col) * s;
                    fill_rect(img, px, py - s + 1, px + s - 1, py, c);
                }
            }
        }
    }
}

/// A line `width` pixels thick (Bresenham, stamped with a square brush).
fn draw_line(img: &mut RgbImage, (x0, y0): (i64, i64), (x1, y1): (i64, i64), width: i64, c: [u8; 3]) {
    let (dx, dy) = ((x1 - x0).abs(), -(y1 - y0).abs());
    let (sx, sy) = (if x0 < x1 { 1 } else { -1 }, if y0 < y1 { 1 } else { -1 });
    let (mut x, mut y, mut err) = (x0, y0, dx + dy);
    let lo = -(width - 1) / 2;
    let hi = lo + width - 1;
    loop {
        fill_rect(img, x + lo, y + lo, x + hi, y + hi, c);
        if x == x1 && y == y1 {
            break;
        }
        let e2 = 2 * err;
        if e2 >= dy {
            err += dy;
            x += sx;
        }
        if e2 <= dx {
            err += dx;
            y += sy;
        }
    }
}

/// Tick values covering [lo, hi] with a 1/2/5 x 10^k step, about `target` of them.
pub fn nice_ticks(lo: f64, hi: f64, target: usize) -> (Vec<f64>, f64) {
    let span = (hi - lo).abs().max(1e-12);
    let raw = span / target.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() * step;
    let mut ticks = vec![];
    let mut i = 0;
    while first + i as f64 * step <= hi + step * 1e-9 && i < 1000 {
        ticks.push(first + i as f64 * step);
        i += 1;
    }
    (ticks, step)
}

/// A tick label: as many decimals as the step needs, scientific for very small/large values.
pub fn tick_label(v: f64, step: f64) -> String {
    let v = if v.abs() < step * 1e-6 { 0.0 } else { v };
    if v != 0.0 && (v.abs() >= 1e6 || step < 1e-4) {
        return format!("{v:.1e}");
    }
    let decimals = (-step.log10().floor()).max(0.0) as usize;
    format!("{v:.decimals$}")
}

fn blend(c: [u8; 3], toward_white: f32) -> [u8; 3] {
    c.map(|v| (v as f32 + (255.0 - v as f32) * toward_white).round() as u8)
}

/// One line of a [`LineChart`]. Non-finite points break the line.
#[derive(Clone, Debug)]
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    pub color: [u8; 3],
    /// Drawn thin and pale, without a legend entry (raw values behind a smoothed line).
    pub faint: bool,
}

#[derive(Clone, Debug)]
pub struct LineChart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
    /// Fixed x range (to line up stacked charts); None: the data's.
    pub x_range: Option<(f64, f64)>,
    pub width: u32,
    pub height: u32,
}

/// A centred moving average over `window` points (for noisy loss curves).
pub fn smooth(points: &[(f64, f64)], window: usize) -> Vec<(f64, f64)> {
    let half = window / 2;
    let finite: Vec<(f64, f64)> = points
        .iter()
        .copied()
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect();
    let mut prefix = vec![0.0; finite.len() + 1];
    for (i, (_, y)) in finite.iter().enumerate() {
        prefix[i + 1] = prefix[i] + y;
    }
    (0..finite.len())
        .map(|i| {
            let (a, b) = (i.saturating_sub(half), (i + half + 1).min(finite.len()));
            (finite[i].0, (prefix[b] - prefix[a]) / (b - a) as f64)
        })
        .collect()
}

struct Frame {
    left: i64,
    top: i64,
    right: i64,
    bottom: i64,
}

fn draw_legend(img: &mut RgbImage, f: &Frame, entries: &[(String, [u8; 3])]) {
    if entries.is_empty() {
        return;
    }
    let w = entries.iter().map(|(l, _)| text_width(l, 1) as i64).max().unwrap_or(0) + 30;
    let h = entries.len() as i64 * 12 + 8;
    // The corner of the plot where the legend hides the fewest drawn pixels.
    let corners = [
        (f.right - w - 8, f.top + 8),
        (f.left + 8, f.top + 8),
        (f.right - w - 8, f.bottom - h - 8),
        (f.left + 8, f.bottom - h - 8),
    ];
    let covered = |(x0, y0): (i64, i64)| {
        let mut n = 0usize;
        for y in y0.max(0)..=(y0 + h).min(img.height() as i64 - 1) {
            for x in x0.max(0)..=(x0 + w).min(img.width() as i64 - 1) {
                let p = img.get_pixel(x as u32, y as u32).0;
                n += usize::from(p != BACKGROUND && p != GRID);
            }
        }
        n
    };
    let (x0, y0) = corners
        .iter()
        .copied()
        .min_by_key(|c| covered(*c))
        .unwrap_or(corners[0]);
    fill_rect(img, x0, y0, x0 + w, y0 + h, BACKGROUND);
    for (a, b) in [
        ((x0, y0), (x0 + w, y0)),
        ((x0, y0 + h), (x0 + w, y0 + h)),
        ((x0, y0), (x0, y0 + h)),
        ((x0 + w, y0), (x0 + w, y0 + h)),
    ] {
        draw_line(img, a, b, 1, GRID);
    }
    for (i, (label, c)) in entries.iter().enumerate() {
        let y = y0 + 6 + i as i64 * 12;
        fill_rect(img, x0 + 6, y + 2, x0 + 20, y + 4, *c);
        draw_text(img, x0 + 25, y, label, 1, INK);
    }
}

fn draw_frame_and_titles(img: &mut RgbImage, f: &Frame, title: &str, x_label: &str, y_label: &str) {
    let w = img.width() as i64;
    draw_text(img, (w - text_width(title, 2) as i64) / 2, 8, title, 2, INK);
    if !x_label.is_empty() {
        let xc = (f.left + f.right) / 2 - text_width(x_label, 1) as i64 / 2;
        draw_text(img, xc, f.bottom + 24, x_label, 1, INK);
    }
    if !y_label.is_empty() {
        let yc = (f.top + f.bottom) / 2 + text_width(y_label, 1) as i64 / 2;
        draw_text_vertical(img, 6, yc, y_label, 1, INK);
    }
}

fn draw_axes(img: &mut RgbImage, f: &Frame) {
    draw_line(img, (f.left, f.top), (f.left, f.bottom), 1, INK);
    draw_line(img, (f.left, f.bottom), (f.right, f.bottom), 1, INK);
}

/// Horizontal grid lines and y tick labels over [lo, hi]; returns the value -> row map.
fn y_axis(img: &mut RgbImage, f: &Frame, lo: f64, hi: f64) -> impl Fn(f64) -> i64 {
    let (bottom, top) = (f.bottom, f.top);
    let map = move |v: f64| bottom - ((v - lo) / (hi - lo) * (bottom - top) as f64).round() as i64;
    let (ticks, step) = nice_ticks(lo, hi, 6);
    for t in ticks {
        let y = map(t);
        draw_line(img, (f.left + 1, y), (f.right, y), 1, GRID);
        draw_line(img, (f.left - 4, y), (f.left, y), 1, INK);
        let l = tick_label(t, step);
        draw_text(img, f.left - 7 - text_width(&l, 1) as i64, y - 3, &l, 1, INK);
    }
    map
}

fn padded_range(lo: f64, hi: f64, pad: f64) -> (f64, f64) {
    if !(lo.is_finite() && hi.is_finite()) {
        return (0.0, 1.0);
    }
    if (hi - lo).abs() < 1e-12 {
        let d = if lo.abs() > 1e-12 { lo.abs() * 0.1 } else { 1.0 };
        return (lo - d, hi + d);
    }
    let p = (hi - lo) * pad;
    (lo - p, hi + p)
}

/// Draw a line chart. Series with few points also get a marker at each point.
pub fn line_chart(chart: &LineChart) -> RgbImage {
    let mut img = RgbImage::from_pixel(chart.width.max(200), chart.height.max(150), Rgb(BACKGROUND));
    let f = Frame {
        left: 78,
        top: 36,
        right: img.width() as i64 - 20,
        bottom: img.height() as i64 - 44,
    };
    let finite = chart
        .series
        .iter()
        .flat_map(|s| s.points.iter())
        .filter(|(x, y)| x.is_finite() && y.is_finite());
    let (mut xlo, mut xhi, mut ylo, mut yhi) = (f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY);
    for &(x, y) in finite {
        xlo = xlo.min(x);
        xhi = xhi.max(x);
        ylo = ylo.min(y);
        yhi = yhi.max(y);
    }
    let (xlo, xhi) = chart.x_range.unwrap_or((xlo, xhi));
    let (xlo, xhi) = if xlo.is_finite() && xhi > xlo {
        (xlo, xhi)
    } else {
        padded_range(xlo, xhi, 0.0)
    };
    let (ylo, yhi) = padded_range(ylo, yhi, 0.06);
    let ymap = y_axis(&mut img, &f, ylo, yhi);
    let xmap = |v: f64| f.left + ((v - xlo) / (xhi - xlo) * (f.right - f.left) as f64).round() as i64;
    let (xticks, xstep) = nice_ticks(xlo, xhi, 8);
    for t in xticks {
        let x = xmap(t);
        draw_line(&mut img, (x, f.top), (x, f.bottom - 1), 1, GRID);
        draw_line(&mut img, (x, f.bottom), (x, f.bottom + 4), 1, INK);
        let l = tick_label(t, xstep);
        draw_text(&mut img, x - text_width(&l, 1) as i64 / 2, f.bottom + 8, &l, 1, INK);
    }
    draw_axes(&mut img, &f);
    // Faint series first so the strong lines are drawn over them.
    let mut order: Vec<&Series> = chart.series.iter().collect();
    order.sort_by_key(|s| !s.faint);
    for s in order {
        let (c, w) = if s.faint {
            (blend(s.color, 0.65), 1)
        } else {
            (s.color, 2)
        };
        let mut prev: Option<(i64, i64)> = None;
        let pts = s.points.iter().filter(|(x, _)| x.is_finite());
        let n_finite = s.points.iter().filter(|(x, y)| x.is_finite() && y.is_finite()).count();
        for &(x, y) in pts {
            if !y.is_finite() {
                prev = None;
                continue;
            }
            let p = (xmap(x), ymap(y));
            if let Some(q) = prev {
                draw_line(&mut img, q, p, w, c);
            }
            if !s.faint && n_finite <= 60 {
                fill_rect(&mut img, p.0 - 2, p.1 - 2, p.0 + 2, p.1 + 2, c);
            }
            prev = Some(p);
        }
    }
    let legend: Vec<(String, [u8; 3])> = chart
        .series
        .iter()
        .filter(|s| !s.faint)
        .map(|s| (s.label.clone(), s.color))
        .collect();
    draw_legend(&mut img, &f, &legend);
    draw_frame_and_titles(&mut img, &f, &chart.title, &chart.x_label, &chart.y_label);
    img
}

/// One group of bars (one dataset/metric): a value per series (None = not measured),
/// with up to two label lines under it.
#[derive(Clone, Debug)]
pub struct BarGroup {
    pub labels: Vec<String>,
    pub values: Vec<Option<f64>>,
}

#[derive(Clone, Debug)]
pub struct BarChart {
    pub title: String,
    pub y_label: String,
    pub series: Vec<(String, [u8; 3])>,
    pub groups: Vec<BarGroup>,
    pub width: u32,
    pub height: u32,
}

/// Draw a grouped bar chart from 0 (values above each bar, labels under each group).
pub fn bar_chart(chart: &BarChart) -> RgbImage {
    let mut img = RgbImage::from_pixel(chart.width.max(200), chart.height.max(150), Rgb(BACKGROUND));
    let f = Frame {
        left: 78,
        top: 36,
        right: img.width() as i64 - 20,
        bottom: img.height() as i64 - 50,
    };
    let vmax = chart
        .groups
        .iter()
        .flat_map(|g| g.values.iter().flatten())
        .fold(0.0f64, |a, &b| a.max(b));
    // Room above the tallest bar for its value label and the legend.
    let hi = if vmax > 0.0 { vmax * 1.2 } else { 1.0 };
    let ymap = y_axis(&mut img, &f, 0.0, hi);
    draw_axes(&mut img, &f);
    let ng = chart.groups.len().max(1) as i64;
    let gw = (f.right - f.left) / ng;
    let ns = chart.series.len().max(1) as i64;
    let bw = ((gw - 16) / ns).clamp(2, 60);
    let max_chars = ((gw - 4) / 6).max(3) as usize;
    for (gi, g) in chart.groups.iter().enumerate() {
        let gx = f.left + gi as i64 * gw;
        let x0 = gx + (gw - bw * ns) / 2;
        for (si, v) in g.values.iter().enumerate() {
            let c = chart.series.get(si).map(|s| s.1).unwrap_or(PALETTE[si % PALETTE.len()]);
            let bx = x0 + si as i64 * bw;
            match v {
                Some(v) if v.is_finite() => {
                    let top = ymap(v.max(0.0));
                    fill_rect(&mut img, bx + 1, top, bx + bw - 2, f.bottom - 1, c);
                    let l = format!("{v:.1}");
                    if text_width(&l, 1) as i64 <= bw + 4 {
                        draw_text(
                            &mut img,
                            bx + bw / 2 - text_width(&l, 1) as i64 / 2,
                            top - 10,
                            &l,
                            1,
                            INK,
                        );
                    }
                }
                _ => {
                    let l = "N/A";
                    draw_text(
                        &mut img,
                        bx + bw / 2 - text_width(l, 1) as i64 / 2,
                        f.bottom - 10,
                        l,
                        1,
                        INK,
                    );
                }
            }
        }
        for (li, l) in g.labels.iter().take(3).enumerate() {
            let l = fit(l, max_chars);
            draw_text(
                &mut img,
                gx + gw / 2 - text_width(&l, 1) as i64 / 2,
                f.bottom + 8 + li as i64 * 11,
                &l,
                1,
                INK,
            );
        }
    }
    draw_legend(&mut img, &f, &chart.series);
    draw_frame_and_titles(&mut img, &f, &chart.title, "", &chart.y_label);
    img
}

/// PNG bytes of an image (`what` names it in the error).
pub fn encode_png(img: &RgbImage, what: &str) -> Result<Vec<u8>> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .map_err(|e| Error::io(what, format!("PNG encoding failed: {e}")))?;
    Ok(out.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_nice_and_cover_the_range() {
        let (t, s) = nice_ticks(0.0, 100.0, 6);
        assert_eq!(s, 20.0);
        assert_eq!(t, vec![0.0, 20.0, 40.0, 60.0, 80.0, 100.0]);
        let (t, s) = nice_ticks(0.13, 0.87, 5);
        assert!((s - 0.2).abs() < 1e-12, "{s}");
        assert_eq!(t.len(), 4);
        assert_eq!(tick_label(0.4, 0.2), "0.4");
        assert_eq!(tick_label(1500.0, 500.0), "1500");
    }

    #[test]
    fn text_is_drawn_and_fit_keeps_the_end() {
        let mut img = RgbImage::from_pixel(40, 10, Rgb(BACKGROUND));
        draw_text(&mut img, 0, 0, "a1%", 1, INK);
        assert!(img.pixels().any(|p| p.0 == INK));
        assert_eq!(fit("/data/sets/pets.csv", 10), "..pets.csv");
        assert_eq!(fit("pets", 10), "pets");
    }
}
