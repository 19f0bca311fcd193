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
//! Mojibake (`fix_encoding`) is the part that is not ported in full: ftfy decides whether a
//! text is mojibake with a large "badness" heuristic. Here a segment is re-decoded through
//! ftfy's ten single-byte encodings, in ftfy's order, with its `restore_byte_a0` and
//! `replace_lossy_sequences` repairs, when it holds a simpler clue (a character the encoding
//! makes of a UTF-8 lead byte followed by one of a continuation byte: `Ã©`, `â€™`, `Ð¿`) and
//! the whole segment transcodes to valid UTF-8; else runs of windows-1252 mojibake inside
//! correct text are repaired one by one (ftfy's `decode_inconsistent_utf8`). Where ftfy's
//! heuristic and this clue disagree the results differ; ftfy's `utf-8-variants` (CESU-8)
//! decoding is not ported. tests/open_clip_pipeline.rs measures the agreement with real ftfy
//! on the committed corpus (tests/fixtures/tokenizer/open_clip_goldens.json).
use std::collections::HashMap;
use std::sync::OnceLock;

use tokenizers::normalizer::NormalizedString;

use super::text_clean_tables as t;

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

/// ftfy's `fix_text` with its defaults (see the module docs for the mojibake subset).
pub fn fix_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut unescape = true;
    for segment in text.split_inclusive('\n') {
        if segment.contains('<') {
            unescape = false;
        }
        out.push_str(&fix_segment(segment, unescape));
    }
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

