//! Training that cannot learn anything is refused before it starts, with the reason:
//! a contrastive objective needs two different image-caption pairs in a batch, a
//! classifier needs two classes.
use crate::error::{Error, Result};
use crate::io::fingerprint::Digest;

/// Image-caption rows (`pixels`: `per` values per row): at least two different pairs,
/// and batches that hold more than one pair (unless hard negatives give contrast).
pub fn check_pairs(
    data: &str,
    pixels: &[f32],
    per: usize,
    texts: &[String],
    batch: usize,
    negatives: bool,
) -> Result<()> {
    let n = texts.len();
    if n < 2 {
        return Err(Error::invalid(format!(
            "{data}: {n} image-caption row{}: contrastive training tells each caption apart from the others in \
             its batch, so it needs at least 2 different pairs",
            if n == 1 { "" } else { "s" }
        )));
    }
    let mut kinds = std::collections::HashSet::new();
    for (i, t) in texts.iter().enumerate() {
        let row = &pixels[i * per..((i + 1) * per).min(pixels.len())];
        kinds.insert(Digest::new().f32s(row).str(t).hex());
        if kinds.len() > 1 {
            break;
        }
    }
    if kinds.len() < 2 {
        return Err(Error::invalid(format!(
            "{data}: all {n} rows are the same image with the same caption: there is nothing to tell apart, so \
             training cannot learn; give different images and captions"
        )));
    }
    if batch < 2 && !negatives {
        return Err(Error::invalid(format!(
            "--batch {batch}: a contrastive batch of one image-caption pair has nothing to contrast (its loss is \
             always 0); use --batch 2 or more, or add hard negatives to {data}"
        )));
    }
    Ok(())
}

/// Labelled images for a classifier (`method`): at least two classes with images.
pub fn check_classes(data: &str, labels: &[usize], classes: &[String], method: &str) -> Result<()> {
    let mut used: Vec<usize> = labels.to_vec();
    used.sort_unstable();
    used.dedup();
    if used.len() < 2 {
        let which = used
            .first()
            .and_then(|&c| classes.get(c))
            .map(|c| format!(" ('{c}')"))
            .unwrap_or_default();
        return Err(Error::invalid(format!(
            "{data}: every image is in one class{which}: --method {method} learns to tell classes apart and \
             cannot learn from one; give images of at least two classes"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_row_identical_rows_and_one_class_are_refused() {
        let t = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(check_pairs("d.csv", &[0.0; 2], 2, &t(&["a"]), 8, false).is_err());
        let same = check_pairs("d.csv", &[0.5; 6], 2, &t(&["a", "a", "a"]), 8, false).unwrap_err();
        assert!(same.msg.contains("all 3 rows are the same"), "{}", same.msg);
        assert!(check_pairs("d.csv", &[0.5; 6], 2, &t(&["a", "b", "a"]), 8, false).is_ok());
        assert!(check_pairs("d.csv", &[0.5, 0.5, 0.1, 0.1], 2, &t(&["a", "a"]), 8, false).is_ok());
        assert!(check_pairs("d.csv", &[0.5, 0.5, 0.1, 0.1], 2, &t(&["a", "b"]), 1, false).is_err());
        assert!(check_pairs("d.csv", &[0.5, 0.5, 0.1, 0.1], 2, &t(&["a", "b"]), 1, true).is_ok());
        let one = check_classes("dir", &[1, 1, 1], &t(&["cat", "dog"]), "prompt").unwrap_err();
        assert!(one.msg.contains("one class ('dog')"), "{}", one.msg);
        assert!(check_classes("dir", &[0, 1], &t(&["cat", "dog"]), "prompt").is_ok());
    }
}
