//! Report pictures drawn with `plotters`: each [`Figure`] is rendered twice from the same
//! drawing code, as a PNG (written next to the page, names unchanged) and as an SVG string
//! (inlined in the HTML, so its text stays real text). Text uses the embedded DejaVu Sans
//! ([`font`]), never a system font.
//!
//! Values that are not finite, or beyond ±[`LIMIT`] (plotters' tick search does not end on
//! such ranges), never reach plotters: they are skipped and the chart says so in a visible
//! note under its title (a line breaks at a skipped point; a bar shows "n/a").
//! Empty charts and degenerate ranges (one point, all values equal) get a padded range, so
//! every input gives a picture rather than a panic inside plotters.
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::error::{Error, Result};
use crate::report::html;

pub mod bars;
pub mod font;
pub mod lines;
mod raster;
pub mod scatter;

pub use bars::{BarChart, BarGroup};
pub use lines::{smooth, LineChart, Series};
pub use scatter::{ScatterChart, ScatterPoint};

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
pub(crate) const INK: RGBColor = RGBColor(30, 30, 30);
pub(crate) const GRID: RGBColor = RGBColor(225, 225, 225);
/// Notes about skipped values: dark red, so they are not mistaken for data labels.
pub(crate) const NOTE: RGBColor = RGBColor(170, 30, 30);

pub(crate) const TITLE_SIZE: f64 = 20.0;
pub(crate) const TEXT_SIZE: f64 = 14.0;
pub(crate) const SMALL_SIZE: f64 = 12.0;
/// Height of one header row (legend row or note line), in pixels.
const ROW_H: u32 = 18;

/// The largest magnitude a chart draws.
pub const LIMIT: f64 = 1e15;

/// Whether `v` can be drawn: finite and within ±[`LIMIT`].
pub fn drawable(v: f64) -> bool {
    v.is_finite() && v.abs() <= LIMIT
}

pub(crate) fn rgb(c: [u8; 3]) -> RGBColor {
    RGBColor(c[0], c[1], c[2])
}

/// One picture, possibly several panels stacked top to bottom.
#[derive(Clone, Debug)]
pub enum Figure {
    Lines(LineChart),
    Bars(BarChart),
    Scatter(ScatterChart),
    /// Panels one under the other, each at its own height; the width is the widest panel's.
    Stack(Vec<Figure>),
}

impl Figure {
    /// Pixel size, never below 200 x 150 (room for the axes and their titles).
    pub fn size(&self) -> (u32, u32) {
        match self {
            Figure::Lines(c) => (c.width.max(200), c.height.max(150)),
            Figure::Bars(c) => (c.width.max(200), c.height.max(150)),
            Figure::Scatter(c) => (c.width.max(200), c.height.max(150)),
            Figure::Stack(panels) => {
                let sizes: Vec<(u32, u32)> = panels.iter().map(Figure::size).collect();
                let w = sizes.iter().map(|s| s.0).max().unwrap_or(200);
                let h: u32 = sizes.iter().map(|s| s.1).sum();
                (w, h.max(150))
            }
        }
    }

    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> std::result::Result<(), String> {
        match self {
            Figure::Lines(c) => lines::draw(area, c),
            Figure::Bars(c) => bars::draw(area, c),
            Figure::Scatter(c) => scatter::draw(area, c),
            Figure::Stack(panels) => {
                let mut rest = area.clone();
                for p in panels {
                    let (top, bottom) = rest.split_vertically(p.size().1);
                    p.draw(&top)?;
                    rest = bottom;
                }
                Ok(())
            }
        }
    }
}

/// A rendered figure: PNG bytes for the file next to the page, SVG text for the page.
#[derive(Clone, Debug)]
pub struct Picture {
    pub width: u32,
    pub height: u32,
    pub png: Vec<u8>,
    pub svg: String,
}

