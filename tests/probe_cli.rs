//! A trained linear-probe adapter is usable wherever classification happens: `eval
//! --adapter PROBE --zero-shot DATA` reports the probe's top-1/top-5, `zero-shot --adapter
//! PROBE IMAGE` prints its probabilities, `embed --adapter PROBE` says the probe leaves the
//! embeddings alone; unknown classes are clear errors. Also the probe's training flags.
mod common;
use std::path::{Path, PathBuf};

use cliptune::adapt::bundle::ProbeAdapter;
use cliptune::clip::{Clip, WeightStorage};
use cliptune::data::sprite_sheet::read_sprite_sheet;
use cliptune::eval::linear_probe::{split_train_val, sweep};
use cliptune::eval::suite::{image_embeddings, load_labeled};
use cliptune::Device;
use common::cli::{bin, fresh as tmp, root, run_err, run_ok};
use common::tiny_model_dir as model;

fn train_sheet() -> String {
    root()
        .join("assets/demo/fashion-mnist-train.json")
        .display()
        .to_string()
}

fn test_sheet() -> String {
    root().join("assets/demo/fashion-mnist-test.json").display().to_string()
}

fn train_probe(data: &str, out: &Path, extra: &[&str]) {
    run_ok(
        bin()
            .args(["train", "--method", "linear-probe", "--device", "cpu", "--model"])
            .arg(model())
            .args(["--data", data, "--out"])
            .arg(out)
            .args(extra),
    );
}

fn tiny() -> Clip {
    Clip::load(&model(), &Device::Cpu, WeightStorage::AsStored).unwrap()
}

#[test]
fn the_probe_classifies_in_eval_zero_shot_and_embed_says_what_it_does() {
    let t = tmp("use");
    let probe_dir = t.join("probe");
    train_probe(&train_sheet(), &probe_dir, &[]);
    let m = tiny();
    let pa = ProbeAdapter::read(&probe_dir.join("linear_probe.json"), &m).unwrap();
    let test = load_labeled(&test_sheet(), None).unwrap();
    let x = image_embeddings(&m, Some(&model()), &test.source).unwrap();
    let want = pa.probe.accuracy(&x, &test.labels, test.len()).unwrap();

    // eval --adapter PROBE --zero-shot DATA: the probe's own top-1.
    let (stdout, stderr) = run_ok(
        bin()
            .args(["eval", "--device", "cpu", "--json", "--model"])
            .arg(model())
            .arg("--adapter")
            .arg(&probe_dir)
            .args(["--zero-shot", &test_sheet()]),
    );
    assert!(!stderr.contains("does not use it"), "{stderr}");
    let rep: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let top1 = rep["zero_shot"][0]["top1"].as_f64().unwrap() as f32;
    let top5 = rep["zero_shot"][0]["top5"].as_f64().unwrap() as f32;
    eprintln!("probe through eval: top-1 {top1}, top-5 {top5}; library {want}");
    assert!(
        (top1 - want).abs() < 1e-6,
        "eval reports {top1}, the probe scores {want}"
    );
    assert!(top5 >= top1 && top5 <= 1.0);
    // Not the template zero-shot of the same model (which the old eval reported).
    let (plain, _) = run_ok(
        bin()
            .args(["eval", "--device", "cpu", "--json", "--model"])
            .arg(model())
            .args(["--zero-shot", &test_sheet()]),
    );
    let plain: serde_json::Value = serde_json::from_str(&plain).unwrap();
    let zs = plain["zero_shot"][0]["top1"].as_f64().unwrap() as f32;
    assert!(
        (zs - top1).abs() > 1e-6,
        "eval gave the template zero-shot {zs}, not the probe's {top1}"
    );

    // zero-shot --adapter PROBE IMAGE: the probe's probabilities over its classes.
    let sheet = read_sprite_sheet(Path::new(&test_sheet())).unwrap();
    let imgs: Vec<PathBuf> = [0usize, 150, 420]
        .iter()
        .map(|&i| {
            let p = t.join(format!("img{i}.png"));
            sheet.images[i].save(&p).unwrap();
            p
        })
        .collect();
    let (stdout, _) = run_ok(
        bin()
            .args(["zero-shot", "--device", "cpu", "--json", "--top-k", "100", "--model"])
            .arg(model())
            .arg("--adapter")
            .arg(&probe_dir)
            .args(&imgs),
    );
    let rows: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let src = cliptune::eval::suite::ImageSource::Files(imgs.clone());
    let xi = image_embeddings(&m, Some(&model()), &src).unwrap();
    let probs = pa.probe.predict_scores(&xi, imgs.len()).unwrap();
    let c = pa.classes.len();
    for (r, row) in rows.as_array().unwrap().iter().enumerate() {
        let top = row["top"].as_array().unwrap();
        assert_eq!(top.len(), c, "every probe class is listed");
        for item in top {
            let j = pa
                .classes
                .iter()
                .position(|k| k == item["class"].as_str().unwrap())
                .unwrap();
            let got = item["prob"].as_f64().unwrap() as f32;
            assert!(
                (got - probs[r * c + j]).abs() < 1e-5,
                "image {r} class {j}: {got} vs {}",
                probs[r * c + j]
            );
        }
    }

    // --classes among the probe's: renormalised over those.
    let pick = format!("{},{}", pa.classes[8], pa.classes[0]);
    let (stdout, _) = run_ok(
        bin()
            .args(["zero-shot", "--device", "cpu", "--json", "--classes", &pick, "--model"])
            .arg(model())
            .arg("--adapter")
            .arg(&probe_dir)
            .arg(&imgs[0]),
    );
    let rows: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let top = rows[0]["top"].as_array().unwrap();
    assert_eq!(top.len(), 2);
    let sum: f64 = top.iter().map(|i| i["prob"].as_f64().unwrap()).sum();
    assert!(
        (sum - 1.0).abs() < 1e-4,
        "probabilities over the chosen classes sum to {sum}"
    );
    let p8 = top.iter().find(|i| i["class"] == pa.classes[8].as_str()).unwrap()["prob"]
        .as_f64()
        .unwrap();
    let want8 = probs[8] / (probs[8] + probs[0]);
    assert!((p8 as f32 - want8).abs() < 1e-4, "{p8} vs {want8}");

    // A class the probe does not know: named.
    let e = run_err(
        bin()
            .args(["zero-shot", "--device", "cpu", "--classes", "bag,zebra", "--model"])
            .arg(model())
            .arg("--adapter")
            .arg(&probe_dir)
            .arg(&imgs[0]),
    );
    assert!(e.contains("\"zebra\"") && e.contains("not trained on"), "{e}");

    // embed: the probe leaves embeddings alone, and says so.
    let (_, stderr) = run_ok(
        bin()
            .args(["embed", "--device", "cpu", "--model"])
            .arg(model())
            .arg("--adapter")
            .arg(&probe_dir)
            .arg("--image")
            .arg(&imgs[0])
            .arg("--out")
            .arg(t.join("e.safetensors")),
    );
    assert!(stderr.contains("does not change them"), "{stderr}");
    assert!(!stderr.contains("does not use it"), "{stderr}");
}

