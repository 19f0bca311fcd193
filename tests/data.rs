//! The data layer: caption files (CSV/TSV/JSONL), class folders, Fashion-MNIST and the data
//! report, including every bad input a user can hand us.
//!
//! Fixtures: tests/fixtures/data (caption files pointing at tests/fixtures/preprocess/inputs,
//! a small class-folder tree). Fashion-MNIST needs the Debian package `dataset-fashion-mnist`
//! (installed by .ci/run); its tests fail, not skip, when it is missing.
use std::path::{Path, PathBuf};

use cliptune::data::class_folders::is_image_file;
use cliptune::data::fashion_mnist::{default_dir, to_rgb_image};
use cliptune::data::{
    folder_to_class_name, is_label_like, load_captions, load_class_folders, load_fashion_mnist, report_captions,
    report_classes, CaptionRecord, LabeledImages, Split, FASHION_MNIST_CLASSES,
};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn data(file: &str) -> PathBuf {
    fixtures().join("data").join(file)
}

fn input(file: &str) -> PathBuf {
    fixtures().join("preprocess/inputs").join(file)
}

fn temp_dir(name: &str) -> PathBuf {
    // A fresh directory per call, never one shared by the tests of this process.
    tempfile::Builder::new()
        .prefix(&format!("data-{name}-"))
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap()
        .keep()
}

/// Write `text` to `dir/name` and return the path.
fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&p, text).unwrap();
    p
}

/// Copy a fixture image to `dir/name`.
fn image_at(dir: &Path, name: &str, from: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::copy(input(from), &p).unwrap();
    p
}

fn err_msg<T: std::fmt::Debug>(r: cliptune::Result<T>) -> String {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.to_string(),
    }
}

fn assert_contains(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "error message lacks {p:?}:\n{msg}");
    }
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

// ---------------------------------------------------------------------------------------------
// Caption files

#[test]
fn csv_quotes_commas_newlines_negatives_and_merge() {
    let recs = load_captions(&data("captions.csv")).unwrap();
    let base = data("captions.csv").parent().unwrap().to_path_buf();
    assert_eq!(recs.len(), 3, "{recs:#?}");
    // Rows 2 and 4 name the same image (once through "./"): one record, two captions.
    assert_eq!(recs[0].image, base.join("../preprocess/inputs/rgb_37x53.png"));
    assert!(recs[0].image.is_file());
    assert_eq!(
        recs[0].captions,
        strs(&["a red, green and blue gradient", "a caption\nover two lines"])
    );
    assert_eq!(
        recs[0].negatives,
        strs(&["a photo of a cat", "a black square", "a drawing of a dog"])
    );
    assert_eq!(recs[1].image, base.join("../preprocess/inputs/grey_30x30.png"));
    assert_eq!(recs[1].captions, strs(&["a grey square, with \"quotes\""]));
    assert!(recs[1].negatives.is_empty());
    assert_eq!(recs[2].captions, strs(&["dog"]));
}

#[test]
fn tsv_with_open_clip_column_names() {
    let recs = load_captions(&data("captions.tsv")).unwrap();
    assert_eq!(recs.len(), 2);
    // TSV has no quoting: quotes and commas are plain text.
    assert_eq!(
        recs[0].captions,
        strs(&["a gradient, with \"quotes\" kept as is", "the same gradient again"])
    );
    assert_eq!(recs[1].captions, strs(&["a small grey square"]));
    assert!(recs.iter().all(|r| r.image.is_file() && r.negatives.is_empty()));
}

#[test]
fn jsonl_strings_arrays_and_aliases() {
    let recs = load_captions(&data("captions.jsonl")).unwrap();
    assert_eq!(recs.len(), 2);
    // Exact duplicate captions merge away.
    assert_eq!(
        recs[0].captions,
        strs(&["a colourful gradient", "a rainbow of colours"])
    );
    assert_eq!(recs[0].negatives, strs(&["a photo of a cat", "a black square"]));
    assert_eq!(recs[1].captions, strs(&["a grey square", "a flat grey tile"]));
    // A negatives string splits at '|' as in CSV.
    assert_eq!(recs[1].negatives, strs(&["a red car", "a blue sky"]));
}