/// Draw `fig` as PNG and SVG; `what` (usually the PNG's path) names it in any error.
pub fn render(fig: &Figure, what: &str) -> Result<Picture> {
    font::ensure_registered()?;
    let (w, h) = fig.size();
    let fail = |e: String| Error::invalid(format!("{what}: drawing the chart failed: {e}"));
    let mut rgb_buf = vec![0u8; w as usize * h as usize * 3];
    {
        let root = raster::GlyphText::new(BitMapBackend::with_buffer(&mut rgb_buf, (w, h)))
            .map_err(fail)?
            .into_drawing_area();
        root.fill(&rgb(BACKGROUND)).map_err(|e| fail(e.to_string()))?;
        fig.draw(&root).map_err(fail)?;
        root.present().map_err(|e| fail(e.to_string()))?;
    }
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
        root.fill(&rgb(BACKGROUND)).map_err(|e| fail(e.to_string()))?;
        fig.draw(&root).map_err(fail)?;
        root.present().map_err(|e| fail(e.to_string()))?;
    }
    let img = image::RgbImage::from_raw(w, h, rgb_buf)
        .ok_or_else(|| fail("the pixel buffer does not match the picture size".into()))?;
    Ok(Picture {
        width: w,
        height: h,
        png: encode_png(&img, what)?,
        svg,
    })
}

/// PNG bytes of an image (`what` names it in the error).
pub fn encode_png(img: &image::RgbImage, what: &str) -> Result<Vec<u8>> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .map_err(|e| Error::io(what, format!("PNG encoding failed: {e}")))?;
    Ok(out.into_inner())
}

/// An SVG from [`render`] ready to sit inside an HTML page: any XML declaration dropped,
/// and `alt` (already HTML-escaped) as its accessible name.
pub fn inline_svg(svg: &str, alt_escaped: &str) -> String {
    let body = match svg.trim_start().strip_prefix("<?xml") {
        Some(rest) => rest.split_once("?>").map_or(rest, |(_, r)| r).trim_start(),
        None => svg.trim_start(),
    };
    match body.strip_prefix("<svg") {
        Some(rest) => format!("<svg role=\"img\" aria-label=\"{alt_escaped}\"{rest}"),
        None => body.to_string(),
    }
}

/// An SVG from [`render`] as a file of its own (`loss_curve.svg` beside its PNG): an XML
/// declaration, and `title` (plain text) as the `<title>` viewers show and screen readers read.
pub fn standalone_svg(svg: &str, title: &str) -> String {
    let body = svg.trim_start();
    let title = format!("<title>{}</title>\n", html::esc(title));
    let with_title = match body.find('>') {
        Some(end) if body.starts_with("<svg") => format!("{}\n{title}{}", &body[..=end], body[end + 1..].trim_start()),
        _ => body.to_string(),
    };
    format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{with_title}")
}

// ------------------------------------------------------------ shared drawing helpers

/// The plot area's x-y axes in the charts' one style: labelled ticks, a light grid, the
/// axis descriptions (the line chart and the scatter share it).
pub(crate) fn axes<'a, DB: DrawingBackend>(
    plot_area: &'a DrawingArea<DB, Shift>,
    (x0, x1): (f64, f64),
    (y0, y1): (f64, f64),
    x_label: &str,
    y_label: &str,
) -> std::result::Result<ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>, String> {
    let mut ctx = ChartBuilder::on(plot_area)
        .margin_left(8)
        .margin_right(20)
        .margin_top(6)
        .margin_bottom(6)
        .x_label_area_size(44)
        .y_label_area_size(72)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(|e| e.to_string())?;
    let (xs, ys) = (x1 - x0, y1 - y0);
    let xf = move |v: &f64| tick_label(*v, xs);
    let yf = move |v: &f64| tick_label(*v, ys);
    ctx.configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .x_label_formatter(&xf)
        .y_label_formatter(&yf)
        .x_labels(8)
        .y_labels(6)
        .label_style(text_style(SMALL_SIZE, INK))
        .axis_desc_style(text_style(TEXT_SIZE, INK))
        .bold_line_style(GRID)
        .light_line_style(TRANSPARENT)
        .axis_style(INK)
        .draw()
        .map_err(|e| e.to_string())?;
    Ok(ctx)
}

