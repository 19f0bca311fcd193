//! Textual inversion adds words; it must not redefine one the vocabulary already has
//! (every text using that word would silently change meaning).
use crate::clip::tokenizer::ClipTokenizer;
use crate::error::{Error, Result};

/// Refuse a `--new-token` that is already one token of `tok`'s vocabulary.
pub fn check_new_words(tok: &ClipTokenizer, words: &[String]) -> Result<()> {
    for w in words {
        let ids = tok.encode(w)?;
        // BOS, the word, EOS: the word is a single existing token.
        if ids.len() == 3 {
            return Err(Error::invalid(format!(
                "--new-token {w:?} is already a word of the model's vocabulary (token id {}): textual inversion \
                 would redefine it in every text that uses it; pick a new word such as \"<my-{}>\"",
                ids[1],
                w.trim_matches(|c: char| !c.is_alphanumeric())
            )));
        }
    }
    Ok(())
}
