//! The report pictures (plotters + the embedded font): each chart kind renders to a PNG of
//! the promised size with real drawn content and to an SVG whose titles, axis titles and
//! series/method names are <text>; the demo frontier labels every row once; degenerate
//! inputs (empty, one point, all equal, not finite, huge) give a picture, never a panic.
use std::collections::HashSet;
use std::path::PathBuf;

use cliptune::demo::{frontier, DemoRow};
use cliptune::report::chart::{self, BarChart, BarGroup, Figure, LineChart, Picture, Series, PALETTE};

fn tmp(name: &str) -> PathBuf {
    // A fresh directory per call, never one shared by the tests of this process.
    tempfile::Builder::new()
        .prefix(&format!("cliptune-charts-{name}-"))
        .tempdir()
        .unwrap()
        .keep()
}

/// Render `fig`, write its PNG into a fresh directory and decode it back from the file.
fn draw(name: &str, fig: &Figure) -> (Picture, image::RgbImage) {
    let p = tmp(name).join(format!("{name}.png"));
    let pic = chart::render(fig, &p.display().to_string()).unwrap();
    std::fs::write(&p, &pic.png).unwrap();
    let img = image::open(&p).unwrap().to_rgb8();
    assert_eq!((img.width(), img.height()), (pic.width, pic.height));
    (pic, img)
}

fn distinct_colours(img: &image::RgbImage) -> usize {
    img.pixels().map(|p| p.0).collect::<HashSet<_>>().len()
}

fn count_colour(img: &image::RgbImage, c: [u8; 3]) -> usize {
    img.pixels().filter(|p| p.0 == c).count()
}

/// The text content of every <text> element, entities decoded.
fn texts(svg: &str) -> Vec<String> {
    svg.split("<text")
        .skip(1)
        .filter_map(|t| {
            let body = t.split_once('>')?.1;
            let content = body.split_once("</text>")?.0;
            Some(
                content
                    .trim()
                    .replace("&lt;", "<")
                    .replace("&gt;", ">")
                    .replace("&quot;", "\"")
                    .replace("&apos;", "'")
                    .replace("&#39;", "'")
                    .replace("&amp;", "&"),
            )
        })
        .collect()
}

/// Well-formed enough for a browser's XML parser: one <svg> root, every element closed in
/// order, quoted attributes, no bare '<' or '&' in text.
fn assert_xmlish(svg: &str) {
    let s = svg.trim();
    let s = match s.strip_prefix("<?xml") {
        Some(r) => r.split_once("?>").unwrap().1.trim_start(),
        None => s,
    };
    assert!(s.starts_with("<svg") && s.ends_with("</svg>"), "not one <svg> element");
    let mut stack: Vec<String> = vec![];
    let mut rest = s;
    while let Some(i) = rest.find(['<', '&']) {
        let (text, tail) = rest.split_at(i);
        assert!(!text.contains('>'), "stray '>' in text: {text:?}");
        if tail.starts_with('&') {
            let end = tail.find(';').expect("unterminated entity");
            let ent = &tail[1..end];
            assert!(
                ["lt", "gt", "amp", "quot", "apos"].contains(&ent) || ent.starts_with('#'),
                "unknown entity &{ent};"
            );
            rest = &tail[end + 1..];
            continue;
        }
        let end = tail.find('>').expect("unterminated tag");
        let tag = &tail[1..end];
        assert_eq!(tag.matches('"').count() % 2, 0, "unbalanced quotes in <{tag}>");
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(stack.pop().as_deref(), Some(name.trim()), "mismatched </{name}>");
        } else if !tag.ends_with('/') {
            let name = tag.split_whitespace().next().unwrap().to_string();
            stack.push(name);
        }
        rest = &tail[end + 1..];
    }
    assert!(stack.is_empty(), "unclosed elements: {stack:?}");
}

fn line(title: &str, series: Vec<Series>) -> Figure {
    Figure::Lines(LineChart {
        title: title.into(),
        x_label: "step".into(),
        y_label: "loss (nats)".into(),
        series,
        x_range: None,
        width: 640,
        height: 360,
    })
}

fn series(label: &str, points: Vec<(f64, f64)>, colour: usize) -> Series {
    Series {
        label: label.into(),
        points,
        color: PALETTE[colour],
        faint: false,
    }
}