pub(crate) fn text_style(size: f64, colour: RGBColor) -> TextStyle<'static> {
    (font::FAMILY, size).into_font().color(&colour)
}

/// Width in pixels of `text` in the embedded font (an estimate of 0.6 em per character if
/// the font cannot lay it out).
pub(crate) fn text_width(text: &str, size: f64) -> u32 {
    (font::FAMILY, size)
        .into_font()
        .box_size(text)
        .map(|(w, _)| w)
        .unwrap_or((text.chars().count() as f64 * size * 0.6) as u32)
}

/// Shorten `s` until it fits `max_px` at `size`, keeping its end (file names are at the end
/// of paths) behind "…".
pub fn fit(s: &str, max_px: u32, size: f64) -> String {
    if text_width(s, size) <= max_px {
        return s.to_string();
    }
    let chars: Vec<char> = s.chars().collect();
    for skip in 1..chars.len() {
        let t = format!("…{}", chars[skip..].iter().collect::<String>());
        if text_width(&t, size) <= max_px {
            return t;
        }
    }
    "…".into()
}

/// `lo..hi` made safe for plotters: finite, non-empty (a single value or all-equal values
/// get a span around them; no values at all give 0..1), widened by `pad` of the span on
/// each side.
pub(crate) fn axis_range(lo: f64, hi: f64, pad: f64) -> (f64, f64) {
    if !(drawable(lo) && drawable(hi)) || lo > hi {
        return (0.0, 1.0);
    }
    let span = hi - lo;
    // Spans this small against the values' size give ticks that differ only past f64
    // precision (and plotters' tick search may not end): treat them as all-equal.
    if span <= lo.abs().max(hi.abs()) * 1e-6 || span < 1e-12 {
        let d = if lo.abs() > 1e-9 { lo.abs() * 0.1 } else { 1.0 };
        return (lo - d, hi + d);
    }
    (lo - span * pad, hi + span * pad)
}

/// Min and max of the drawable values, None when there are none.
pub(crate) fn finite_bounds(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values.filter(|v| drawable(*v)).fold(None, |acc, v| {
        Some(acc.map_or((v, v), |(a, b): (f64, f64)| (a.min(v), b.max(v))))
    })
}

/// A tick label with as many decimals as an axis spanning `span` needs.
pub(crate) fn tick_label(v: f64, span: f64) -> String {
    let decimals = if span > 0.0 && span.is_finite() {
        (1.0 - span.log10().floor()).clamp(0.0, 6.0) as usize
    } else {
        2
    };
    let v = if v.abs() < 10f64.powi(-(decimals as i32)) / 2.0 {
        0.0
    } else {
        v
    };
    if v != 0.0 && v.abs() >= 1e6 {
        return format!("{v:.2e}");
    }
    format!("{v:.decimals$}")
}

/// What goes above a chart's plot: its title, legend entries packed into rows, and notes.
pub(crate) struct Header<'a> {
    pub title: &'a str,
    pub legend: Vec<(String, RGBColor)>,
    pub notes: Vec<String>,
}

