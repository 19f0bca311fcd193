//! Hostile but realistic inputs against the release binary: every case must fail at once
//! with a non-zero exit and one message naming the file, line, field or tensor at fault, or
//! succeed with rows that say which input they are. Never a panic, a hang, a silently
//! dropped or merged row, a NaN printed with exit 0, or a replaced file.
mod common;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::cli::{assert_contains, bin, fixtures, fresh, output, run_err};
use common::tiny_model_dir as tiny;

fn good_image() -> PathBuf {
    fixtures().join("preprocess/inputs/rgb_37x53.png")
}

/// The command must succeed; returns stdout.
fn run_ok(c: &mut Command) -> String {
    common::cli::run_ok(c).0
}

fn embed(model: &Path, out: &Path) -> Command {
    let mut c = bin();
    c.args(["embed", "--device", "cpu", "--model"])
        .arg(model)
        .arg("--out")
        .arg(out);
    c
}

/// A copy of the tiny model whose config.json is edited by `edit` (weights linked).
fn model_with_config(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) -> PathBuf {
    let m = dir.join("model");
    std::fs::create_dir_all(&m).unwrap();
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tiny().join("config.json")).unwrap()).unwrap();
    edit(&mut cfg);
    std::fs::write(m.join("config.json"), cfg.to_string()).unwrap();
    std::os::unix::fs::symlink(tiny().join("model.safetensors"), m.join("model.safetensors")).unwrap();
    m
}

/// A copy of the tiny model whose tensor `name` is replaced by `f(values)`.
fn model_with_tensor(dir: &Path, name: &str, f: impl Fn(&mut Vec<f32>)) -> PathBuf {
    let m = dir.join("model");
    std::fs::create_dir_all(&m).unwrap();
    std::fs::copy(tiny().join("config.json"), m.join("config.json")).unwrap();
    let bytes = std::fs::read(tiny().join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors = vec![];
    for (n, v) in st.tensors() {
        // The fixture mixes storage dtypes; the copy is all f32.
        let mut vals: Vec<f32> = match v.dtype() {
            safetensors::Dtype::F32 => v
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect(),
            safetensors::Dtype::F16 => v
                .data()
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            safetensors::Dtype::BF16 => v
                .data()
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            d => panic!("{n}: unexpected dtype {d:?} in the fixture"),
        };
        if n == name {
            f(&mut vals);
        }
        let raw: Vec<u8> = vals.iter().flat_map(|x| x.to_le_bytes()).collect();
        tensors.push((n.clone(), v.shape().to_vec(), raw));
    }
    assert!(tensors.iter().any(|(n, _, _)| n == name), "no tensor {name}");
    // The safetensors crate's own writer: ours refuses non-finite values, and a hostile
    // model file is exactly what this builds.
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .map(|(n, shape, raw)| {
            let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), raw).unwrap();
            (n.clone(), view)
        })
        .collect();
    std::fs::write(
        m.join("model.safetensors"),
        safetensors::serialize(views, None).unwrap(),
    )
    .unwrap();
    m
}

// ---------------------------------------------------------------------------------------------
// 5. Caption files

#[test]
fn csv_with_two_unclosed_quotes_is_an_error_not_merged_rows() {
    let d = fresh("csvquotes");
    std::fs::copy(good_image(), d.join("a.png")).unwrap();
    std::fs::copy(good_image(), d.join("b.png")).unwrap();
    let f = d.join("caps.csv");
    std::fs::write(&f, "image,caption\na.png,\"a cat\nb.png,\"a dog\na.png,a bird\n").unwrap();
    let e = run_err(
        bin()
            .args(["eval", "--device", "cpu", "--model"])
            .arg(tiny())
            .arg("--retrieval")
            .arg(&f),
    );
    assert_contains(&e, &["caps.csv:2", "quoted field"]);
    // A stray quote inside an unquoted field names its line.
    std::fs::write(&f, "image,caption\na.png,a cat\nb.png,a 12\" record\n").unwrap();
    let e = run_err(
        bin()
            .args(["eval", "--device", "cpu", "--model"])
            .arg(tiny())
            .arg("--retrieval")
            .arg(&f),
    );
    assert_contains(&e, &["caps.csv:3", "unquoted field"]);
    // One quote never closed: the line where it opened.
    std::fs::write(&f, "image,caption\na.png,a cat\nb.png,\"a dog\na.png,a bird\n").unwrap();
    let e = run_err(
        bin()
            .args(["eval", "--device", "cpu", "--model"])
            .arg(tiny())
            .arg("--retrieval")
            .arg(&f),
    );
    assert_contains(&e, &["caps.csv:3", "never closed"]);
}

