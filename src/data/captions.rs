//! Image-caption files: CSV, TSV and JSONL.
//!
//! - **CSV** (`.csv`): a header row, then one row per (image, caption) pair, read by the
//!   `csv` crate with strict RFC 4180 quoting: a field may be quoted with `"` and then hold
//!   commas, newlines and doubled quotes (`""`); a stray or unclosed quote is an error naming
//!   its line, never two rows merged into one. Every row has as many fields as the header.
//! - **TSV** (`.tsv`): a header row, then tab-separated rows; no quoting (a caption cannot
//!   contain a tab or a newline).
//! - **JSONL** (`.jsonl`): one JSON object per line, parsed by `serde_json` line by line.
//!
//! Columns (CSV/TSV header, JSONL keys; names are case-insensitive):
//! - the image: `image`, or open_clip's `filepath`;
//! - the caption: `caption`, or open_clip's `title`; in JSONL a string or an array of strings;
//! - optional `negatives`: hard-negative captions for this image, several separated by `|`
//!   (in JSONL a string, split the same way, or an array of strings).
//!
//! Image paths are relative to the directory holding the data file (absolute paths are kept).
//! Rows naming the same image merge into one [`CaptionRecord`] with several captions, in
//! file order (retrieval evaluation needs every caption of an image). Every image must exist:
//! all missing images are collected and reported in one error before anything else happens.
use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};

/// Accepted names of the image column.
pub const IMAGE_COLUMNS: [&str; 2] = ["image", "filepath"];
/// Accepted names of the caption column.
pub const CAPTION_COLUMNS: [&str; 2] = ["caption", "title"];
/// Accepted name of the optional hard-negative column.
pub const NEGATIVES_COLUMNS: [&str; 1] = ["negatives"];
/// Separator of several negatives inside one field.
pub const NEGATIVES_SEPARATOR: char = '|';
/// How many missing images a "missing images" error lists by name.
pub const MAX_LISTED_MISSING: usize = 20;

/// One image with all of its captions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptionRecord {
    /// The image file, resolved relative to the data file's directory.
    pub image: PathBuf,
    /// One or more captions for this image, in file order, without exact duplicates.
    pub captions: Vec<String>,
    /// Hard-negative captions (may be empty), in file order, without exact duplicates.
    pub negatives: Vec<String>,
}

/// The formats [`load_captions`] reads, chosen by the file extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptionFormat {
    Csv,
    Tsv,
    Jsonl,
}

impl CaptionFormat {
    /// The format for a file name's extension (case-insensitive), if it is one of ours.
    pub fn from_path(path: &Path) -> Option<Self> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "csv" => Some(Self::Csv),
            "tsv" => Some(Self::Tsv),
            "jsonl" => Some(Self::Jsonl),
            _ => None,
        }
    }
}

/// One parsed row before merging: the raw image path, its captions and negatives, and the
/// 1-based line where the row starts.
struct Row {
    line: usize,
    image: String,
    captions: Vec<String>,
    negatives: Vec<String>,
}

/// Read a caption file (`.csv`, `.tsv` or `.jsonl`, by extension) into one record per image.
///
/// Errors (each naming the file, and the line where one is at fault): a missing, unreadable,
/// non-UTF-8 or empty file; an unknown extension; unknown or missing columns (listing the
/// columns found and the accepted names); a row with a missing or empty field or with more
/// fields than the header; malformed JSON; an unterminated quote; and images that do not
/// exist (all of them are collected first, then one error lists the first
/// [`MAX_LISTED_MISSING`] and counts the rest).
pub fn load_captions(path: &Path) -> Result<Vec<CaptionRecord>> {
    let name = path.display();
    let format = CaptionFormat::from_path(path).ok_or_else(|| {
        Error::invalid(format!(
            "{name}: unsupported caption file type; expected a .csv, .tsv or .jsonl file"
        ))
    })?;
    let text = crate::user_file::read_text_capped(path, "caption file", crate::user_file::TEXT_MAX_BYTES)?;
    let text = text.as_str();
    if text.trim().is_empty() {
        return Err(Error::io(&name, "caption file is empty"));
    }
    let rows = match format {
        CaptionFormat::Csv | CaptionFormat::Tsv => table_rows(path, parse_table(path, text, format)?)?,
        CaptionFormat::Jsonl => jsonl_rows(path, text)?,
    };
    if rows.is_empty() {
        return Err(Error::io(&name, "caption file has a header but no rows"));
    }
    let base = path.parent().unwrap_or_else(|| Path::new(""));
    let records = merge_rows(base, rows);
    check_images_exist(path, &records.1, &records.0)?;
    Ok(records.0)
}

