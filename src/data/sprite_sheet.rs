//! Sprite sheets: a whole labelled (and optionally captioned) image set in two files, so
//! small sets ship inside the binary and in the repository without thousands of files.
//!
//! `NAME.png` is one PNG (RGB8, or L8 for grey sets) of `tile = [h, w]` tiles, row-major,
//! `columns` tiles per row: item `i` sits at tile row `i / columns`, tile column
//! `i % columns`. `NAME.json` describes it:
//!
//! ```json
//! {"format": "cliptune-sprite-sheet-1", "tile": [28, 28], "columns": 40, "count": 1000,
//!  "classes": ["t-shirt", ...], "items": [{"label": 0, "captions": ["..."]}, ...]}
//! ```
//!
//! Captions may be empty (pure classification sets); other keys are kept (`extra`).
//! Every check fails with one line naming the file at fault.
use std::path::{Path, PathBuf};

use image::{DynamicImage, GenericImage, GenericImageView};
use serde_json::{json, Map, Value};

use crate::error::{Error, Result};
use crate::tensor::io::write_atomic;

/// The `format` tag of the JSON file.
pub const FORMAT: &str = "cliptune-sprite-sheet-1";

/// One tile's label and captions.
#[derive(Clone, Debug, PartialEq)]
pub struct SpriteItem {
    pub label: usize,
    pub captions: Vec<String>,
}

/// A sheet in memory: one image per item (all `tile` sized).
#[derive(Clone, Debug)]
pub struct SpriteSheet {
    /// `[h, w]` in pixels.
    pub tile: [u32; 2],
    pub columns: usize,
    pub classes: Vec<String>,
    pub items: Vec<SpriteItem>,
    /// Luma8 tiles for a grey sheet, Rgb8 otherwise.
    pub images: Vec<DynamicImage>,
    /// Keys of the JSON file other than the ones above (e.g. `unseen_classes`).
    pub extra: Map<String, Value>,
}

/// A path the data loaders treat as a sprite sheet (`*.json`).
pub fn is_sprite_sheet(path: &str) -> bool {
    path.to_lowercase().ends_with(".json")
}

/// `NAME.json` -> `NAME.png`.
pub fn png_path(json: &Path) -> PathBuf {
    json.with_extension("png")
}

/// Tiles per row for `n` items: a roughly square sheet.
pub fn default_columns(n: usize) -> usize {
    ((n as f64).sqrt().ceil() as usize).max(1)
}

