//! CLIP image preprocessing, bit-exact with transformers' `CLIPImageProcessor` on its PIL
//! path (`CLIPImageProcessorPil` in transformers 5.x, the way OpenAI's CLIP preprocesses):
//!
//! 1. convert to RGB as transformers' `convert_to_rgb` does: images with an alpha band or a
//!    `tRNS` transparency are alpha-composited onto white with PIL's integer arithmetic
//!    (`Image.alpha_composite`), others go through PIL's `convert("RGB")` (grey replicated,
//!    palette expanded, 16-bit RGB(A) PNGs keep the high byte as PIL's PNG decoder does);
//! 2. resize so the short side is `shortest_edge` and the long side
//!    `int(shortest_edge * long / short)`, with PIL's `ImagingResample` BICUBIC (Keys cubic,
//!    a = -0.5, support scaled by the shrink factor when shrinking, coefficients in 22-bit fixed
//!    point, horizontal pass then vertical pass, each rounded and clamped to 8 bits);
//! 3. center-crop to `crop` with HF's offsets (`(size - crop) // 2`), padding with zeros where
//!    the image is smaller;
//! 4. rescale by 1/255 (in f64, then f32) and normalise `(x - mean) / std` in f32.
//!
//! Only the cropped window of the resized image is computed: each output pixel of PIL's
//! separable resize depends only on its own coefficients, so this gives PIL's values while a
//! 1 x 60000 image costs no more than its crop.
//!
//! Known differences from transformers + PIL (see tests/preprocess.rs and
//! tools/make_preprocess_goldens.py):
//! - 16-bit greyscale PNGs: PIL's `I;16` -> RGB conversion clamps values above 255 to white;
//!   here the high byte is kept (as PIL itself does for 16-bit colour PNGs).
//! - JPEG: decoded by `zune-jpeg` (through the `image` crate), not libjpeg-turbo; the decoded
//!   RGB can differ by a few units per pixel (IDCT and chroma upsampling details).
//! - CMYK JPEGs are converted to RGB by the decoder, not by PIL's naive CMYK -> RGB formula.
//!
//! With [`Pipeline::OpenClip`] (the default for open_clip model directories) the steps are
//! open_clip's inference transform instead, torchvision's `Resize(bicubic)` + `CenterCrop` +
//! `convert("RGB")` + `ToTensor` + `Normalize` on a PIL image:
//! 1. resize first, in the image's own mode: RGB and grey as above; images with alpha are
//!    resized premultiplied (PIL converts RGBA -> RGBa, resizes, converts back, all in 8-bit
//!    integer arithmetic) and the alpha is then dropped, not composited onto white;
//! 2. center-crop with torchvision's offsets: `round((size - crop) / 2)` (Python's round, half
//!    to even) where HF floors, and `(crop - size) // 2` zero padding on the left/top;
//! 3. `u8 as f32 / 255` in f32, then `(x - mean) / std`.
//!
//! Known differences from open_clip + PIL: palette PNGs (PIL resizes mode "P" nearest-neighbour;
//! the `image` crate expands the palette at decode, so they are resized bicubic) and RGB PNGs
//! with a `tRNS` colour (PIL keeps them RGB; decoded here with an alpha, so premultiplied),
//! plus the decoder notes above.
use std::path::{Path, PathBuf};

use image::DynamicImage;
use rayon::prelude::*;
use serde_json::Value;

use super::pipeline::Pipeline;
use crate::error::{Error, Result};
use crate::user_file::{open_regular, IMAGE_MAX_BYTES};

/// OpenAI CLIP's normalisation (transformers' `OPENAI_CLIP_MEAN` / `OPENAI_CLIP_STD`).
pub const OPENAI_CLIP_MEAN: [f64; 3] = [0.48145466, 0.4578275, 0.40821073];
pub const OPENAI_CLIP_STD: [f64; 3] = [0.26862954, 0.26130258, 0.27577711];

/// The preprocessing of one model: resize the short side to `shortest_edge`, center-crop to
/// `crop` (height, width), normalise with `mean` / `std` (per RGB channel, on [0, 1] values).
#[derive(Debug, Clone, PartialEq)]
pub struct PreprocessConfig {
    pub shortest_edge: usize,
    /// (height, width) of the crop, which is the model input size.
    pub crop: (usize, usize),
    pub mean: [f32; 3],
    pub std: [f32; 3],
    /// Whose image transform to reproduce (see the module docs).
    pub pipeline: Pipeline,
}

fn to_f32x3(v: [f64; 3]) -> [f32; 3] {
    // Through f64 as numpy's `np.array(list_of_python_floats, dtype=float32)` does.
    [v[0] as f32, v[1] as f32, v[2] as f32]
}

