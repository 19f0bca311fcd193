//! Concepts: one per `emoji.json` entry with a Google image, named after its Fluent file
//! (a CLDR name, "person running") when one matches, else after its cleaned Unicode name.
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

/// The three Fluent art styles, by folder under `icons/`.
pub const FLUENT_STYLES: [&str; 3] = ["modern", "flat", "high-contrast"];

/// Skin-tone file suffixes of the Fluent package (`-default` is the base image). Longest
/// first, so "-medium-light" is not read as "-light".
const FLUENT_TONES: [&str; 6] = [
    "-default",
    "-medium-light",
    "-medium-dark",
    "-light",
    "-dark",
    "-medium",
];

/// A Google skin-tone variant of a concept.
#[derive(Clone, Debug)]
pub struct SkinVariant {
    /// PNG file name under `img/google/64/`.
    pub image: String,
    /// "light skin tone", or "light skin tone, dark skin tone" for two-person emoji.
    pub tone: String,
}

#[derive(Clone, Debug)]
pub struct Concept {
    /// Display name: the class name and the `{name}` of every caption.
    pub name: String,
    /// Short-name keywords ("running", "runner"), never equal to `name`.
    pub keywords: Vec<String>,
    /// Cleaned, lowercased (e.g. "people and body").
    pub category: String,
    /// Cleaned, `-` as space (e.g. "person activity").
    pub subcategory: String,
    /// PNG file name under `img/google/64/`.
    pub google_image: String,
    pub skin: Vec<SkinVariant>,
    /// The matched Fluent base name (slug, e.g. "person-running"), if any.
    pub fluent: Option<String>,
}

/// Base Fluent images: style -> base slug -> SVG path.
pub struct FluentIndex {
    pub styles: HashMap<&'static str, HashMap<String, PathBuf>>,
}

impl FluentIndex {
    pub fn svg(&self, style: &str, base: &str) -> Option<&PathBuf> {
        self.styles.get(style)?.get(base)
    }

    /// Every base name found in any style.
    fn bases(&self) -> HashSet<&str> {
        self.styles
            .values()
            .flat_map(|m| m.keys().map(String::as_str))
            .collect()
    }
}

/// Index `icons/{style}/*.svg`, keeping base images only. A name with a tone suffix is a
/// variant only when `{stem}-default.svg` exists: "vertical-traffic-light" is a base image.
pub fn index_fluent(fluent_dir: &Path) -> Result<FluentIndex, String> {
    let mut styles = HashMap::new();
    for style in FLUENT_STYLES {
        let dir = fluent_dir.join("icons").join(style);
        let rd = std::fs::read_dir(&dir).map_err(|e| format!("{}: cannot list Fluent SVGs: {e}", dir.display()))?;
        let mut stems = HashSet::new();
        for entry in rd {
            let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
            let file = entry.file_name().to_string_lossy().into_owned();
            if let Some(stem) = file.strip_suffix(".svg") {
                stems.insert(stem.to_string());
            }
        }
        let mut bases = HashMap::new();
        for stem in &stems {
            let tone = FLUENT_TONES
                .iter()
                .find(|t| stem.ends_with(*t) && stems.contains(&format!("{}-default", &stem[..stem.len() - t.len()])));
            let base = match tone {
                None => stem.as_str(),
                Some(&"-default") => &stem[..stem.len() - "-default".len()],
                Some(_) => continue, // a skin-tone variant: not used
            };
            bases.insert(base.to_string(), dir.join(format!("{stem}.svg")));
        }
        styles.insert(style, bases);
    }
    Ok(FluentIndex { styles })
}

/// Lowercase, `_` as `-`, every run of other non-alphanumerics as one `-`.
pub fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.to_lowercase().chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_string()
}

