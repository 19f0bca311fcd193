//! `--method linear-probe`: a logistic-regression head on frozen image embeddings, its
//! L2 strength swept on a 20 % validation split.
use std::time::Instant;

use super::args::{TrainArgs, TrainSummary};
use super::output::write_manifest;
use crate::clip::Clip;
use crate::data::training::gather_rows;
use crate::error::Result;
use crate::eval::linear_probe::{split_train_val, sweep};
use crate::eval::suite::{image_embeddings, load_labeled};
use crate::tensor::io::write_atomic;

pub(crate) fn train_linear_probe(a: &TrainArgs, model: &Clip, t0: Instant) -> Result<TrainSummary> {
    let set = load_labeled(&a.data, a.classes_file.as_deref())?;
    crate::guard::learnable::check_classes(&a.data, &set.labels, &set.classes, a.method.name())?;
    let d = model.config.projection_dim;
    let x = image_embeddings(model, Some(&a.model_dir), &set.source)?;
    let (tr, va) = split_train_val(set.len(), &set.labels, 0.2, a.seed);
    let pick = |idx: &[usize]| {
        (
            gather_rows(&x, idx, d),
            idx.iter().map(|&i| set.labels[i]).collect::<Vec<_>>(),
        )
    };
    let (xa, ya) = pick(&tr);
    let (xv, yv) = pick(&va);
    let (probe, tried) = sweep(&xa, &ya, &xv, &yv, tr.len(), va.len(), d, set.classes.len())?;
    for (l2, acc) in &tried {
        eprintln!("[linear-probe] l2 {l2:.1e}: validation top-1 {:.2}%", acc * 100.0);
    }
    let probe_path = a.out.join("linear_probe.json");
    crate::guard::finite::check_values(&probe_path, "weight", &probe.weight)?;
    crate::guard::finite::check_values(&probe_path, "bias", &probe.bias)?;
    let json = serde_json::json!({"classes": set.classes, "l2": probe.l2, "d": probe.d, "c": probe.c, "weight": probe.weight, "bias": probe.bias});
    write_atomic(&a.out.join("linear_probe.json"), json.to_string().as_bytes())?;
    write_manifest(a, model, serde_json::json!({"final": true, "classes": set.classes}))?;
    let acc = probe.accuracy(&x, &set.labels, set.len())?;
    Ok(TrainSummary {
        guard: None,
        steps: tried.len(),
        first_loss: 0.0,
        last_loss: 1.0 - acc,
        trainable: probe.weight.len() + probe.bias.len(),
        seconds: t0.elapsed().as_secs_f32(),
        out: a.out.clone(),
    })
}