#[test]
fn csv_crlf_bom_uppercase_header_absolute_paths_and_no_trailing_newline() {
    let dir = temp_dir("crlf");
    let abs = input("grey_30x30.png");
    let text = format!(
        "\u{feff}Image,Caption\r\n{},\"two\r\nlines\"\r\n\r\nimg/a.png,\"\"\"quoted\"\" start\"\r\nimg/a.png,last row",
        abs.display()
    );
    image_at(&dir, "img/a.png", "rgb_37x53.png");
    let f = write(&dir, "x.CSV", &text);
    let recs = load_captions(&f).unwrap();
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[0].image, abs);
    assert_eq!(recs[0].captions, strs(&["two\nlines"]));
    assert_eq!(recs[1].image, dir.join("img/a.png"));
    assert_eq!(recs[1].captions, strs(&["\"quoted\" start", "last row"]));
}

#[test]
fn csv_without_negatives_column_and_reordered_columns() {
    let dir = temp_dir("reorder");
    image_at(&dir, "a.png", "rgb_37x53.png");
    let f = write(
        &dir,
        "c.csv",
        "negatives,title,filepath\n\"x|y\",a cat on a mat,a.png\n",
    );
    let recs = load_captions(&f).unwrap();
    assert_eq!(
        recs,
        vec![CaptionRecord {
            image: dir.join("a.png"),
            captions: strs(&["a cat on a mat"]),
            negatives: strs(&["x", "y"])
        }]
    );
}

#[test]
fn caption_file_missing_empty_or_unsupported() {
    let dir = temp_dir("empty");
    let missing = dir.join("nope.csv");
    assert_contains(&err_msg(load_captions(&missing)), &["nope.csv", "cannot read"]);
    for (name, text) in [("e.csv", ""), ("w.tsv", "  \n\n"), ("e.jsonl", "\n")] {
        let f = write(&dir, name, text);
        assert_contains(&err_msg(load_captions(&f)), &[name, "empty"]);
    }
    let f = write(&dir, "h.csv", "image,caption\n");
    assert_contains(&err_msg(load_captions(&f)), &["h.csv", "no rows"]);
    let f = write(&dir, "c.txt", "image,caption\na.png,x\n");
    assert_contains(&err_msg(load_captions(&f)), &["c.txt", ".csv, .tsv or .jsonl"]);
    // A directory named like a caption file is unreadable, not a panic.
    std::fs::create_dir_all(dir.join("d.csv")).unwrap();
    assert_contains(&err_msg(load_captions(&dir.join("d.csv"))), &["d.csv"]);
    let f = dir.join("bin.csv");
    std::fs::write(&f, b"image,caption\na.png,\xff\xfe\n").unwrap();
    assert_contains(&err_msg(load_captions(&f)), &["bin.csv:2", "UTF-8"]);
}

#[test]
fn unknown_columns_list_found_and_accepted_names() {
    let dir = temp_dir("columns");
    let f = write(&dir, "u.csv", "image,captoin\na.png,x\n");
    let msg = err_msg(load_captions(&f));
    assert_contains(
        &msg,
        &[
            "u.csv:1",
            "'captoin'",
            "'image'",
            "caption or title",
            "image or filepath",
            "negatives",
        ],
    );
    let f = write(&dir, "m.tsv", "filepath\tnegatives\na.png\tx\n");
    assert_contains(
        &err_msg(load_captions(&f)),
        &["m.tsv:1", "has no caption column", "'filepath', 'negatives'"],
    );
    let f = write(&dir, "d.csv", "image,filepath,caption\na.png,a.png,x\n");
    assert_contains(&err_msg(load_captions(&f)), &["d.csv:1", "same field"]);
    let f = write(&dir, "u.jsonl", "{\"image\": \"a.png\", \"text\": \"x\"}\n");
    assert_contains(
        &err_msg(load_captions(&f)),
        &["u.jsonl:1", "'text'", "caption or title"],
    );
}