/// Caption-ready text: lowercase, `&` as "and", typographic apostrophe and accents folded to
/// ASCII (the mini tokenizer's vocabulary is built from these captions), spaces collapsed.
pub fn clean(s: &str) -> String {
    let mut out = String::new();
    for c in s.to_lowercase().chars() {
        match c {
            '&' => out.push_str(" and "),
            '\u{2019}' | '\u{2018}' => out.push('\''),
            'é' | 'è' | 'ê' => out.push('e'),
            'å' | 'ã' | 'á' | 'à' | 'â' => out.push('a'),
            'ô' | 'ó' | 'ö' => out.push('o'),
            'í' | 'ï' => out.push('i'),
            'ü' | 'ú' => out.push('u'),
            'ç' => out.push('c'),
            c => out.push(c),
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// "1F3FB" -> "light skin tone" (the Fitzpatrick modifiers, CLDR wording).
fn tone_name(code: &str) -> Option<&'static str> {
    Some(match code.to_ascii_uppercase().as_str() {
        "1F3FB" => "light skin tone",
        "1F3FC" => "medium-light skin tone",
        "1F3FD" => "medium skin tone",
        "1F3FE" => "medium-dark skin tone",
        "1F3FF" => "dark skin tone",
        _ => return None,
    })
}

/// "1F3FB-1F3FF" -> "light skin tone, dark skin tone"; one tone when both people share it.
fn tones_name(key: &str) -> Option<String> {
    let mut names: Vec<&str> = key.split('-').map(tone_name).collect::<Option<_>>()?;
    names.dedup();
    Some(names.join(", "))
}

fn str_field<'a>(e: &'a Value, key: &str) -> &'a str {
    e.get(key).and_then(Value::as_str).unwrap_or("")
}

/// What the run reports about the inputs besides the concepts.
#[derive(Default, Debug)]
pub struct LoadStats {
    /// Entries without a Google image (skipped).
    pub skipped_no_image: usize,
    /// Skin variants without a Google image (skipped).
    pub skipped_skin_no_image: usize,
    /// Names that collided and got a keyword appended.
    pub renamed_duplicates: Vec<String>,
}

/// Read `emoji.json` and match each entry against the Fluent base names.
pub fn load(google_dir: &Path, fluent: &FluentIndex) -> Result<(Vec<Concept>, LoadStats), String> {
    let path = google_dir.join("emoji.json");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    let v: Value = serde_json::from_str(&text).map_err(|e| format!("{}: not valid JSON: {e}", path.display()))?;
    let entries = v
        .as_array()
        .ok_or_else(|| format!("{}: expected a JSON array of emoji", path.display()))?;
    let mut stats = LoadStats::default();

    let entries: Vec<&Value> = entries
        .iter()
        .filter(|e| {
            let has = e.get("has_img_google").and_then(Value::as_bool).unwrap_or(false);
            stats.skipped_no_image += usize::from(!has);
            has
        })
        .collect();

    // Match candidates per entry, best first: the Unicode name, then each short name.
    let candidates: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            let shorts = e
                .get("short_names")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            std::iter::once(slug(str_field(e, "name")))
                .chain(shorts.iter().filter_map(Value::as_str).map(slug))
                .collect()
        })
        .collect();
    // Greedy by rank across all entries, so a Fluent file goes to the entry whose Unicode
    // name it is before any short-name match: the two "MAN IN TUXEDO" entries get
    // man-in-tuxedo and (by short name) person-in-tuxedo, not the same file twice.
    let bases = fluent.bases();
    let mut matched: Vec<Option<String>> = vec![None; entries.len()];
    let mut claimed: HashSet<String> = HashSet::new();
    let max_rank = candidates.iter().map(Vec::len).max().unwrap_or(0);
    for rank in 0..max_rank {
        for (i, cands) in candidates.iter().enumerate() {
            if matched[i].is_some() {
                continue;
            }
            if let Some(c) = cands.get(rank) {
                if bases.contains(c.as_str()) && claimed.insert(c.clone()) {
                    matched[i] = Some(c.clone());
                }
            }
        }
    }

    let mut concepts = Vec::with_capacity(entries.len());
    for (e, fluent) in entries.iter().zip(matched) {
        let name = match &fluent {
            Some(base) => clean(&base.replace('-', " ")),
            None => clean(str_field(e, "name")),
        };
        let mut keywords: Vec<String> = Vec::new();
        for s in e.get("short_names").and_then(Value::as_array).into_iter().flatten() {
            let kw = clean(&s.as_str().unwrap_or("").replace(['_', '-'], " "));
            if !kw.is_empty() && kw != name && !keywords.contains(&kw) {
                keywords.push(kw);
            }
        }
        let mut skin = Vec::new();
        // BTreeMap: a stable order of variants whatever the JSON object order.
        let variants: BTreeMap<&String, &Value> = e
            .get("skin_variations")
            .and_then(Value::as_object)
            .map(|m| m.iter().collect())
            .unwrap_or_default();
        for (key, var) in variants {
            let has = var.get("has_img_google").and_then(Value::as_bool).unwrap_or(false);
            let image = str_field(var, "image");
            match tones_name(key) {
                Some(tone) if has && !image.is_empty() => skin.push(SkinVariant {
                    image: image.to_string(),
                    tone,
                }),
                _ => stats.skipped_skin_no_image += 1,
            }
        }
        concepts.push(Concept {
            name,
            keywords,
            category: clean(str_field(e, "category")),
            subcategory: clean(&str_field(e, "subcategory").replace('-', " ")),
            google_image: str_field(e, "image").to_string(),
            skin,
            fluent,
        });
    }

    // Class names must be unique (they are labels); a rare clash gets its first keyword.
    let mut seen: HashMap<String, usize> = HashMap::new();
    for c in &concepts {
        *seen.entry(c.name.clone()).or_default() += 1;
    }
    let mut taken: HashSet<String> = HashSet::new();
    for c in concepts.iter_mut() {
        if seen[&c.name] > 1 && !taken.insert(c.name.clone()) {
            let extra = c.keywords.first().cloned().unwrap_or_else(|| slug(&c.google_image));
            let mut new = format!("{} ({extra})", c.name);
            let mut k = 2;
            while taken.contains(&new) {
                new = format!("{} ({extra} {k})", c.name);
                k += 1;
            }
            stats.renamed_duplicates.push(new.clone());
            taken.insert(new.clone());
            c.name = new;
        }
    }
    Ok((concepts, stats))
}

