//! The CLIP byte-level BPE tokenizer, on Hugging Face's `tokenizers` crate.
//!
//! The shipped `assets/tokenizer.json` is built by `tools/build_tokenizer.py` from OpenAI's
//! `bpe_simple_vocab_16e6.txt.gz` (MIT licence) with transformers' `CLIPTokenizer` settings:
//! NFC + whitespace collapse + lowercase, the CLIP split regex, byte-level symbols, BPE with a
//! `</w>` end-of-word suffix, `<|startoftext|>` (49406) .. `<|endoftext|>` (49407) around every
//! text. Its ids match transformers' `CLIPTokenizer` exactly (tests/tokenizer.rs checks them
//! against goldens from `tools/make_tokenizer_goldens.py`).
//!
//! With [`Pipeline::OpenClip`] (the default for open_clip model directories) it reproduces
//! open_clip's `SimpleTokenizer` instead: the text is cleaned as open_clip cleans it
//! ([`open_clip_clean`]: ftfy, HTML unescape twice, whitespace collapse, Python lower-case),
//! split with open_clip's regex and byte-pair encoded with the same vocabulary and merges;
//! tests/tokenizer.rs checks the ids against goldens made by open_clip's own code.
//!
//! Special tokens typed in a text (the reference tokenizers differ, and we follow each):
//! - HF: a literal `<|startoftext|>` / `<|endoftext|>` is the special token (ids 49406 /
//!   49407), as transformers' `CLIPTokenizer` does; since the text tower reads the first
//!   EOT, the words after a typed `<|endoftext|>` do not reach the embedding.
//! - open_clip: `<|endoftext|>` is ordinary text (`<|`, `endoftext`, `|>`); open_clip's own
//!   names `<start_of_text>` / `<end_of_text>` are the special tokens, and a typed
//!   `<end_of_text>` ends the prompt the same way.
//!
//! [`ClipTokenizer::encode_batch`] lists the texts a typed EOT cuts short in
//! [`TokenBatch::early_eot`] and warns on stderr, so this never happens silently.
use std::path::Path;
use std::sync::OnceLock;

use tokenizers::normalizer::NormalizedString;
use tokenizers::{AddedToken, Normalizer, Tokenizer};

use super::pipeline::Pipeline;
use super::text_clean::open_clip_clean;
use crate::error::{Error, Result};

const EMBEDDED_JSON: &[u8] = include_bytes!("../../assets/tokenizer.json");
const EMBEDDED_NAME: &str = "embedded tokenizer.json";
const BOS_TOKEN: &str = "<|startoftext|>";
const EOS_TOKEN: &str = "<|endoftext|>";

/// Token ids of a batch of texts laid out as a `[n, context_len]` row-major matrix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenBatch {
    /// `n * context_len` ids: BOS, text tokens, EOS, then the pad id.
    pub ids: Vec<u32>,
    /// Per text, the position of its first EOS token (where the text tower reads its output;
    /// `lengths[i] - 1` unless the text itself spells out `<|endoftext|>`).
    pub eot: Vec<usize>,
    /// Per text, the number of real tokens in its row (BOS..EOS after truncation, before padding).
    pub lengths: Vec<usize>,
    /// Indices of the texts that were longer than `context_len` and were cut (EOS kept last).
    pub truncated: Vec<usize>,
    /// Indices of the texts that spell out the end-of-text token (see the module docs): the
    /// text tower reads the first EOT, so their words after it are not seen.
    pub early_eot: Vec<usize>,
}

impl TokenBatch {
    /// Number of texts.
    pub fn len(&self) -> usize {
        self.lengths.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lengths.is_empty()
    }

    /// Row length (0 for an empty batch).
    pub fn context_len(&self) -> usize {
        if self.lengths.is_empty() {
            0
        } else {
            self.ids.len() / self.lengths.len()
        }
    }

    /// The ids of text `i` (a full row, padding included).
    pub fn row(&self, i: usize) -> &[u32] {
        let c = self.context_len();
        &self.ids[i * c..(i + 1) * c]
    }
}