#[test]
fn row_with_missing_field_names_file_and_line() {
    let dir = temp_dir("fields");
    image_at(&dir, "a.png", "rgb_37x53.png");
    let f = write(&dir, "short.csv", "image,caption\na.png,fine\n\"a.png\"\n");
    assert_contains(
        &err_msg(load_captions(&f)),
        &["short.csv:3", "caption field is missing"],
    );
    // Line numbers count the lines inside quoted fields.
    let f = write(&dir, "emptycap.csv", "image,caption\na.png,\"one\ntwo\"\na.png,\"\"\n");
    assert_contains(
        &err_msg(load_captions(&f)),
        &["emptycap.csv:4", "caption field is empty"],
    );
    let f = write(&dir, "noimg.tsv", "image\tcaption\n\ta dog\n");
    assert_contains(&err_msg(load_captions(&f)), &["noimg.tsv:2", "image field is empty"]);
    let f = write(&dir, "extra.csv", "image,caption\na.png,a dog, running\n");
    assert_contains(&err_msg(load_captions(&f)), &["extra.csv:2", "3 fields", "2 columns"]);
    let f = write(&dir, "open.csv", "image,caption\na.png,fine\na.png,\"never closed\n");
    assert_contains(&err_msg(load_captions(&f)), &["open.csv:3", "never closed"]);
    let f = write(
        &dir,
        "j.jsonl",
        "{\"image\": \"a.png\", \"caption\": \"x\"}\n{\"image\": \"a.png\"}\n",
    );
    assert_contains(&err_msg(load_captions(&f)), &["j.jsonl:2", "caption field is missing"]);
    let f = write(&dir, "j2.jsonl", "{\"caption\": \"x\"}\n");
    assert_contains(&err_msg(load_captions(&f)), &["j2.jsonl:1", "image field is missing"]);
    let f = write(&dir, "j3.jsonl", "{\"image\": \"a.png\", \"caption\": []}\n");
    assert_contains(&err_msg(load_captions(&f)), &["j3.jsonl:1", "caption field is empty"]);
    let f = write(
        &dir,
        "j4.jsonl",
        "{\"image\": \"a.png\", \"caption\": \"x\"}\n{\"image\": \"a.png\", \"caption\": \n",
    );
    assert_contains(&err_msg(load_captions(&f)), &["j4.jsonl:2", "not valid JSON"]);
    let f = write(&dir, "j5.jsonl", "[\"a.png\", \"x\"]\n");
    assert_contains(&err_msg(load_captions(&f)), &["j5.jsonl:1", "JSON object"]);
    let f = write(&dir, "j6.jsonl", "{\"image\": 3, \"caption\": \"x\"}\n");
    assert_contains(&err_msg(load_captions(&f)), &["j6.jsonl:1", "'image' must be a string"]);
    let f = write(&dir, "j7.jsonl", "{\"image\": \"a.png\", \"caption\": [\"x\", 1]}\n");
    assert_contains(&err_msg(load_captions(&f)), &["j7.jsonl:1", "only strings"]);
}

#[test]
fn all_missing_images_reported_at_once() {
    let dir = temp_dir("missing");
    image_at(&dir, "ok.png", "rgb_37x53.png");
    let mut text = String::from("image,caption\nok.png,a fine picture\n");
    for i in 0..25 {
        text.push_str(&format!("gone/{i:02}.png,a picture that is not there\n"));
    }
    // A second row for a missing image does not list it twice.
    text.push_str("gone/00.png,another caption\n");
    let f = write(&dir, "m.csv", &text);
    let msg = err_msg(load_captions(&f));
    assert_contains(
        &msg,
        &[
            "m.csv",
            "25 of 26 images do not exist",
            "line 3:",
            "gone/00.png",
            "gone/19.png",
            "and 5 more",
        ],
    );
    assert!(!msg.contains("gone/20.png"), "only the first 20 are listed:\n{msg}");
    assert!(!msg.contains("ok.png"), "{msg}");
    assert_eq!(msg.matches("gone/00.png").count(), 1, "{msg}");

    let f = write(
        &dir,
        "m.jsonl",
        "{\"image\": \"ok.png\", \"caption\": \"x\"}\n{\"image\": \"lost.jpg\", \"caption\": \"y\"}\n",
    );
    assert_contains(
        &err_msg(load_captions(&f)),
        &["m.jsonl", "1 of 2 images", "line 2:", "lost.jpg"],
    );
}

// ---------------------------------------------------------------------------------------------
// Class folders

#[test]
fn class_folders_names_labels_and_order() {
    let d = load_class_folders(&data("classes"), None).unwrap();
    assert_eq!(d.classes, strs(&["ankle boot", "bag", "t shirt"]));
    let root = data("classes");
    assert_eq!(
        d.images,
        vec![
            root.join("ankle_boot/001.png"),
            root.join("ankle_boot/002.PNG"),
            root.join("bag/x.JPEG"),
            root.join("t-shirt/a.png")
        ]
    );
    assert_eq!(d.labels, vec![0, 0, 1, 2]);
    assert_eq!(d.counts(), vec![2, 1, 1]);
    assert_eq!(folder_to_class_name("ankle_boot"), "ankle boot");
    assert_eq!(folder_to_class_name("t-shirt__top"), "t shirt top");
    assert!(
        is_image_file(Path::new("x.JpG")) && !is_image_file(Path::new("x.gif")) && !is_image_file(Path::new("png"))
    );
}