impl PreprocessConfig {
    /// OpenAI CLIP's preprocessing for a `image_size` x `image_size` model input.
    pub fn openai(image_size: usize) -> PreprocessConfig {
        PreprocessConfig {
            shortest_edge: image_size,
            crop: (image_size, image_size),
            mean: to_f32x3(OPENAI_CLIP_MEAN),
            std: to_f32x3(OPENAI_CLIP_STD),
            pipeline: Pipeline::Hf,
        }
    }

    /// The preprocessing stored with a checkpoint: `preprocessor_config.json` (HF) when present,
    /// else the `preprocess_cfg` of `open_clip_config.json`, else [`PreprocessConfig::openai`].
    /// Missing keys default to OpenAI's values at `image_size`. Settings this module cannot
    /// honour (another resampling filter, no center crop, a squashing resize, a crop that is
    /// not the model's `image_size`) are an error rather than silently different inputs.
    /// The transform is the directory layout's own ([`Pipeline::of_model_dir`]).
    pub fn from_model_dir(dir: &Path, image_size: usize) -> Result<PreprocessConfig> {
        Self::from_model_dir_with(dir, image_size, None)
    }

    /// [`PreprocessConfig::from_model_dir`] with the pipeline overridden when given.
    pub fn from_model_dir_with(dir: &Path, image_size: usize, pipeline: Option<Pipeline>) -> Result<PreprocessConfig> {
        let mut cfg = Self::read_model_dir(dir, image_size)?;
        cfg.pipeline = Pipeline::resolve(pipeline, dir);
        Ok(cfg)
    }

    fn read_model_dir(dir: &Path, image_size: usize) -> Result<PreprocessConfig> {
        let hf = dir.join("preprocessor_config.json");
        let oc = dir.join("open_clip_config.json");
        let cfg = if hf.is_file() {
            let v = read_json(&hf)?;
            from_hf_json(&v, image_size).map_err(|m| Error::invalid(format!("{}: {m}", hf.display())))?
        } else if oc.is_file() {
            let v = read_json(&oc)?;
            from_open_clip_json(&v, image_size).map_err(|m| Error::invalid(format!("{}: {m}", oc.display())))?
        } else {
            PreprocessConfig::openai(image_size)
        };
        if cfg.crop != (image_size, image_size) {
            let file = if hf.is_file() { hf } else { oc };
            return Err(Error::invalid(format!(
                "{}: crop size {}x{} (height x width) does not match the model's image_size {image_size}",
                file.display(),
                cfg.crop.0,
                cfg.crop.1
            )));
        }
        Ok(cfg)
    }

    /// Checks sizes and normalisation values (positive sizes, finite mean, nonzero finite std).
    pub fn validate(&self) -> Result<()> {
        if self.shortest_edge == 0 || self.crop.0 == 0 || self.crop.1 == 0 {
            return Err(Error::invalid(format!(
                "preprocess: sizes must be positive (shortest_edge {}, crop {}x{})",
                self.shortest_edge, self.crop.0, self.crop.1
            )));
        }
        if self.mean.iter().any(|m| !m.is_finite()) || self.std.iter().any(|s| !s.is_finite() || *s == 0.0) {
            return Err(Error::invalid(format!(
                "preprocess: mean {:?} must be finite and std {:?} finite and nonzero",
                self.mean, self.std
            )));
        }
        Ok(())
    }
}

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path.display(), e))?;
    serde_json::from_str(&text).map_err(|e| Error::io(path.display(), format!("invalid JSON: {e}")))
}

fn positive_int(v: &Value, what: &str) -> std::result::Result<usize, String> {
    match v.as_u64() {
        Some(n) if n > 0 && n <= 1 << 20 => Ok(n as usize),
        _ => Err(format!("{what} must be a positive integer, got {v}")),
    }
}

fn triple(v: &Value, what: &str) -> std::result::Result<[f32; 3], String> {
    let arr = match v {
        Value::Array(a) if a.len() == 3 => a,
        // A single number applies to all channels (HF accepts a float too).
        Value::Number(_) => return triple(&Value::Array(vec![v.clone(), v.clone(), v.clone()]), what),
        _ => return Err(format!("{what} must be a list of 3 numbers, got {v}")),
    };
    let mut out = [0f64; 3];
    for (o, x) in out.iter_mut().zip(arr) {
        *o = x
            .as_f64()
            .ok_or_else(|| format!("{what} must be a list of 3 numbers, got {v}"))?;
    }
    Ok(to_f32x3(out))
}

fn check_flag(v: &Value, key: &str, msg: &str) -> std::result::Result<(), String> {
    match v.get(key) {
        Some(Value::Bool(false)) => Err(format!("{key}: false is not supported ({msg})")),
        _ => Ok(()),
    }
}

