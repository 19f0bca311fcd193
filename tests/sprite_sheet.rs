//! Sprite sheets: round trips (RGB and grey, extra keys), every bad input with its one-line
//! message naming the file, and the loaders that take them (`load_labeled`, `retrieval_eval`).
mod common;

use std::path::{Path, PathBuf};

use cliptune::data::sprite_sheet::png_path;
use cliptune::data::{read_sprite_sheet, write_sprite_sheet, SpriteItem, SpriteSheet};
use cliptune::eval::suite::{load_labeled, retrieval_eval, ImageSource};
use image::{DynamicImage, GrayImage, Rgb, RgbImage, RgbaImage};

fn temp_dir(name: &str) -> PathBuf {
    // A fresh directory per call, never one shared by the tests of this process.
    tempfile::Builder::new()
        .prefix(&format!("sprite-{name}-"))
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap()
        .keep()
}

/// Distinct RGB tiles (h x w) so a misplaced tile is noticed.
fn rgb_tiles(n: usize, h: u32, w: u32) -> Vec<DynamicImage> {
    (0..n)
        .map(|i| {
            DynamicImage::ImageRgb8(RgbImage::from_fn(w, h, |x, y| {
                Rgb([(i * 37 % 256) as u8, (x * 9) as u8, (y * 11 + i as u32) as u8])
            }))
        })
        .collect()
}

fn items(n: usize, classes: usize) -> Vec<SpriteItem> {
    (0..n)
        .map(|i| SpriteItem {
            label: i % classes,
            captions: if i % 3 == 0 {
                vec![]
            } else {
                vec![format!("tile {i}"), format!("picture {i}")]
            },
        })
        .collect()
}

fn sample(dir: &Path) -> PathBuf {
    let s = SpriteSheet::new(
        common::strings(&["red", "blue", "green"]),
        items(7, 3),
        rgb_tiles(7, 5, 4),
        3,
    )
    .unwrap();
    let p = dir.join("s.json");
    write_sprite_sheet(&p, &s).unwrap();
    p
}

#[test]
fn rgb_round_trip_keeps_tiles_labels_captions_and_extra_keys() {
    let dir = temp_dir("rgb");
    let mut s = SpriteSheet::new(
        common::strings(&["red", "blue", "green"]),
        items(7, 3),
        rgb_tiles(7, 5, 4),
        3,
    )
    .unwrap();
    s.extra.insert("unseen_classes".into(), serde_json::json!(["green"]));
    let p = dir.join("s.json");
    write_sprite_sheet(&p, &s).unwrap();
    let png = image::open(png_path(&p)).unwrap();
    assert_eq!(
        (png.width(), png.height()),
        (3 * 4, 3 * 5),
        "3 columns x 3 rows of 5x4 tiles"
    );
    assert!(matches!(png, DynamicImage::ImageRgb8(_)));
    let r = read_sprite_sheet(&p).unwrap();
    assert_eq!(r.tile, [5, 4]);
    assert_eq!(r.columns, 3);
    assert_eq!(r.classes, s.classes);
    assert_eq!(r.items, s.items);
    assert_eq!(r.extra["unseen_classes"], serde_json::json!(["green"]));
    for (a, b) in r.images.iter().zip(&s.images) {
        assert_eq!(a.to_rgb8().as_raw(), b.to_rgb8().as_raw());
    }
}