fn fix_c1_controls(text: &str) -> String {
    text.chars()
        .map(|c| {
            if ('\u{80}'..='\u{9f}').contains(&c) {
                t::CHARMAPS[1].1[c as usize]
            } else {
                c
            }
        })
        .collect()
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

/// ftfy's single-byte encodings in its order, each as a char -> byte map of the characters
/// its `possible_encoding` accepts (ASCII except 1A, plus what bytes 80..FF and 1A decode to).
fn charmap_encoders() -> &'static [(&'static str, HashMap<char, u8>)] {
    static ENC: OnceLock<Vec<(&'static str, HashMap<char, u8>)>> = OnceLock::new();
    ENC.get_or_init(|| {
        t::CHARMAPS
            .iter()
            .map(|(name, table)| {
                let mut m: HashMap<char, u8> = (0u8..0x80).filter(|&b| b != 0x1A).map(|b| (b as char, b)).collect();
                for b in (0x80..=0xFFu8).chain([0x1A]) {
                    m.entry(table[b as usize]).or_insert(b);
                }
                (*name, m)
            })
            .collect()
    })
}

/// Whether `chars` hold a clue that they are UTF-8 decoded as `table`: a character that
/// `table` makes of a UTF-8 lead byte (C2..F4) followed by one it makes of a continuation byte
/// (80..BF) or a space (an A0 byte turned into a space). For windows-1251 only `Р`/`С`
/// (D0/D1, the leads of Cyrillic letters) count: Latin text read as windows-1251 (`Г©`) is
/// what ftfy's badness heuristic does not repair either.
fn has_clue(chars: &[char], name: &str, table: &[char; 256]) -> bool {
    let lead = |c: char| {
        if name == "sloppy-windows-1251" {
            matches!(c, 'Р' | 'С')
        } else {
            (c as u32) >= 0x80 && table[0xC2..=0xF4].contains(&c)
        }
    };
    let cont = |c: char| c == ' ' || ((c as u32) >= 0x80 && table[0x80..=0xBF].contains(&c));
    chars.windows(2).any(|w| lead(w[0]) && cont(w[1]))
}

/// The subset of ftfy's `fix_encoding` described in the module docs, repeated until stable.
fn fix_encoding(text: &str) -> String {
    let mut text = text.to_string();
    loop {
        let fixed = fix_encoding_step(&text);
        if fixed == text {
            return text;
        }
        text = fixed;
    }
}

fn fix_encoding_step(text: &str) -> String {
    if text.is_ascii() {
        return text.to_string();
    }
    let chars: Vec<char> = text.chars().collect();
    let mut latin1 = false;
    for ((name, enc), (_, table)) in charmap_encoders().iter().zip(t::CHARMAPS) {
        let Some(mut bytes) = chars.iter().map(|c| enc.get(c).copied()).collect::<Option<Vec<u8>>>() else {
            continue;
        };
        latin1 |= *name == "latin-1";
        if !has_clue(&chars, name, table) {
            continue;
        }
        if *name != "macroman" && altered_utf8().is_match(&bytes) {
            bytes = restore_byte_a0(&bytes);
        }
        if name.starts_with("sloppy") {
            bytes = lossy_utf8().replace_all(&bytes, "\u{fffd}".as_bytes()).into_owned();
        }
        if let Ok(fixed) = String::from_utf8(bytes) {
            return fixed;
        }
    }
    if let Some(fixed) = decode_inconsistent_utf8(&chars) {
        return fixed;
    }
    // Latin-1 text with C1 controls was probably meant as windows-1252 (strict: the five
    // bytes windows-1252 leaves undefined make this step give up, as Python's codec does).
    if latin1 {
        let strict: Option<String> = chars
            .iter()
            .map(|&c| match c as u32 {
                0x81 | 0x8D | 0x8F | 0x90 | 0x9D => None,
                0x80..=0x9F => Some(t::CHARMAPS[1].1[c as usize]),
                _ => Some(c),
            })
            .collect();
        if let Some(fixed) = strict {
            return fixed;
        }
    }
    text.to_string()
}

/// Like ftfy's `decode_inconsistent_utf8`: when the whole text does not transcode (correct
/// text mixed with mojibake), each sequence of a UTF-8 lead character and its continuation
/// characters (in sloppy windows-1252) that decodes as UTF-8 is replaced by what it decodes to.
fn decode_inconsistent_utf8(chars: &[char]) -> Option<String> {
    let (_, enc) = &charmap_encoders()[1];
    let byte = |c: char| if (c as u32) < 0x80 { None } else { enc.get(&c).copied() };
    let mut out = String::new();
    let mut changed = false;
    let mut i = 0;
    while i < chars.len() {
        let need = match byte(chars[i]) {
            Some(0xC2..=0xDF) => 1,
            Some(0xE0..=0xEF) => 2,
            Some(0xF0..=0xF4) => 3,
            _ => 0,
        };
        if need > 0 && i + need < chars.len() {
            let seq: Option<Vec<u8>> = chars[i..=i + need].iter().map(|&c| byte(c)).collect();
            if let Some(s) = seq.and_then(|b| String::from_utf8(b).ok()) {
                out.push_str(&s);
                changed = true;
                i += need + 1;
                continue;
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    changed.then_some(out)
}

/// ftfy's `ALTERED_UTF8_RE`: UTF-8 sequences whose A0 byte became a space.
fn altered_utf8() -> &'static regex::bytes::Regex {
    static RE: OnceLock<regex::bytes::Regex> = OnceLock::new();
    RE.get_or_init(|| {
        regex::bytes::Regex::new(
            r"(?-u)[\xc2\xc3\xc5\xce\xd0\xd9][ ]|[\xe2\xe3][ ][\x80-\x84\x86-\x9f\xa1-\xbf]|[\xe0-\xe3][\x80-\x84\x86-\x9f\xa1-\xbf][ ]|[\xf0][ ][\x80-\xbf][\x80-\xbf]|[\xf0][\x80-\xbf][ ][\x80-\xbf]|[\xf0][\x80-\xbf][\x80-\xbf][ ]",
        )
        .expect("ALTERED_UTF8_RE compiles")
    })
}

/// ftfy's `LOSSY_UTF8_RE`: UTF-8 sequences with a byte lost to 1A (or `?`).
fn lossy_utf8() -> &'static regex::bytes::Regex {
    static RE: OnceLock<regex::bytes::Regex> = OnceLock::new();
    RE.get_or_init(|| {
        regex::bytes::Regex::new(
            r"(?-u)[\xc2-\xdf][\x1a]|[\xc2-\xc3][?]|\xed[\xa0-\xaf][\x1a?]\xed[\xb0-\xbf][\x1a?\x80-\xbf]|\xed[\xa0-\xaf][\x1a?\x80-\xbf]\xed[\xb0-\xbf][\x1a?]|[\xe0-\xef][\x1a?][\x1a\x80-\xbf]|[\xe0-\xef][\x1a\x80-\xbf][\x1a?]|[\xf0-\xf4][\x1a?][\x1a\x80-\xbf][\x1a\x80-\xbf]|[\xf0-\xf4][\x1a\x80-\xbf][\x1a?][\x1a\x80-\xbf]|[\xf0-\xf4][\x1a\x80-\xbf][\x1a\x80-\xbf][\x1a?]|\x1a",
        )
        .expect("LOSSY_UTF8_RE compiles")
    })
}

/// ftfy's `restore_byte_a0`: `C3 20` -> `C3 A0 20` unless a Portuguese `à` word follows
/// (`A_GRAVE_WORD_RE`), then spaces inside `ALTERED_UTF8_RE` matches -> A0.
fn restore_byte_a0(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len() + 4);
    let mut i = 0;
    while i < b.len() {
        if b[i] == 0xC3 && b.get(i + 1) == Some(&b' ') {
            let rest = &b[i + 2..];
            let keep = [&b" "[..], b"quele", b"quela", b"quilo", b"s "]
                .iter()
                .any(|p| rest.starts_with(p));
            if !keep {
                out.extend_from_slice(&[0xC3, 0xA0, b' ']);
                i += 2;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    altered_utf8()
        .replace_all(&out, |m: &regex::bytes::Captures| {
            m[0].iter()
                .map(|&x| if x == b' ' { 0xA0 } else { x })
                .collect::<Vec<u8>>()
        })
        .into_owned()
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