fn from_hf_json(v: &Value, image_size: usize) -> std::result::Result<PreprocessConfig, String> {
    let mut cfg = PreprocessConfig::openai(image_size);
    if !v.is_object() {
        return Err("expected a JSON object".into());
    }
    check_flag(v, "do_resize", "CLIP preprocessing always resizes the short side")?;
    check_flag(v, "do_center_crop", "CLIP preprocessing always center-crops")?;
    check_flag(v, "do_rescale", "pixels are always scaled to [0, 1]")?;
    check_flag(v, "do_normalize", "pixels are always normalised")?;
    if let Some(r) = v.get("resample") {
        if r.as_u64() != Some(3) {
            return Err(format!("resample {r} is not supported (only 3, PIL BICUBIC)"));
        }
    }
    if let Some(f) = v.get("rescale_factor") {
        match f.as_f64() {
            Some(x) if (x - 1.0 / 255.0).abs() < 1e-9 => {}
            _ => return Err(format!("rescale_factor {f} is not supported (only 1/255)")),
        }
    }
    match v.get("size") {
        None | Some(Value::Null) => {}
        Some(s @ Value::Number(_)) => cfg.shortest_edge = positive_int(s, "size")?,
        Some(Value::Object(m)) => match m.get("shortest_edge") {
            Some(s) if m.get("longest_edge").is_none_or(|l| l.is_null()) => {
                cfg.shortest_edge = positive_int(s, "size.shortest_edge")?
            }
            Some(_) => return Err("size.longest_edge is not supported".into()),
            None => {
                return Err(format!(
                    "size {} is not supported (only {{\"shortest_edge\": n}}: resize keeping the aspect ratio)",
                    Value::Object(m.clone())
                ))
            }
        },
        Some(s) => return Err(format!("size must be an integer or {{\"shortest_edge\": n}}, got {s}")),
    }
    match v.get("crop_size") {
        None | Some(Value::Null) => {}
        Some(c @ Value::Number(_)) => {
            let n = positive_int(c, "crop_size")?;
            cfg.crop = (n, n);
        }
        Some(Value::Object(m)) => {
            let h = m.get("height").ok_or("crop_size needs height and width")?;
            let w = m.get("width").ok_or("crop_size needs height and width")?;
            cfg.crop = (
                positive_int(h, "crop_size.height")?,
                positive_int(w, "crop_size.width")?,
            );
        }
        Some(c) => return Err(format!("crop_size must be an integer or {{height, width}}, got {c}")),
    }
    if let Some(m) = v.get("image_mean").filter(|m| !m.is_null()) {
        cfg.mean = triple(m, "image_mean")?;
    }
    if let Some(s) = v.get("image_std").filter(|s| !s.is_null()) {
        cfg.std = triple(s, "image_std")?;
    }
    cfg.validate().map_err(|e| e.msg)?;
    Ok(cfg)
}

fn from_open_clip_json(v: &Value, image_size: usize) -> std::result::Result<PreprocessConfig, String> {
    let mut cfg = PreprocessConfig::openai(image_size);
    let p = match v.get("preprocess_cfg") {
        None | Some(Value::Null) => return Ok(cfg),
        Some(p @ Value::Object(_)) => p,
        Some(p) => return Err(format!("preprocess_cfg must be an object, got {p}")),
    };
    if let Some(m) = p.get("mean").filter(|m| !m.is_null()) {
        cfg.mean = triple(m, "preprocess_cfg.mean")?;
    }
    if let Some(s) = p.get("std").filter(|s| !s.is_null()) {
        cfg.std = triple(s, "preprocess_cfg.std")?;
    }
    if let Some(i) = p.get("interpolation").filter(|i| !i.is_null()) {
        if i.as_str() != Some("bicubic") {
            return Err(format!(
                "preprocess_cfg.interpolation {i} is not supported (only \"bicubic\")"
            ));
        }
    }
    if let Some(r) = p.get("resize_mode").filter(|r| !r.is_null()) {
        if r.as_str() != Some("shortest") {
            return Err(format!(
                "preprocess_cfg.resize_mode {r} is not supported (only \"shortest\")"
            ));
        }
    }
    match p.get("size") {
        None | Some(Value::Null) => {}
        Some(s @ Value::Number(_)) => {
            let n = positive_int(s, "preprocess_cfg.size")?;
            cfg.shortest_edge = n;
            cfg.crop = (n, n);
        }
        Some(Value::Array(a)) if a.len() == 2 => {
            let h = positive_int(&a[0], "preprocess_cfg.size[0]")?;
            let w = positive_int(&a[1], "preprocess_cfg.size[1]")?;
            if h != w {
                return Err(format!("preprocess_cfg.size {h}x{w}: only square sizes are supported"));
            }
            cfg.shortest_edge = h;
            cfg.crop = (h, w);
        }
        Some(s) => return Err(format!("preprocess_cfg.size must be an integer or [h, w], got {s}")),
    }
    cfg.validate().map_err(|e| e.msg)?;
    Ok(cfg)
}

