//! `--lora-scale` (issue 12): a fixed factor or a sweep on a held-out split and the
//! retention set; the choice is stored as PEFT's `lora_alpha` and in the manifest.
mod common;
mod harden_common;
use harden_common::*;

use cliptune::train::lora_scale::{choose, Tried, SWEEP};

fn json(p: &std::path::Path) -> serde_json::Value {
    serde_json::from_slice(&read(p)).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// `auto` trains, sweeps every factor, keeps the best validation top-1 whose retention
/// meets the floor, and stores it as lora_alpha = alpha x factor; the table is in the
/// manifest and the reloaded adapter applies exactly that scale.
#[test]
fn auto_keeps_the_best_factor_that_meets_the_floor() {
    let d = fresh("scale-auto");
    let data = class_folders(&d.join("data"), &["red", "green", "blue"], 6);
    let keep = class_folders(&d.join("keep"), &["cyan", "magenta"], 3);
    let out = d.join("out");
    let floor = 0.5;
    let err = ok(&mut train(
        &data,
        &out,
        &[
            "--lora-scale",
            "auto",
            "--retention-set",
            keep.to_str().unwrap(),
            "--retention-every",
            "0",
            "--min-retention",
            "0.5",
            "--alpha",
            "16",
            "--max-steps",
            "6",
        ],
    ));
    assert_has(
        &err,
        &[
            "[lora-scale] auto: training on 15 images",
            "3 held out",
            "[lora-scale] chose x",
        ],
    );
    let m = json(&out.join("cliptune_adapter.json"));
    let info = m.get("info").unwrap_or(&m);
    let ls = &info["lora_scale"];
    assert_eq!(ls["chosen_by"], "auto", "{ls}");
    let sweep = ls["sweep"].as_array().unwrap();
    assert_eq!(sweep.len(), SWEEP.len());
    let rows: Vec<Tried> = sweep
        .iter()
        .map(|r| Tried {
            factor: r["factor"].as_f64().unwrap() as f32,
            val_top1: r["val_top1"].as_f64().unwrap() as f32,
            retention: r["retention"].as_f64().unwrap() as f32,
        })
        .collect();
    // Independently: the best validation top-1 among rows meeting the floor.
    let best = rows
        .iter()
        .filter(|r| r.retention + 1e-6 >= floor)
        .map(|r| r.val_top1)
        .fold(f32::NEG_INFINITY, f32::max);
    let factor = ls["factor"].as_f64().unwrap() as f32;
    let chosen = rows
        .iter()
        .find(|r| r.factor == factor)
        .expect("the chosen factor is in the table");
    assert_eq!(chosen.val_top1, best, "{ls}");
    assert!(chosen.retention + 1e-6 >= floor, "{ls}");
    let cfg = json(&out.join("adapter_config.json"));
    let alpha = cfg["lora_alpha"].as_f64().unwrap() as f32;
    assert_eq!(alpha, 16.0 * factor, "PEFT's lora_alpha carries the factor: {cfg}");

    // The reloaded adapter applies alpha x factor / r on every site.
    let dir = model();
    let mut model =
        cliptune::clip::Clip::load(&dir, &cliptune::Device::Cpu, cliptune::clip::WeightStorage::AsStored).unwrap();
    let mut tok = cliptune::clip::tokenizer::ClipTokenizer::for_model_dir(&dir).unwrap();
    cliptune::adapt::bundle::load_adapters(&mut model, &mut tok, &[out.clone()]).unwrap();
    let sites = cliptune::adapt::lora::adapter_sites(&model);
    assert!(!sites.is_empty());
    for s in &sites {
        let l = cliptune::adapt::lora::linear(&model, s).unwrap().lora.as_ref().unwrap();
        assert_eq!(l.scale, alpha / l.rank() as f32, "{s:?}");
    }
}

/// A fixed factor changes only `lora_alpha`: the trained A and B are those of the run at
/// factor 1, byte for byte.
#[test]
fn a_fixed_factor_changes_only_lora_alpha() {
    let d = fresh("scale-fixed");
    let data = class_folders(&d.join("data"), &["red", "green"], 4);
    let (one, half) = (d.join("one"), d.join("half"));
    ok(&mut train(&data, &one, &["--alpha", "16", "--max-steps", "4"]));
    let err = ok(&mut train(
        &data,
        &half,
        &["--alpha", "16", "--max-steps", "4", "--lora-scale", "0.5"],
    ));
    assert_has(&err, &["kept at x0.5 (lora_alpha 8)"]);
    assert_eq!(
        read(&one.join("adapter_model.safetensors")),
        read(&half.join("adapter_model.safetensors")),
        "the weights differ"
    );
    assert_eq!(json(&one.join("adapter_config.json"))["lora_alpha"], 16);
    assert_eq!(json(&half.join("adapter_config.json"))["lora_alpha"], 8);
}

/// Bad input: a clear error naming the flag or the data, before anything is trained.
#[test]
fn bad_lora_scales_are_refused() {
    let d = fresh("scale-bad");
    let data = class_folders(&d.join("data"), &["red", "green"], 4);
    for bad in ["0", "-1", "nan", "5", "big"] {
        let err = fails(
            &mut train(&data, &d.join(format!("o-{bad}")), &["--lora-scale", bad]),
            2,
        );
        assert_has(&err, &["--lora-scale"]);
    }
    let err = fails(
        &mut train(
            &data,
            &d.join("o-prompt"),
            &["--method", "prompt", "--lora-scale", "0.5"],
        ),
        1,
    );
    assert_has(&err, &["--lora-scale 0.5 applies to --method lora"]);
    // The tiny test model ships no heldout.json.
    let err = fails(&mut train(&data, &d.join("o-noret"), &["--lora-scale", "auto"]), 1);
    assert_has(&err, &["--lora-scale auto: no retention set", "--retention-set"]);
    assert!(!d.join("o-noret").join("adapter_model.safetensors").exists());
    let caps = caption_csv(
        &d.join("caps"),
        &[(0, "a red square"), (1, "a green square"), (0, "red"), (1, "green")],
    );
    let keep = class_folders(&d.join("keep"), &["cyan", "magenta"], 2);
    let err = fails(
        &mut train(
            &caps,
            &d.join("o-caps"),
            &["--lora-scale", "auto", "--retention-set", keep.to_str().unwrap()],
        ),
        1,
    );
    assert_has(&err, &["--lora-scale auto", "needs labelled images", "caps"]);
}

/// The choice rule: best validation top-1 among factors meeting the floor (ties: better
/// retention, then the larger factor); none meeting it: the best retention, flagged.
#[test]
fn the_choice_rule() {
    let t = |factor, val_top1, retention| Tried {
        factor,
        val_top1,
        retention,
    };
    let rows = [t(1.0, 0.9, 0.7), t(0.8, 0.8, 0.96), t(0.6, 0.8, 0.97), t(0.4, 0.5, 1.0)];
    let (i, met, why) = choose(&rows, 0.95);
    assert_eq!((i, met), (2, true), "{why}");
    let (i, met, _) = choose(&rows, 0.6);
    assert_eq!((i, met), (0, true));
    let (i, met, why) = choose(&rows[..3], 0.99);
    assert_eq!((i, met), (2, false), "{why}");
    assert!(why.contains("no factor keeps"), "{why}");
}