impl SpriteSheet {
    /// A sheet of `images` (all the same size) with `columns` tiles per row (0: square-ish).
    pub fn new(
        classes: Vec<String>,
        items: Vec<SpriteItem>,
        images: Vec<DynamicImage>,
        columns: usize,
    ) -> Result<Self> {
        let first = images
            .first()
            .ok_or_else(|| Error::invalid("sprite sheet: no images"))?;
        let columns = if columns == 0 {
            default_columns(images.len())
        } else {
            columns
        };
        Ok(SpriteSheet {
            tile: [first.height(), first.width()],
            columns,
            classes,
            items,
            images,
            extra: Map::new(),
        })
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn labels(&self) -> Vec<usize> {
        self.items.iter().map(|i| i.label).collect()
    }

    /// True when every tile is grey (written as an L8 PNG).
    fn is_grey(&self) -> bool {
        self.images.iter().all(|im| matches!(im, DynamicImage::ImageLuma8(_)))
    }
}

fn bad(path: &Path, msg: impl std::fmt::Display) -> Error {
    Error::invalid(format!("{}: {msg}", path.display()))
}

fn uint(v: &Value) -> Option<u64> {
    v.as_u64()
}

/// Read `NAME.json` and the `NAME.png` beside it, checking one against the other.
pub fn read_sprite_sheet(json_path: &Path) -> Result<SpriteSheet> {
    let p = json_path;
    let text = crate::user_file::read_text_capped(p, "sprite sheet", crate::user_file::JSON_MAX_BYTES)?;
    let png = png_path(p);
    let bytes = crate::user_file::read_capped(&png, "sprite sheet image", crate::user_file::IMAGE_MAX_BYTES)?;
    sprite_sheet_from_bytes(&text, &bytes, p)
}

/// A sheet from its JSON text and PNG bytes (e.g. embedded in the binary); `json_path`
/// names the pair in messages (its `.png` sibling for image errors).
pub fn sprite_sheet_from_bytes(text: &str, png_bytes: &[u8], json_path: &Path) -> Result<SpriteSheet> {
    let p = json_path;
    let v: Value = serde_json::from_str(text).map_err(|e| bad(p, format!("not valid JSON: {e}")))?;
    let Value::Object(mut obj) = v else {
        return Err(bad(p, "expected a JSON object (a cliptune sprite sheet)"));
    };
    match obj.remove("format") {
        Some(Value::String(f)) if f == FORMAT => {}
        Some(other) => return Err(bad(p, format!("format is {other}, expected \"{FORMAT}\""))),
        None => {
            return Err(bad(
                p,
                format!("no \"format\": \"{FORMAT}\" (not a cliptune sprite sheet)"),
            ))
        }
    }
    let tile = match obj.remove("tile") {
        Some(Value::Array(a)) if a.len() == 2 => {
            let h = uint(&a[0]).filter(|&x| x > 0 && x <= 1 << 16);
            let w = uint(&a[1]).filter(|&x| x > 0 && x <= 1 << 16);
            match (h, w) {
                (Some(h), Some(w)) => [h as u32, w as u32],
                _ => return Err(bad(p, "\"tile\" must be [height, width] in pixels, both at least 1")),
            }
        }
        _ => return Err(bad(p, "\"tile\" must be [height, width] in pixels")),
    };
    let columns =
        obj.remove("columns")
            .as_ref()
            .and_then(uint)
            .filter(|&c| c > 0)
            .ok_or_else(|| bad(p, "\"columns\" must be a whole number of tiles per row, at least 1"))? as usize;
    let count = obj
        .remove("count")
        .as_ref()
        .and_then(uint)
        .filter(|&c| c > 0)
        .ok_or_else(|| bad(p, "\"count\" must be the number of items, at least 1"))? as usize;
    let classes: Vec<String> = match obj.remove("classes") {
        Some(Value::Array(a)) => a
            .iter()
            .map(|c| c.as_str().map(String::from))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| bad(p, "\"classes\" must be a list of class names (strings)"))?,
        _ => return Err(bad(p, "\"classes\" must be a list of class names")),
    };
    if classes.is_empty() {
        return Err(bad(p, "\"classes\" is empty: every item needs a class label"));
    }
    let raw_items = match obj.remove("items") {
        Some(Value::Array(a)) => a,
        _ => return Err(bad(p, "\"items\" must be a list of {\"label\": N, \"captions\": [..]}")),
    };
    if raw_items.len() != count {
        return Err(bad(
            p,
            format!("\"count\" is {count} but \"items\" lists {}", raw_items.len()),
        ));
    }
    let mut items = Vec::with_capacity(count);
    for (i, it) in raw_items.iter().enumerate() {
        let label = it
            .get("label")
            .and_then(uint)
            .ok_or_else(|| bad(p, format!("item {i}: \"label\" must be a class index")))? as usize;
        if label >= classes.len() {
            return Err(bad(
                p,
                format!("item {i}: label {label} is out of range ({} classes)", classes.len()),
            ));
        }
        let captions = match it.get("captions") {
            None | Some(Value::Null) => vec![],
            Some(Value::Array(a)) => a
                .iter()
                .map(|c| c.as_str().map(String::from))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| bad(p, format!("item {i}: \"captions\" must be a list of strings")))?,
            Some(_) => return Err(bad(p, format!("item {i}: \"captions\" must be a list of strings"))),
        };
        items.push(SpriteItem { label, captions });
    }

    let png = png_path(p);
    let sheet = image::load_from_memory_with_format(png_bytes, image::ImageFormat::Png)
        .map_err(|e| bad(&png, format!("not a readable PNG: {e}")))?;
    let grey = match &sheet {
        DynamicImage::ImageLuma8(_) => true,
        DynamicImage::ImageRgb8(_) => false,
        other => {
            return Err(bad(
                &png,
                format!("colour type {:?}; a sprite sheet is RGB8 or L8 (grey)", other.color()),
            ))
        }
    };
    let [th, tw] = tile;
    let rows = count.div_ceil(columns);
    let (want_w, want_h) = (columns as u64 * tw as u64, rows as u64 * th as u64);
    if (sheet.width() as u64, sheet.height() as u64) != (want_w, want_h) {
        return Err(bad(
            &png,
            format!(
                "is {}x{} pixels, but {count} tiles of {th}x{tw} (h x w) in {columns} columns need {want_w}x{want_h}",
                sheet.width(),
                sheet.height()
            ),
        ));
    }
    let images = (0..count)
        .map(|i| {
            let (x, y) = ((i % columns) as u32 * tw, (i / columns) as u32 * th);
            let t = sheet.view(x, y, tw, th).to_image();
            let t = DynamicImage::ImageRgba8(t);
            if grey {
                DynamicImage::ImageLuma8(t.to_luma8())
            } else {
                DynamicImage::ImageRgb8(t.to_rgb8())
            }
        })
        .collect();
    Ok(SpriteSheet {
        tile,
        columns,
        classes,
        items,
        images,
        extra: obj,
    })
}