/// Reads a PNG or JPEG. A missing, empty, truncated or undecodable file is an error naming the
/// file and the reason. Like PIL (without `LOAD_TRUNCATED_IMAGES`), a JPEG whose data ends
/// before its end-of-image marker is an error, not an image with a grey bottom. Only regular
/// files are read (a FIFO or `/dev/zero` fails at once), the format is sniffed from the first
/// bytes before the rest is read, and files above [`IMAGE_MAX_BYTES`] are refused.
pub fn load_image(path: &Path) -> Result<DynamicImage> {
    let bytes = read_image_bytes(path)?;
    decode_image(path, bytes)
}

/// The bytes of an image file, sniffed as PNG or JPEG from its first bytes before the rest
/// is read.
fn read_image_bytes(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let shown = path.display().to_string();
    let mut f = open_regular(path, "image")?;
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    if len > IMAGE_MAX_BYTES {
        return Err(Error::limit(format!(
            "{shown}: cannot read image: {len} bytes is above the {} MiB limit for one image",
            IMAGE_MAX_BYTES >> 20
        )));
    }
    let mut head = Vec::with_capacity(16);
    (&mut f)
        .take(16)
        .read_to_end(&mut head)
        .map_err(|e| Error::io(&shown, format!("cannot read image: {e}")))?;
    sniff_format(path, &head)?;
    let mut bytes = head;
    f.take(IMAGE_MAX_BYTES + 1 - bytes.len() as u64)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(&shown, format!("cannot read image: {e}")))?;
    if bytes.len() as u64 > IMAGE_MAX_BYTES {
        return Err(Error::limit(format!(
            "{shown}: cannot read image: above the {} MiB limit for one image",
            IMAGE_MAX_BYTES >> 20
        )));
    }
    Ok(bytes)
}

/// PNG or JPEG from the first bytes; anything else is an error naming the file.
fn sniff_format(path: &Path, head: &[u8]) -> Result<image::ImageFormat> {
    let shown = path.display().to_string();
    if head.is_empty() {
        return Err(Error::io(shown, "cannot read image: empty file (0 bytes)"));
    }
    match image::guess_format(head) {
        Ok(f @ (image::ImageFormat::Png | image::ImageFormat::Jpeg)) => Ok(f),
        Ok(f) => Err(Error::io(
            shown,
            format!("cannot read image: {f:?} images are not supported (PNG or JPEG only)"),
        )),
        Err(_) => Err(Error::io(shown, "cannot read image: not a PNG or JPEG file")),
    }
}

/// Decode the bytes of a PNG or JPEG (`path` names it in messages). Public for the fuzz
/// targets, which feed it arbitrary bytes.
pub fn decode_image(path: &Path, bytes: Vec<u8>) -> Result<DynamicImage> {
    let shown = path.display().to_string();
    let shown = shown.as_str();
    let format = sniff_format(path, &bytes)?;
    if format == image::ImageFormat::Jpeg {
        jpeg_complete(&bytes).map_err(|why| Error::io(shown, format!("cannot decode image: {why}")))?;
    }
    let reader = image::ImageReader::with_format(std::io::Cursor::new(bytes), format);
    let img = reader
        .decode()
        .map_err(|e| Error::io(shown, format!("cannot decode image: {e}")))?;
    if img.width() == 0 || img.height() == 0 {
        return Err(Error::io(
            shown,
            format!("image has no pixels ({}x{})", img.width(), img.height()),
        ));
    }
    Ok(img)
}

/// Walks a JPEG's marker segments and entropy-coded scans up to the end-of-image marker.
/// Errors when the data ends first (a truncated download); bytes after the marker are allowed.
fn jpeg_complete(b: &[u8]) -> std::result::Result<(), String> {
    const TRUNCATED: &str = "truncated JPEG (the data ends before the end-of-image marker)";
    if b.len() < 4 || b[0] != 0xFF || b[1] != 0xD8 {
        return Err("not a JPEG file".into());
    }
    let mut i = 2;
    loop {
        // Extraneous bytes before a marker are tolerated (libjpeg warns and goes on).
        while i < b.len() && b[i] != 0xFF {
            i += 1;
        }
        while i + 1 < b.len() && b[i + 1] == 0xFF {
            i += 1; // fill bytes
        }
        if i + 1 >= b.len() {
            return Err(TRUNCATED.into());
        }
        let marker = b[i + 1];
        match marker {
            0xD9 => return Ok(()),
            0x01 | 0xD0..=0xD7 => i += 2,
            _ => {
                if i + 4 > b.len() {
                    return Err(TRUNCATED.into());
                }
                let len = u16::from_be_bytes([b[i + 2], b[i + 3]]) as usize;
                if len < 2 {
                    return Err(format!("corrupt JPEG (segment length {len} at byte {i})"));
                }
                i += 2 + len;
                if i > b.len() {
                    return Err(TRUNCATED.into());
                }
                if marker == 0xDA {
                    // Entropy-coded data: runs until a marker other than a stuffed 0 or RSTn.
                    loop {
                        if i + 1 >= b.len() {
                            return Err(TRUNCATED.into());
                        }
                        if b[i] == 0xFF && !matches!(b[i + 1], 0x00 | 0xD0..=0xD7 | 0xFF) {
                            break;
                        }
                        i += 1;
                    }
                }
            }
        }
    }
}

