//! Textual inversion on the tiny fixture model: a new word initialised from "dog" is "dog"
//! (training path and after install), a short training run learns, save/load/install round
//! trips, and bad input.
mod common;
use common::{err_msg, load_tiny, max_abs, param_bits, strings, tiny_model_dir};
use std::path::{Path, PathBuf};

use cliptune::adapt::textual_inversion::TextualInversion;
use cliptune::autograd::Tape;
use cliptune::backend::Device;
use cliptune::clip::preprocess::{preprocess_files, PreprocessConfig};
use cliptune::clip::tokenizer::ClipTokenizer;
use cliptune::clip::{zero_shot, Clip, TextInput, WeightStorage};
use cliptune::train::AdamW;
use cliptune::Tensor;

fn tmp(name: &str) -> PathBuf {
    // Inside a fresh directory of this call alone, never one shared by this process's tests.
    let d = tempfile::Builder::new()
        .prefix(&"cliptune-ti-")
        .tempdir()
        .unwrap()
        .keep();
    d.join(name)
}

fn features(ti: &TextualInversion, model: &Clip, input: &TextInput) -> Vec<f32> {
    let tape = Tape::inference();
    ti.text_features(model, &tape, input)
        .unwrap()
        .value
        .l2norm()
        .unwrap()
        .0
        .to_vec()
        .unwrap()
}

#[test]
fn new_word_initialised_from_dog_is_dog() {
    let (model, mut tok) = load_tiny();
    let vocab = model.text.token_embedding.value.dim(0);
    let ti = TextualInversion::new(&model, &mut tok, &["<sks>"], Some("dog"), 0).unwrap();
    assert_eq!(
        ti.ids,
        vec![vocab as u32],
        "the new word gets the first id past the vocabulary"
    );
    let (sks, _) = zero_shot::tokenize(&model, &tok, &strings(&["a photo of a <sks>.", "<SKS> on a table"])).unwrap();
    let (dog, _) = zero_shot::tokenize(&model, &tok, &strings(&["a photo of a dog.", "dog on a table"])).unwrap();
    assert!(sks.ids.contains(&ti.ids[0]) && !dog.ids.contains(&ti.ids[0]));
    assert_eq!(sks.eot, dog.eot);

    // Training path (frozen table + trainable rows), on an inference and a recording tape.
    let a = features(&ti, &model, &sks);
    let b = model.encode_text(&dog, 8).unwrap().to_vec().unwrap();
    let e = max_abs(&a, &b);
    eprintln!("training path: <sks> vs dog max abs diff {e:.2e}");
    assert!(e <= 1e-6, "training path differs by {e}");
    let tape = Tape::new();
    let f = ti.text_features(&model, &tape, &sks).unwrap();
    assert!(f.requires_grad());
    assert!(max_abs(&f.value.l2norm().unwrap().0.to_vec().unwrap(), &b) <= 1e-6);
    // A batch that only mixes base words goes through the same path unchanged.
    assert!(max_abs(&features(&ti, &model, &dog), &b) <= 1e-6);

    // After install, the plain model + tokenizer know the word.
    let mut installed = model.clone();
    let mut tok2 = ClipTokenizer::for_model_dir(&tiny_model_dir()).unwrap();
    ti.install(&mut installed, &mut tok2).unwrap();
    assert_eq!(
        installed.text.token_embedding.value.shape(),
        &[vocab + 1, model.config.text.tower.width]
    );
    assert_eq!(installed.config.text.vocab, vocab + 1);
    let (sks2, _) = zero_shot::tokenize(
        &installed,
        &tok2,
        &strings(&["a photo of a <sks>.", "<SKS> on a table"]),
    )
    .unwrap();
    assert_eq!(sks2.ids, sks.ids);
    let c = installed.encode_text(&sks2, 8).unwrap().to_vec().unwrap();
    let e = max_abs(&c, &b);
    eprintln!("after install: <sks> vs dog max abs diff {e:.2e}");
    assert!(e <= 1e-6, "installed word differs by {e}");
    // Zero-shot with the new word as a class name equals "dog".
    let zs_sks =
        zero_shot::class_embeddings(&installed, &tok2, &strings(&["<sks>"]), &strings(&["a photo of a {}."])).unwrap();
    let zs_dog =
        zero_shot::class_embeddings(&model, &tok, &strings(&["dog"]), &strings(&["a photo of a {}."])).unwrap();
    assert!(max_abs(&zs_sks.to_vec().unwrap(), &zs_dog.to_vec().unwrap()) <= 1e-6);
    // Installing twice is refused.
    assert!(ti
        .install(&mut installed, &mut tok2)
        .unwrap_err()
        .msg
        .contains("installed before"));
}