impl Header<'_> {
    fn rows(&self, width: u32) -> Vec<Vec<usize>> {
        let limit = width.saturating_sub(40);
        let mut rows: Vec<Vec<usize>> = vec![];
        let mut used = 0;
        for (i, (label, _)) in self.legend.iter().enumerate() {
            let w = entry_width(label);
            match rows.last_mut() {
                Some(r) if used + w <= limit => {
                    r.push(i);
                    used += w;
                }
                _ => {
                    rows.push(vec![i]);
                    used = w;
                }
            }
        }
        rows
    }

    /// Draw the header at the top of `area` and return the area left for the plot.
    pub fn draw<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
    ) -> std::result::Result<DrawingArea<DB, Shift>, String> {
        let (w, _) = area.dim_in_pixel();
        let rows = self.rows(w);
        let height = 34 + ROW_H * (rows.len() + self.notes.len()) as u32;
        let (top, rest) = area.split_vertically(height);
        let centre = Pos::new(HPos::Center, VPos::Top);
        top.draw_text(
            &fit(self.title, w.saturating_sub(10), TITLE_SIZE),
            &text_style(TITLE_SIZE, INK).pos(centre),
            (w as i32 / 2, 8),
        )
        .map_err(|e| e.to_string())?;
        let mut y = 34i32;
        for row in &rows {
            let total: u32 = row.iter().map(|&i| entry_width(&self.legend[i].0)).sum();
            let mut x = (w as i32 - total as i32) / 2;
            for &i in row {
                let (label, colour) = &self.legend[i];
                top.draw(&Rectangle::new([(x, y + 3), (x + 14, y + 12)], colour.filled()))
                    .map_err(|e| e.to_string())?;
                top.draw_text(
                    label,
                    &text_style(TEXT_SIZE, INK).pos(Pos::new(HPos::Left, VPos::Top)),
                    (x + 19, y),
                )
                .map_err(|e| e.to_string())?;
                x += entry_width(label) as i32;
            }
            y += ROW_H as i32;
        }
        for note in &self.notes {
            top.draw_text(
                &fit(note, w.saturating_sub(20), SMALL_SIZE),
                &text_style(SMALL_SIZE, NOTE).pos(centre),
                (w as i32 / 2, y + 2),
            )
            .map_err(|e| e.to_string())?;
            y += ROW_H as i32;
        }
        Ok(rest)
    }
}

fn entry_width(label: &str) -> u32 {
    19 + text_width(label, TEXT_SIZE) + 22
}

/// Text at `pos` given in absolute backend pixels (as [`ChartContext::backend_coord`]
/// returns them) on `area`, whose own origin may not be the picture's.
pub(crate) fn text_at<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    text: &str,
    style: &TextStyle,
    pos: (i32, i32),
) -> std::result::Result<(), String> {
    let (bx, by) = area.get_base_pixel();
    area.draw_text(text, style, (pos.0 - bx, pos.1 - by))
        .map_err(|e| e.to_string())
}

/// A "no data" message in the middle of a plot that has nothing to show.
pub(crate) fn no_data<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    centre: (i32, i32),
    what: &str,
) -> std::result::Result<(), String> {
    text_at(
        area,
        what,
        &text_style(TEXT_SIZE, NOTE).pos(Pos::new(HPos::Center, VPos::Center)),
        centre,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_never_empty_or_infinite() {
        assert_eq!(axis_range(f64::INFINITY, 1.0, 0.1), (0.0, 1.0));
        assert_eq!(axis_range(5.0, 1.0, 0.1), (0.0, 1.0));
        let (a, b) = axis_range(0.0, 0.0, 0.1);
        assert!(a < 0.0 && b > 0.0);
        let (a, b) = axis_range(50.0, 50.0, 0.1);
        assert!(a < 50.0 && b > 50.0, "{a} {b}");
        let (a, b) = axis_range(0.0, 10.0, 0.1);
        assert_eq!((a, b), (-1.0, 11.0));
        assert_eq!(
            finite_bounds([f64::NAN, 2.0, -1.0, f64::INFINITY].into_iter()),
            Some((-1.0, 2.0))
        );
        assert_eq!(finite_bounds([f64::NAN].into_iter()), None);
    }

    #[test]
    fn tick_labels_follow_the_span() {
        assert_eq!(tick_label(0.4, 1.0), "0.4");
        assert_eq!(tick_label(0.85, 0.15), "0.85");
        assert_eq!(tick_label(1500.0, 3000.0), "1500");
        assert_eq!(tick_label(80.0, 30.0), "80");
        assert_eq!(tick_label(1e-12, 1.0), "0.0");
    }

    #[test]
    fn fit_keeps_the_end() {
        font::ensure_registered().unwrap();
        let s = "/data/sets/a-long-directory-name/pets.csv";
        let f = fit(s, text_width("…pets.csv", TEXT_SIZE) + 2, TEXT_SIZE);
        assert!(f.starts_with('…') && f.ends_with("pets.csv"), "{f}");
        assert_eq!(fit("pets", 500, TEXT_SIZE), "pets");
    }
}
