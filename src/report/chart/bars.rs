//! Grouped bar charts (before/after per dataset, one bar per method): bars from 0, the
//! value above each bar, up to three label lines under each group.
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{
    axis_range, drawable, finite_bounds, fit, no_data, rgb, text_at, text_style, text_width, tick_label, Header, GRID,
    INK, NOTE, PALETTE, SMALL_SIZE, TEXT_SIZE,
};

/// One group of bars (one dataset/metric): a value per series (None = not measured, drawn
/// as "n/a", as is a value that is not [`drawable`]), with up to three label lines under it.
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

const LABEL_LINE_H: u32 = 15;

pub(super) fn draw<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, chart: &BarChart) -> Result<(), String> {
    let mut notes = vec![];
    for (si, (name, _)) in chart.series.iter().enumerate() {
        let bad = chart
            .groups
            .iter()
            .filter(|g| matches!(g.values.get(si), Some(Some(v)) if !drawable(*v)))
            .count();
        if bad > 0 {
            notes.push(format!(
                "{bad} value(s) of \"{name}\" not finite or beyond ±1e15: shown as n/a"
            ));
        }
    }
    let values = || chart.groups.iter().flat_map(|g| g.values.iter().flatten().copied());
    let bounds = finite_bounds(values());
    // Bars start at 0; room above the tallest for its value label.
    let (y0, y1) = match bounds {
        Some((lo, hi)) => {
            let (lo, hi) = (lo.min(0.0), hi.max(0.0));
            if hi - lo < 1e-12 {
                axis_range(lo, hi, 0.0)
            } else {
                (
                    if lo < 0.0 { lo - 0.12 * (hi - lo) } else { 0.0 },
                    if hi > 0.0 { hi + 0.12 * (hi - lo) } else { 0.0 },
                )
            }
        }
        None => (0.0, 1.0),
    };
    let plot_area = Header {
        title: &chart.title,
        legend: chart.series.iter().map(|(l, c)| (l.clone(), rgb(*c))).collect(),
        notes,
    }
    .draw(area)?;
    let lines = chart.groups.iter().map(|g| g.labels.len().min(3)).max().unwrap_or(0) as u32;
    let ng = chart.groups.len().max(1);
    let mut ctx = ChartBuilder::on(&plot_area)
        .margin_left(8)
        .margin_right(20)
        .margin_top(6)
        .margin_bottom(4)
        .x_label_area_size(10 + LABEL_LINE_H * lines.max(1))
        .y_label_area_size(72)
        .build_cartesian_2d(0.0..ng as f64, y0..y1)
        .map_err(|e| e.to_string())?;
    let span = y1 - y0;
    let yf = move |v: &f64| tick_label(*v, span);
    ctx.configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_desc(chart.y_label.as_str())
        .y_label_formatter(&yf)
        .y_labels(6)
        .label_style(text_style(SMALL_SIZE, INK))
        .axis_desc_style(text_style(TEXT_SIZE, INK))
        .bold_line_style(GRID)
        .light_line_style(TRANSPARENT)
        .axis_style(INK)
        .draw()
        .map_err(|e| e.to_string())?;
    if chart.groups.is_empty() {
        let centre = ctx.backend_coord(&(0.5, (y0 + y1) / 2.0));
        return no_data(area, centre, "no values to draw");
    }
    let ns = chart
        .series
        .len()
        .max(chart.groups.iter().map(|g| g.values.len()).max().unwrap_or(1))
        .max(1);
    let group_px = {
        let (a, b) = (ctx.backend_coord(&(0.0, 0.0)), ctx.backend_coord(&(1.0, 0.0)));
        (b.0 - a.0).max(1) as u32
    };
    // Bars fill 80 % of a group's width, at most 60 px each.
    let bar_w = (0.8 / ns as f64).min(60.0 / group_px as f64);
    let base = 0.0f64.clamp(y0, y1);
    let value_style = text_style(SMALL_SIZE, INK).pos(Pos::new(HPos::Center, VPos::Bottom));
    let na_style = text_style(SMALL_SIZE, NOTE).pos(Pos::new(HPos::Center, VPos::Bottom));
    for (gi, g) in chart.groups.iter().enumerate() {
        let x_start = gi as f64 + 0.5 - bar_w * ns as f64 / 2.0;
        for (si, v) in g.values.iter().enumerate() {
            let c = chart.series.get(si).map(|s| s.1).unwrap_or(PALETTE[si % PALETTE.len()]);
            let (bx0, bx1) = (x_start + si as f64 * bar_w, x_start + (si + 1) as f64 * bar_w);
            let centre = (bx0 + bx1) / 2.0;
            match v {
                Some(v) if drawable(*v) => {
                    let inset = bar_w * 0.06;
                    ctx.draw_series(std::iter::once(Rectangle::new(
                        [(bx0 + inset, v.max(base)), (bx1 - inset, v.min(base))],
                        rgb(c).filled(),
                    )))
                    .map_err(|e| e.to_string())?;
                    let label = format!("{v:.1}");
                    let px = ctx.backend_coord(&(centre, v.max(base)));
                    if text_width(&label, SMALL_SIZE) <= (bar_w * group_px as f64) as u32 + 8 {
                        text_at(area, &label, &value_style, (px.0, px.1 - 2))?;
                    }
                }
                _ => {
                    let px = ctx.backend_coord(&(centre, base));
                    text_at(area, "n/a", &na_style, (px.0, px.1 - 2))?;
                }
            }
        }
        let under = ctx.backend_coord(&(gi as f64 + 0.5, y0));
        let label_style = text_style(SMALL_SIZE, INK).pos(Pos::new(HPos::Center, VPos::Top));
        for (li, l) in g.labels.iter().take(3).enumerate() {
            let l = fit(l, group_px.saturating_sub(6), SMALL_SIZE);
            text_at(
                area,
                &l,
                &label_style,
                (under.0, under.1 + 6 + (li as u32 * LABEL_LINE_H) as i32),
            )?;
        }
    }
    Ok(())
}
