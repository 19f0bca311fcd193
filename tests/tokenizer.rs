//! The CLIP tokenizer against goldens from transformers' CLIPTokenizer and open_clip
//! (tests/fixtures/tokenizer/goldens.json, made by tools/make_tokenizer_goldens.py).
use std::path::{Path, PathBuf};

use cliptune::clip::tokenizer::ClipTokenizer;
use serde_json::Value;

const BOS: u32 = 49406;
const EOS: u32 = 49407;

struct Case {
    text: String,
    hf: Vec<u32>,
    open_clip: Vec<u32>,
    open_clip_full: Vec<u32>,
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .expect("id list")
        .iter()
        .map(|x| x.as_u64().expect("id") as u32)
        .collect()
}

fn goldens() -> Vec<Case> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tokenizer/goldens.json");
    let json: Value = serde_json::from_slice(&std::fs::read(&path).expect("goldens.json")).expect("goldens json");
    json["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .map(|c| Case {
            text: c["text"].as_str().expect("text").to_string(),
            hf: ids(&c["hf"]),
            open_clip: ids(&c["open_clip"]),
            open_clip_full: ids(&c["open_clip_full"]),
        })
        .collect()
}

fn tok() -> ClipTokenizer {
    ClipTokenizer::embedded().expect("embedded tokenizer")
}

/// A fresh directory under the system temp dir, unique to this test.
fn temp_dir(name: &str) -> PathBuf {
    // A fresh directory per call, never one shared by the tests of this process.
    tempfile::Builder::new()
        .prefix(&format!("cliptune-tokenizer-{name}-"))
        .tempdir()
        .unwrap()
        .keep()
}

#[test]
fn embedded_basics() {
    let t = tok();
    assert_eq!(t.bos_id(), BOS);
    assert_eq!(t.eos_id(), EOS);
    assert_eq!(t.vocab_size(), 49408);
    assert_eq!(
        t.encode("a photo of a dog.").unwrap(),
        vec![49406, 320, 1125, 539, 320, 1929, 269, 49407]
    );
    assert_eq!(t.id_to_token(320).as_deref(), Some("a</w>"));
    assert_eq!(t.id_to_token(EOS).as_deref(), Some("<|endoftext|>"));
    assert_eq!(t.id_to_token(0).as_deref(), Some("!"));
    assert_eq!(t.id_to_token(49408), None);
    assert_eq!(t.token_to_id("dog</w>"), Some(1929));
    assert_eq!(t.encode("").unwrap(), vec![BOS, EOS]);
}

#[test]
fn matches_hf_goldens_exactly() {
    let t = tok();
    let cases = goldens();
    assert!(cases.len() >= 40, "only {} golden cases", cases.len());
    let mut bad = Vec::new();
    for c in &cases {
        let got = t.encode(&c.text).unwrap();
        if got != c.hf {
            bad.push(format!("{:?}\n  hf   {:?}\n  ours {:?}", c.text, c.hf, got));
        }
    }
    assert!(
        bad.is_empty(),
        "{} of {} texts differ from HF:\n{}",
        bad.len(),
        cases.len(),
        bad.join("\n")
    );
}

#[test]
fn batch_matches_hf_goldens_and_open_clip_layout() {
    let t = tok();
    let cases = goldens();
    let texts: Vec<String> = cases.iter().map(|c| c.text.clone()).collect();
    // open_clip layout: context 77, zero padding, EOT kept last when cut.
    let b = t.encode_batch(&texts, 77, 0).unwrap();
    assert_eq!(b.len(), cases.len());
    assert_eq!(b.ids.len(), cases.len() * 77);
    assert_eq!(b.context_len(), 77);
    let mut same_as_open_clip = 0;
    for (i, c) in cases.iter().enumerate() {
        let row = b.row(i);
        let n = c.hf.len().min(77);
        assert_eq!(b.lengths[i], n, "{:?}", c.text);
        assert_eq!(&row[..n - 1], &c.hf[..n - 1], "{:?}", c.text);
        assert_eq!(row[n - 1], EOS, "{:?}", c.text);
        assert!(row[n..].iter().all(|&x| x == 0), "{:?}", c.text);
        assert_eq!(b.truncated.contains(&i), c.hf.len() > 77, "{:?}", c.text);
        // Where open_clip's cleaning leaves the text alone, its padded row is ours.
        if c.open_clip_full == c.hf {
            assert_eq!(row, &c.open_clip[..], "{:?}", c.text);
            same_as_open_clip += 1;
        }
        // EOT: the first EOS in the row (a text spelling out <|endoftext|> has an earlier one).
        let first_eos = row[..n].iter().position(|&x| x == EOS).unwrap();
        assert_eq!(b.eot[i], first_eos, "{:?}", c.text);
        if !c.text.contains("<|endoftext|>") {
            assert_eq!(b.eot[i], n - 1, "{:?}", c.text);
        }
    }
    assert!(
        same_as_open_clip >= 30,
        "only {same_as_open_clip} texts agree with open_clip"
    );
}

