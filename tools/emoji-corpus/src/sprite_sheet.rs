//! Writer for the "cliptune-sprite-sheet-1" format that the main crate reads
//! (src/data/sprite_sheet.rs there): `NAME.png` of row-major tiles plus `NAME.json`.
//! Kept as a copy here because this tool is its own workspace and must not link cliptune.
use std::path::Path;

use image::RgbImage;
use serde_json::{json, Map, Value};

pub const FORMAT: &str = "cliptune-sprite-sheet-1";

pub struct Item {
    pub label: usize,
    pub captions: Vec<String>,
}

/// Write `json_path` and the PNG beside it (same stem). Tiles are all `tile` = [h, w];
/// unused trailing tiles stay white. `extra` keys go into the JSON as they are.
pub fn write(
    json_path: &Path,
    columns: usize,
    classes: &[String],
    items: &[Item],
    images: &[RgbImage],
    extra: Map<String, Value>,
) -> Result<(), String> {
    let first = images.first().ok_or("sprite sheet: no images")?;
    if images.len() != items.len() {
        return Err(format!(
            "sprite sheet: {} images for {} items",
            images.len(),
            items.len()
        ));
    }
    let (tw, th) = first.dimensions();
    if images.iter().any(|im| im.dimensions() != (tw, th)) {
        return Err("sprite sheet: tiles of different sizes".into());
    }
    if let Some(it) = items.iter().find(|it| it.label >= classes.len()) {
        return Err(format!(
            "sprite sheet: label {} out of range ({} classes)",
            it.label,
            classes.len()
        ));
    }
    let rows = items.len().div_ceil(columns) as u32;
    let mut sheet = RgbImage::from_pixel(columns as u32 * tw, rows * th, image::Rgb([255, 255, 255]));
    for (i, im) in images.iter().enumerate() {
        let (x, y) = ((i % columns) as u32 * tw, (i / columns) as u32 * th);
        image::imageops::replace(&mut sheet, im, i64::from(x), i64::from(y));
    }
    let png = json_path.with_extension("png");
    // Best compression: the held-out sheet is committed to the repository.
    let file = std::fs::File::create(&png).map_err(|e| format!("{}: cannot create: {e}", png.display()))?;
    let enc = image::codecs::png::PngEncoder::new_with_quality(
        std::io::BufWriter::new(file),
        image::codecs::png::CompressionType::Best,
        image::codecs::png::FilterType::Adaptive,
    );
    sheet
        .write_with_encoder(enc)
        .map_err(|e| format!("{}: PNG encoding failed: {e}", png.display()))?;

    let mut obj = extra;
    obj.insert("format".into(), json!(FORMAT));
    obj.insert("tile".into(), json!([th, tw]));
    obj.insert("columns".into(), json!(columns));
    obj.insert("count".into(), json!(items.len()));
    obj.insert("classes".into(), json!(classes));
    let items: Vec<Value> = items
        .iter()
        .map(|it| json!({"label": it.label, "captions": it.captions}))
        .collect();
    obj.insert("items".into(), Value::Array(items));
    std::fs::write(json_path, one_line_per_item(&obj))
        .map_err(|e| format!("{}: cannot write: {e}", json_path.display()))
}

/// Pretty JSON with one line per item (as the main crate writes it): readable diffs.
fn one_line_per_item(obj: &Map<String, Value>) -> String {
    let mut out = String::from("{\n");
    for (k, (key, v)) in obj.iter().enumerate() {
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
            if k + 1 < obj.len() { "," } else { "" }
        ));
    }
    out.push_str("}\n");
    out
}
