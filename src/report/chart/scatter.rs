//! Labelled scatter plots (the demo's frontier: one point per method). Each point carries
//! its name next to it, placed where it overlaps no other label or marker when possible
//! (with a thin leader line when it had to move away); a baseline point gets dashed guide
//! lines through it, so the four quadrants read as better/worse than doing nothing.
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{
    axes, axis_range, drawable, finite_bounds, no_data, rgb, text_at, text_style, text_width, Header, INK, TEXT_SIZE,
};

#[derive(Clone, Debug)]
pub struct ScatterPoint {
    pub label: String,
    pub x: f64,
    pub y: f64,
    pub color: [u8; 3],
    /// The reference point (drawn as a larger hollow marker, with guide lines through it).
    pub baseline: bool,
}

#[derive(Clone, Debug)]
pub struct ScatterChart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub points: Vec<ScatterPoint>,
    pub width: u32,
    pub height: u32,
}

type Box2 = (i32, i32, i32, i32);

fn overlaps(a: Box2, b: Box2) -> bool {
    a.0 < b.2 && b.0 < a.2 && a.1 < b.3 && b.1 < a.3
}

/// Label boxes (left, top, right, bottom in pixels) for points at `at`, each `sizes` big:
/// the first candidate position (right of the point, left of it, then further up or down)
/// inside `frame` that overlaps no placed label and no marker; failing that, right of it.
fn place_labels(at: &[(i32, i32)], sizes: &[(i32, i32)], frame: Box2) -> Vec<Box2> {
    // Wide enough for the baseline's larger ring.
    let markers: Vec<Box2> = at.iter().map(|&(x, y)| (x - 8, y - 8, x + 8, y + 8)).collect();
    let mut placed: Vec<Box2> = vec![];
    for (i, (&(x, y), &(w, h))) in at.iter().zip(sizes).enumerate() {
        let mut candidates = vec![];
        for k in 0..8i32 {
            let dy = (k + 1) / 2 * (h + 2) * if k % 2 == 1 { -1 } else { 1 };
            candidates.push((x + 10, y - h / 2 + dy));
            candidates.push((x - 10 - w, y - h / 2 + dy));
        }
        let fits = |&(l, t): &(i32, i32)| {
            let b = (l, t, l + w, t + h);
            b.0 >= frame.0
                && b.1 >= frame.1
                && b.2 <= frame.2
                && b.3 <= frame.3
                && !placed.iter().any(|p| overlaps(*p, b))
                && !markers.iter().enumerate().any(|(j, m)| j != i && overlaps(*m, b))
        };
        let (l, t) = candidates.iter().copied().find(fits).unwrap_or(candidates[0]);
        placed.push((l, t, l + w, t + h));
    }
    placed
}

pub(super) fn draw<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, chart: &ScatterChart) -> Result<(), String> {
    let (good, bad): (Vec<&ScatterPoint>, Vec<&ScatterPoint>) =
        chart.points.iter().partition(|p| drawable(p.x) && drawable(p.y));
    let notes = if bad.is_empty() {
        vec![]
    } else {
        let names: Vec<&str> = bad.iter().map(|p| p.label.as_str()).collect();
        vec![format!("not finite or beyond ±1e15, not drawn: {}", names.join(", "))]
    };
    let xb = finite_bounds(good.iter().map(|p| p.x));
    let yb = finite_bounds(good.iter().map(|p| p.y));
    let (x0, x1) = xb.map_or((0.0, 1.0), |(a, b)| axis_range(a, b, 0.15));
    let (y0, y1) = yb.map_or((0.0, 1.0), |(a, b)| axis_range(a, b, 0.12));
    let plot_area = Header {
        title: &chart.title,
        legend: vec![],
        notes,
    }
    .draw(area)?;
    let mut ctx = axes(&plot_area, (x0, x1), (y0, y1), &chart.x_label, &chart.y_label)?;
    if good.is_empty() {
        let centre = ctx.backend_coord(&((x0 + x1) / 2.0, (y0 + y1) / 2.0));
        return no_data(area, centre, "no finite points to draw");
    }
    let guide = RGBColor(150, 150, 150).stroke_width(1);
    for b in good.iter().filter(|p| p.baseline) {
        for line in [[(b.x, y0), (b.x, y1)], [(x0, b.y), (x1, b.y)]] {
            ctx.draw_series(DashedLineSeries::new(line, 6, 4, guide))
                .map_err(|e| e.to_string())?;
        }
    }
    for p in &good {
        let c = rgb(p.color);
        let series = if p.baseline {
            ctx.draw_series(std::iter::once(Circle::new((p.x, p.y), 7, c.stroke_width(2))))
        } else {
            ctx.draw_series(std::iter::once(Circle::new((p.x, p.y), 5, c.filled())))
        };
        series.map_err(|e| e.to_string())?;
    }
    let at: Vec<(i32, i32)> = good.iter().map(|p| ctx.backend_coord(&(p.x, p.y))).collect();
    let sizes: Vec<(i32, i32)> = good
        .iter()
        .map(|p| (text_width(&p.label, TEXT_SIZE) as i32, 16))
        .collect();
    let (l, t) = ctx.backend_coord(&(x0, y1));
    let (r, b) = ctx.backend_coord(&(x1, y0));
    let boxes = place_labels(&at, &sizes, (l, t, r, b));
    let style = text_style(TEXT_SIZE, INK).pos(Pos::new(HPos::Left, VPos::Top));
    let (ox, oy) = area.get_base_pixel();
    let leader = RGBColor(160, 160, 160).stroke_width(1);
    for ((p, &(px, py)), bx) in good.iter().zip(&at).zip(&boxes) {
        let cy = (bx.1 + bx.3) / 2;
        if (cy - py).abs() > 2 {
            // The label had to move away from its point: connect the two.
            let edge = if bx.0 > px { bx.0 } else { bx.2 };
            area.draw(&PathElement::new(
                vec![(px - ox, py - oy), (edge - ox, cy - oy)],
                leader,
            ))
            .map_err(|e| e.to_string())?;
        }
        text_at(area, &p.label, &style, (bx.0, bx.1))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_of_close_points_do_not_overlap() {
        let at = [(100, 100), (102, 104), (104, 98)];
        let sizes = [(60, 16); 3];
        let boxes = place_labels(&at, &sizes, (0, 0, 400, 300));
        for i in 0..3 {
            for j in 0..i {
                assert!(!overlaps(boxes[i], boxes[j]), "{:?} {:?}", boxes[i], boxes[j]);
            }
        }
    }

    #[test]
    fn labels_stay_inside_the_frame_when_they_can() {
        // A point at the right edge gets its label on the left.
        let boxes = place_labels(&[(395, 150)], &[(60, 16)], (0, 0, 400, 300));
        assert!(boxes[0].2 <= 400 && boxes[0].0 < 395, "{:?}", boxes[0]);
    }
}
