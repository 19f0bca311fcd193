//! Image preprocessing against transformers' CLIPImageProcessor goldens
//! (tests/fixtures/preprocess, made by tools/make_preprocess_goldens.py), the config readers,
//! and bad inputs. Run with `--nocapture` to see the measured errors per image.
use std::path::{Path, PathBuf};

use cliptune::clip::preprocess::{
    load_image, normalize_u8, preprocess, preprocess_files, preprocess_rgb8, resize_crop_u8, resized_size, to_rgb8,
    PreprocessConfig, Rgb8,
};
use cliptune::clip::Pipeline;
use safetensors::{Dtype, SafeTensors};
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/preprocess")
}

fn input(file: &str) -> PathBuf {
    fixtures().join("inputs").join(file)
}

fn temp_dir(name: &str) -> PathBuf {
    // A fresh directory per call, never one shared by the tests of this process.
    tempfile::Builder::new()
        .prefix(&format!("preprocess-{name}-"))
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap()
        .keep()
}

struct Image {
    name: String,
    file: String,
}

fn manifest() -> (Value, Vec<Image>) {
    let text = std::fs::read_to_string(fixtures().join("manifest.json")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    let images = v["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| Image {
            name: e["name"].as_str().unwrap().into(),
            file: e["file"].as_str().unwrap().into(),
        })
        .collect();
    (v, images)
}

fn is_jpeg(img: &Image) -> bool {
    img.file.ends_with(".jpg")
}

struct Goldens {
    bytes: Vec<u8>,
}

impl Goldens {
    fn load() -> Goldens {
        Goldens {
            bytes: std::fs::read(fixtures().join("goldens.safetensors")).unwrap(),
        }
    }
    fn f32(&self, key: &str) -> (Vec<f32>, Vec<usize>) {
        let st = SafeTensors::deserialize(&self.bytes).unwrap();
        let t = st.tensor(key).unwrap_or_else(|e| panic!("{key}: {e}"));
        let data = match t.dtype() {
            Dtype::F32 => t
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Dtype::F16 => t
                .data()
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            d => panic!("{key}: dtype {d:?}"),
        };
        (data, t.shape().to_vec())
    }
    fn u8(&self, key: &str) -> (Vec<u8>, Vec<usize>) {
        let st = SafeTensors::deserialize(&self.bytes).unwrap();
        let t = st.tensor(key).unwrap_or_else(|e| panic!("{key}: {e}"));
        assert_eq!(t.dtype(), Dtype::U8);
        (t.data().to_vec(), t.shape().to_vec())
    }
}

/// Per channel (mean, max) absolute error in units of 1/255 of the [0, 1] pixel scale.
fn err_255(ours: &[f32], golden: &[f32], cfg: &PreprocessConfig) -> [(f64, f64); 3] {
    assert_eq!(ours.len(), golden.len());
    let plane = ours.len() / 3;
    let mut out = [(0.0, 0.0); 3];
    for (ch, o) in out.iter_mut().enumerate() {
        let (mut sum, mut max) = (0.0f64, 0.0f64);
        for i in ch * plane..(ch + 1) * plane {
            let d = ((ours[i] - golden[i]) as f64).abs() * cfg.std[ch] as f64 * 255.0;
            sum += d;
            max = max.max(d);
        }
        *o = (sum / plane as f64, max);
    }
    out
}

fn fmt_err(e: &[(f64, f64); 3]) -> String {
    e.iter()
        .map(|(m, x)| format!("{m:.4}/{x:.2}"))
        .collect::<Vec<_>>()
        .join("  ")
}

fn bits_equal(a: &[f32], b: &[f32]) -> usize {
    a.iter().zip(b).filter(|(x, y)| x.to_bits() != y.to_bits()).count()
}

fn cfg32(crop: (usize, usize)) -> PreprocessConfig {
    PreprocessConfig {
        crop,
        ..PreprocessConfig::openai(32)
    }
}

/// A golden stored as an 8-bit PNG (HWC), returned planar.
fn png_planar(path: &Path) -> (Vec<u8>, usize, usize) {
    let img = image::open(path).unwrap().to_rgb8();
    let (w, h) = (img.width() as usize, img.height() as usize);
    let mut out = vec![0u8; 3 * h * w];
    for (i, p) in img.as_raw().chunks_exact(3).enumerate() {
        for ch in 0..3 {
            out[ch * h * w + i] = p[ch];
        }
    }
    (out, h, w)
}

