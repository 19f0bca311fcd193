//! ftfy 6.3's `fix_encoding`: detect UTF-8 that was decoded with a single-byte encoding
//! (mojibake) and decode it again, step by step as `_fix_encoding_one_step_and_explain` does.
//!
//! Whether a text is mojibake at all is ftfy's `is_bad`: a search for its `BADNESS_RE`, the
//! pattern of unlikely character pairs and triples it has tuned on real data. The pattern and
//! `UTF8_DETECTOR_RE` are generated from ftfy itself into `text_clean_tables.rs`, so the
//! decision is ftfy's rather than an approximation of it.
use std::collections::HashMap;
use std::sync::OnceLock;

use regex::Regex;

use crate::clip::text_clean_tables as t;

/// ftfy's `fix_encoding`: one step after another until the text stops changing.
pub(super) fn fix_encoding(text: &str) -> String {
    let mut text = text.to_string();
    loop {
        let fixed = fix_encoding_step(&text);
        if fixed == text {
            return text;
        }
        text = fixed;
    }
}

/// ftfy's `is_bad`: whether the text holds a sequence that is far likelier mojibake than
/// intended.
pub(super) fn is_bad(text: &str) -> bool {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(t::BADNESS_RE).expect("BADNESS_RE compiles"))
        .is_match(text)
}

/// ftfy's `fix_c1_controls`: C1 controls read as (sloppy) windows-1252, as browsers do.
pub(super) fn fix_c1_controls(text: &str) -> String {
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

fn fix_encoding_step(text: &str) -> String {
    if text.is_ascii() || !is_bad(text) {
        return text.to_string();
    }
    let chars: Vec<char> = text.chars().collect();
    let mut latin1 = false;
    for (name, enc) in charmap_encoders() {
        let Some(mut bytes) = chars.iter().map(|c| enc.get(c).copied()).collect::<Option<Vec<u8>>>() else {
            continue;
        };
        latin1 |= *name == "latin-1";
        // macroman is left out: there an en dash and a space would look like an altered A0.
        if *name != "macroman" && altered_utf8().is_match(&bytes) {
            bytes = restore_byte_a0(&bytes);
        }
        if name.starts_with("sloppy") {
            bytes = lossy_utf8().replace_all(&bytes, "\u{fffd}".as_bytes()).into_owned();
        }
        let decoded = if bytes.contains(&0xED) || bytes.contains(&0xC0) {
            decode_utf8_variants(&bytes)
        } else {
            String::from_utf8(bytes).ok()
        };
        if let Some(fixed) = decoded {
            return fixed;
        }
    }
    if utf8_detector().is_match(text) {
        let fixed = decode_inconsistent_utf8(text);
        if fixed != text {
            return fixed;
        }
    }
    // Latin-1 text with C1 controls was probably meant as windows-1252. ftfy asks whether the
    // text is also possible in "windows-1252", a name its encoding list never holds, so that
    // branch never returns early; the strict codec gives up on its five undefined bytes.
    if latin1 {
        let strict: Option<String> = chars
            .iter()
            .map(|&c| match c as u32 {
                0x81 | 0x8D | 0x8F | 0x90 | 0x9D => None,
                0x80..=0x9F => Some(t::CHARMAPS[1].1[c as usize]),
                _ => Some(c),
            })
            .collect();
        if let Some(fixed) = strict.filter(|f| f != text) {
            return fixed;
        }
    }
    if chars.iter().any(|c| ('\u{80}'..='\u{9f}').contains(c)) {
        return fix_c1_controls(text);
    }
    text.to_string()
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

/// ftfy's `utf-8-variants` codec: UTF-8 that also accepts CESU-8 (a surrogate pair encoded
/// as two three-byte sequences, `ED A0..AF xx ED B0..BF xx`) and Java's `C0 80` for U+0000.
/// Anything else that is not strict UTF-8 fails, as the codec hands it to Python's decoder.
fn decode_utf8_variants(b: &[u8]) -> Option<String> {
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == 0xC0 && b.get(i + 1) == Some(&0x80) {
            out.push(0);
            i += 2;
            continue;
        }
        if b[i] == 0xED && i + 6 <= b.len() {
            let s = &b[i..i + 6];
            let cesu = (0xA0..=0xAF).contains(&s[1])
                && (0x80..=0xBF).contains(&s[2])
                && s[3] == 0xED
                && (0xB0..=0xBF).contains(&s[4])
                && (0x80..=0xBF).contains(&s[5]);
            if cesu {
                let cp = (((s[1] & 0x0F) as u32) << 16)
                    + (((s[2] & 0x3F) as u32) << 10)
                    + (((s[4] & 0x0F) as u32) << 6)
                    + (s[5] & 0x3F) as u32
                    + 0x10000;
                let c = char::from_u32(cp)?;
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                i += 6;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).ok()
}

fn utf8_detector() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(t::UTF8_DETECTOR_RE).expect("UTF8_DETECTOR_RE compiles"))
}

fn utf8_continuation_strict() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(t::UTF8_CONTINUATION_STRICT).expect("UTF8_CONTINUATION_STRICT compiles"))
}

