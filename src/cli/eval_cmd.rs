//! `cliptune eval`: zero-shot, retrieval and linear-probe metrics in one run.
use std::path::PathBuf;
use std::time::Instant;

use cliptune::clip::tokenizer::ClipTokenizer;
use cliptune::clip::zero_shot::templates;
use cliptune::clip::{Clip, WeightStorage};
use cliptune::eval::adapted as classify;
use cliptune::eval::suite::{linear_probe_eval, load_labeled, retrieval_eval, EvalReport};
use cliptune::tensor::io::write_atomic;
use cliptune::{Device, Error, Result};

pub struct EvalArgs {
    pub model: PathBuf,
    pub zero_shot: Vec<String>,
    pub retrieval: Vec<PathBuf>,
    pub linear_probe: Vec<String>,
    pub classes_file: Option<PathBuf>,
    pub templates: String,
    pub json: bool,
    pub out: Option<PathBuf>,
    /// `--adapter DIR` (repeatable): loaded onto the model before anything is measured.
    pub adapters: Vec<PathBuf>,
    /// A prompt adapter's context may classify classes it was not trained on.
    pub new_classes: bool,
}

pub fn run(a: EvalArgs, dev: &Device) -> Result<EvalReport> {
    if a.zero_shot.is_empty() && a.retrieval.is_empty() && a.linear_probe.is_empty() {
        return Err(Error::invalid(
            "eval: nothing to evaluate: give --zero-shot DATA, --retrieval DATA or --linear-probe TRAIN TEST",
        ));
    }
    let t0 = Instant::now();
    let mut model = Clip::load(&a.model, dev, WeightStorage::AsStored)?;
    let mut tok = ClipTokenizer::for_model_dir(&a.model)?;
    let mut ad = super::clip_cmds::load_adapters_cli(&mut model, &mut tok, &a.model, &a.adapters)?;
    if a.new_classes && ad.prompt().is_none() {
        return Err(Error::invalid(
            "eval --new-classes: no prompt adapter was given (--adapter DIR of a `train --method prompt` run)",
        ));
    }
    ad.prompt_on_new_classes = a.new_classes;
    if let Some((pdir, probe)) = classify::the_probe(&ad)? {
        eprintln!(
            "[eval] --zero-shot classifies with linear-probe adapter {} ({} classes); --linear-probe TRAIN TEST still fits its own",
            pdir.display(),
            probe.classes.len()
        );
    }
    let dir = Some(a.model.as_path());
    let mut rep = EvalReport {
        model: a.model.display().to_string(),
        adapters: a.adapters.iter().map(|d| d.display().to_string()).collect(),
        ..Default::default()
    };
    let t = templates(&a.templates)?;
    for d in &a.zero_shot {
        eprintln!("[eval] zero-shot on {d} ...");
        let set = load_labeled(d, a.classes_file.as_deref())?;
        rep.zero_shot
            .push(classify::classify_set(&model, &tok, dir, &set, &t, &ad)?);
    }
    for d in &a.retrieval {
        eprintln!("[eval] retrieval on {} ...", d.display());
        rep.retrieval.push(retrieval_eval(&model, &tok, dir, d)?);
    }
    for pair in a.linear_probe.chunks(2) {
        let [train, test] = pair else {
            return Err(Error::invalid("--linear-probe takes two datasets: TRAIN TEST"));
        };
        eprintln!("[eval] linear probe {train} -> {test} ...");
        let tr = load_labeled(train, a.classes_file.as_deref())?;
        let te = load_labeled(test, a.classes_file.as_deref())?;
        rep.linear_probe.push(linear_probe_eval(&model, dir, &tr, &te)?);
    }
    eprintln!("[eval] done in {:.1}s", t0.elapsed().as_secs_f32());
    if a.json {
        println!("{}", rep.to_json());
    } else {
        print!("{rep}");
    }
    if let Some(out) = &a.out {
        write_atomic(
            out,
            serde_json::to_string_pretty(&rep.to_json())
                .unwrap_or_default()
                .as_bytes(),
        )?;
        eprintln!("wrote {}", out.display());
    }
    Ok(rep)
}