/// The CLIP tokenizer: BPE ids with BOS/EOS, no padding or truncation unless asked.
#[derive(Clone)]
pub struct ClipTokenizer {
    inner: Tokenizer,
    bos: u32,
    eos: u32,
    pipeline: Pipeline,
}

impl std::fmt::Debug for ClipTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClipTokenizer")
            .field("vocab_size", &self.vocab_size())
            .field("bos", &self.bos)
            .field("eos", &self.eos)
            .field("pipeline", &self.pipeline)
            .finish()
    }
}

impl ClipTokenizer {
    /// The tokenizer shipped in the binary (OpenAI CLIP vocabulary, 49,408 tokens).
    pub fn embedded() -> Result<ClipTokenizer> {
        // Parsing 1.7 MB of JSON takes a while: do it once per process, then clone.
        static CACHE: OnceLock<std::result::Result<ClipTokenizer, Error>> = OnceLock::new();
        CACHE
            .get_or_init(|| Self::from_bytes(EMBEDDED_JSON, EMBEDDED_NAME))
            .clone()
    }

    /// Load a `tokenizer.json` (HF `tokenizers` format) from disk; errors name the file.
    pub fn from_file(path: &Path) -> Result<ClipTokenizer> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path.display(), e))?;
        Self::from_bytes(&bytes, &path.display().to_string())
    }

    /// The model directory's own `tokenizer.json` when it has one, else the embedded tokenizer;
    /// with the text cleaning of the directory's layout ([`Pipeline::of_model_dir`]).
    pub fn for_model_dir(dir: &Path) -> Result<ClipTokenizer> {
        Self::for_model_dir_with(dir, None)
    }

    /// [`ClipTokenizer::for_model_dir`] with the pipeline overridden when `pipeline` is given.
    pub fn for_model_dir_with(dir: &Path, pipeline: Option<Pipeline>) -> Result<ClipTokenizer> {
        let path = dir.join("tokenizer.json");
        let tok = if path.is_file() {
            Self::from_file(&path)?
        } else {
            Self::embedded()?
        };
        Ok(tok.with_pipeline(Pipeline::resolve(pipeline, dir)))
    }

    /// The same vocabulary with another reference pipeline's text handling.
    pub fn with_pipeline(mut self, pipeline: Pipeline) -> ClipTokenizer {
        self.pipeline = pipeline;
        self
    }

    /// Whose tokenizer this one reproduces.
    pub fn pipeline(&self) -> Pipeline {
        self.pipeline
    }

    pub(crate) fn from_bytes(bytes: &[u8], name: &str) -> Result<ClipTokenizer> {
        // The tokenizers crate panics (`expect("Helper")`) on some malformed sections, e.g. a
        // "decoder" whose fields have the wrong JSON type (found by fuzz/ `tokenizer`): a
        // user's bad file must be an error, not an abort.
        let parsed = crate::contain_panic::contained(|| Tokenizer::from_bytes(bytes)).map_err(|why| {
            Error::io(
                name,
                format!(
                    "not a valid tokenizer.json: the tokenizers library could not read one of its sections ({why})"
                ),
            )
        })?;
        let mut inner = parsed.map_err(|e| Error::io(name, format!("not a valid tokenizer.json: {e}")))?;
        // Hub tokenizer.json files sometimes carry padding/truncation settings; encode() must
        // give the bare BOS..EOS ids, and encode_batch() does its own layout.
        inner
            .with_truncation(None)
            .map_err(|e| Error::io(name, format!("cannot disable truncation: {e}")))?;
        inner.with_padding(None);
        let id = |tok: &str| {
            inner
                .token_to_id(tok)
                .ok_or_else(|| Error::io(name, format!("not a CLIP tokenizer: no {tok} token in the vocabulary")))
        };
        let bos = id(BOS_TOKEN)?;
        let eos = id(EOS_TOKEN)?;
        let tok = ClipTokenizer {
            inner,
            bos,
            eos,
            pipeline: Pipeline::Hf,
        };
        // The post-processor must wrap texts in BOS..EOS (the text tower reads the EOS output).
        let probe = tok.encode("a")?;
        if probe.len() < 3 || probe[0] != bos || probe[probe.len() - 1] != eos {
            return Err(Error::io(
                name,
                format!("not a CLIP tokenizer: \"a\" encodes to {probe:?}, expected {bos}, .., {eos}"),
            ));
        }
        Ok(tok)
    }

    /// Ids of one text: BOS, BPE tokens, EOS; no padding, no truncation.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        if self.pipeline == Pipeline::OpenClip {
            return self.encode_open_clip(text);
        }
        let enc = self
            .inner
            .encode_fast(text, true)
            .map_err(|e| Error::invalid(format!("tokenizer: cannot encode {:?}: {e}", short(text))))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Encode many texts (in parallel) into a `[n, context_len]` matrix.
    ///
    /// A text longer than `context_len` tokens keeps its first `context_len - 1` tokens followed
    /// by EOS (as open_clip does) and is listed in `truncated`. Rows are padded with `pad_id`
    /// (HF pads with 49407 = EOS, open_clip with 0: the caller decides).
    pub fn encode_batch(&self, texts: &[String], context_len: usize, pad_id: u32) -> Result<TokenBatch> {
        if context_len < 2 {
            return Err(Error::invalid(format!(
                "tokenizer: context length {context_len} cannot hold BOS and EOS (need at least 2)"
            )));
        }
        let encodings: Vec<Vec<u32>> = match self.pipeline {
            Pipeline::Hf => {
                let inputs: Vec<&str> = texts.iter().map(String::as_str).collect();
                self.inner
                    .encode_batch_fast(inputs, true)
                    .map_err(|e| Error::invalid(format!("tokenizer: cannot encode batch: {e}")))?
                    .iter()
                    .map(|e| e.get_ids().to_vec())
                    .collect()
            }
            Pipeline::OpenClip => {
                use rayon::prelude::*;
                texts
                    .par_iter()
                    .map(|t| self.encode_open_clip(t))
                    .collect::<Result<_>>()?
            }
        };
        let n = encodings.len();
        let mut batch = TokenBatch {
            ids: vec![pad_id; n * context_len],
            eot: Vec::with_capacity(n),
            lengths: Vec::with_capacity(n),
            truncated: Vec::new(),
            early_eot: Vec::new(),
        };
        for (i, ids) in encodings.iter().enumerate() {
            let row = &mut batch.ids[i * context_len..(i + 1) * context_len];
            let len = if ids.len() > context_len {
                row[..context_len - 1].copy_from_slice(&ids[..context_len - 1]);
                row[context_len - 1] = self.eos;
                batch.truncated.push(i);
                context_len
            } else {
                row[..ids.len()].copy_from_slice(ids);
                ids.len()
            };
            let eot = row[..len]
                .iter()
                .position(|&t| t == self.eos)
                .unwrap_or(len.saturating_sub(1));
            if eot + 1 < len {
                batch.early_eot.push(i);
            }
            batch.eot.push(eot);
            batch.lengths.push(len);
        }
        if let Some(&first) = batch.early_eot.first() {
            let spelled = match self.pipeline {
                Pipeline::Hf => EOS_TOKEN,
                Pipeline::OpenClip => OPEN_CLIP_EOT,
            };
            eprintln!(
                "warning: {} text(s) spell out the end-of-text token {spelled} ({} pipeline), e.g. text {} {:?}: \
                 the words after it do not reach the text embedding",
                batch.early_eot.len(),
                self.pipeline.name(),
                first + 1,
                short(&texts[first])
            );
        }
        Ok(batch)
    }

    /// Id of `<|startoftext|>` (49406 for the OpenAI vocabulary).
    pub fn bos_id(&self) -> u32 {
        self.bos
    }

    /// Id of `<|endoftext|>` (49407 for the OpenAI vocabulary).
    pub fn eos_id(&self) -> u32 {
        self.eos
    }

    /// Number of ids, added words included (49,408 for the OpenAI vocabulary).
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The token string of an id (`</w>` marks a word end; bytes are GPT-2 byte symbols).
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// The id of a token string (`"dog</w>"`, `"<|endoftext|>"`, an added word).
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Add whole-word tokens (e.g. `"<sks>"` for textual inversion) and return their ids,
    /// `vocab_size()` onward. Words go through the tokenizer's normaliser (so they are stored
    /// lower-cased and match case-insensitively) and are only matched as whole words in text,
    /// never inside a longer word. A word added earlier by `add_words` returns its existing id;
    /// a word that is already a token of the base vocabulary, empty, or contains whitespace is
    /// an error.
    pub fn add_words(&mut self, words: &[&str]) -> Result<Vec<u32>> {
        let base = self.inner.get_vocab_size(false) as u32;
        let mut normed = Vec::with_capacity(words.len());
        for &w in words {
            let n = self.normalize(w)?;
            if n.is_empty() || n.chars().any(char::is_whitespace) || w.chars().any(char::is_whitespace) {
                return Err(Error::invalid(format!(
                    "tokenizer: cannot add {w:?}: a word must be non-empty and contain no whitespace"
                )));
            }
            if let Some(id) = self.inner.token_to_id(&n) {
                let added_before = id >= base && !self.inner.get_added_vocabulary().is_special_token(&n);
                if !added_before {
                    return Err(Error::invalid(format!(
                        "tokenizer: cannot add {w:?}: {n:?} is already token {id} of the vocabulary"
                    )));
                }
            }
            normed.push(n);
        }
        let tokens: Vec<AddedToken> = normed
            .iter()
            .map(|n| AddedToken::from(n.clone(), false).single_word(true).normalized(true))
            .collect();
        self.inner
            .add_tokens(tokens)
            .map_err(|e| Error::invalid(format!("tokenizer: cannot add words {words:?}: {e}")))?;
        normed
            .iter()
            .map(|n| {
                self.inner
                    .token_to_id(n)
                    .ok_or_else(|| Error::invalid(format!("tokenizer: adding {n:?} did not give it an id")))
            })
            .collect()
    }

    /// A smaller tokenizer for a model trained from scratch: the same normaliser, split and
    /// BPE, keeping only the tokens `texts` use (plus the merges that build them and every
    /// single-byte symbol, so any text still encodes), renumbered in the original order with
    /// BOS and EOS as the two top ids. Texts the kept merges cover encode to the same token
    /// strings as before: BPE applies its lowest-ranked applicable merge, and every merge on
    /// such a text's original path is kept. A small vocabulary keeps the embedding table small
    /// (cliptune-mini: ~6k rows instead of 49,408).
    pub fn pruned(&self, texts: &[String]) -> Result<ClipTokenizer> {
        use serde_json::Value;
        use std::collections::{HashMap, HashSet};
        let json = self
            .inner
            .to_string(false)
            .map_err(|e| Error::invalid(format!("tokenizer: cannot serialise: {e}")))?;
        let mut v: Value =
            serde_json::from_str(&json).map_err(|e| Error::invalid(format!("tokenizer: cannot re-read: {e}")))?;
        let bad = |what: &str| Error::invalid(format!("tokenizer: cannot prune a tokenizer without {what}"));
        let vocab: HashMap<String, u64> = v["model"]["vocab"]
            .as_object()
            .ok_or_else(|| bad("a BPE vocab"))?
            .iter()
            .filter_map(|(k, id)| id.as_u64().map(|i| (k.clone(), i)))
            .collect();
        let merges: Vec<(String, String)> = v["model"]["merges"]
            .as_array()
            .ok_or_else(|| bad("BPE merges"))?
            .iter()
            .filter_map(|m| match m {
                Value::Array(p) if p.len() == 2 => Some((p[0].as_str()?.to_string(), p[1].as_str()?.to_string())),
                Value::String(s) => s.split_once(' ').map(|(a, b)| (a.to_string(), b.to_string())),
                _ => None,
            })
            .collect();
        let by_id: HashMap<u64, &String> = vocab.iter().map(|(k, &i)| (i, k)).collect();
        let made_by: HashMap<String, (String, String)> = merges
            .iter()
            .map(|(a, b)| (format!("{a}{b}"), (a.clone(), b.clone())))
            .collect();
        // Every single-byte symbol, with and without the end-of-word suffix.
        let mut keep: HashSet<String> = vocab
            .keys()
            .filter(|k| k.trim_end_matches("</w>").chars().count() == 1)
            .cloned()
            .collect();
        let mut stack: Vec<String> = vec![];
        for t in texts {
            for id in self.encode(t)? {
                if id != self.bos && id != self.eos {
                    if let Some(tok) = by_id.get(&(id as u64)) {
                        stack.push((*tok).clone());
                    }
                }
            }
        }
        while let Some(t) = stack.pop() {
            if keep.insert(t.clone()) {
                if let Some((a, b)) = made_by.get(&t) {
                    stack.push(a.clone());
                    stack.push(b.clone());
                }
            }
        }
        let mut kept: Vec<(u64, String)> = keep
            .into_iter()
            .filter(|k| k != BOS_TOKEN && k != EOS_TOKEN)
            .filter_map(|k| vocab.get(&k).map(|&i| (i, k)))
            .collect();
        kept.sort();
        let mut new_vocab = serde_json::Map::new();
        for (i, (_, k)) in kept.iter().enumerate() {
            new_vocab.insert(k.clone(), Value::from(i as u64));
        }
        let (bos, eos) = (kept.len() as u64, kept.len() as u64 + 1);
        new_vocab.insert(BOS_TOKEN.into(), Value::from(bos));
        new_vocab.insert(EOS_TOKEN.into(), Value::from(eos));
        let new_merges: Vec<Value> = merges
            .iter()
            .filter(|(a, b)| new_vocab.contains_key(&format!("{a}{b}")))
            .map(|(a, b)| Value::from(vec![a.clone(), b.clone()]))
            .collect();
        v["model"]["vocab"] = Value::Object(new_vocab);
        v["model"]["merges"] = Value::Array(new_merges);
        if let Some(added) = v["added_tokens"].as_array_mut() {
            added.retain(|t| matches!(t["content"].as_str(), Some(BOS_TOKEN) | Some(EOS_TOKEN)));
            for t in added.iter_mut() {
                t["id"] = Value::from(if t["content"] == BOS_TOKEN { bos } else { eos });
            }
        }
        let pp = &mut v["post_processor"];
        if pp.get("sep").is_some() {
            pp["sep"] = serde_json::json!([EOS_TOKEN, eos]);
            pp["cls"] = serde_json::json!([BOS_TOKEN, bos]);
        } else {
            return Err(bad("a RobertaProcessing post-processor (BOS/EOS ids)"));
        }
        let bytes = serde_json::to_vec(&v).map_err(|e| Error::invalid(format!("tokenizer: {e}")))?;
        Self::from_bytes(&bytes, "pruned tokenizer")
    }

    /// Write the tokenizer (added words included) as a `tokenizer.json` that HF loads too.
    pub fn save(&self, path: &Path) -> Result<()> {
        let json = self
            .inner
            .to_string(false)
            .map_err(|e| Error::io(path.display(), format!("cannot serialise tokenizer: {e}")))?;
        crate::tensor::io::write_atomic(path, json.as_bytes())
    }

    /// The underlying `tokenizers::Tokenizer` (decode, offsets, ...).
    pub fn inner(&self) -> &Tokenizer {
        &self.inner
    }

    /// open_clip's `SimpleTokenizer.encode` with BOS/EOS (see the module docs): clean, split
    /// with its regex (its special names first), byte-pair encode each piece. Words added with
    /// `add_words` are matched as whole words before the split, as the HF path matches them.
    fn encode_open_clip(&self, text: &str) -> Result<Vec<u32>> {
        let cleaned = open_clip_clean(text);
        let mut ids = vec![self.bos];
        let added = self.added_words();
        let mut rest = cleaned.as_str();
        while !rest.is_empty() {
            let (before, word_id, after) = match find_added_word(rest, &added) {
                Some((at, len, id)) => (&rest[..at], Some(id), &rest[at + len..]),
                None => (rest, None, ""),
            };
            self.bpe_open_clip(before, &mut ids)?;
            ids.extend(word_id);
            rest = after;
        }
        ids.push(self.eos);
        Ok(ids)
    }

    fn bpe_open_clip(&self, text: &str, ids: &mut Vec<u32>) -> Result<()> {
        use tokenizers::Model;
        static PAT: OnceLock<regex::Regex> = OnceLock::new();
        let pat = PAT.get_or_init(|| {
            regex::Regex::new(
                r"(?i)<start_of_text>|<end_of_text>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+",
            )
            .expect("open_clip's token regex compiles")
        });
        let model = self.inner.get_model();
        for m in pat.find_iter(text) {
            match m.as_str() {
                OPEN_CLIP_SOT => ids.push(self.bos),
                OPEN_CLIP_EOT => ids.push(self.eos),
                piece => {
                    let symbols: String = piece.bytes().map(byte_symbol).collect();
                    let toks = model
                        .tokenize(&symbols)
                        .map_err(|e| Error::invalid(format!("tokenizer: cannot encode {:?}: {e}", short(piece))))?;
                    ids.extend(toks.iter().map(|t| t.id));
                }
            }
        }
        Ok(())
    }

    /// Words added by `add_words` (not the special tokens), with their ids.
    fn added_words(&self) -> Vec<(String, u32)> {
        let base = self.inner.get_vocab_size(false) as u32;
        let mut words: Vec<(String, u32)> = self
            .inner
            .get_added_tokens_decoder()
            .into_iter()
            .filter(|(id, t)| *id >= base && !t.special)
            .map(|(id, t)| (t.content, id))
            .collect();
        words.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.1.cmp(&b.1)));
        words
    }

    fn normalize(&self, word: &str) -> Result<String> {
        let mut s = NormalizedString::from(word);
        if let Some(n) = self.inner.get_normalizer() {
            n.normalize(&mut s)
                .map_err(|e| Error::invalid(format!("tokenizer: cannot normalise {word:?}: {e}")))?;
        }
        Ok(s.get().to_string())
    }
}