/// The RGB that PIL decoded (JPEGs) or that we decode ourselves.
fn rgb_for(img: &Image, goldens: &Goldens, pil_decode: bool) -> Rgb8 {
    if pil_decode && is_jpeg(img) {
        let (data, shape) = goldens.u8(&format!("decoded/{}", img.name));
        Rgb8 {
            width: shape[1],
            height: shape[0],
            data,
        }
    } else {
        to_rgb8(&load_image(&input(&img.file)).unwrap())
    }
}

#[test]
fn pil_path_goldens_are_bit_exact() {
    // PNGs from our decoder, JPEGs from PIL's decode: the whole pipeline must be bit-exact.
    let (m, images) = manifest();
    let s224: Vec<&str> = m["s224"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let f32_names: Vec<&str> = m["f32"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let goldens = Goldens::load();
    let mut failures = Vec::new();
    println!("per channel mean/max abs error in 1/255 units (R  G  B)");
    for img in &images {
        let rgb = rgb_for(img, &goldens, true);
        for (key, crop) in [("s32_c32x32", (32, 32)), ("s32_c40x24", (40, 24))] {
            let cfg = cfg32(crop);
            let (golden_u8, shape) = goldens.u8(&format!("{}/{key}", img.name));
            assert_eq!(shape, vec![3, crop.0, crop.1]);
            let ours_u8 = resize_crop_u8(&rgb, &cfg);
            let ours = normalize_u8(&ours_u8, &cfg);
            let e = err_255(&ours, &normalize_u8(&golden_u8, &cfg), &cfg);
            let nd = ours_u8.iter().zip(&golden_u8).filter(|(a, b)| a != b).count();
            let mut line = format!("{:20} {key:12} {}  ({nd} bytes differ", img.name, fmt_err(&e));
            if nd != 0 {
                failures.push(format!("{} {key}: {nd} bytes differ, {}", img.name, fmt_err(&e)));
            }
            if f32_names.contains(&img.name.as_str()) {
                // HF's f32 pixel_values themselves.
                let (golden, _) = goldens.f32(&format!("f32/{}/{key}", img.name));
                let nb = bits_equal(&ours, &golden);
                line += &format!(", {nb} f32 values not bit-equal to HF's");
                if nb != 0 {
                    failures.push(format!("{} {key}: {nb} f32 values differ", img.name));
                }
            }
            println!("{line})");
        }
        if !s224.contains(&img.name.as_str()) {
            continue;
        }
        let cfg = PreprocessConfig::openai(224);
        let (golden_u8, h, w) = png_planar(&fixtures().join("s224").join(format!("{}.png", img.name)));
        assert_eq!((h, w), (224, 224));
        let ours_u8 = resize_crop_u8(&rgb, &cfg);
        let e = err_255(&normalize_u8(&ours_u8, &cfg), &normalize_u8(&golden_u8, &cfg), &cfg);
        let nd = ours_u8.iter().zip(&golden_u8).filter(|(a, b)| a != b).count();
        println!(
            "{:20} {:12} {}  ({nd} bytes differ)",
            img.name,
            "s224_c224",
            fmt_err(&e)
        );
        if nd != 0 {
            failures.push(format!("{} s224: {nd} bytes differ, {}", img.name, fmt_err(&e)));
        }
    }
    assert!(failures.is_empty(), "not bit-exact:\n{}", failures.join("\n"));
}

#[test]
fn s224_float_path_matches_hf_f32() {
    // The s224 goldens are stored as bytes; the f32 step is checked bit-exact by the s32
    // goldens, and here against an independent f64 evaluation of HF's formula.
    let cfg = PreprocessConfig::openai(224);
    let planar: Vec<u8> = (0..3).flat_map(|_| 0..=255u8).collect();
    let out = normalize_u8(&planar, &cfg);
    for ch in 0..3 {
        for u in 0..256usize {
            let x = (u as f64 / 255.0) as f32;
            let want = (x - cfg.mean[ch]) / cfg.std[ch];
            assert_eq!(out[ch * 256 + u].to_bits(), want.to_bits());
        }
    }
}

#[test]
fn jpeg_decoder_and_pipeline_errors() {
    let (_, images) = manifest();
    let goldens = Goldens::load();
    for img in images.iter().filter(|i| is_jpeg(i)) {
        let ours = to_rgb8(&load_image(&input(&img.file)).unwrap());
        let (pil, shape) = goldens.u8(&format!("decoded/{}", img.name));
        assert_eq!((ours.height, ours.width), (shape[0], shape[1]));
        let mut sum = [0f64; 3];
        let mut max = [0u8; 3];
        for (i, (a, b)) in ours.data.iter().zip(&pil).enumerate() {
            let d = a.abs_diff(*b);
            sum[i % 3] += d as f64;
            max[i % 3] = max[i % 3].max(d);
        }
        let n = (ours.width * ours.height) as f64;
        println!(
            "{:20} decode vs PIL: mean {:.3} {:.3} {:.3}  max {:?}",
            img.name,
            sum[0] / n,
            sum[1] / n,
            sum[2] / n,
            max
        );
        for (key, cfg) in [("s32_c32x32", cfg32((32, 32))), ("s32_c40x24", cfg32((40, 24)))] {
            let (golden, _) = goldens.u8(&format!("{}/{key}", img.name));
            let e = err_255(&preprocess_rgb8(&ours, &cfg), &normalize_u8(&golden, &cfg), &cfg);
            println!("{:20} {key:12} {}  (our decoder)", img.name, fmt_err(&e));
            assert!(e.iter().all(|(m, _)| *m <= 2.0), "{} {key}: {}", img.name, fmt_err(&e));
        }
        let s224 = fixtures().join("s224").join(format!("{}.png", img.name));
        if !s224.is_file() {
            continue;
        }
        let cfg = PreprocessConfig::openai(224);
        let (golden_u8, _, _) = png_planar(&s224);
        let e = err_255(&preprocess_rgb8(&ours, &cfg), &normalize_u8(&golden_u8, &cfg), &cfg);
        println!("{:20} {:12} {}  (our decoder)", img.name, "s224_c224", fmt_err(&e));
        assert!(e.iter().all(|(m, _)| *m <= 2.0), "{} s224: {}", img.name, fmt_err(&e));
    }
}

#[test]
fn torchvision_backend_within_tolerance() {
    // transformers 5.x's default CLIPImageProcessor resizes in float with torchvision.
    let (_, images) = manifest();
    let goldens = Goldens::load();
    let cfg = cfg32((32, 32));
    for img in &images {
        let ours = preprocess(&load_image(&input(&img.file)).unwrap(), &cfg);
        let (golden, _) = goldens.f32(&format!("tv/{}/s32_c32x32", img.name));
        let e = err_255(&ours, &golden, &cfg);
        println!("{:20} vs torchvision backend {}", img.name, fmt_err(&e));
        assert!(e.iter().all(|(m, _)| *m <= 2.0), "{}: {}", img.name, fmt_err(&e));
    }
}

#[test]
fn modes_decode_like_pil() {
    let (m, _) = manifest();
    for e in m["images"].as_array().unwrap() {
        let file = e["file"].as_str().unwrap();
        let img = load_image(&input(file)).unwrap();
        let size = e["size_wh"].as_array().unwrap();
        assert_eq!(img.width() as u64, size[0].as_u64().unwrap(), "{file}");
        assert_eq!(img.height() as u64, size[1].as_u64().unwrap(), "{file}");
    }
    // The grey16 golden is HF on the high byte (PIL's own I;16 -> RGB clamps to 255).
    let g = to_rgb8(&load_image(&input("grey16_24x36.png")).unwrap());
    let raw = image::open(input("grey16_24x36.png")).unwrap().into_luma16();
    for (i, v) in raw.as_raw().iter().enumerate() {
        assert_eq!(g.data[i * 3], (v >> 8) as u8);
    }
}

#[test]
fn alpha_composites_onto_white() {
    // Exhaustive against PIL's Image.alpha_composite(white, src) formula, spot-checked values
    // measured with Pillow 13.
    let mut buf = image::RgbaImage::new(256, 256);
    for (x, y, p) in buf.enumerate_pixels_mut() {
        *p = image::Rgba([x as u8, x as u8, 255 - x as u8, y as u8]);
    }
    let rgb = to_rgb8(&image::DynamicImage::ImageRgba8(buf));
    let at = |c: usize, a: usize| rgb.data[(a * 256 + c) * 3];
    for c in 0..256 {
        assert_eq!(at(c, 255), c as u8, "opaque keeps the colour");
        assert_eq!(at(c, 0), 255, "transparent is white");
    }
    // (c, a) -> PIL: float blend c*a/255 + 255*(1-a/255), rounded, within 1.
    for a in 0..256 {
        for c in 0..256 {
            let f = c as f64 * a as f64 / 255.0 + 255.0 * (1.0 - a as f64 / 255.0);
            assert!((at(c, a) as f64 - f).abs() <= 1.0, "c {c} a {a}: {} vs {f}", at(c, a));
        }
    }
}

#[test]
fn output_sizes_follow_hf() {
    assert_eq!(resized_size(53, 37, 224), (320, 224));
    assert_eq!(resized_size(40, 64, 224), (224, 358));
    assert_eq!(resized_size(300, 20, 32), (480, 32));
    assert_eq!(resized_size(30, 30, 224), (224, 224));
    assert_eq!(resized_size(50, 32, 32), (50, 32));
    assert_eq!(resized_size(0, 10, 32), (0, 0));
}

#[test]
fn degenerate_inputs_do_not_panic() {
    let cfg = PreprocessConfig::openai(8);
    let pad = normalize_u8(&[0u8; 3 * 64], &cfg);
    for img in [image::DynamicImage::new_rgb8(0, 0), image::DynamicImage::new_rgb8(0, 5)] {
        assert_eq!(preprocess(&img, &cfg), pad);
    }
    // Extreme aspect ratios only compute the crop window.
    let thin = image::DynamicImage::ImageRgb8(image::RgbImage::from_pixel(1, 60000, image::Rgb([200, 10, 30])));
    let out = preprocess(&thin, &PreprocessConfig::openai(224));
    assert_eq!(out.len(), 3 * 224 * 224);
    let want = normalize_u8(&[200, 10, 30], &PreprocessConfig::openai(224));
    for ch in 0..3 {
        assert!(out[ch * 224 * 224..(ch + 1) * 224 * 224]
            .iter()
            .all(|v| (v - want[ch]).abs() < 1e-6));
    }
    // A crop larger than the resized image pads with zeros (HF's center_crop).
    let small = image::DynamicImage::ImageRgb8(image::RgbImage::from_pixel(3, 3, image::Rgb([255, 255, 255])));
    let cfg = PreprocessConfig {
        shortest_edge: 3,
        crop: (6, 5),
        ..PreprocessConfig::openai(3)
    };
    let u = resize_crop_u8(&to_rgb8(&small), &cfg);
    // rows: offset floor((3 - 6) / 2) = -2 -> image rows at crop rows 2..5; cols: -1 -> 1..4.
    for y in 0..6 {
        for x in 0..5 {
            let inside = (2..5).contains(&y) && (1..4).contains(&x);
            assert_eq!(u[y * 5 + x], if inside { 255 } else { 0 }, "({y}, {x})");
        }
    }
    let one = image::DynamicImage::ImageLuma8(image::GrayImage::from_pixel(1, 1, image::Luma([7])));
    assert_eq!(preprocess(&one, &PreprocessConfig::openai(1)).len(), 3);
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

#[test]
fn config_readers() {
    let d = temp_dir("cfg-none");
    assert_eq!(
        PreprocessConfig::from_model_dir(&d, 336).unwrap(),
        PreprocessConfig::openai(336)
    );

    // HF, current format.
    let d = temp_dir("cfg-hf");
    write(
        &d,
        "preprocessor_config.json",
        r#"{"crop_size": {"height": 32, "width": 32}, "do_center_crop": true, "do_convert_rgb": true,
            "do_normalize": true, "do_rescale": true, "do_resize": true,
            "image_mean": [0.5, 0.25, 0.125], "image_std": [0.1, 0.2, 0.3],
            "image_processor_type": "CLIPImageProcessor", "resample": 3,
            "rescale_factor": 0.00392156862745098, "size": {"shortest_edge": 40}}"#,
    );
    let c = PreprocessConfig::from_model_dir(&d, 32).unwrap();
    assert_eq!(c.shortest_edge, 40);
    assert_eq!(c.crop, (32, 32));
    assert_eq!(c.mean, [0.5, 0.25, 0.125]);
    assert_eq!(c.std, [0.1f64 as f32, 0.2f64 as f32, 0.3f64 as f32]);

    // HF, old integer format (openai/clip-vit-base-patch32).
    write(
        &d,
        "preprocessor_config.json",
        r#"{"size": 224, "crop_size": 224, "feature_extractor_type": "CLIPFeatureExtractor"}"#,
    );
    assert_eq!(
        PreprocessConfig::from_model_dir(&d, 224).unwrap(),
        PreprocessConfig::openai(224)
    );
    // Crop must be the model's input size.
    let e = PreprocessConfig::from_model_dir(&d, 336).unwrap_err();
    assert!(
        e.msg.contains("preprocessor_config.json") && e.msg.contains("336"),
        "{e}"
    );
    // Unsupported settings are errors naming the file and the key.
    for (text, key) in [
        (r#"{"resample": 2}"#, "resample"),
        (r#"{"do_center_crop": false}"#, "do_center_crop"),
        (r#"{"size": {"height": 224, "width": 224}}"#, "size"),
        (r#"{"image_mean": [0.5, 0.5]}"#, "image_mean"),
        (r#"{"image_std": [0.5, 0.0, 0.5]}"#, "std"),
        (r#"{"size": -3}"#, "size"),
        (r#"{"size": "#, "invalid JSON"),
    ] {
        write(&d, "preprocessor_config.json", text);
        let e = PreprocessConfig::from_model_dir(&d, 224).unwrap_err();
        assert!(
            e.msg.contains("preprocessor_config.json") && e.msg.contains(key),
            "{text}: {e}"
        );
    }

    // open_clip.
    let d = temp_dir("cfg-oc");
    write(
        &d,
        "open_clip_config.json",
        r#"{"model_cfg": {"vision_cfg": {"image_size": 32}},
            "preprocess_cfg": {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}}"#,
    );
    let c = PreprocessConfig::from_model_dir(&d, 32).unwrap();
    assert_eq!(
        c,
        PreprocessConfig {
            mean: [0.5; 3],
            std: [0.5; 3],
            pipeline: Pipeline::OpenClip,
            ..PreprocessConfig::openai(32)
        }
    );
    let forced = PreprocessConfig::from_model_dir_with(&d, 32, Some(Pipeline::Hf)).unwrap();
    assert_eq!(forced.pipeline, Pipeline::Hf);
    write(
        &d,
        "open_clip_config.json",
        r#"{"preprocess_cfg": {"size": 48, "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5],
            "interpolation": "bicubic", "resize_mode": "shortest"}}"#,
    );
    let c = PreprocessConfig::from_model_dir(&d, 48).unwrap();
    assert_eq!((c.shortest_edge, c.crop), (48, (48, 48)));
    write(
        &d,
        "open_clip_config.json",
        r#"{"preprocess_cfg": {"resize_mode": "squash"}}"#,
    );
    let e = PreprocessConfig::from_model_dir(&d, 32).unwrap_err();
    assert!(
        e.msg.contains("open_clip_config.json") && e.msg.contains("squash"),
        "{e}"
    );

    // The project's own tiny fixture.
    let tiny = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-clip/open_clip");
    if tiny.join("open_clip_config.json").is_file() {
        assert_eq!(
            PreprocessConfig::from_model_dir(&tiny, 32).unwrap(),
            PreprocessConfig {
                pipeline: Pipeline::OpenClip,
                ..PreprocessConfig::openai(32)
            }
        );
    }
}

fn bad_files() -> (PathBuf, Vec<(PathBuf, &'static str)>) {
    let d = temp_dir("bad");
    let png = std::fs::read(input("rgb_37x53.png")).unwrap();
    let jpg = std::fs::read(input("photo_80x60.jpg")).unwrap();
    std::fs::write(d.join("empty.png"), b"").unwrap();
    std::fs::write(d.join("truncated.png"), &png[..png.len() / 2]).unwrap();
    std::fs::write(d.join("truncated.jpg"), &jpg[..jpg.len() / 3]).unwrap();
    std::fs::write(d.join("no_eoi.jpg"), &jpg[..jpg.len() - 2]).unwrap();
    std::fs::write(d.join("notes.png"), b"this is not an image\n").unwrap();
    std::fs::write(d.join("header_only.png"), &png[..40]).unwrap();
    std::fs::create_dir_all(d.join("folder.png")).unwrap();
    let cases = vec![
        (d.join("missing.png"), "missing.png"),
        (d.join("empty.png"), "empty.png"),
        (d.join("truncated.png"), "truncated.png"),
        (d.join("truncated.jpg"), "truncated.jpg"),
        (d.join("notes.png"), "notes.png"),
        (d.join("header_only.png"), "header_only.png"),
        (d.join("folder.png"), "folder.png"),
        (d.join("no_eoi.jpg"), "no_eoi.jpg"),
    ];
    (d, cases)
}

#[test]
fn bad_inputs_are_errors_naming_the_file() {
    let (_d, cases) = bad_files();
    for (path, name) in cases {
        match load_image(&path) {
            Ok(img) => panic!("{name}: decoded a {}x{} image", img.width(), img.height()),
            Err(e) => {
                println!("{e}");
                assert!(e.msg.contains(name), "{e}");
            }
        }
    }
}

#[test]
fn jpeg_with_trailing_bytes_loads() {
    // PIL accepts data after the end-of-image marker; so do we.
    let d = temp_dir("trailing");
    let mut jpg = std::fs::read(input("photo_80x60.jpg")).unwrap();
    let want = load_image(&input("photo_80x60.jpg")).unwrap();
    jpg.extend_from_slice(b"garbage after the image \xff\x00");
    std::fs::write(d.join("trailing.jpg"), &jpg).unwrap();
    assert_eq!(load_image(&d.join("trailing.jpg")).unwrap(), want);
}

#[test]
fn skip_bad_images() {
    let (_d, cases) = bad_files();
    let cfg = PreprocessConfig::openai(32);
    let good = [
        input("rgb_37x53.png"),
        input("grey_30x30.png"),
        input("photo_80x60.jpg"),
    ];
    let paths = vec![
        good[0].clone(),
        cases[2].0.clone(), // truncated.png
        good[1].clone(),
        cases[4].0.clone(), // notes.png
        good[2].clone(),
    ];
    // Every bad image is named; no flag is suggested (train and eval have none).
    let e = preprocess_files(&paths, &cfg, false).unwrap_err();
    assert!(
        e.msg.contains("2 of 5")
            && e.msg.contains("truncated.png")
            && e.msg.contains("notes.png")
            && !e.msg.contains("--skip-bad-images"),
        "{e}"
    );

    let (data, kept, skipped) = preprocess_files(&paths, &cfg, true).unwrap();
    assert_eq!(kept, vec![0, 2, 4]);
    assert_eq!(skipped.len(), 2);
    assert!(
        skipped[0].contains("truncated.png") && skipped[1].contains("notes.png"),
        "{skipped:?}"
    );
    let per = 3 * 32 * 32;
    assert_eq!(data.len(), 3 * per);
    for (i, p) in good.iter().enumerate() {
        let one = preprocess(&load_image(p).unwrap(), &cfg);
        assert_eq!(&data[i * per..(i + 1) * per], &one[..]);
    }

    let (data, kept, skipped) = preprocess_files(&good, &cfg, false).unwrap();
    assert_eq!((data.len(), kept.len(), skipped.len()), (3 * per, 3, 0));
    let (data, kept, _) = preprocess_files(&[], &cfg, false).unwrap();
    assert!(data.is_empty() && kept.is_empty());
    let bad_cfg = PreprocessConfig { crop: (0, 32), ..cfg };
    assert!(preprocess_files(&good, &bad_cfg, false).is_err());
}

#[test]
#[ignore = "timing only: cargo test --test preprocess -- --ignored --nocapture"]
fn large_image_timing() {
    let (w, h) = (4000u32, 3000u32);
    let img = image::DynamicImage::ImageRgb8(image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, ((x * 7 + y * 3) % 256) as u8])
    }));
    let cfg = PreprocessConfig::openai(224);
    let t = std::time::Instant::now();
    let rgb = to_rgb8(&img);
    let t_rgb = t.elapsed();
    let out = preprocess_rgb8(&rgb, &cfg);
    println!(
        "{w}x{h}: to_rgb8 {:?}, resize+crop+normalise {:?}",
        t_rgb,
        t.elapsed() - t_rgb
    );
    assert_eq!(out.len(), 3 * 224 * 224);
}
