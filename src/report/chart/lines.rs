//! Line charts (training curves): one line per series against a shared x axis, a marker at
//! each point when a series is short, raw values drawn faint behind a smoothed line.
use plotters::coord::Shift;
use plotters::prelude::*;

use super::{axes, axis_range, drawable, finite_bounds, no_data, rgb, Header};

/// One line of a [`LineChart`]. A point whose x or y is not [`drawable`] is not drawn and
/// breaks the line; the chart says how many were skipped.
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

/// A centred moving average over `window` points (for noisy loss curves); points that are
/// not finite are left out of it.
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

/// Runs of consecutive drawable points (each run is drawn as one unbroken line).
fn runs(points: &[(f64, f64)]) -> Vec<Vec<(f64, f64)>> {
    let mut out = vec![];
    let mut cur = vec![];
    for &(x, y) in points {
        if drawable(x) && drawable(y) {
            cur.push((x, y));
        } else if !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn pale(c: [u8; 3]) -> RGBColor {
    let c = c.map(|v| (v as f32 + (255.0 - v as f32) * 0.65).round() as u8);
    rgb(c)
}

pub(super) fn draw<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, chart: &LineChart) -> Result<(), String> {
    let mut notes = vec![];
    for s in &chart.series {
        let bad = s.points.iter().filter(|(x, y)| !(drawable(*x) && drawable(*y))).count();
        if bad > 0 {
            let name = if s.label.is_empty() { "a faint series" } else { &s.label };
            notes.push(format!(
                "{bad} point(s) of \"{name}\" missing, not finite or beyond ±1e15: not drawn"
            ));
        }
    }
    let all = || chart.series.iter().flat_map(|s| s.points.iter());
    let fx = all().filter(|p| drawable(p.1)).map(|p| p.0);
    let fy = all().filter(|p| drawable(p.0)).map(|p| p.1);
    let (x0, x1) = match chart.x_range.filter(|&(a, b)| drawable(a) && drawable(b) && b > a) {
        Some(r) => r,
        None => finite_bounds(fx).map_or((0.0, 1.0), |(a, b)| axis_range(a, b, 0.0)),
    };
    let ybounds = finite_bounds(fy);
    let (y0, y1) = ybounds.map_or((0.0, 1.0), |(a, b)| axis_range(a, b, 0.06));
    let legend = chart
        .series
        .iter()
        .filter(|s| !s.faint && !s.label.is_empty())
        .map(|s| (s.label.clone(), rgb(s.color)))
        .collect();
    let plot_area = Header {
        title: &chart.title,
        legend,
        notes,
    }
    .draw(area)?;
    let mut ctx = axes(&plot_area, (x0, x1), (y0, y1), &chart.x_label, &chart.y_label)?;
    if ybounds.is_none() {
        let centre = ctx.backend_coord(&((x0 + x1) / 2.0, (y0 + y1) / 2.0));
        return no_data(area, centre, "no finite values to draw");
    }
    // Faint series first so the strong lines are drawn over them.
    let mut order: Vec<&Series> = chart.series.iter().collect();
    order.sort_by_key(|s| !s.faint);
    for s in order {
        let pieces = runs(&s.points);
        let n: usize = pieces.iter().map(Vec::len).sum();
        let style = if s.faint {
            pale(s.color).stroke_width(1)
        } else {
            rgb(s.color).stroke_width(2)
        };
        for piece in &pieces {
            ctx.draw_series(LineSeries::new(piece.iter().copied(), style))
                .map_err(|e| e.to_string())?;
        }
        if !s.faint && n <= 60 {
            let c = rgb(s.color).filled();
            ctx.draw_series(pieces.iter().flatten().map(|&p| Circle::new(p, 3, c)))
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_break_at_non_finite_points() {
        let r = runs(&[
            (0.0, 1.0),
            (1.0, f64::NAN),
            (2.0, 3.0),
            (3.0, 4.0),
            (f64::INFINITY, 1.0),
        ]);
        assert_eq!(r, vec![vec![(0.0, 1.0)], vec![(2.0, 3.0), (3.0, 4.0)]]);
    }

    #[test]
    fn smoothing_averages_and_skips_nan() {
        let s = smooth(&[(0.0, 1.0), (1.0, f64::NAN), (2.0, 3.0), (3.0, 5.0)], 3);
        assert_eq!(s, vec![(0.0, 2.0), (2.0, 3.0), (3.0, 4.0)]);
    }
}