#[test]
fn grey_tiles_make_an_l8_sheet() {
    let dir = temp_dir("grey");
    let tiles: Vec<DynamicImage> = (0..5)
        .map(|i| {
            DynamicImage::ImageLuma8(GrayImage::from_fn(3, 2, |x, y| {
                image::Luma([(i * 40 + x * 3 + y) as u8])
            }))
        })
        .collect();
    let s = SpriteSheet::new(common::strings(&["a", "b"]), items(5, 2), tiles.clone(), 0).unwrap();
    let p = dir.join("g.json");
    write_sprite_sheet(&p, &s).unwrap();
    assert!(matches!(
        image::open(png_path(&p)).unwrap(),
        DynamicImage::ImageLuma8(_)
    ));
    let r = read_sprite_sheet(&p).unwrap();
    assert_eq!(r.columns, 3, "default columns: ceil(sqrt(5))");
    for (a, b) in r.images.iter().zip(&tiles) {
        assert!(matches!(a, DynamicImage::ImageLuma8(_)));
        assert_eq!(a.to_luma8().as_raw(), b.to_luma8().as_raw());
    }
}

/// Rewrite the JSON with `f` applied and return the read error.
fn json_error(name: &str, f: impl Fn(&mut serde_json::Value)) -> String {
    let dir = temp_dir(name);
    let p = sample(&dir);
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(&p, v.to_string()).unwrap();
    let e = common::err_msg(read_sprite_sheet(&p));
    assert!(
        e.contains(&p.display().to_string()) || e.contains(&png_path(&p).display().to_string()),
        "{e}"
    );
    assert!(!e.contains('\n'), "one line: {e}");
    e
}

#[test]
fn bad_json_fields_are_refused_naming_the_file() {
    let e = json_error("fmt", |v| v["format"] = "cliptune-sprite-sheet-9".into());
    assert!(e.contains("format") && e.contains("cliptune-sprite-sheet-1"), "{e}");
    let e = json_error("nofmt", |v| {
        v.as_object_mut().unwrap().remove("format");
    });
    assert!(e.contains("not a cliptune sprite sheet"), "{e}");
    let e = json_error("tile", |v| v["tile"] = serde_json::json!([5]));
    assert!(e.contains("\"tile\""), "{e}");
    let e = json_error("tile0", |v| v["tile"] = serde_json::json!([0, 4]));
    assert!(e.contains("\"tile\""), "{e}");
    let e = json_error("cols", |v| v["columns"] = 0.into());
    assert!(e.contains("\"columns\""), "{e}");
    let e = json_error("count", |v| v["count"] = 8.into());
    assert!(e.contains("\"count\" is 8") && e.contains("lists 7"), "{e}");
    let e = json_error("classes", |v| v["classes"] = serde_json::json!([1, 2]));
    assert!(e.contains("\"classes\""), "{e}");
    let e = json_error("label", |v| v["items"][4]["label"] = 3.into());
    assert!(
        e.contains("item 4") && e.contains("label 3 is out of range (3 classes)"),
        "{e}"
    );
    let e = json_error("caps", |v| v["items"][1]["captions"] = "a".into());
    assert!(e.contains("item 1") && e.contains("captions"), "{e}");
    let e = json_error("size", |v| {
        v["tile"] = serde_json::json!([5, 5]);
    });
    assert!(e.contains("is 12x15 pixels") && e.contains("need 15x15"), "{e}");
    let e = json_error("rows", |v| {
        v["columns"] = 2.into();
    });
    assert!(e.contains("need 8x20"), "{e}");
}

#[test]
fn bad_files_are_refused_naming_the_file() {
    let dir = temp_dir("files");
    let p = sample(&dir);
    std::fs::write(&p, "{not json").unwrap();
    let e = common::err_msg(read_sprite_sheet(&p));
    assert!(e.contains("s.json") && e.contains("not valid JSON"), "{e}");

    let p = sample(&dir);
    std::fs::remove_file(png_path(&p)).unwrap();
    let e = common::err_msg(read_sprite_sheet(&p));
    assert!(e.contains("s.png") && e.contains("cannot read"), "{e}");

    let p = sample(&dir);
    std::fs::write(png_path(&p), b"not a png").unwrap();
    let e = common::err_msg(read_sprite_sheet(&p));
    assert!(e.contains("s.png") && e.contains("not a readable PNG"), "{e}");

    let p = sample(&dir);
    RgbaImage::new(12, 15).save(png_path(&p)).unwrap();
    let e = common::err_msg(read_sprite_sheet(&p));
    assert!(e.contains("s.png") && e.contains("RGB8 or L8"), "{e}");

    let e = common::err_msg(read_sprite_sheet(&dir.join("missing.json")));
    assert!(e.contains("missing.json"), "{e}");
}