/// ftfy's `decode_inconsistent_utf8`: correct text mixed with mojibake. Each run that looks
/// like UTF-8 read as a single-byte encoding (and does not follow a continuation character:
/// the lookbehind of ftfy's pattern, checked here by hand as Rust's `regex` has none) is fixed
/// on its own, when it is shorter than the text and bad by itself.
fn decode_inconsistent_utf8(text: &str) -> String {
    let total = text.chars().count();
    let mut out = String::with_capacity(text.len());
    let (mut pos, mut last) = (0, 0);
    while let Some(m) = utf8_detector().find_at(text, pos) {
        let before = text[..m.start()].chars().next_back();
        if before.is_some_and(|c| utf8_continuation_strict().is_match(c.encode_utf8(&mut [0; 4]))) {
            // The lookbehind fails here: Python's search tries the next position.
            pos = m.start() + text[m.start()..].chars().next().map_or(1, char::len_utf8);
            continue;
        }
        let sub = m.as_str();
        out.push_str(&text[last..m.start()]);
        if sub.chars().count() < total && is_bad(sub) {
            out.push_str(&fix_encoding(sub));
        } else {
            out.push_str(sub);
        }
        last = m.end();
        pos = m.end();
        if m.is_empty() {
            break;
        }
    }
    out.push_str(&text[last..]);
    out
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
    fn utf8_variants_accepts_cesu8_and_java_nul_only() {
        assert_eq!(
            decode_utf8_variants(b"a \xed\xa0\xbd\xed\xb8\x80 b").as_deref(),
            Some("a \u{1f600} b")
        );
        assert_eq!(decode_utf8_variants(b"x\xc0\x80y").as_deref(), Some("x\0y"));
        // A lone surrogate, a truncated pair and an overlong form stay errors.
        assert_eq!(decode_utf8_variants(b"\xed\xa0\xbd"), None);
        assert_eq!(decode_utf8_variants(b"\xed\xa0\xbd\xed\xb8"), None);
        assert_eq!(decode_utf8_variants(b"\xc0\xaf"), None);
        assert_eq!(decode_utf8_variants("\u{d7ff}".as_bytes()).as_deref(), Some("\u{d7ff}"));
    }

    #[test]
    fn badness_decides_what_is_mojibake() {
        assert!(is_bad("cafÃ©"));
        assert!(is_bad("GrГ¶Гџere HГ¤user"));
        // Too little evidence for ftfy: left alone, so here too.
        assert!(!is_bad("CrГЁme brГ»lГ©e"));
        assert!(is_bad("вЂ™"));
        assert!(!is_bad("café"));
        assert!(!is_bad("Всё в порядке"));
        assert!(!is_bad("(╯°□°)╯︵ ┻━┻"));
        // Windows-1251 reading of Latin text is repaired once ftfy's heuristic calls it bad.
        assert_eq!(fix_encoding("GrГ¶Гџere HГ¤user"), "Größere Häuser");
        assert_eq!(fix_encoding("Всё в порядке"), "Всё в порядке");
    }

    #[test]
    fn embedded_mojibake_is_fixed_run_by_run() {
        assert_eq!(fix_encoding("a real é and cafÃ©"), "a real é and café");
    }
}
