//! open_clip's text cleaning, in Rust: `whitespace_clean(basic_clean(text)).lower()` where
//! `basic_clean` is `ftfy.fix_text(text)` then `html.unescape` twice then `strip()`.
//!
//! There is no full Rust port of ftfy. This module follows ftfy 6.3's `fix_text` defaults step
//! by step with ftfy's own tables (generated into `text_clean_tables.rs` by
//! `tools/gen_text_clean_tables.py`): per-line segments; HTML entities (skipped once a segment
//! contains `<`, for that segment and every later one, as ftfy's loop does); C1 controls as
//! windows-1252; Latin ligatures; full-/half-width forms; curly quotes; line breaks; terminal
//! escapes; control characters; NFC; all repeated until nothing changes.
//!
//! Mojibake (`fix_encoding`, in `text_clean/mojibake.rs`) follows ftfy's own decision rule,
//! `is_bad` on its `BADNESS_RE`, generated from ftfy, with its ten single-byte encodings in
//! its order, `restore_byte_a0`, `replace_lossy_sequences`, the `utf-8-variants` (CESU-8)
//! codec and `decode_inconsistent_utf8`. Python's surrogate fixes have nothing to do here (a
//! Rust string cannot hold a lone surrogate). tests/open_clip_pipeline.rs compares every
//! text of the committed corpus with real ftfy (tests/fixtures/tokenizer/open_clip_goldens.json).
use tokenizers::normalizer::NormalizedString;

use super::text_clean_tables as t;

mod mojibake;

use mojibake::{fix_c1_controls, fix_encoding};

/// open_clip's default text cleaning (`clean="lower"`): ftfy, HTML unescape twice, collapse
/// whitespace, Python's `str.lower`.
pub fn open_clip_clean(text: &str) -> String {
    let fixed = fix_text(text);
    let unescaped = html_unescape(&html_unescape(&fixed));
    let collapsed: Vec<&str> = unescaped.split(py_isspace).filter(|w| !w.is_empty()).collect();
    // Rust's `to_lowercase` applies the same full mappings and the final-sigma rule as
    // Python's `str.lower`.
    collapsed.join(" ").to_lowercase()
}

/// Python's `str.isspace` for one character: Unicode White_Space plus the information
/// separators U+001C..U+001F, which Python also splits on.
pub fn py_isspace(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// ftfy's `max_decode_length`: a line longer than this many characters is fixed in pieces.
const MAX_DECODE_LENGTH: usize = 1_000_000;

/// ftfy's `fix_text` with its defaults.
pub fn fix_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut unescape = true;
    for segment in text.split_inclusive('\n').flat_map(pieces) {
        if segment.contains('<') {
            unescape = false;
        }
        out.push_str(&fix_segment(segment, unescape));
    }
    out
}

/// A line cut every `MAX_DECODE_LENGTH` characters, as ftfy's `fix_text` cuts it.
fn pieces(line: &str) -> Vec<&str> {
    let mut out = vec![];
    let mut rest = line;
    while let Some((cut, _)) = rest.char_indices().nth(MAX_DECODE_LENGTH) {
        out.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    out.push(rest);
    out
}

fn fix_segment(segment: &str, unescape: bool) -> String {
    let mut text = segment.to_string();
    loop {
        let orig = text.clone();
        if unescape {
            text = ftfy_unescape_html(&text);
        }
        text = fix_encoding(&text);
        text = fix_c1_controls(&text);
        text = map_chars(&text, t::LIGATURES);
        text = map_chars(&text, t::WIDTH_MAP);
        text = uncurl_quotes(&text);
        text = fix_line_breaks(&text);
        text = remove_terminal_escapes(&text);
        text.retain(|c| !is_control_to_remove(c));
        text = nfc(&text);
        if text == orig {
            return text;
        }
    }
}

fn nfc(text: &str) -> String {
    let mut n = NormalizedString::from(text);
    n.nfc();
    n.get().to_string()
}

fn lookup<'a>(table: &'a [(&'a str, &'a str)], key: &str) -> Option<&'a str> {
    table.binary_search_by(|(k, _)| (*k).cmp(key)).ok().map(|i| table[i].1)
}