/// A stable 64-bit hash of `text` under `seed` (FNV-1a, then a SplitMix64 finish for well
/// spread low bits): the same choice on every machine and Rust version, unlike std's hasher.
pub fn stable_hash(seed: u64, salt: &str, text: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let bytes = seed.to_le_bytes();
    for b in bytes
        .iter()
        .chain(salt.as_bytes())
        .chain(&[0xff])
        .chain(text.as_bytes())
    {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h = h.wrapping_add(0x9e37_79b9_7f4a_7c15);
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// The held-out concepts: the `fraction` of concepts with the smallest hash of their name.
pub fn choose_heldout(concepts: &[Concept], seed: u64, fraction: f64) -> HashSet<usize> {
    let n = ((concepts.len() as f64) * fraction).round() as usize;
    let mut order: Vec<usize> = (0..concepts.len()).collect();
    order.sort_by_key(|&i| (stable_hash(seed, "heldout-concept", &concepts[i].name), i));
    order.into_iter().take(n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_and_cleaning() {
        assert_eq!(slug("RUNNER"), "runner");
        assert_eq!(slug("man_in_tuxedo"), "man-in-tuxedo");
        assert_eq!(slug("FAMILY: MAN, BOY"), "family-man-boy");
        assert_eq!(slug("+1"), "1");
        assert_eq!(clean("São Tomé & Príncipe Flag"), "sao tome and principe flag");
        assert_eq!(clean("Côte d’Ivoire Flag"), "cote d'ivoire flag");
        assert_eq!(tones_name("1F3FB-1F3FF").unwrap(), "light skin tone, dark skin tone");
        assert_eq!(tones_name("1F3FD-1F3FD").unwrap(), "medium skin tone");
    }

    #[test]
    fn hash_is_stable_and_seeded() {
        assert_eq!(stable_hash(0, "a", "dove"), stable_hash(0, "a", "dove"));
        assert_ne!(stable_hash(0, "a", "dove"), stable_hash(1, "a", "dove"));
    }
}