#[test]
fn a_class_the_probe_does_not_know_is_an_error_in_eval() {
    let t = tmp("unknown");
    let probe_dir = t.join("probe");
    let fixtures = root().join("tests/fixtures/data");
    train_probe(
        &fixtures.join("classes").display().to_string(),
        &probe_dir,
        &["--classes-file", &fixtures.join("classes.txt").display().to_string()],
    );
    let e = run_err(
        bin()
            .args(["eval", "--device", "cpu", "--model"])
            .arg(model())
            .arg("--adapter")
            .arg(&probe_dir)
            .args(["--zero-shot", &test_sheet()]),
    );
    assert!(
        e.contains("\"trouser\"") && e.contains(&probe_dir.display().to_string()),
        "{e}"
    );
}

#[test]
fn random_init_with_weight_zero_is_the_swept_probe_and_bad_flags_are_errors() {
    let t = tmp("random");
    let out = t.join("probe");
    train_probe(
        &train_sheet(),
        &out,
        &["--probe-init", "random", "--probe-weight", "0", "--seed", "3"],
    );
    let m = tiny();
    let pa = ProbeAdapter::read(&out.join("linear_probe.json"), &m).unwrap();
    let set = load_labeled(&train_sheet(), None).unwrap();
    let d = m.config.projection_dim;
    let x = image_embeddings(&m, Some(&model()), &set.source).unwrap();
    let (tr, va) = split_train_val(set.len(), &set.labels, 0.2, 3);
    let pick = |idx: &[usize]| {
        (
            idx.iter()
                .flat_map(|&i| x[i * d..(i + 1) * d].to_vec())
                .collect::<Vec<f32>>(),
            idx.iter().map(|&i| set.labels[i]).collect::<Vec<usize>>(),
        )
    };
    let ((xa, ya), (xv, yv)) = (pick(&tr), pick(&va));
    let (want, _) = sweep(&xa, &ya, &xv, &yv, tr.len(), va.len(), d, set.classes.len()).unwrap();
    assert_eq!(
        pa.probe.weight, want.weight,
        "weights differ from the CLIP-protocol sweep"
    );
    assert_eq!(pa.probe.bias, want.bias);
    assert_eq!(pa.probe.l2, want.l2);

    // The default (zero-shot start) is a different probe.
    let zs = t.join("zs");
    train_probe(&train_sheet(), &zs, &["--seed", "3"]);
    let pz = ProbeAdapter::read(&zs.join("linear_probe.json"), &m).unwrap();
    assert_ne!(pz.probe.weight, want.weight);
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(zs.join("linear_probe.json")).unwrap()).unwrap();
    assert_eq!(j["init"], "zero-shot");

    let e = run_err(
        bin()
            .args(["train", "--method", "linear-probe", "--device", "cpu", "--model"])
            .arg(model())
            .args([
                "--data",
                &train_sheet(),
                "--probe-init",
                "random",
                "--probe-weight",
                "0.5",
                "--out",
            ])
            .arg(t.join("bad")),
    );
    assert!(e.contains("--probe-weight") && e.contains("random"), "{e}");
    assert!(!t.join("bad").exists(), "a refused run created its --out");
    let e = run_err(
        bin()
            .args(["train", "--method", "linear-probe", "--device", "cpu", "--model"])
            .arg(model())
            .args(["--data", &train_sheet(), "--probe-init", "text", "--out"])
            .arg(t.join("bad")),
    );
    assert!(e.contains("--probe-init 'text'"), "{e}");
}