#[test]
fn classes_file_names_classes_and_must_match_count() {
    let d = load_class_folders(&data("classes"), Some(&data("classes.txt"))).unwrap();
    assert_eq!(d.classes, strs(&["ankle boot", "bag", "T-shirt/top"]));
    let dir = temp_dir("classesfile");
    let f = write(&dir, "two.txt", "a\nb\n\n");
    assert_contains(
        &err_msg(load_class_folders(&data("classes"), Some(&f))),
        &[
            "two.txt",
            "2 class names",
            "3 class folders",
            "ankle_boot, bag, t-shirt",
        ],
    );
    assert_contains(
        &err_msg(load_class_folders(&data("classes"), Some(&dir.join("none.txt")))),
        &["none.txt", "cannot read"],
    );
}

#[test]
fn class_folder_errors() {
    let dir = temp_dir("classerr");
    assert_contains(
        &err_msg(load_class_folders(&dir.join("nowhere"), None)),
        &["nowhere", "cannot open"],
    );
    let file = write(&dir, "file.png", "x");
    assert_contains(&err_msg(load_class_folders(&file, None)), &["file.png", "not a folder"]);

    let flat = dir.join("flat");
    image_at(&flat, "a.png", "rgb_37x53.png");
    assert_contains(
        &err_msg(load_class_folders(&flat, None)),
        &["flat", "no class folders", "1 image files sit directly"],
    );
    std::fs::create_dir_all(dir.join("bare")).unwrap();
    assert_contains(
        &err_msg(load_class_folders(&dir.join("bare"), None)),
        &["bare", "no class folders"],
    );

    let root = dir.join("root");
    image_at(&root, "cat/a.png", "rgb_37x53.png");
    std::fs::create_dir_all(root.join("dog")).unwrap();
    write(&root, "fish/readme.txt", "no images here");
    image_at(&root, "fish/nested/deep.png", "rgb_37x53.png");
    std::fs::create_dir_all(root.join(".hidden")).unwrap();
    let msg = err_msg(load_class_folders(&root, None));
    assert_contains(&msg, &["root", "class folders with no images", "dog, fish"]);
    assert!(!msg.contains("hidden") && !msg.contains("cat"), "{msg}");
}

// ---------------------------------------------------------------------------------------------
// Fashion-MNIST (needs `apt-get install dataset-fashion-mnist`; fails loudly without it)

#[test]
fn fashion_mnist_test_split_from_debian_package() {
    let dir = default_dir();
    let (images, labels) = load_fashion_mnist(&dir, Split::Test).unwrap_or_else(|e| {
        panic!("Fashion-MNIST must be installed for this test (apt-get install dataset-fashion-mnist): {e}")
    });
    assert_eq!(images.len(), 10_000);
    assert_eq!(labels.len(), 10_000);
    // Balanced: 1,000 per class.
    let mut counts = [0usize; 10];
    for &l in &labels {
        counts[l as usize] += 1;
    }
    assert_eq!(counts, [1000; 10]);
    // The well-known first test labels (ankle boot, pullover, trouser, trouser, shirt).
    assert_eq!(&labels[..5], &[9, 2, 1, 1, 6]);
    // White on black: the corners are background (0), the garment is bright.
    let first = &images[0];
    assert_eq!(first[0], 0);
    assert!(first.iter().copied().max().unwrap() > 200);
    let img = to_rgb_image(first);
    assert_eq!((img.width(), img.height()), (28, 28));
    let rgb = img.to_rgb8();
    let p = rgb.get_pixel(14, 20);
    let v = first[20 * 28 + 14];
    assert_eq!(p.0, [v, v, v]);
    assert_eq!(FASHION_MNIST_CLASSES[labels[0] as usize], "ankle boot");
    assert_eq!(FASHION_MNIST_CLASSES.len(), 10);
}

#[test]
fn fashion_mnist_train_split() {
    let (images, labels) = load_fashion_mnist(&default_dir(), Split::Train).unwrap_or_else(|e| {
        panic!("Fashion-MNIST must be installed for this test (apt-get install dataset-fashion-mnist): {e}")
    });
    assert_eq!((images.len(), labels.len()), (60_000, 60_000));
    assert_eq!(&labels[..3], &[9, 0, 0]);
}