/// open_clip's names for the special tokens (same ids as `<|startoftext|>` / `<|endoftext|>`).
const OPEN_CLIP_SOT: &str = "<start_of_text>";
const OPEN_CLIP_EOT: &str = "<end_of_text>";

/// GPT-2's byte -> printable symbol map (`bytes_to_unicode`), which the BPE vocabulary uses.
fn byte_symbol(b: u8) -> char {
    let printable = |x: u8| matches!(x, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
    if printable(b) {
        return b as char;
    }
    let n = (0..b).filter(|&x| !printable(x)).count() as u32;
    char::from_u32(256 + n).unwrap_or('?')
}

/// The leftmost whole-word occurrence of an added word (longest first at equal position):
/// (byte offset, byte length, id).
fn find_added_word(text: &str, words: &[(String, u32)]) -> Option<(usize, usize, u32)> {
    let is_word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
    let mut best: Option<(usize, usize, u32)> = None;
    for (w, id) in words {
        let mut from = 0;
        while let Some(p) = text[from..].find(w.as_str()) {
            let at = from + p;
            let before = text[..at].chars().next_back();
            let after = text[at + w.len()..].chars().next();
            if !is_word(before) && !is_word(after) {
                if best.is_none_or(|b| at < b.0) {
                    best = Some((at, w.len(), *id));
                }
                break;
            }
            from = at + w.chars().next().map_or(1, char::len_utf8);
        }
    }
    best
}

fn short(text: &str) -> String {
    let mut s: String = text.chars().take(60).collect();
    if s.len() < text.len() {
        s.push_str("...");
    }
    s
}