#[test]
fn truncation_keeps_eot_last_and_reports_it() {
    let t = tok();
    let texts = vec![
        "a ".repeat(75),
        "a ".repeat(76),
        "a photo of a cat".to_string(),
        "a ".repeat(500),
    ];
    assert_eq!(t.encode(&texts[0]).unwrap().len(), 77);
    assert_eq!(t.encode(&texts[1]).unwrap().len(), 78);
    assert_eq!(t.encode(&texts[3]).unwrap().len(), 502, "encode() never truncates");
    let b = t.encode_batch(&texts, 77, EOS).unwrap();
    assert_eq!(b.truncated, vec![1, 3]);
    assert_eq!(b.lengths, vec![77, 77, 7, 77]);
    assert_eq!(b.eot, vec![76, 76, 6, 76]);
    for i in [0, 1, 3] {
        let row = b.row(i);
        assert_eq!(row[0], BOS);
        assert!(row[1..76].iter().all(|&x| x == 320), "row {i}: {row:?}");
        assert_eq!(row[76], EOS);
    }
    // Tiny contexts.
    let b = t.encode_batch(&["a photo of a dog".to_string()], 2, 0).unwrap();
    assert_eq!(b.ids, vec![BOS, EOS]);
    assert_eq!(b.truncated, vec![0]);
    assert_eq!(b.eot, vec![1]);
    assert!(t.encode_batch(&["a".to_string()], 1, 0).is_err());
    assert!(t.encode_batch(&["a".to_string()], 0, 0).is_err());
}