/// Write an IDX file (big-endian header) uncompressed.
fn idx(magic: u32, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut v = magic.to_be_bytes().to_vec();
    for d in dims {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v.extend_from_slice(data);
    v
}

#[test]
fn fashion_mnist_uncompressed_files_and_bad_files() {
    let dir = temp_dir("fmnist");
    let msg = err_msg(load_fashion_mnist(&dir, Split::Test));
    assert_contains(
        &msg,
        &["t10k-images-idx3-ubyte.gz", "apt-get install dataset-fashion-mnist"],
    );

    let pixels: Vec<u8> = (0..2 * 784).map(|i| (i % 251) as u8).collect();
    std::fs::write(dir.join("t10k-images-idx3-ubyte"), idx(0x803, &[2, 28, 28], &pixels)).unwrap();
    std::fs::write(dir.join("t10k-labels-idx1-ubyte"), idx(0x801, &[2], &[3, 9])).unwrap();
    let (images, labels) = load_fashion_mnist(&dir, Split::Test).unwrap();
    assert_eq!(labels, vec![3, 9]);
    assert_eq!(&images[1][..], &pixels[784..]);

    std::fs::write(dir.join("t10k-labels-idx1-ubyte"), idx(0x801, &[2], &[3, 10])).unwrap();
    assert_contains(
        &err_msg(load_fashion_mnist(&dir, Split::Test)),
        &["t10k-labels-idx1-ubyte", "label 10"],
    );
    std::fs::write(dir.join("t10k-labels-idx1-ubyte"), idx(0x801, &[3], &[3, 1, 2])).unwrap();
    assert_contains(
        &err_msg(load_fashion_mnist(&dir, Split::Test)),
        &["t10k-labels-idx1-ubyte", "3 labels", "2 images"],
    );
    std::fs::write(
        dir.join("t10k-images-idx3-ubyte"),
        idx(0x803, &[2, 28, 28], &pixels[..1000]),
    )
    .unwrap();
    assert_contains(
        &err_msg(load_fashion_mnist(&dir, Split::Test)),
        &["t10k-images-idx3-ubyte", "truncated"],
    );
    std::fs::write(dir.join("t10k-images-idx3-ubyte"), idx(0x801, &[2, 1, 1], &[0, 0])).unwrap();
    assert_contains(
        &err_msg(load_fashion_mnist(&dir, Split::Test)),
        &["t10k-images-idx3-ubyte", "magic"],
    );
    std::fs::write(dir.join("t10k-images-idx3-ubyte"), [0u8, 0]).unwrap();
    assert_contains(
        &err_msg(load_fashion_mnist(&dir, Split::Test)),
        &["t10k-images-idx3-ubyte", "too short"],
    );

    std::fs::write(dir.join("train-images-idx3-ubyte.gz"), b"\x1f\x8b\x08\x00garbage").unwrap();
    assert_contains(
        &err_msg(load_fashion_mnist(&dir, Split::Train)),
        &["train-images-idx3-ubyte.gz", "gzip"],
    );
}

// ---------------------------------------------------------------------------------------------
// Data report

#[test]
fn label_like_captions() {
    for c in ["dog", "red car", "Ankle boot.", "<sks>", "tall building", "t-shirt"] {
        assert!(is_label_like(c), "{c:?} should be a bare label");
    }
    for c in [
        "a dog",
        "the red car",
        "dog sleeping",
        "cats are",
        "a photo of a dog sitting on grass",
        "three red cars",
    ] {
        assert!(!is_label_like(c), "{c:?} is not a bare label");
    }
}

#[test]
fn caption_report_counts_and_bare_label_warning() {
    let recs = load_captions(&data("captions.csv")).unwrap();
    let r = report_captions(&recs);
    assert_eq!(
        (r.images, r.captions, r.negatives, r.multi_caption_images),
        (3, 4, 3, 1)
    );
    assert_eq!(r.label_like, 1);
    assert_eq!(r.label_like_examples, strs(&["dog"]));
    assert!((r.label_like_fraction() - 0.25).abs() < 1e-12);
    assert!(r.duplicate_groups.is_empty());
    assert_eq!(r.warnings().len(), 1, "{:?}", r.warnings());
    assert_contains(
        &r.warnings()[0],
        &[
            "1 of 4 captions",
            "25.0 %",
            "'dog'",
            "a photo of a dog sitting on grass",
        ],
    );
    let shown = r.to_string();
    assert_contains(&shown, &["3 images", "4 captions", "warnings (1)", "bare labels"]);
    let j = r.to_json();
    assert_eq!(j["images"], 3);
    assert_eq!(j["label_like_captions"], 1);
    assert_eq!(j["warnings"].as_array().unwrap().len(), 1);

    let clean = report_captions(&load_captions(&data("captions.jsonl")).unwrap());
    assert!(clean.warnings().is_empty(), "{:?}", clean.warnings());
    assert_contains(&clean.to_string(), &["no warnings"]);
}

#[test]
fn caption_report_finds_duplicate_images_by_content() {
    let dir = temp_dir("dupcap");
    image_at(&dir, "a.png", "rgb_37x53.png");
    image_at(&dir, "copy of a.png", "rgb_37x53.png");
    image_at(&dir, "b.png", "grey_30x30.png");
    let f = write(
        &dir,
        "c.csv",
        "image,caption\na.png,a gradient on a card\ncopy of a.png,the same gradient\nb.png,a grey tile on a table\n",
    );
    let r = report_captions(&load_captions(&f).unwrap());
    assert_eq!(
        r.duplicate_groups,
        vec![vec![dir.join("a.png"), dir.join("copy of a.png")]]
    );
    assert_eq!(r.warnings().len(), 1, "{:?}", r.warnings());
    assert_contains(
        &r.warnings()[0],
        &["1 group of identical images", "copy of a.png", "false negatives"],
    );
    assert_eq!(r.to_json()["duplicate_groups"][0].as_array().unwrap().len(), 2);

    // Files deleted after loading become a warning, not a panic.
    std::fs::remove_file(dir.join("b.png")).unwrap();
    let recs = vec![CaptionRecord {
        image: dir.join("b.png"),
        captions: strs(&["x y z"]),
        negatives: vec![],
    }];
    let r = report_captions(&recs);
    assert_eq!(r.unreadable.len(), 1);
    assert_contains(&r.warnings()[0], &["could not be read", "b.png"]);
}

#[test]
fn class_report_imbalance_and_duplicates_across_classes() {
    let balanced = report_classes(&load_class_folders(&data("classes"), None).unwrap());
    assert_eq!(
        balanced.class_counts,
        vec![("ankle boot".into(), 2), ("bag".into(), 1), ("t shirt".into(), 1)]
    );
    assert!(balanced.warnings().is_empty(), "{:?}", balanced.warnings());
    assert_contains(
        &balanced.to_string(),
        &["4 images in 3 classes", "ankle boot", "no warnings"],
    );

    let dir = temp_dir("imbalance");
    let many = [
        "rgb_37x53.png",
        "grey_30x30.png",
        "palette_45x31.png",
        "la_33x27.png",
        "rgb16_26x22.png",
        "exact_32x50.png",
        "rgba_64x40.png",
    ];
    for (i, f) in many.iter().enumerate() {
        image_at(&dir, &format!("big_class/{i}.png"), f);
    }
    image_at(&dir, "tiny_class/0.jpg", "photo_80x60.jpg");
    image_at(&dir, "tiny_class/1.jpg", "greyjpeg_50x40.jpg");
    // The same bytes in a second class: a duplicate with contradicting labels.
    image_at(&dir, "other/0.png", "rgb_37x53.png");
    image_at(&dir, "other/1.png", "la_33x27.png");
    let d: LabeledImages = load_class_folders(&dir, None).unwrap();
    assert_eq!(d.classes, strs(&["big class", "other", "tiny class"]));
    let r = report_classes(&d);
    assert_eq!(r.imbalance_ratio(), Some(3.5));
    assert_eq!(r.duplicate_groups.len(), 2);
    let w = r.warnings().join("\n");
    assert_contains(
        &w,
        &[
            "class imbalance",
            "3.5x",
            "largest: big class (7 images)",
            "smallest: other, tiny class (2 images)",
        ],
    );
    assert_contains(
        &w,
        &[
            "2 groups of identical images",
            "identical images filed under different classes",
            "big class and other",
        ],
    );
    assert_eq!(r.to_json()["classes"][0]["images"], 7);
    assert_contains(&r.to_string(), &["largest/smallest class: 3.5x", "warnings (3)"]);
}