#[test]
fn line_chart_has_real_text_and_drawn_lines() {
    let loss: Vec<(f64, f64)> = (0..200)
        .map(|i| (i as f64, 3.0 * (-(i as f64) / 60.0).exp() + 0.2))
        .collect();
    let fig = line(
        "Training loss",
        vec![
            Series {
                label: String::new(),
                points: loss.clone(),
                color: PALETTE[0],
                faint: true,
            },
            series("loss (mean of 5)", chart::smooth(&loss, 5), 0),
            series("eval top-1 & <more>", vec![(0.0, 1.0), (100.0, 2.0), (199.0, 2.5)], 1),
        ],
    );
    let (pic, img) = draw("lines", &fig);
    assert_eq!((pic.width, pic.height), (640, 360));
    assert!(
        distinct_colours(&img) > 20,
        "PNG nearly blank: {} colours",
        distinct_colours(&img)
    );
    assert!(count_colour(&img, PALETTE[0]) > 300, "no loss line");
    assert!(count_colour(&img, PALETTE[1]) > 30, "no second series");
    assert_xmlish(&pic.svg);
    let t = texts(&pic.svg);
    for want in [
        "Training loss",
        "step",
        "loss (nats)",
        "loss (mean of 5)",
        "eval top-1 & <more>",
    ] {
        assert!(t.iter().any(|x| x == want), "no <text> {want:?} in {t:?}");
    }
    // The faint raw series has no legend entry.
    assert!(!t.iter().any(|x| x.is_empty()));
    // Tick labels are text too.
    assert!(t.iter().any(|x| x.parse::<f64>().is_ok()), "no numeric tick labels");
}

#[test]
fn bar_chart_labels_groups_values_and_missing_values() {
    let fig = Figure::Bars(BarChart {
        title: "Before / after per dataset".into(),
        y_label: "accuracy / recall (%)".into(),
        series: vec![("before".into(), [120, 144, 176]), ("after".into(), PALETTE[1])],
        groups: vec![
            BarGroup {
                labels: vec!["pets".into(), "zero-shot top-1".into(), "target".into()],
                values: vec![Some(40.0), Some(72.5)],
            },
            BarGroup {
                labels: vec!["coco".into(), "image→text R@1".into(), "retention".into()],
                values: vec![Some(55.0), None],
            },
        ],
        width: 600,
        height: 380,
    });
    let (pic, img) = draw("bars", &fig);
    assert_eq!((img.width(), img.height()), (600, 380));
    assert!(count_colour(&img, PALETTE[1]) > 500, "no 'after' bar");
    assert!(count_colour(&img, [120, 144, 176]) > 500, "no 'before' bars");
    assert_xmlish(&pic.svg);
    let t = texts(&pic.svg);
    for want in [
        "Before / after per dataset",
        "accuracy / recall (%)",
        "before",
        "after",
        "pets",
        "image→text R@1",
        "retention",
        "72.5",
        "n/a",
    ] {
        assert!(t.iter().any(|x| x == want), "no <text> {want:?} in {t:?}");
    }
}

fn row(key: &str, method: &str, top1: f32, retention: f32) -> DemoRow {
    DemoRow {
        key: key.into(),
        method: method.into(),
        trainable: 0,
        train_seconds: 0.0,
        steps: 0,
        target_top1: top1,
        heldout_top1: 0.5,
        heldout_r1: 0.5,
        zero_shot_retention: retention,
        retrieval_retention: 1.0,
        note: String::new(),
        adapter: None,
    }
}

#[test]
fn frontier_labels_every_method_once_with_axis_titles() {
    // Several rows share retention 1.0 and nearly the same top-1: their labels must still
    // all be there.
    let rows = vec![
        row("zero-shot", "zero-shot", 0.62, 1.0),
        row("prompt", "CoOp prompt", 0.80, 0.97),
        row("linear-probe", "linear probe", 0.84, 1.0),
        row("lora-text", "LoRA text", 0.83, 0.91),
        row("lora-both", "LoRA both", 0.86, 0.85),
        row("textual-inversion", "textual inversion", 0.63, 1.0),
        row("full", "full + WiSE-FT", 0.87, 0.88),
    ];
    let fig = Figure::Scatter(frontier(&rows));
    let (pic, img) = draw("frontier", &fig);
    assert!(distinct_colours(&img) > 20);
    assert_xmlish(&pic.svg);
    let t = texts(&pic.svg);
    let sc = frontier(&rows);
    for want in [sc.x_label.as_str(), sc.y_label.as_str(), sc.title.as_str()] {
        assert!(t.iter().any(|x| x == want), "no <text> {want:?}");
    }
    assert!(
        sc.x_label.contains("retention") && sc.y_label.contains("(%)"),
        "axis titles need units"
    );
    for r in &rows {
        let n = t
            .iter()
            .filter(|x| **x == r.method || **x == format!("{} (baseline)", r.method))
            .count();
        assert_eq!(n, 1, "{:?} labelled {n} times in {t:?}", r.method);
    }
    assert!(t.iter().any(|x| x == "zero-shot (baseline)"));
    // One marker per row.
    assert_eq!(pic.svg.matches("<circle").count(), rows.len());
    // Each method's marker colour is in the PNG.
    for (i, _) in rows.iter().enumerate() {
        assert!(
            count_colour(&img, PALETTE[i % PALETTE.len()]) > 10,
            "no marker for row {i}"
        );
    }
}