/// An 8-bit RGB image, rows top to bottom, pixels interleaved (R, G, B).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rgb8 {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

/// PIL's `Image.alpha_composite` of (c, a) over opaque white, exactly (7 fractional bits).
#[inline]
fn over_white(c: u8, a: u8) -> u8 {
    if a == 0 {
        return 255;
    }
    let a = a as u32;
    let coef1 = a * 128; // a * 255 * 255 * 128 / (255 * 255): the destination is opaque
    let coef2 = 255 * 128 - coef1;
    let tmp = c as u32 * coef1 + 255 * coef2 + (0x80 << 7);
    ((((tmp >> 8) + tmp) >> 8) >> 7) as u8
}

/// The RGB image transformers' `convert_to_rgb` makes of `img` (see the module docs).
pub fn to_rgb8(img: &DynamicImage) -> Rgb8 {
    let (width, height) = (img.width() as usize, img.height() as usize);
    let n = width * height;
    let mut data = Vec::with_capacity(n * 3);
    match img {
        DynamicImage::ImageRgb8(b) => data.extend_from_slice(b.as_raw()),
        DynamicImage::ImageLuma8(b) => b.as_raw().iter().for_each(|&l| data.extend_from_slice(&[l, l, l])),
        DynamicImage::ImageRgba8(b) => b.as_raw().chunks_exact(4).for_each(|p| {
            data.extend_from_slice(&[over_white(p[0], p[3]), over_white(p[1], p[3]), over_white(p[2], p[3])])
        }),
        DynamicImage::ImageLumaA8(b) => b.as_raw().chunks_exact(2).for_each(|p| {
            let l = over_white(p[0], p[1]);
            data.extend_from_slice(&[l, l, l])
        }),
        DynamicImage::ImageRgb16(b) => data.extend(b.as_raw().iter().map(|&v| (v >> 8) as u8)),
        DynamicImage::ImageLuma16(b) => b.as_raw().iter().for_each(|&v| {
            let l = (v >> 8) as u8;
            data.extend_from_slice(&[l, l, l])
        }),
        DynamicImage::ImageRgba16(b) => b.as_raw().chunks_exact(4).for_each(|p| {
            let a = (p[3] >> 8) as u8;
            data.extend(p[..3].iter().map(|&v| over_white((v >> 8) as u8, a)))
        }),
        DynamicImage::ImageLumaA16(b) => b.as_raw().chunks_exact(2).for_each(|p| {
            let l = over_white((p[0] >> 8) as u8, (p[1] >> 8) as u8);
            data.extend_from_slice(&[l, l, l])
        }),
        other if other.color().has_alpha() => other.to_rgba8().as_raw().chunks_exact(4).for_each(|p| {
            data.extend_from_slice(&[over_white(p[0], p[3]), over_white(p[1], p[3]), over_white(p[2], p[3])])
        }),
        other => data.extend_from_slice(other.to_rgb8().as_raw()),
    }
    debug_assert_eq!(data.len(), n * 3);
    Rgb8 { width, height, data }
}

/// Output (height, width) of HF's `get_resize_output_image_size(default_to_square=False)`.
pub fn resized_size(height: usize, width: usize, shortest_edge: usize) -> (usize, usize) {
    if height == 0 || width == 0 {
        return (0, 0);
    }
    let (short, long) = if width <= height {
        (width, height)
    } else {
        (height, width)
    };
    let new_long = ((shortest_edge as u64 * long as u64) as f64 / short as f64) as usize;
    if width <= height {
        (new_long, shortest_edge)
    } else {
        (shortest_edge, new_long)
    }
}

/// PIL's fixed-point precision for 8-bit resampling.
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// PIL's bicubic filter (a = -0.5), same float operations.
#[inline]
fn bicubic(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// Resampling coefficients of a run of output positions, as PIL's `precompute_coeffs` +
/// `normalize_coeffs_8bpc` compute them for the full axis.
struct Coeffs {
    /// Per output position: first input index and number of taps.
    bounds: Vec<(usize, usize)>,
    /// Per output position, `ksize` fixed-point weights (the first `taps` used).
    k: Vec<i32>,
    ksize: usize,
}

fn precompute_coeffs(in_size: usize, out_size: usize, outputs: std::ops::Range<usize>) -> Coeffs {
    const SUPPORT: f64 = 2.0;
    // PIL: box (in0, in1) = (0, in_size) as C floats, then (double)(in1 - in0) / outSize.
    let scale = (in_size as f32 - 0.0f32) as f64 / out_size as f64;
    let filterscale = if scale < 1.0 { 1.0 } else { scale };
    let support = SUPPORT * filterscale;
    let ksize = support.ceil() as usize * 2 + 1;
    let ss = 1.0 / filterscale;
    let mut bounds = Vec::with_capacity(outputs.len());
    let mut k = vec![0i32; outputs.len() * ksize];
    let mut w = vec![0f64; ksize];
    for (i, xx) in outputs.enumerate() {
        let center = 0.0 + (xx as f64 + 0.5) * scale;
        // C's (int) truncates toward zero; negatives are clamped to 0 just after anyway.
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64).max(xmin as i64) as usize;
        let taps = (xmax - xmin).min(ksize);
        let mut ww = 0.0;
        for (x, wx) in w.iter_mut().enumerate().take(taps) {
            let v = bicubic(((x + xmin) as f64 - center + 0.5) * ss);
            *wx = v;
            ww += v;
        }
        let kk = &mut k[i * ksize..i * ksize + taps];
        for (kx, &wx) in kk.iter_mut().zip(&w) {
            let v = if ww != 0.0 { wx / ww } else { wx };
            let f = v * (1u32 << PRECISION_BITS) as f64;
            *kx = if v < 0.0 { (-0.5 + f) as i32 } else { (0.5 + f) as i32 };
        }
        bounds.push((xmin, taps));
    }
    Coeffs { bounds, k, ksize }
}