#[test]
fn caption_rows_of_the_wrong_length_and_bad_jsonl_name_the_line() {
    let d = fresh("rowlen");
    std::fs::copy(good_image(), d.join("a.png")).unwrap();
    let cases: [(&str, &str, &[&str]); 4] = [
        (
            "short.tsv",
            "image\tcaption\na.png\tx\na.png\n",
            &["short.tsv:3", "caption field is missing"],
        ),
        (
            "long.tsv",
            "image\tcaption\na.png\tx\ty\n",
            &["long.tsv:2", "3 fields", "2 columns"],
        ),
        (
            "bad.jsonl",
            "{\"image\":\"a.png\",\"caption\":\"x\"}\n\n{\"image\":\"a.png\",\n",
            &["bad.jsonl:3", "not valid JSON"],
        ),
        (
            "type.jsonl",
            "{\"image\":\"a.png\",\"caption\":7}\n",
            &["type.jsonl:1", "'caption'"],
        ),
    ];
    for (name, text, parts) in cases {
        let f = d.join(name);
        std::fs::write(&f, text).unwrap();
        let msg = cliptune::data::load_captions(&f).unwrap_err().to_string();
        assert_contains(&msg, parts);
    }
}

// ---------------------------------------------------------------------------------------------
// 6. config.json and checkpoints

#[test]
fn config_values_of_the_wrong_type_or_range_name_field_and_value() {
    use serde_json::json;
    type Edit = Box<dyn FnOnce(&mut serde_json::Value)>;
    let cases: Vec<(Edit, &[&str])> = vec![
        (
            Box::new(|c| c["vision_config"]["num_attention_heads"] = json!("3")),
            &["vision_config.num_attention_heads", "\"3\"", "integer"],
        ),
        (
            Box::new(|c| c["vision_config"]["num_attention_heads"] = json!(3.5)),
            &["vision_config.num_attention_heads", "3.5"],
        ),
        (
            Box::new(|c| c["text_config"]["num_attention_heads"] = json!(-3)),
            &["text_config.num_attention_heads", "-3"],
        ),
        (
            Box::new(|c| c["text_config"]["layer_norm_eps"] = json!(-1)),
            &["text_config.layer_norm_eps", "-1"],
        ),
        (
            Box::new(|c| c["text_config"]["hidden_size"] = json!("16")),
            &["text_config.hidden_size", "\"16\""],
        ),
        (
            Box::new(|c| c["vision_config"]["image_size"] = json!(1u64 << 40)),
            &["vision_config.image_size", "1099511627776"],
        ),
        (
            Box::new(|c| c["vision_config"]["num_attention_heads"] = json!(3)),
            &[
                "vision_config.hidden_size 32",
                "not divisible",
                "vision_config.num_attention_heads 3",
            ],
        ),
        (
            Box::new(|c| c["vision_config"] = json!([1, 2])),
            &["vision_config", "JSON object"],
        ),
    ];
    for (i, (edit, parts)) in cases.into_iter().enumerate() {
        let d = fresh(&format!("cfg{i}"));
        let m = model_with_config(&d, edit);
        let e = run_err(embed(&m, &d.join("o.safetensors")).args(["--text", "x"]));
        assert_contains(&e, parts);
        assert_contains(&e, &["config.json"]);
        assert!(!d.join("o.safetensors").exists());
    }
}

#[test]
fn checkpoint_tensors_the_config_does_not_use_are_an_error() {
    let d = fresh("unused");
    let m = model_with_config(&d, |c| c["text_config"]["num_hidden_layers"] = serde_json::json!(1));
    let e = run_err(embed(&m, &d.join("o.safetensors")).args(["--text", "x"]));
    assert_contains(&e, &["not used", "text_model.encoder.layers.1.", "num_hidden_layers"]);
}