fn assert_valid(name: &str, fig: &Figure) -> Vec<String> {
    let (pic, img) = draw(name, fig);
    assert!(distinct_colours(&img) > 5, "{name}: PNG blank");
    assert_xmlish(&pic.svg);
    texts(&pic.svg)
}

#[test]
fn degenerate_line_charts_draw_without_panicking() {
    let cases: Vec<(&str, Vec<Series>)> = vec![
        ("no-series", vec![]),
        ("empty-series", vec![series("loss", vec![], 0)]),
        ("one-point", vec![series("loss", vec![(3.0, 0.5)], 0)]),
        (
            "all-equal",
            vec![series("loss", vec![(0.0, 2.0), (1.0, 2.0), (2.0, 2.0)], 0)],
        ),
        ("same-step", vec![series("loss", vec![(5.0, 1.0), (5.0, 2.0)], 0)]),
        (
            "extreme",
            vec![series("loss", vec![(0.0, -f64::MAX), (1.0, f64::MAX), (2.0, 1.0)], 0)],
        ),
        ("at-the-limit", vec![series("loss", vec![(0.0, -1e15), (1.0, 1e15)], 0)]),
        (
            "near-equal",
            vec![series(
                "loss",
                vec![(0.0, 1.0), (1.0, 1.0 + 1e-7), (2.0, 1.0 + 3e-7)],
                0,
            )],
        ),
        (
            "tiny-values",
            vec![series("loss", vec![(0.0, 1e-300), (1.0, 3e-300)], 0)],
        ),
        (
            "tiny-span",
            vec![series("loss", vec![(0.0, 1.0), (1.0, 1.0 + 1e-15)], 0)],
        ),
    ];
    for (name, s) in cases {
        let t = assert_valid(name, &line(name, s));
        assert!(t.iter().any(|x| x == name), "{name}: no title");
    }
    let t = assert_valid("empty-series-note", &line("e", vec![series("loss", vec![], 0)]));
    assert!(t.iter().any(|x| x.contains("no finite values")), "{t:?}");
}

#[test]
fn non_finite_values_are_skipped_with_a_visible_note() {
    let fig = line(
        "nan",
        vec![series(
            "loss",
            vec![
                (0.0, 1.0),
                (1.0, f64::NAN),
                (2.0, 0.5),
                (3.0, f64::INFINITY),
                (4.0, 0.25),
            ],
            0,
        )],
    );
    let t = assert_valid("nan-line", &fig);
    assert!(
        t.iter()
            .any(|x| x.contains("2 point(s)") && x.contains("\"loss\"") && x.contains("not finite")),
        "{t:?}"
    );
    let all_nan = line(
        "all nan",
        vec![series("loss", vec![(0.0, f64::NAN), (1.0, f64::NAN)], 0)],
    );
    let t = assert_valid("all-nan-line", &all_nan);
    assert!(t.iter().any(|x| x.contains("no finite values")), "{t:?}");

    let bars = Figure::Bars(BarChart {
        title: "b".into(),
        y_label: "%".into(),
        series: vec![("after".into(), PALETTE[1])],
        groups: vec![
            BarGroup {
                labels: vec!["x".into()],
                values: vec![Some(f64::NAN)],
            },
            BarGroup {
                labels: vec!["y".into()],
                values: vec![Some(3.0)],
            },
        ],
        width: 400,
        height: 300,
    });
    let t = assert_valid("nan-bars", &bars);
    assert!(t.iter().any(|x| x == "n/a"));
    assert!(
        t.iter().any(|x| x.contains("\"after\"") && x.contains("not finite")),
        "{t:?}"
    );

    let mut rows = vec![
        row("zero-shot", "zero-shot", 0.5, 1.0),
        row("full", "full", f32::NAN, 0.9),
    ];
    let t = assert_valid("nan-frontier", &Figure::Scatter(frontier(&rows)));
    assert!(t.iter().any(|x| x.contains("not drawn: full")), "{t:?}");
    let huge = line(
        "huge",
        vec![series("loss", vec![(0.0, 1.0), (1.0, 1e300), (2.0, 0.5)], 0)],
    );
    let t = assert_valid("huge-line", &huge);
    assert!(
        t.iter().any(|x| x.contains("1 point(s)") && x.contains("beyond ±1e15")),
        "{t:?}"
    );
    rows.truncate(1);
    let t = assert_valid("one-point-frontier", &Figure::Scatter(frontier(&rows)));
    assert!(t.iter().any(|x| x == "zero-shot (baseline)"));
    let t = assert_valid("empty-frontier", &Figure::Scatter(frontier(&[])));
    assert!(t.iter().any(|x| x.contains("no finite points")), "{t:?}");
}