fn fixture_images(model: &Clip) -> Tensor {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/preprocess/inputs");
    let paths: Vec<PathBuf> = ["rgb_37x53.png", "photo_80x60.jpg", "wide_400x300.png"]
        .iter()
        .map(|f| dir.join(f))
        .collect();
    let size = model.config.vision.image_size;
    let (px, kept, _) = preprocess_files(&paths, &PreprocessConfig::openai(size), false).unwrap();
    assert_eq!(kept.len(), 3);
    Tensor::from_vec(px, &[3, 3, size, size], model.device()).unwrap()
}

#[test]
fn learns_the_word_and_changes_only_its_rows() {
    let (model, mut tok) = load_tiny();
    let img = model.encode_image(&fixture_images(&model), 3).unwrap();
    let mut ti = TextualInversion::new(&model, &mut tok, &["<sks>", "<obj>"], Some("dog"), 0).unwrap();
    // Images 0 and 1 are described with the new words; image 2 and the extra rows are fixed
    // distractor captions.
    let captions = strings(&[
        "a photo of <sks> on a table",
        "a close-up photo of a <obj>",
        "a photo of a cat.",
        "a photo of a dog.",
        "a photo of a red car.",
    ]);
    let (input, _) = zero_shot::tokenize(&model, &tok, &captions).unwrap();
    let before = param_bits(&model);
    let rows0 = ti.embeddings.value.to_vec().unwrap();
    let mut opt = AdamW::new(5e-2, 0.0);
    let mut losses = vec![];
    for _ in 0..40 {
        let tape = Tape::new();
        let loss = ti.loss_contrastive(&model, &tape, &img, &input).unwrap();
        losses.push(loss.value.item().unwrap());
        let grads = tape.backward(&loss).unwrap();
        assert_eq!(
            grads.param_ids(),
            vec![ti.embeddings.id],
            "only the new rows get a gradient"
        );
        opt.step(&mut ti.params_mut(), &grads).unwrap();
    }
    let tape = Tape::inference();
    let last = ti
        .loss_contrastive(&model, &tape, &img, &input)
        .unwrap()
        .value
        .item()
        .unwrap();
    eprintln!("textual inversion: loss {:.4} -> {last:.4}", losses[0]);
    assert!(
        last < 0.8 * losses[0],
        "loss did not fall enough: {} -> {last}",
        losses[0]
    );
    let rows1 = ti.embeddings.value.to_vec().unwrap();
    let w = ti.width();
    assert_ne!(rows1[..w], rows0[..w], "<sks> moved");
    assert_ne!(rows1[w..], rows0[w..], "<obj> moved");
    assert!(
        param_bits(&model) == before,
        "every model parameter is bit-identical after training"
    );

    // Save, load with a fresh tokenizer, install: the installed model gives the trained features.
    let path = tmp("words.safetensors");
    ti.save(&path).unwrap();
    let mut tok2 = ClipTokenizer::for_model_dir(&tiny_model_dir()).unwrap();
    let back = TextualInversion::load(&path, &model, &mut tok2).unwrap();
    assert_eq!(back.words, ti.words);
    assert_eq!(back.ids, ti.ids);
    assert_eq!(back.embeddings.value.to_vec().unwrap(), rows1);
    let mut installed = model.clone();
    back.install(&mut installed, &mut tok2).unwrap();
    let trained = features(&ti, &model, &input);
    let after = installed.encode_text(&input, 8).unwrap().to_vec().unwrap();
    assert!(max_abs(&trained, &after) <= 1e-6);
    // The extended tokenizer round-trips through tokenizer.json.
    let tj = tmp("tokenizer.json");
    tok2.save(&tj).unwrap();
    let tok3 = ClipTokenizer::from_file(&tj).unwrap();
    assert_eq!(
        tok3.encode("a photo of <sks>").unwrap(),
        tok2.encode("a photo of <sks>").unwrap()
    );
    assert!(tok3.encode("<obj>").unwrap().contains(&ti.ids[1]));
}