/// Write `NAME.png` then `NAME.json` (each atomically; the JSON last, so a reader never
/// sees a description of a missing image).
pub fn write_sprite_sheet(json_path: &Path, s: &SpriteSheet) -> Result<()> {
    let p = json_path;
    if s.images.is_empty() || s.images.len() != s.items.len() {
        return Err(bad(
            p,
            format!(
                "{} images for {} items (need the same number, at least 1)",
                s.images.len(),
                s.items.len()
            ),
        ));
    }
    let [th, tw] = s.tile;
    if let Some(i) = s.images.iter().position(|im| (im.height(), im.width()) != (th, tw)) {
        return Err(bad(p, format!("image {i} is not {th}x{tw} (h x w) like the tile")));
    }
    if let Some((i, it)) = s.items.iter().enumerate().find(|(_, it)| it.label >= s.classes.len()) {
        return Err(bad(
            p,
            format!(
                "item {i}: label {} is out of range ({} classes)",
                it.label,
                s.classes.len()
            ),
        ));
    }
    let columns = s.columns.max(1);
    let rows = s.len().div_ceil(columns) as u32;
    let (w, h) = (columns as u32 * tw, rows * th);
    let mut sheet = if s.is_grey() {
        DynamicImage::ImageLuma8(image::GrayImage::new(w, h))
    } else {
        DynamicImage::ImageRgb8(image::RgbImage::new(w, h))
    };
    for (i, im) in s.images.iter().enumerate() {
        let (x, y) = ((i % columns) as u32 * tw, (i / columns) as u32 * th);
        let tile = if s.is_grey() {
            DynamicImage::ImageLuma8(im.to_luma8())
        } else {
            DynamicImage::ImageRgb8(im.to_rgb8())
        };
        sheet
            .copy_from(&tile, x, y)
            .map_err(|e| bad(p, format!("placing tile {i}: {e}")))?;
    }
    let png = png_path(p);
    let mut bytes = std::io::Cursor::new(Vec::new());
    sheet
        .write_to(&mut bytes, image::ImageFormat::Png)
        .map_err(|e| Error::io(png.display(), format!("PNG encoding failed: {e}")))?;
    let bytes = bytes.into_inner();
    write_atomic(&png, &bytes)?;
    let mut obj = s.extra.clone();
    obj.insert("format".into(), json!(FORMAT));
    obj.insert("tile".into(), json!([th, tw]));
    obj.insert("columns".into(), json!(columns));
    obj.insert("count".into(), json!(s.len()));
    obj.insert("classes".into(), json!(s.classes));
    let items: Vec<Value> = s
        .items
        .iter()
        .map(|it| json!({"label": it.label, "captions": it.captions}))
        .collect();
    obj.insert("items".into(), Value::Array(items));
    write_atomic(p, compact_items_json(&obj).as_bytes())
}

/// Pretty JSON, but one line per item so a 1000-item sheet stays readable.
fn compact_items_json(obj: &Map<String, Value>) -> String {
    let mut out = String::from("{\n");
    let keys: Vec<&String> = obj.keys().collect();
    for (k, key) in keys.iter().enumerate() {
        let v = &obj[key.as_str()];
        let body = match (key.as_str(), v) {
            ("items", Value::Array(a)) => {
                let lines: Vec<String> = a.iter().map(|x| format!("    {x}")).collect();
                format!("[\n{}\n  ]", lines.join(",\n"))
            }
            _ => v.to_string(),
        };
        out.push_str(&format!(
            "  {}: {body}{}\n",
            json!(key),
            if k + 1 < keys.len() { "," } else { "" }
        ));
    }
    out.push('}');
    out.push('\n');
    out
}