/// Merge rows naming the same (resolved) image; returns the records and, per record, the
/// line of its first row.
fn merge_rows(base: &Path, rows: Vec<Row>) -> (Vec<CaptionRecord>, Vec<usize>) {
    let mut records: Vec<CaptionRecord> = Vec::new();
    let mut lines = Vec::new();
    let mut index: HashMap<PathBuf, usize> = HashMap::new();
    for row in rows {
        let image = resolve(base, &row.image);
        let i = *index.entry(image.clone()).or_insert_with(|| {
            records.push(CaptionRecord {
                image,
                captions: Vec::new(),
                negatives: Vec::new(),
            });
            lines.push(row.line);
            records.len() - 1
        });
        let rec = &mut records[i];
        for c in row.captions {
            if !rec.captions.contains(&c) {
                rec.captions.push(c);
            }
        }
        for n in row.negatives {
            if !rec.negatives.contains(&n) {
                rec.negatives.push(n);
            }
        }
    }
    (records, lines)
}

/// `base.join(p)` for relative `p`, with `.` components dropped so `./a.png` and `a.png` are
/// the same image.
fn resolve(base: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    let joined = if p.is_absolute() { p.to_path_buf() } else { base.join(p) };
    let mut out = PathBuf::new();
    for c in joined.components() {
        if c != Component::CurDir {
            out.push(c.as_os_str());
        }
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

fn check_images_exist(path: &Path, lines: &[usize], records: &[CaptionRecord]) -> Result<()> {
    let missing: Vec<(usize, &Path)> = records
        .iter()
        .zip(lines)
        .filter(|(r, _)| !r.image.is_file())
        .map(|(r, &l)| (l, r.image.as_path()))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let mut msg = format!(
        "{} of {} images do not exist (paths are relative to the caption file's directory):",
        missing.len(),
        records.len()
    );
    for (line, img) in missing.iter().take(MAX_LISTED_MISSING) {
        msg.push_str(&format!("\n  line {line}: {}", img.display()));
    }
    if missing.len() > MAX_LISTED_MISSING {
        msg.push_str(&format!("\n  ... and {} more", missing.len() - MAX_LISTED_MISSING));
    }
    Err(Error::io(path.display(), msg))
}

/// Split a `negatives` field at `|`, trimming each part and dropping empty ones.
fn split_negatives(field: &str) -> Vec<String> {
    field
        .split(NEGATIVES_SEPARATOR)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Which accepted column a header name is, if any.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Column {
    Image,
    Caption,
    Negatives,
}

fn column_of(name: &str) -> Option<Column> {
    let n = name.trim().to_ascii_lowercase();
    if IMAGE_COLUMNS.contains(&n.as_str()) {
        Some(Column::Image)
    } else if CAPTION_COLUMNS.contains(&n.as_str()) {
        Some(Column::Caption)
    } else if NEGATIVES_COLUMNS.contains(&n.as_str()) {
        Some(Column::Negatives)
    } else {
        None
    }
}

fn accepted_names() -> String {
    format!(
        "image column: {}; caption column: {}; optional: {}",
        IMAGE_COLUMNS.join(" or "),
        CAPTION_COLUMNS.join(" or "),
        NEGATIVES_COLUMNS.join(", ")
    )
}

/// Map the header's columns; errors name the file and list what was found and accepted.
fn header_columns(path: &Path, line: usize, header: &[String]) -> Result<Vec<Column>> {
    let found = header
        .iter()
        .map(|h| format!("'{}'", h.trim()))
        .collect::<Vec<_>>()
        .join(", ");
    let at = format!("{}:{line}", path.display());
    let mut cols = Vec::with_capacity(header.len());
    let mut unknown = Vec::new();
    for h in header {
        match column_of(h) {
            Some(c) => {
                if cols.contains(&c) {
                    return Err(Error::invalid(format!(
                        "{at}: two columns name the same field (header: {found}); accepted names: {}",
                        accepted_names()
                    )));
                }
                cols.push(c);
            }
            None => unknown.push(format!("'{}'", h.trim())),
        }
    }
    if !unknown.is_empty() {
        return Err(Error::invalid(format!(
            "{at}: unknown column{} {} (header: {found}); accepted names: {}",
            if unknown.len() > 1 { "s" } else { "" },
            unknown.join(", "),
            accepted_names()
        )));
    }
    for (need, what) in [(Column::Image, "image"), (Column::Caption, "caption")] {
        if !cols.contains(&need) {
            return Err(Error::invalid(format!(
                "{at}: the header has no {what} column (header: {found}); accepted names: {}",
                accepted_names()
            )));
        }
    }
    Ok(cols)
}

/// Turn parsed CSV/TSV records (line, fields), header first, into rows.
fn table_rows(path: &Path, records: Vec<(usize, Vec<String>)>) -> Result<Vec<Row>> {
    let mut it = records.into_iter();
    let Some((hline, header)) = it.next() else {
        return Err(Error::io(path.display(), "caption file is empty"));
    };
    let cols = header_columns(path, hline, &header)?;
    let mut rows = Vec::new();
    for (line, fields) in it {
        let at = format!("{}:{line}", path.display());
        if fields.len() > cols.len() {
            return Err(Error::invalid(format!(
                "{at}: {} fields but the header has {} columns (quote CSV fields that contain commas)",
                fields.len(),
                cols.len()
            )));
        }
        let mut row = Row {
            line,
            image: String::new(),
            captions: Vec::new(),
            negatives: Vec::new(),
        };
        for (i, col) in cols.iter().enumerate() {
            let value = fields.get(i).map(|s| s.trim()).unwrap_or("");
            match col {
                Column::Image | Column::Caption if value.is_empty() => {
                    let which = if *col == Column::Image { "image" } else { "caption" };
                    let why = if i >= fields.len() { "missing" } else { "empty" };
                    return Err(Error::invalid(format!("{at}: the {which} field is {why}")));
                }
                Column::Image => row.image = value.to_string(),
                Column::Caption => row.captions.push(value.to_string()),
                Column::Negatives => row.negatives = split_negatives(value),
            }
        }
        rows.push(row);
    }
    Ok(rows)
}

/// CSV (strict RFC 4180 quoting, see [`check_csv_quotes`]) or TSV (no quoting) records
/// through the `csv` crate, header first, each with the line where it starts. Every record
/// must have as many fields as the header (`flexible(false)`): a short row names the missing
/// column, a long one counts the fields. Blank lines are skipped.
pub(crate) fn parse_table(path: &Path, text: &str, format: CaptionFormat) -> Result<Vec<(usize, Vec<String>)>> {
    let tsv = format == CaptionFormat::Tsv;
    if !tsv {
        check_csv_quotes(path, text)?;
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(false)
        .delimiter(if tsv { b'\t' } else { b',' })
        .quoting(!tsv)
        .double_quote(true)
        .from_reader(text.as_bytes());
    let mut out: Vec<(usize, Vec<String>)> = Vec::new();
    for rec in reader.records() {
        match rec {
            Ok(r) => {
                let line = r.position().map(|p| p.line() as usize).unwrap_or(0);
                // A quoted field of a CRLF file holds CRLF line breaks: the caption's are LF.
                let fields: Vec<String> = r.iter().map(|f| f.replace("\r\n", "\n")).collect();
                if out.is_empty() {
                    // The header's own errors come before any row's.
                    header_columns(path, line, &fields)?;
                }
                out.push((line, fields));
            }
            Err(e) => return Err(table_error(path, &out, e)),
        }
    }
    Ok(out)
}

/// The message of a `csv` error: the file, the line, and for a row of the wrong length which
/// column is missing or how many fields there are.
fn table_error(path: &Path, seen: &[(usize, Vec<String>)], e: csv::Error) -> Error {
    let line = e.position().map(|p| p.line()).unwrap_or(0);
    let at = format!("{}:{line}", path.display());
    match e.kind() {
        csv::ErrorKind::UnequalLengths { expected_len, len, .. } => {
            let (expected_len, len) = (*expected_len as usize, *len as usize);
            let header = seen.first().map(|(_, h)| h.as_slice()).unwrap_or(&[]);
            if len < expected_len && expected_len == header.len() {
                let name = |h: &String| match column_of(h) {
                    Some(Column::Image) => "image".to_string(),
                    Some(Column::Caption) => "caption".to_string(),
                    Some(Column::Negatives) => "negatives".to_string(),
                    None => format!("'{}'", h.trim()),
                };
                let missing: Vec<String> = header[len..].iter().map(name).collect();
                Error::invalid(format!(
                    "{at}: the {} field{} missing ({len} fields but the header has {expected_len} columns)",
                    missing.join(" and "),
                    if missing.len() > 1 { "s are" } else { " is" }
                ))
            } else {
                Error::invalid(format!(
                    "{at}: {len} fields but the header has {expected_len} columns (quote CSV fields that contain commas)"
                ))
            }
        }
        csv::ErrorKind::Utf8 { .. } => Error::io(at, "not valid UTF-8 text"),
        other => Error::invalid(format!("{at}: malformed record: {other:?}")),
    }
}

/// Strict RFC 4180 quoting, checked before parsing because the `csv` crate (like Python's)
/// is lenient: it keeps text after a closing quote and treats a quote inside an unquoted
/// field as data. Leniency turns two unclosed quotes into one silently merged row, so here
/// a quote may only open a field, be doubled inside a quoted field, or close it right before
/// a comma, a line end or the end of the file. Errors name the line where the field opened.
pub(crate) fn check_csv_quotes(path: &Path, text: &str) -> Result<()> {
    let mut line = 1usize;
    let mut field_start = true;
    let mut in_quotes = false;
    let mut quote_line = 0usize;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if in_quotes {
            match c {
                '"' => match chars.peek() {
                    Some('"') => {
                        chars.next();
                    }
                    None | Some(',') | Some('\n') | Some('\r') => {
                        in_quotes = false;
                        field_start = false;
                    }
                    Some(&next) => {
                        let closed = if line == quote_line {
                            String::new()
                        } else {
                            format!(" closes on line {line} and")
                        };
                        return Err(Error::invalid(format!(
                            "{}:{quote_line}: the quoted field opened on this line{closed} is followed by {next:?} after its closing quote: a '\"' is missing, or a '\"' inside the field is not doubled (\"\")",
                            path.display()
                        )));
                    }
                },
                '\n' => line += 1,
                _ => {}
            }
            continue;
        }
        match c {
            '"' if field_start => {
                in_quotes = true;
                quote_line = line;
            }
            '"' => {
                return Err(Error::invalid(format!(
                    "{}:{line}: a '\"' inside an unquoted field: quote the whole field and double the quote (\"a 12\"\" record\")",
                    path.display()
                )))
            }
            ',' => field_start = true,
            '\n' => {
                line += 1;
                field_start = true;
            }
            '\r' => {}
            _ => field_start = false,
        }
    }
    if in_quotes {
        return Err(Error::invalid(format!(
            "{}:{quote_line}: a quoted field is never closed (a '\"' is missing)",
            path.display()
        )));
    }
    Ok(())
}

/// One JSON object per non-blank line.
fn jsonl_rows(path: &Path, text: &str) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for (i, raw) in text.split('\n').enumerate() {
        let line = i + 1;
        let l = raw.trim();
        if l.is_empty() {
            continue;
        }
        let at = format!("{}:{line}", path.display());
        let value: serde_json::Value =
            serde_json::from_str(l).map_err(|e| Error::invalid(format!("{at}: not valid JSON: {e}")))?;
        let serde_json::Value::Object(obj) = value else {
            return Err(Error::invalid(format!(
                "{at}: expected a JSON object like {{\"image\": ..., \"caption\": ...}}"
            )));
        };
        let mut row = Row {
            line,
            image: String::new(),
            captions: Vec::new(),
            negatives: Vec::new(),
        };
        let mut seen: Vec<Column> = Vec::new();
        for (key, v) in &obj {
            let Some(col) = column_of(key) else {
                let found = obj.keys().map(|k| format!("'{k}'")).collect::<Vec<_>>().join(", ");
                return Err(Error::invalid(format!(
                    "{at}: unknown key '{key}' (keys: {found}); accepted names: {}",
                    accepted_names()
                )));
            };
            if seen.contains(&col) {
                return Err(Error::invalid(format!(
                    "{at}: two keys name the same field; accepted names: {}",
                    accepted_names()
                )));
            }
            seen.push(col);
            match col {
                Column::Image => match v {
                    serde_json::Value::String(s) if !s.trim().is_empty() => row.image = s.trim().to_string(),
                    serde_json::Value::String(_) => {
                        return Err(Error::invalid(format!("{at}: the image field is empty")))
                    }
                    _ => {
                        return Err(Error::invalid(format!(
                            "{at}: '{key}' must be a string (the image path)"
                        )))
                    }
                },
                Column::Caption => {
                    row.captions = string_list(v, &at, key, false)?;
                    if row.captions.is_empty() {
                        return Err(Error::invalid(format!("{at}: the caption field is empty")));
                    }
                }
                Column::Negatives => row.negatives = string_list(v, &at, key, true)?,
            }
        }
        if !seen.contains(&Column::Image) {
            return Err(Error::invalid(format!(
                "{at}: the image field is missing (use '{}' or '{}')",
                IMAGE_COLUMNS[0], IMAGE_COLUMNS[1]
            )));
        }
        if !seen.contains(&Column::Caption) {
            return Err(Error::invalid(format!(
                "{at}: the caption field is missing (use '{}' or '{}')",
                CAPTION_COLUMNS[0], CAPTION_COLUMNS[1]
            )));
        }
        rows.push(row);
    }
    Ok(rows)
}

/// A JSON string or array of strings as trimmed, non-empty strings. With `split_bar`, a plain
/// string is split at `|` (as in the CSV `negatives` column). An empty string inside an array
/// of captions is an error; empty negatives are dropped.
fn string_list(v: &serde_json::Value, at: &str, key: &str, split_bar: bool) -> Result<Vec<String>> {
    match v {
        serde_json::Value::String(s) if split_bar => Ok(split_negatives(s)),
        serde_json::Value::String(s) => Ok(if s.trim().is_empty() {
            vec![]
        } else {
            vec![s.trim().to_string()]
        }),
        serde_json::Value::Null if split_bar => Ok(vec![]),
        serde_json::Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    serde_json::Value::String(s) if !s.trim().is_empty() => out.push(s.trim().to_string()),
                    serde_json::Value::String(_) if split_bar => {}
                    serde_json::Value::String(_) => {
                        return Err(Error::invalid(format!("{at}: '{key}' holds an empty caption")))
                    }
                    _ => return Err(Error::invalid(format!("{at}: '{key}' must hold only strings"))),
                }
            }
            Ok(out)
        }
        _ => Err(Error::invalid(format!(
            "{at}: '{key}' must be a string or an array of strings"
        ))),
    }
}
