//! Caption sentences and the CSV they go in. Captions are always sentences, never the bare
//! label, so the text tower learns "an emoji of {}"-style prompts rather than lookup keys.
use crate::concepts::Concept;

/// Three captions for `c`, with `name` standing for it (the display name, or the display
/// name with a skin tone: "person running: light skin tone").
pub fn captions(c: &Concept, name: &str) -> Vec<String> {
    let mut out = vec![format!("an emoji of {name}.")];
    out.push(match (c.subcategory.is_empty(), c.category.is_empty()) {
        (false, false) => format!(
            "{name}, {} {} emoji in the {} group.",
            article(&c.subcategory),
            c.subcategory,
            c.category
        ),
        (false, true) => format!("{name}, {} {} emoji.", article(&c.subcategory), c.subcategory),
        (true, false) => format!("{name}, an emoji in the {} group.", c.category),
        (true, true) => format!("a picture of {name}, an emoji."),
    });
    out.push(match c.keywords.as_slice() {
        [] => format!("a small picture of {name}."),
        kws => format!("an emoji of {name}, also called {}.", or_list(&kws[..kws.len().min(3)])),
    });
    out
}

/// "a" or "an" before `word` (by its first letter; good enough for emoji subcategories).
fn article(word: &str) -> &'static str {
    match word.chars().next() {
        Some('a' | 'e' | 'i' | 'o' | 'u') => "an",
        _ => "a",
    }
}

/// ["a"] -> "a"; ["a", "b"] -> "a or b"; ["a", "b", "c"] -> "a, b or c".
fn or_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

/// One CSV field: quoted when it holds a comma, quote or line break (quotes doubled).
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn concept(keywords: &[&str]) -> Concept {
        Concept {
            name: "person running".into(),
            keywords: keywords.iter().map(|s| s.to_string()).collect(),
            category: "people and body".into(),
            subcategory: "person activity".into(),
            google_image: "1f3c3.png".into(),
            skin: vec![],
            fluent: Some("person-running".into()),
        }
    }

    #[test]
    fn three_sentences() {
        let c = concept(&["runner", "running"]);
        assert_eq!(
            captions(&c, &c.name),
            vec![
                "an emoji of person running.",
                "person running, a person activity emoji in the people and body group.",
                "an emoji of person running, also called runner or running.",
            ]
        );
        assert_eq!(captions(&concept(&[]), "x")[2], "a small picture of x.");
    }

    #[test]
    fn csv_quoting() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a, b"), "\"a, b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