fn map_chars(text: &str, table: &[(u32, &str)]) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match table.binary_search_by(|(k, _)| k.cmp(&(c as u32))) {
            Ok(i) => out.push_str(table[i].1),
            Err(_) => out.push(c),
        }
    }
    out
}

/// ftfy's `unescape_html`: `&#?[0-9A-Za-z]{1,24};` replaced by ftfy's entity table (HTML5
/// names with `;` plus upper-cased variants), numeric ones through `html.unescape`.
fn ftfy_unescape_html(text: &str) -> String {
    if !text.contains('&') {
        return text.to_string();
    }
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let mut last = 0;
    while i < b.len() {
        if b[i] == b'&' {
            let start = i + 1;
            let body = if b.get(start) == Some(&b'#') { start + 1 } else { start };
            let mut j = body;
            while j < b.len() && j - body < 24 && b[j].is_ascii_alphanumeric() {
                j += 1;
            }
            if j > body && b.get(j) == Some(&b';') {
                let ent = &text[i..=j];
                let rep = if let Some(r) = lookup(t::HTML5, &ent[1..]) {
                    Some(r.to_string())
                } else if let Some(r) = lookup(t::FTFY_UPPER_ENTITIES, ent) {
                    Some(r.to_string())
                } else if body > start {
                    let u = html_unescape(ent);
                    (!u.contains(';')).then_some(u)
                } else {
                    None
                };
                if let Some(r) = rep {
                    out.push_str(&text[last..i]);
                    out.push_str(&r);
                    i = j + 1;
                    last = i;
                    continue;
                }
            }
        }
        i += 1;
    }
    out.push_str(&text[last..]);
    out
}