#[test]
fn batch_padding_and_eot_positions() {
    let t = tok();
    let texts: Vec<String> = ["a photo of a dog.", "", "cat", "a very very very long caption here"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for pad in [0u32, EOS, 12345] {
        let b = t.encode_batch(&texts, 16, pad).unwrap();
        assert_eq!(b.ids.len(), 4 * 16);
        assert!(b.truncated.is_empty());
        for (i, text) in texts.iter().enumerate() {
            let want = t.encode(text).unwrap();
            let row = b.row(i);
            assert_eq!(&row[..want.len()], &want[..]);
            assert!(row[want.len()..].iter().all(|&x| x == pad));
            assert_eq!(b.lengths[i], want.len());
            assert_eq!(b.eot[i], want.len() - 1);
        }
        assert_eq!(b.eot, vec![7, 1, 2, b.lengths[3] - 1]);
    }
    let empty = t.encode_batch(&[], 77, 0).unwrap();
    assert!(empty.is_empty() && empty.ids.is_empty() && empty.eot.is_empty());
}

#[test]
fn add_words_are_single_tokens() {
    let mut t = tok();
    let ids = t.add_words(&["<sks>", "zxqvword"]).unwrap();
    assert_eq!(ids, vec![49408, 49409]);
    assert_eq!(t.vocab_size(), 49410);
    assert_eq!(t.id_to_token(49408).as_deref(), Some("<sks>"));
    assert_eq!(t.token_to_id("zxqvword"), Some(49409));

    let got = t.encode("a photo of <sks> on a table").unwrap();
    assert_eq!(got.iter().filter(|&&x| x == 49408).count(), 1, "{got:?}");
    let plain = tok().encode("a photo of on a table").unwrap();
    let mut want = plain.clone();
    want.insert(4, 49408); // BOS a photo of | <sks> | on a table EOS
    assert_eq!(got, want);

    // Case-insensitive (the normaliser lowercases), punctuation next to it is fine.
    let got = t.encode("<SKS>, <sks>.").unwrap();
    assert_eq!(got.iter().filter(|&&x| x == 49408).count(), 2, "{got:?}");
    assert_eq!(t.encode("ZXQVWORD dog").unwrap(), vec![BOS, 49409, 1929, EOS]);
    // Whole words only: not inside a longer word.
    let inside = t.encode("zxqvwords").unwrap();
    assert!(!inside.contains(&49409), "{inside:?}");
    assert_eq!(inside, tok().encode("zxqvwords").unwrap());
    // Untouched text keeps its ids.
    assert_eq!(
        t.encode("a photo of a dog.").unwrap(),
        vec![49406, 320, 1125, 539, 320, 1929, 269, 49407]
    );

    // Batches see the new words too.
    let b = t.encode_batch(&["a <sks> dog".to_string()], 8, 0).unwrap();
    assert_eq!(&b.ids[..], &[BOS, 320, 49408, 1929, EOS, 0, 0, 0]);

    // Adding again returns the same id; upper case normalises to the same word.
    assert_eq!(t.add_words(&["<sks>", "<SKS>"]).unwrap(), vec![49408, 49408]);
    assert_eq!(t.vocab_size(), 49410);
    // Existing vocabulary, specials, empty and whitespace words are refused.
    for w in ["dog", "dog</w>", "<|endoftext|>", "", "two words", " ", "tab\there"] {
        let e = t.add_words(&[w]).unwrap_err();
        assert!(e.to_string().contains("cannot add"), "{w:?}: {e}");
    }
    assert_eq!(t.vocab_size(), 49410);
    // The embedded tokenizer itself is unchanged.
    assert_eq!(tok().vocab_size(), 49408);
}

#[test]
fn save_and_for_model_dir() {
    let dir = temp_dir("model-dir");
    // No tokenizer.json: the embedded one.
    let t = ClipTokenizer::for_model_dir(&dir).unwrap();
    assert_eq!(t.vocab_size(), 49408);
    // The dir's own tokenizer.json wins.
    let mut t = tok();
    t.add_words(&["<sks>"]).unwrap();
    t.save(&dir.join("tokenizer.json")).unwrap();
    let t2 = ClipTokenizer::for_model_dir(&dir).unwrap();
    assert_eq!(t2.vocab_size(), 49409);
    assert_eq!(t2.encode("a <sks>").unwrap(), vec![BOS, 320, 49408, EOS]);
    let t3 = ClipTokenizer::from_file(&dir.join("tokenizer.json")).unwrap();
    assert_eq!(
        t3.encode("a photo of a dog.").unwrap(),
        vec![49406, 320, 1125, 539, 320, 1929, 269, 49407]
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn padding_and_truncation_in_the_file_are_ignored() {
    let dir = temp_dir("padded");
    let mut json: Value = serde_json::from_slice(
        &std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/tokenizer.json")).unwrap(),
    )
    .unwrap();
    json["truncation"] =
        serde_json::json!({"direction": "Right", "max_length": 4, "strategy": "LongestFirst", "stride": 0});
    json["padding"] = serde_json::json!({"strategy": {"Fixed": 77}, "direction": "Right", "pad_to_multiple_of": null,
        "pad_id": 49407, "pad_type_id": 0, "pad_token": "<|endoftext|>"});
    let path = dir.join("tokenizer.json");
    std::fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();
    let t = ClipTokenizer::from_file(&path).unwrap();
    assert_eq!(
        t.encode("a photo of a dog.").unwrap(),
        vec![49406, 320, 1125, 539, 320, 1929, 269, 49407]
    );
    let b = t.encode_batch(&["a photo of a dog.".to_string()], 10, 0).unwrap();
    assert_eq!(b.ids, vec![49406, 320, 1125, 539, 320, 1929, 269, 49407, 0, 0]);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_files_name_the_file() {
    let dir = temp_dir("bad");
    let missing = dir.join("missing/tokenizer.json");
    let e = ClipTokenizer::from_file(&missing).unwrap_err();
    assert!(e.to_string().contains(&missing.display().to_string()), "{e}");

    let corrupt = dir.join("corrupt.json");
    std::fs::write(&corrupt, b"{\"model\": {\"type\": \"BPE\", \"vocab\": [1, 2").unwrap();
    let e = ClipTokenizer::from_file(&corrupt).unwrap_err();
    assert!(e.to_string().contains(&corrupt.display().to_string()), "{e}");

    let binary = dir.join("binary.json");
    std::fs::write(&binary, [0xffu8, 0xfe, 0x00, 0x12]).unwrap();
    let e = ClipTokenizer::from_file(&binary).unwrap_err();
    assert!(e.to_string().contains(&binary.display().to_string()), "{e}");

    // Valid JSON tokenizer but not CLIP (no <|startoftext|>).
    let other = dir.join("other.json");
    std::fs::write(
        &other,
        br#"{"version":"1.0","truncation":null,"padding":null,"added_tokens":[],"normalizer":null,
            "pre_tokenizer":null,"post_processor":null,"decoder":null,
            "model":{"type":"WordLevel","vocab":{"a":0,"[UNK]":1},"unk_token":"[UNK]"}}"#,
    )
    .unwrap();
    let e = ClipTokenizer::from_file(&other).unwrap_err();
    assert!(e.to_string().contains(&other.display().to_string()), "{e}");

    // A model dir whose tokenizer.json is corrupt is an error, not a silent fallback.
    let mdir = dir.join("model");
    std::fs::create_dir_all(&mdir).unwrap();
    std::fs::write(mdir.join("tokenizer.json"), b"not json").unwrap();
    let e = ClipTokenizer::for_model_dir(&mdir).unwrap_err();
    assert!(e.to_string().contains("tokenizer.json"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn ten_thousand_captions_batch_equals_one_by_one() {
    let t = tok();
    let words = [
        "a", "photo", "of", "the", "dog", "cat", "red", "running", "beach", "city", "street", "night", "snow",
    ];
    let texts: Vec<String> = (0..10_000)
        .map(|i| {
            let n = 5 + i % 15;
            (0..n)
                .map(|j| words[(i * 7 + j * 13 + j * j) % words.len()])
                .collect::<Vec<_>>()
                .join(" ")
                + &format!(" number {i}.")
        })
        .collect();
    // Speed belongs in benchmarks (tests must hold on a loaded machine); here the
    // parallel batch path must give every row exactly what the one-text path gives.
    let b = t.encode_batch(&texts, 77, 0).unwrap();
    assert_eq!(b.len(), 10_000);
    for i in (0..10_000).step_by(97) {
        assert_eq!(&b.row(i)[..b.lengths[i]], &t.encode(&texts[i]).unwrap()[..], "row {i}");
    }
}