#[test]
fn degenerate_bar_charts_draw_without_panicking() {
    let mk = |groups: Vec<BarGroup>| {
        Figure::Bars(BarChart {
            title: "bars".into(),
            y_label: "%".into(),
            series: vec![("a".into(), PALETTE[0]), ("b".into(), PALETTE[1])],
            groups,
            width: 10,
            height: 10,
        })
    };
    let g = |v: Vec<Option<f64>>| BarGroup {
        labels: vec!["a very long dataset name that cannot fit under one narrow group".into()],
        values: v,
    };
    let t = assert_valid("no-groups", &mk(vec![]));
    assert!(t.iter().any(|x| x.contains("no values")), "{t:?}");
    assert_valid("all-zero", &mk(vec![g(vec![Some(0.0), Some(0.0)])]));
    assert_valid("all-none", &mk(vec![g(vec![None, None])]));
    assert_valid("negative", &mk(vec![g(vec![Some(-5.0), Some(3.0)])]));
    assert_valid(
        "more-values-than-series",
        &mk(vec![g(vec![Some(1.0), Some(2.0), Some(3.0)])]),
    );
    let many: Vec<BarGroup> = (0..60).map(|i| g(vec![Some(i as f64), None])).collect();
    let (pic, _) = draw("many-groups", &mk(many));
    assert!(pic.width >= 200 && pic.height >= 150, "minimum size applies");
}

#[test]
fn stacked_panels_add_their_heights() {
    let a = line("top", vec![series("loss", vec![(0.0, 1.0), (1.0, 0.5)], 0)]);
    let b = line("bottom", vec![series("acc", vec![(0.0, 10.0), (1.0, 20.0)], 2)]);
    let (pic, img) = draw("stack", &Figure::Stack(vec![a, b]));
    assert_eq!((pic.width, pic.height), (640, 720));
    // Both panels drew their line (green appears only in the bottom one).
    let green_rows: Vec<u32> = img
        .enumerate_pixels()
        .filter(|(_, _, p)| p.0 == PALETTE[2])
        .map(|(_, y, _)| y)
        .collect();
    assert!(
        !green_rows.is_empty() && green_rows.iter().all(|y| *y >= 360),
        "bottom panel misplaced"
    );
    let t = texts(&pic.svg);
    assert!(t.iter().any(|x| x == "top") && t.iter().any(|x| x == "bottom"));
}

#[test]
fn a_long_legend_wraps_and_keeps_every_entry() {
    let many: Vec<Series> = (0..12)
        .map(|i| {
            series(
                &format!("run {i} with a long label"),
                vec![(0.0, i as f64), (1.0, i as f64 + 1.0)],
                i % 8,
            )
        })
        .collect();
    let (pic, _) = draw("legend", &line("many runs", many));
    let t = texts(&pic.svg);
    for i in 0..12 {
        let want = format!("run {i} with a long label");
        assert!(t.iter().any(|x| *x == want), "legend lost {want:?}");
    }
    // Wrapped: the entries sit on more than one row (distinct y of the legend texts).
    let rows: HashSet<&str> = pic
        .svg
        .split("<text")
        .filter(|t| t.contains("with a long label"))
        .filter_map(|t| t.split("y=\"").nth(1)?.split('"').next())
        .collect();
    assert!(rows.len() >= 2, "legend on {} row(s)", rows.len());
}