/// Python's `html.unescape` (HTML5 rules: named references with and without `;`, longest
/// prefix for legacy names, numeric references with the spec's replacements).
pub fn html_unescape(text: &str) -> String {
    if !text.contains('&') {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(p) = rest.find('&') {
        out.push_str(&rest[..p]);
        let after = &rest[p + 1..];
        match charref(after) {
            Some((rep, used)) => {
                out.push_str(&rep);
                rest = &after[used..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// One reference after `&`: the replacement and the number of bytes of `s` it used, or None
/// when `_charref` does not match there.
fn charref(s: &str) -> Option<(String, usize)> {
    let b = s.as_bytes();
    if b.first() == Some(&b'#') {
        let hex = matches!(b.get(1), Some(b'x' | b'X'));
        let digits_start = if hex { 2 } else { 1 };
        let mut j = digits_start;
        while j < b.len()
            && (if hex {
                b[j].is_ascii_hexdigit()
            } else {
                b[j].is_ascii_digit()
            })
        {
            j += 1;
        }
        if j == digits_start {
            return None;
        }
        let used = if b.get(j) == Some(&b';') { j + 1 } else { j };
        let radix = if hex { 16 } else { 10 };
        // Saturate: anything past U+10FFFF is replaced the same way however large it is.
        let num = s[digits_start..j].chars().fold(0u64, |acc, c| {
            (acc * radix + c.to_digit(radix as u32).unwrap_or(0) as u64).min(1 << 40)
        });
        let rep = if let Ok(i) = t::INVALID_CHARREFS.binary_search_by(|(k, _)| (*k as u64).cmp(&num)) {
            t::INVALID_CHARREFS[i].1.to_string()
        } else if (0xD800..=0xDFFF).contains(&num) || num > 0x10FFFF {
            "\u{fffd}".to_string()
        } else if t::INVALID_CODEPOINTS.binary_search(&(num as u32)).is_ok() {
            String::new()
        } else {
            char::from_u32(num as u32)
                .map(String::from)
                .unwrap_or_else(|| "\u{fffd}".into())
        };
        return Some((rep, used));
    }
    // `[^\t\n\f <&#;]{1,32};?`
    let mut end = 0;
    for (n, (i, c)) in s.char_indices().enumerate() {
        if n == 32 || matches!(c, '\t' | '\n' | '\u{c}' | ' ' | '<' | '&' | '#' | ';') {
            break;
        }
        end = i + c.len_utf8();
    }
    if end == 0 {
        return None;
    }
    let used = if s[end..].starts_with(';') { end + 1 } else { end };
    let name = &s[..used];
    if let Some(r) = lookup(t::HTML5, name) {
        return Some((r.to_string(), used));
    }
    // The longest prefix that is a (legacy, no `;`) entity name, keeping the rest as text.
    let cuts: Vec<usize> = name.char_indices().map(|(i, _)| i).filter(|&i| i >= 2).collect();
    for &x in cuts.iter().rev() {
        if let Some(r) = lookup(t::HTML5, &name[..x]) {
            return Some((format!("{r}{}", &name[x..]), used));
        }
    }
    Some((format!("&{name}"), used))
}

fn uncurl_quotes(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\u{2bc}' | '\u{2018}'..='\u{201b}' => '\'',
            '\u{201c}'..='\u{201f}' => '"',
            c => c,
        })
        .collect()
}

fn fix_line_breaks(text: &str) -> String {
    text.replace("\r\n", "\n")
        .replace(['\r', '\u{2028}', '\u{2029}', '\u{85}'], "\n")
}

/// ftfy's `ANSI_RE`: `\x1b\[((?:\d|;)*)([a-zA-Z])` removed.
fn remove_terminal_escapes(text: &str) -> String {
    if !text.contains('\u{1b}') {
        return text.to_string();
    }
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let (mut i, mut last) = (0, 0);
    while i < b.len() {
        if b[i] == 0x1b && b.get(i + 1) == Some(&b'[') {
            let mut j = i + 2;
            while j < b.len() && (b[j].is_ascii_digit() || b[j] == b';') {
                j += 1;
            }
            if j < b.len() && b[j].is_ascii_alphabetic() {
                out.push_str(&text[last..i]);
                i = j + 1;
                last = i;
                continue;
            }
        }
        i += 1;
    }
    out.push_str(&text[last..]);
    out
}

/// ftfy's `CONTROL_CHARS`.
fn is_control_to_remove(c: char) -> bool {
    matches!(c as u32,
        0x00..=0x08 | 0x0B | 0x0E..=0x1F | 0x7F | 0x206A..=0x206F | 0xFEFF | 0xFFF9..=0xFFFC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_unescape_follows_python() {
        assert_eq!(html_unescape("a &amp; b"), "a & b");
        assert_eq!(html_unescape("&amp;amp;"), "&amp;");
        assert_eq!(html_unescape("&ampx"), "&x");
        assert_eq!(html_unescape("&notit;"), "\u{ac}it;");
        assert_eq!(html_unescape("&#x80;"), "\u{20ac}");
        assert_eq!(html_unescape("&#0;"), "\u{fffd}");
        assert_eq!(html_unescape("&#1;"), "");
        assert_eq!(html_unescape("&#99999999999;"), "\u{fffd}");
        assert_eq!(html_unescape("& &#; &bogus;"), "& &#; &bogus;");
    }

    #[test]
    fn open_clip_clean_examples() {
        assert_eq!(
            open_clip_clean("  \u{201c}Caf\u{e9}\u{201d}  &amp;\tＬＯＵＤ "),
            "\"café\" & loud"
        );
        assert_eq!(open_clip_clean("\u{fb01}ne ΟΔΟΣ"), "fine οδος");
        assert_eq!(open_clip_clean("sÃ³ Ã©tÃ©"), "só été");
        assert_eq!(open_clip_clean("&amp;lt;b&amp;gt;"), "<b>");
    }
}