#[test]
fn random_init_and_bad_input() {
    let (model, mut tok) = load_tiny();
    let vocab_before = tok.vocab_size();
    // Errors leave the tokenizer unchanged.
    assert!(TextualInversion::new(&model, &mut tok, &[], None, 0)
        .unwrap_err()
        .msg
        .contains("no new words"));
    assert!(TextualInversion::new(&model, &mut tok, &["<a>", "<A>"], None, 0)
        .unwrap_err()
        .msg
        .contains("twice"));
    let e = TextualInversion::new(&model, &mut tok, &["<sks>"], Some("red car"), 0).unwrap_err();
    assert!(e.msg.contains("single token"), "{}", e.msg);
    assert!(TextualInversion::new(&model, &mut tok, &["two words"], None, 0).is_err());
    assert!(TextualInversion::new(&model, &mut tok, &["dog</w>"], None, 0).is_err());
    assert_eq!(tok.vocab_size(), vocab_before);

    let ti = TextualInversion::new(&model, &mut tok, &["<sks>"], None, 3).unwrap();
    let v = ti.embeddings.value.to_vec().unwrap();
    let std = (v.iter().map(|x| x * x).sum::<f32>() / v.len() as f32).sqrt();
    assert!((0.005..0.05).contains(&std), "N(0, 0.02) init, got std {std}");

    // Ids outside the vocabulary that are not the new words.
    let bad = TextInput {
        ids: vec![49406, 60000, 49407],
        n: 1,
        len: 3,
        eot: vec![2],
    };
    let tape = Tape::new();
    assert!(err_msg(ti.text_features(&model, &tape, &bad)).contains("outside the vocabulary"));
    // Inconsistent input shapes.
    let broken = TextInput {
        ids: vec![49406, 49407],
        n: 2,
        len: 3,
        eot: vec![1, 1],
    };
    assert!(ti.text_features(&model, &tape, &broken).is_err());
    // Image features of the wrong shape / too few captions.
    let (input, _) = zero_shot::tokenize(&model, &tok, &strings(&["a <sks>"])).unwrap();
    let p = model.config.projection_dim;
    let two = Tensor::zeros(&[2, p], model.device()).unwrap();
    assert!(ti.loss_contrastive(&model, &tape, &two, &input).is_err());
    let wrong = Tensor::zeros(&[1, p + 1], model.device()).unwrap();
    assert!(ti.loss_contrastive(&model, &tape, &wrong, &input).is_err());

    // A tokenizer whose ids do not line up with the model's table is refused at install.
    let mut skewed = ClipTokenizer::for_model_dir(&tiny_model_dir()).unwrap();
    skewed.add_words(&["<other>"]).unwrap();
    let mut m = model.clone();
    let e = ti.install(&mut m, &mut skewed).unwrap_err();
    assert!(e.msg.contains("tokenizer"), "{}", e.msg);
    assert_eq!(
        m.text.token_embedding.value.dim(0),
        model.text.token_embedding.value.dim(0)
    );

    // Files: another model, junk, wrong kind.
    let path = tmp("sks.safetensors");
    ti.save(&path).unwrap();
    let other = Clip::random(model.config.clone(), 5, &Device::Cpu).unwrap();
    let mut t = ClipTokenizer::for_model_dir(&tiny_model_dir()).unwrap();
    assert!(TextualInversion::load(&path, &other, &mut t)
        .unwrap_err()
        .msg
        .contains("another model"));
    let junk = tmp("junk.safetensors");
    std::fs::write(&junk, b"\x08\0\0\0\0\0\0\0{}").unwrap();
    assert!(TextualInversion::load(&junk, &model, &mut t).is_err());
    let prompt_file = tmp("prompt.safetensors");
    let pl = cliptune::adapt::prompt::PromptLearner::new(&model, &tok, &strings(&["dog"]), 2, None, false, 0).unwrap();
    pl.save(&prompt_file).unwrap();
    let e = TextualInversion::load(&prompt_file, &model, &mut t).unwrap_err();
    assert!(e.msg.contains("cliptune.prompt"), "{}", e.msg);
}

/// The training path on the WGSL backend (lavapipe in CI): "<sks>" from "dog" is "dog", and
/// the gradient of the new rows agrees with the CPU backend.
#[test]
fn wgsl_backend_matches_cpu() {
    let (model, mut tok) = load_tiny();
    let gpu_model = Clip::load(&tiny_model_dir(), &common::gpu(), WeightStorage::AsStored).unwrap();
    let ti = TextualInversion::new(&model, &mut tok, &["<sks>"], Some("dog"), 0).unwrap();
    let mut gti = ti.clone();
    gti.embeddings.value = ti.embeddings.value.to_device(gpu_model.device()).unwrap();
    let (sks, _) = zero_shot::tokenize(&model, &tok, &strings(&["a photo of a <sks>.", "<sks> on a table"])).unwrap();
    let (dog, _) = zero_shot::tokenize(&model, &tok, &strings(&["a photo of a dog.", "dog on a table"])).unwrap();
    let a = features(&gti, &gpu_model, &sks);
    let b = gpu_model.encode_text(&dog, 8).unwrap().to_vec().unwrap();
    assert!(max_abs(&a, &b) <= 1e-6, "WGSL: <sks> vs dog {}", max_abs(&a, &b));
    let p = model.config.projection_dim;
    let feats = common::randn(&[2, p], 9);
    let mut grads = vec![];
    for (m, t) in [(&model, &ti), (&gpu_model, &gti)] {
        let img = Tensor::from_slice(&feats, &[2, p], m.device())
            .unwrap()
            .l2norm()
            .unwrap()
            .0;
        let tape = Tape::new();
        let loss = t.loss_contrastive(m, &tape, &img, &sks).unwrap();
        grads.push(
            tape.backward(&loss)
                .unwrap()
                .get(t.embeddings.id)
                .unwrap()
                .to_vec()
                .unwrap(),
        );
    }
    let e = common::rel_err(&grads[0], &grads[1]);
    eprintln!("WGSL vs CPU new-row gradient rel err {e:.2e}");
    assert!(e < 1e-3);
}