#[test]
fn sharded_index_pointing_outside_the_model_directory_is_refused() {
    let d = fresh("shard");
    let m = d.join("model");
    std::fs::create_dir_all(&m).unwrap();
    std::fs::copy(tiny().join("config.json"), m.join("config.json")).unwrap();
    std::fs::copy(tiny().join("model.safetensors"), d.join("outside.safetensors")).unwrap();
    let index = serde_json::json!({"weight_map": {"logit_scale": "../outside.safetensors"}});
    std::fs::write(m.join("model.safetensors.index.json"), index.to_string()).unwrap();
    let e = run_err(embed(&m, &d.join("o.safetensors")).args(["--text", "x"]));
    assert_contains(
        &e,
        &[
            "model.safetensors.index.json",
            "../outside.safetensors",
            "outside the model directory",
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// 7. embed --out

#[test]
fn embed_out_never_replaces_a_file_without_force_nor_one_in_a_model_dir() {
    let d = fresh("out");
    let out = d.join("mine.safetensors");
    std::fs::write(&out, b"precious").unwrap();
    let e = run_err(embed(&tiny(), &out).args(["--text", "x"]));
    assert_contains(&e, &["mine.safetensors", "already exists", "--force"]);
    assert_eq!(std::fs::read(&out).unwrap(), b"precious");
    run_ok(embed(&tiny(), &out).args(["--text", "x", "--force"]));
    assert_ne!(std::fs::read(&out).unwrap(), b"precious");

    // Inside the model directory: refused even with --force, also through a symlinked dir.
    let m = d.join("model");
    std::fs::create_dir_all(&m).unwrap();
    std::fs::copy(tiny().join("config.json"), m.join("config.json")).unwrap();
    std::fs::copy(tiny().join("model.safetensors"), m.join("model.safetensors")).unwrap();
    let before = std::fs::read(m.join("model.safetensors")).unwrap();
    std::os::unix::fs::symlink(&m, d.join("alias")).unwrap();
    for target in [m.join("model.safetensors"), d.join("alias/new.safetensors")] {
        let e = run_err(embed(&m, &target).args(["--text", "x", "--force"]));
        assert_contains(&e, &["inside the model directory"]);
    }
    assert_eq!(std::fs::read(m.join("model.safetensors")).unwrap(), before);
    assert!(!m.join("new.safetensors").exists());
}

#[test]
fn zero_counts_are_refused_at_parse_time() {
    let d = fresh("zero");
    for (args, flag) in [
        (
            vec!["embed", "--model", "m", "--out", "o", "--text", "x", "--batch", "0"],
            "--batch",
        ),
        (
            vec!["zero-shot", "--model", "m", "--classes", "a", "--top-k", "0", "i.png"],
            "--top-k",
        ),
        (
            vec![
                "train", "--method", "lora", "--model", "m", "--data", "x", "--out", "o", "--epochs", "0",
            ],
            "--epochs",
        ),
        (
            vec![
                "train", "--method", "lora", "--model", "m", "--data", "x", "--out", "o", "--rank", "0",
            ],
            "--rank",
        ),
    ] {
        let out = output(bin().current_dir(&d).args(&args));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert_contains(&stderr, &[flag, "at least 1"]);
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

// ---------------------------------------------------------------------------------------------
// 10. Output rows never shift

#[test]
fn texts_file_blank_line_is_an_error_naming_it() {
    let d = fresh("texts");
    let f = d.join("texts.txt");
    std::fs::write(&f, "a dog\n\na cat\n").unwrap();
    let e = run_err(embed(&tiny(), &d.join("o.safetensors")).arg("--texts-file").arg(&f));
    assert_contains(&e, &["texts.txt:2", "blank line"]);
    assert!(!d.join("o.safetensors").exists());
}

#[test]
fn skipped_images_keep_their_identity_in_embed_and_zero_shot() {
    let d = fresh("rows");
    std::fs::write(d.join("bad.png"), b"not a png").unwrap();
    let imgs = [
        good_image(),
        d.join("bad.png"),
        fixtures().join("preprocess/inputs/photo_80x60.jpg"),
    ];
    let out = d.join("o.safetensors");
    let mut c = embed(&tiny(), &out);
    c.args(["--skip-bad-images", "--text", "a dog"]);
    for i in &imgs {
        c.arg("--image").arg(i);
    }
    run_ok(&mut c);
    let bytes = std::fs::read(&out).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let idx = st.tensor("image_input_index").unwrap();
    let idx: Vec<u32> = idx
        .data()
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(idx, vec![0, 2]);
    assert_eq!(st.tensor("image_embeds").unwrap().shape()[0], 2);
    let meta = meta.metadata().clone().unwrap();
    let names: Vec<String> = serde_json::from_str(&meta["image_files"]).unwrap();
    assert_eq!(
        names,
        vec![imgs[0].display().to_string(), imgs[2].display().to_string()]
    );
    let texts: Vec<String> = serde_json::from_str(&meta["texts"]).unwrap();
    assert_eq!(texts, vec!["a dog".to_string()]);

    let mut c = bin();
    c.args([
        "zero-shot",
        "--device",
        "cpu",
        "--json",
        "--skip-bad-images",
        "--templates",
        "simple",
    ])
    .args(["--classes", "dog,cat", "--model"])
    .arg(tiny())
    .args(&imgs);
    let v: serde_json::Value = serde_json::from_str(run_ok(&mut c).trim()).unwrap();
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), 3, "one row per input, skipped ones included: {v}");
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r["index"], i);
        assert_eq!(r["image"], imgs[i].display().to_string());
    }
    assert!(rows[1]["skipped"].as_str().unwrap().contains("bad.png"), "{v}");
    assert!(rows[0]["top"].is_array() && rows[2]["top"].is_array());
}

// ---------------------------------------------------------------------------------------------
// 11. Non-finite results

#[test]
fn non_finite_weights_and_logit_scale_are_errors_naming_the_tensor() {
    let d = fresh("nanweight");
    let m = model_with_tensor(&d, "text_model.final_layer_norm.weight", |v| v[3] = f32::NAN);
    let e = run_err(embed(&m, &d.join("o.safetensors")).args(["--text", "x"]));
    assert_contains(&e, &["text_model.final_layer_norm.weight", "non-finite"]);
    assert!(!d.join("o.safetensors").exists());

    // exp(100) overflows f32: the scale, not a "NaN%" row.
    let d = fresh("scale");
    let m = model_with_tensor(&d, "logit_scale", |v| v[0] = 100.0);
    let e = run_err(
        bin()
            .args([
                "zero-shot",
                "--device",
                "cpu",
                "--templates",
                "simple",
                "--classes",
                "dog,cat",
                "--model",
            ])
            .arg(&m)
            .arg(good_image()),
    );
    assert_contains(&e, &["logit_scale", "non-finite"]);
    assert!(!e.contains("NaN%"), "{e}");
    let e = run_err(
        embed(&m, &d.join("o.safetensors"))
            .args(["--text", "x", "--image"])
            .arg(good_image()),
    );
    assert_contains(&e, &["logit_scale"]);
}

/// Found by the fuzz replay: a LoRA adapter holding a NaN loaded silently; now the load
/// fails naming the file and tensor (prompt and textual-inversion files share the check).
#[test]
fn non_finite_adapter_weights_are_refused_naming_the_tensor() {
    let d = fresh("nanadapter");
    let a = d.join("adapter");
    std::fs::create_dir_all(&a).unwrap();
    let src = fixtures().join("lora/peft_adapter");
    std::fs::copy(src.join("adapter_config.json"), a.join("adapter_config.json")).unwrap();
    let mut st = std::fs::read(src.join("adapter_model.safetensors")).unwrap();
    // The first tensor's data (lora_A of layer 0's q_proj) starts right after the header.
    let n = u64::from_le_bytes(st[..8].try_into().unwrap()) as usize;
    let at = 8 + n + 4 * 5;
    st[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    std::fs::write(a.join("adapter_model.safetensors"), st).unwrap();
    let e = run_err(
        embed(&tiny(), &d.join("o.safetensors"))
            .args(["--text", "x", "--adapter"])
            .arg(&a),
    );
    assert_contains(
        &e,
        &[
            "text_model.encoder.layers.0.self_attn.q_proj.lora_A.weight",
            "non-finite",
            "index 5",
        ],
    );
    assert!(!d.join("o.safetensors").exists());
}

#[test]
fn the_shared_finiteness_check_names_tensor_and_index() {
    assert!(cliptune::error::ensure_finite("x", &[1.0, 2.0]).is_ok());
    let e = cliptune::error::ensure_finite("image_embeds", &[1.0, f32::INFINITY, f32::NAN]).unwrap_err();
    assert_eq!(e.kind, cliptune::ErrorKind::NonFinite);
    assert_contains(&e.to_string(), &["image_embeds", "2 of 3", "index 1"]);
}

#[test]
fn malformed_tokenizer_json_is_an_error_not_a_panic() {
    // Found by the fuzz pass: a "decoder" section with a field of the wrong JSON type made
    // the tokenizers crate panic inside its deserializer.
    let bad = fixtures().join("tokenizer/regression_decoder_panic.json");
    let msg = cliptune::clip::tokenizer::ClipTokenizer::from_file(&bad)
        .unwrap_err()
        .to_string();
    assert_contains(&msg, &["regression_decoder_panic.json", "not a valid tokenizer.json"]);
    let d = fresh("badtok");
    let m = model_with_config(&d, |_| {});
    std::fs::copy(&bad, m.join("tokenizer.json")).unwrap();
    let e = run_err(bin().args(["tokenize", "--model"]).arg(&m).arg("a photo"));
    assert_contains(&e, &["tokenizer.json", "not a valid tokenizer.json"]);
}

// ---------------------------------------------------------------------------------------------
// 14/15. Images that are not regular files

#[test]
fn image_that_is_a_device_fifo_or_directory_fails_at_once() {
    let d = fresh("special");
    let fifo = d.join("pipe.png");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success(), "mkfifo failed");
    std::fs::create_dir_all(d.join("dir.png")).unwrap();
    for (img, why) in [
        (PathBuf::from("/dev/zero"), "not a regular file"),
        (fifo.clone(), "not a regular file"),
        (d.join("dir.png"), "is a directory"),
    ] {
        let e = run_err(embed(&tiny(), &d.join("o.safetensors")).arg("--image").arg(&img));
        assert_contains(&e, &[&img.display().to_string(), why]);
    }
    let msg = cliptune::clip::preprocess::load_image(Path::new("/dev/zero"))
        .unwrap_err()
        .to_string();
    assert_contains(&msg, &["/dev/zero", "not a regular file"]);
}

// ---------------------------------------------------------------------------------------------
// Clear messages

#[test]
fn eval_names_every_bad_image_and_suggests_no_flag_it_lacks() {
    let d = fresh("evalbad");
    let root = d.join("classes");
    for (class, name, good) in [
        ("cat", "1.png", true),
        ("cat", "2.png", false),
        ("dog", "1.png", false),
        ("dog", "2.png", true),
    ] {
        std::fs::create_dir_all(root.join(class)).unwrap();
        if good {
            std::fs::copy(good_image(), root.join(class).join(name)).unwrap();
        } else {
            std::fs::write(root.join(class).join(name), b"broken").unwrap();
        }
    }
    let e = run_err(
        bin()
            .args(["eval", "--device", "cpu", "--templates", "simple", "--model"])
            .arg(tiny())
            .arg("--zero-shot")
            .arg(&root),
    );
    assert_contains(&e, &["2 of 4", "cat/2.png", "dog/1.png"]);
    assert!(!e.contains("--skip-bad-images"), "eval has no such flag: {e}");
}

#[test]
fn a_tokenizer_that_does_not_fit_the_model_fails_before_images() {
    let d = fresh("tok");
    // No tokenizer.json and a config whose end-of-text id is not the embedded tokenizer's.
    let m = model_with_config(&d, |c| c["text_config"]["eos_token_id"] = serde_json::json!(49000));
    std::fs::write(d.join("bad.png"), b"broken").unwrap();
    let e = run_err(
        embed(&m, &d.join("o.safetensors"))
            .args(["--text", "x", "--image"])
            .arg(d.join("bad.png")),
    );
    assert_contains(&e, &["tokenizer.json", "49000"]);
    assert!(!e.contains("bad.png"), "the tokenizer is checked before any image: {e}");
}