/// PIL's `clip8`. The sums fit i32 as in PIL's C `int`: the positive bicubic weights of an
/// output add up to about 1.125 at most (2.0 would be needed to overflow), so
/// |sum| <= 255 * 1.125 * 2^22 + 2^21 < 2^31.
#[inline]
fn clip8(ss: i32) -> u8 {
    (ss >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Resize (PIL BICUBIC, see the module docs) and center-crop, the 8-bit part of the pipeline:
/// returns the crop as planar `[3, crop_h, crop_w]` bytes, zeros where the crop overhangs.
/// The crop offsets are those of `cfg.pipeline` (HF floors, torchvision rounds).
pub fn resize_crop_u8(img: &Rgb8, cfg: &PreprocessConfig) -> Vec<u8> {
    resize_crop_planar(&img.data, img.width, img.height, 3, cfg)
}

/// Offset of the crop in the resized axis (`size`), as resized index = crop index + offset.
fn crop_offset(size: usize, crop: usize, pipeline: Pipeline) -> i64 {
    let d = size as i64 - crop as i64;
    match pipeline {
        // HF's center_crop: floor((size - crop) / 2), also when it pads.
        Pipeline::Hf => d.div_euclid(2),
        // torchvision: pads `(crop - size) // 2` on the left/top, else round((size - crop) / 2)
        // with Python's round (half to even).
        Pipeline::OpenClip if d < 0 => -((-d) / 2),
        Pipeline::OpenClip => {
            let half = d / 2;
            if d % 2 == 1 && half % 2 == 1 {
                half + 1
            } else {
                half
            }
        }
    }
}

/// [`resize_crop_u8`] of interleaved 8-bit pixels with `channels` channels (1..=4): returns
/// planar `[channels, crop_h, crop_w]` bytes.
fn resize_crop_planar(data: &[u8], in_w: usize, in_h: usize, channels: usize, cfg: &PreprocessConfig) -> Vec<u8> {
    let ch = channels;
    let (crop_h, crop_w) = cfg.crop;
    let mut out = vec![0u8; ch * crop_h * crop_w];
    if in_h == 0 || in_w == 0 || data.len() < in_h * in_w * ch {
        return out;
    }
    let (out_h, out_w) = resized_size(in_h, in_w, cfg.shortest_edge);
    // Resized row/col `r + off` feeds crop row/col r.
    let off_y = crop_offset(out_h, crop_h, cfg.pipeline);
    let off_x = crop_offset(out_w, crop_w, cfg.pipeline);
    let ys = off_y.max(0) as usize..((off_y + crop_h as i64).min(out_h as i64)).max(0) as usize;
    let xs = off_x.max(0) as usize..((off_x + crop_w as i64).min(out_w as i64)).max(0) as usize;
    if ys.is_empty() || xs.is_empty() {
        return out;
    }
    let (ny, nx) = (ys.len(), xs.len());

    // Vertical coefficients decide which input rows the horizontal pass must produce.
    let vert = (out_h != in_h).then(|| precompute_coeffs(in_h, out_h, ys.clone()));
    let (row0, row1) = match &vert {
        Some(c) => {
            let first = c.bounds.iter().map(|b| b.0).min().unwrap_or(0);
            let last = c.bounds.iter().map(|b| b.0 + b.1).max().unwrap_or(first);
            (first, last.max(first))
        }
        None => (ys.start, ys.end),
    };
    let rows = row1 - row0;

    // Horizontal pass: `rows` input rows -> `nx` output columns, interleaved.
    let mut tmp = vec![0u8; rows * nx * ch];
    if out_w != in_w {
        let c = precompute_coeffs(in_w, out_w, xs.clone());
        tmp.par_chunks_mut(nx * ch).enumerate().for_each(|(r, trow)| {
            let src = &data[(row0 + r) * in_w * ch..(row0 + r + 1) * in_w * ch];
            for (j, px) in trow.chunks_exact_mut(ch).enumerate() {
                let (xmin, taps) = c.bounds[j];
                let k = &c.k[j * c.ksize..j * c.ksize + taps];
                let mut s = [1i32 << (PRECISION_BITS - 1); 4];
                for (p, &kt) in src[xmin * ch..(xmin + taps) * ch].chunks_exact(ch).zip(k) {
                    for (sv, &pv) in s.iter_mut().zip(p) {
                        *sv += pv as i32 * kt;
                    }
                }
                for (o, &sv) in px.iter_mut().zip(&s) {
                    *o = clip8(sv);
                }
            }
        });
    } else {
        for r in 0..rows {
            let base = (row0 + r) * in_w * ch;
            tmp[r * nx * ch..(r + 1) * nx * ch].copy_from_slice(&data[base + xs.start * ch..base + xs.end * ch]);
        }
    }

    // Vertical pass: `ny` output rows from the temporary rows.
    let mut res = vec![0u8; ny * nx * ch];
    match &vert {
        Some(c) => res.par_chunks_mut(nx * ch).enumerate().for_each(|(i, orow)| {
            let (ymin, taps) = c.bounds[i];
            let k = &c.k[i * c.ksize..i * c.ksize + taps];
            // Row-wise accumulation (same sums, same order per pixel as PIL's tap loop).
            let mut acc = vec![1i32 << (PRECISION_BITS - 1); orow.len()];
            for (t, &kt) in k.iter().enumerate() {
                let src = &tmp[(ymin + t - row0) * nx * ch..(ymin + t - row0 + 1) * nx * ch];
                for (a, &p) in acc.iter_mut().zip(src) {
                    *a += p as i32 * kt;
                }
            }
            for (o, &a) in orow.iter_mut().zip(&acc) {
                *o = clip8(a);
            }
        }),
        None => res.copy_from_slice(&tmp),
    }

    // Place the computed window into the (zero-padded) crop, planar.
    let dy = (ys.start as i64 - off_y) as usize;
    let dx = (xs.start as i64 - off_x) as usize;
    for y in 0..ny {
        for x in 0..nx {
            let p = &res[(y * nx + x) * ch..(y * nx + x + 1) * ch];
            for (c, &v) in p.iter().enumerate() {
                out[(c * crop_h + dy + y) * crop_w + dx + x] = v;
            }
        }
    }
    out
}

/// PIL's `MULDIV255`: a * b / 255 rounded, in integers (RGBA -> RGBa premultiplication).
#[inline]
fn muldiv255(a: u8, b: u8) -> u8 {
    let tmp = a as u32 * b as u32 + 128;
    (((tmp >> 8) + tmp) >> 8) as u8
}

/// PIL's RGBa -> RGBA: `255 * c / alpha` (integer division, clamped), alpha 0 and 255 as is.
#[inline]
fn unpremultiply(c: u8, alpha: u8) -> u8 {
    if alpha == 0 || alpha == 255 {
        c
    } else {
        ((255 * c as u32) / alpha as u32).min(255) as u8
    }
}

/// open_clip's 8-bit part (see the module docs): planar `[3, crop_h, crop_w]` bytes.
pub fn open_clip_resize_crop_u8(img: &DynamicImage, cfg: &PreprocessConfig) -> Vec<u8> {
    let cfg = &PreprocessConfig {
        pipeline: Pipeline::OpenClip,
        ..cfg.clone()
    };
    let (w, h) = (img.width() as usize, img.height() as usize);
    let plane = cfg.crop.0 * cfg.crop.1;
    let resizes = resized_size(h, w, cfg.shortest_edge) != (h, w);
    let color = img.color();
    if !color.has_alpha() {
        return resize_crop_u8(&to_rgb8(img), cfg);
    }
    let grey = !color.has_color();
    // 8-bit interleaved channels (grey + alpha or RGB + alpha), premultiplied when PIL resizes.
    let (mut px, ch) = if grey {
        (img.to_luma_alpha8().into_raw(), 2)
    } else {
        (img.to_rgba8().into_raw(), 4)
    };
    if resizes {
        px.chunks_exact_mut(ch).for_each(|p| {
            let a = p[ch - 1];
            p[..ch - 1].iter_mut().for_each(|c| *c = muldiv255(*c, a));
        });
    }
    let mut planar = resize_crop_planar(&px, w, h, ch, cfg);
    if resizes {
        let (colour, alpha) = planar.split_at_mut((ch - 1) * plane);
        for c in 0..ch - 1 {
            for (v, &a) in colour[c * plane..(c + 1) * plane].iter_mut().zip(alpha.iter()) {
                *v = unpremultiply(*v, a);
            }
        }
    }
    // convert("RGB"): alpha dropped, grey replicated.
    planar.truncate((ch - 1) * plane);
    if grey {
        planar = planar.repeat(3);
    }
    planar
}

/// open_clip's ToTensor + Normalize of planar `[3, h, w]` bytes: `(u8 as f32 / 255 - mean) / std`
/// in f32, torch's operations.
pub fn normalize_u8_open_clip(planar: &[u8], cfg: &PreprocessConfig) -> Vec<f32> {
    let plane = planar.len() / 3;
    let mut lut = [[0f32; 256]; 3];
    for (ch, l) in lut.iter_mut().enumerate() {
        for (u, v) in l.iter_mut().enumerate() {
            *v = (u as f32 / 255.0 - cfg.mean[ch]) / cfg.std[ch];
        }
    }
    planar
        .iter()
        .enumerate()
        .map(|(i, &u)| lut[(i / plane.max(1)).min(2)][u as usize])
        .collect()
}

/// HF's rescale + normalize of planar `[3, h, w]` bytes: `(f32(u8 as f64 * (1/255)) - mean) / std`
/// in f32, the same operations as numpy's.
pub fn normalize_u8(planar: &[u8], cfg: &PreprocessConfig) -> Vec<f32> {
    let plane = planar.len() / 3;
    let mut lut = [[0f32; 256]; 3];
    for (ch, l) in lut.iter_mut().enumerate() {
        for (u, v) in l.iter_mut().enumerate() {
            let x = (u as f64 * (1.0 / 255.0)) as f32;
            *v = (x - cfg.mean[ch]) / cfg.std[ch];
        }
    }
    planar
        .iter()
        .enumerate()
        .map(|(i, &u)| lut[(i / plane.max(1)).min(2)][u as usize])
        .collect()
}

/// The model input for one image: `[3, crop_h, crop_w]` f32, channel-major (see module docs).
pub fn preprocess(img: &DynamicImage, cfg: &PreprocessConfig) -> Vec<f32> {
    match cfg.pipeline {
        Pipeline::Hf => preprocess_rgb8(&to_rgb8(img), cfg),
        Pipeline::OpenClip => normalize_u8_open_clip(&open_clip_resize_crop_u8(img, cfg), cfg),
    }
}

/// [`preprocess`] of an image already converted to RGB.
pub fn preprocess_rgb8(img: &Rgb8, cfg: &PreprocessConfig) -> Vec<f32> {
    match cfg.pipeline {
        Pipeline::Hf => normalize_u8(&resize_crop_u8(img, cfg), cfg),
        Pipeline::OpenClip => normalize_u8_open_clip(&resize_crop_u8(img, cfg), cfg),
    }
}

/// How many unreadable images one error lists by name.
pub const MAX_LISTED_BAD_IMAGES: usize = 20;

/// One error for all unreadable images: the first [`MAX_LISTED_BAD_IMAGES`] with their
/// reasons, then how many more there are.
fn bad_images_error(bad: &[&Error], total: usize) -> Error {
    let mut msg = format!("{} of {total} image(s) cannot be read:", bad.len());
    for e in bad.iter().take(MAX_LISTED_BAD_IMAGES) {
        msg.push_str(&format!("\n  {e}"));
    }
    if bad.len() > MAX_LISTED_BAD_IMAGES {
        msg.push_str(&format!("\n  ... and {} more", bad.len() - MAX_LISTED_BAD_IMAGES));
    }
    Error::new(bad[0].kind.clone(), msg)
}

/// Loads and preprocesses `paths` in parallel. Returns the `[n, 3, crop_h, crop_w]` inputs of the
/// images kept, their indices into `paths`, and one message per skipped image. Without
/// `skip_bad`, unreadable images are one error naming each of them (the first
/// [`MAX_LISTED_BAD_IMAGES`], then a count), in `paths` order. The message suggests no flag:
/// only the caller knows whether it has one.
pub fn preprocess_files(
    paths: &[PathBuf],
    cfg: &PreprocessConfig,
    skip_bad: bool,
) -> Result<(Vec<f32>, Vec<usize>, Vec<String>)> {
    cfg.validate()?;
    let per = 3 * cfg.crop.0 * cfg.crop.1;
    let results: Vec<Result<Vec<f32>>> = paths
        .par_iter()
        .map(|p| load_image(p).map(|img| preprocess(&img, cfg)))
        .collect();
    if !skip_bad {
        let bad: Vec<&Error> = results.iter().filter_map(|r| r.as_ref().err()).collect();
        if !bad.is_empty() {
            return Err(bad_images_error(&bad, paths.len()));
        }
    }
    let mut data = Vec::with_capacity(per * results.iter().filter(|r| r.is_ok()).count());
    let mut kept = Vec::new();
    let mut skipped = Vec::new();
    for (i, r) in results.into_iter().enumerate() {
        match r {
            Ok(v) => {
                data.extend_from_slice(&v);
                kept.push(i);
            }
            Err(e) => skipped.push(format!("skipped {e}")),
        }
    }
    Ok((data, kept, skipped))
}