#[test]
fn writer_refuses_inconsistent_sheets() {
    let dir = temp_dir("writer");
    let p = dir.join("w.json");
    let mut s = SpriteSheet::new(common::strings(&["a"]), items(3, 1), rgb_tiles(3, 5, 4), 2).unwrap();
    s.images[1] = rgb_tiles(1, 4, 4).remove(0);
    assert!(common::err_msg(write_sprite_sheet(&p, &s)).contains("image 1 is not 5x4"));
    let mut s = SpriteSheet::new(common::strings(&["a"]), items(3, 1), rgb_tiles(3, 5, 4), 2).unwrap();
    s.items[2].label = 1;
    assert!(common::err_msg(write_sprite_sheet(&p, &s)).contains("item 2: label 1 is out of range"));
    s.items.pop();
    assert!(common::err_msg(write_sprite_sheet(&p, &s)).contains("3 images for 2 items"));
    assert!(!p.exists() && !png_path(&p).exists(), "nothing written on refusal");
}

#[test]
fn loaders_take_sprite_sheets() {
    let dir = temp_dir("loaders");
    let p = sample(&dir);
    let set = load_labeled(p.to_str().unwrap(), None).unwrap();
    assert_eq!(set.labels, vec![0, 1, 2, 0, 1, 2, 0]);
    assert_eq!(set.classes, common::strings(&["red", "blue", "green"]));
    assert!(matches!(&set.source, ImageSource::Memory(v) if v.len() == 7));

    let (model, tok) = common::load_tiny();
    let r = retrieval_eval(&model, &tok, Some(&common::tiny_model_dir()), &p).unwrap();
    // Items 0, 3, 6 have no captions: 4 images with 2 captions each.
    assert_eq!((r.images, r.captions), (4, 8));
    assert!(r.metrics.i2t[0].is_finite() && r.metrics.t2i[0].is_finite());

    let s = SpriteSheet::new(
        common::strings(&["a"]),
        vec![SpriteItem {
            label: 0,
            captions: vec![],
        }],
        rgb_tiles(1, 5, 4),
        1,
    )
    .unwrap();
    let q = dir.join("nocaps.json");
    write_sprite_sheet(&q, &s).unwrap();
    let e = common::err_msg(retrieval_eval(&model, &tok, None, &q));
    assert!(e.contains("nocaps.json") && e.contains("no item has captions"), "{e}");
}

/// The embedded demo subsets are the first N of each class of the Debian files, pixel for
/// pixel (needs the package dataset-fashion-mnist, as tests/data.rs does).
#[test]
fn demo_subsets_match_the_debian_fashion_mnist_files() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo");
    for (file, spec) in [
        ("fashion-mnist-train.json", "fashion-mnist:train:16"),
        ("fashion-mnist-test.json", "fashion-mnist:test:100"),
    ] {
        let sheet = read_sprite_sheet(&root.join(file)).unwrap();
        let want = load_labeled(spec, None).unwrap();
        assert_eq!(sheet.classes, want.classes, "{file}");
        assert_eq!(sheet.labels(), want.labels, "{file}");
        let ImageSource::Memory(imgs) = &want.source else {
            panic!("{spec}: not in memory")
        };
        for (i, (a, b)) in sheet.images.iter().zip(imgs).enumerate() {
            assert!(matches!(a, DynamicImage::ImageLuma8(_)), "{file}: grey tiles");
            assert_eq!(a.to_rgb8().as_raw(), b.to_rgb8().as_raw(), "{file}: tile {i}");
        }
    }
}
