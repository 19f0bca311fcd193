//! `--resume` continues the run it interrupted, or nothing: every argument that changes
//! the result (and a digest of the data it trained on) is recorded in the trainer
//! state's metadata, and a resume that changes one is refused, naming it and both values.
//! Arguments that only change when or how much is written (`--stop-after`,
//! `--checkpoint-every`, `--device`) are not recorded.
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};

/// Metadata key prefix of a recorded argument.
const ARG: &str = "cliptune.arg.";
/// Metadata key prefix of how messages show a recorded content digest.
const SHOWN: &str = "cliptune.shown.";

/// The result-changing arguments of a run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunRecord {
    args: BTreeMap<String, String>,
    shown: BTreeMap<String, String>,
}

impl RunRecord {
    pub fn new() -> RunRecord {
        RunRecord::default()
    }

    /// Record `flag` (e.g. `--lr`) with its effective value.
    pub fn arg(&mut self, flag: &str, value: impl std::fmt::Display) -> &mut Self {
        self.args.insert(flag.to_string(), value.to_string());
        self
    }

    /// Record the content behind `flag` (its digest), shown in messages as `shown`
    /// (e.g. the path): moving the same data elsewhere is not a change.
    pub fn content(&mut self, flag: &str, digest: &str, shown: &str) -> &mut Self {
        let key = format!("{flag} content");
        self.args.insert(key.clone(), digest.to_string());
        self.shown.insert(key, shown.to_string());
        self
    }

    /// The safetensors metadata that stores the record.
    pub fn metadata(&self) -> BTreeMap<String, String> {
        let a = self.args.iter().map(|(k, v)| (format!("{ARG}{k}"), v.clone()));
        let s = self.shown.iter().map(|(k, v)| (format!("{SHOWN}{k}"), v.clone()));
        a.chain(s).collect()
    }

    fn from_metadata(meta: &BTreeMap<String, String>) -> RunRecord {
        let pick = |prefix: &str| {
            meta.iter()
                .filter_map(|(k, v)| k.strip_prefix(prefix).map(|k| (k.to_string(), v.clone())))
                .collect()
        };
        RunRecord {
            args: pick(ARG),
            shown: pick(SHOWN),
        }
    }

    /// Refuse to resume the run recorded in `state` (a trainer state file) with these
    /// arguments unless every recorded one is the same.
    pub fn check_resume(&self, state: &Path) -> Result<()> {
        let old = RunRecord::from_metadata(&read_metadata(state)?);
        if old.args.is_empty() {
            eprintln!(
                "warning: {} records no arguments (written by an older cliptune): cannot check that --resume repeats \
                 the interrupted run's arguments",
                state.display()
            );
            return Ok(());
        }
        let keys: std::collections::BTreeSet<&String> = self.args.keys().chain(old.args.keys()).collect();
        for k in keys {
            let (was, now) = (old.args.get(k), self.args.get(k));
            if was == now {
                continue;
            }
            let show = |r: &RunRecord, v: Option<&String>| match (v, r.shown.get(k)) {
                (None, _) => "not set".to_string(),
                (Some(v), Some(s)) => format!("{s} (content digest {v})"),
                (Some(v), None) => format!("{v:?}"),
            };
            let what = match k.strip_suffix(" content") {
                Some(flag) => format!("the content of {flag}"),
                None => k.clone(),
            };
            return Err(Error::invalid(format!(
                "--resume: {what} differs from the interrupted run's: it was {}, now it is {}; a resume must repeat \
                 every argument that changes the result (give the same value, or leave out --resume and train into \
                 another --out)",
                show(&old, was),
                show(self, now)
            )));
        }
        Ok(())
    }
}

/// The `__metadata__` of a safetensors file, from its header alone.
fn read_metadata(path: &Path) -> Result<BTreeMap<String, String>> {
    let bad = |m: String| Error::io(path.display(), format!("not a valid trainer state: {m}"));
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path.display(), e))?;
    let mut len = [0u8; 8];
    f.read_exact(&mut len).map_err(|e| bad(e.to_string()))?;
    let n = u64::from_le_bytes(len);
    if n > 100 << 20 {
        return Err(bad(format!("a {n}-byte header")));
    }
    let mut header = vec![0u8; n as usize];
    f.read_exact(&mut header).map_err(|e| bad(e.to_string()))?;
    let v: serde_json::Value = serde_json::from_slice(&header).map_err(|e| bad(e.to_string()))?;
    Ok(v.get("__metadata__")
        .and_then(|m| m.as_object())
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
        .unwrap_or_default())
}

/// Digest of what a training loop consumes: preprocessed pixels, labels and class names,
/// captions and their hard negatives (each row's list kept apart).
pub fn data_digest(
    pixels: &[f32],
    labels: &[usize],
    classes: &[String],
    texts: &[String],
    negatives: &[Vec<String>],
) -> String {
    let mut d = crate::io::fingerprint::Digest::new();
    d.f32s(pixels).usizes(labels);
    for c in classes.iter().chain(texts) {
        d.str(c);
    }
    for row in negatives {
        d.usizes(&[row.len()]);
        for n in row {
            d.str(n);
        }
    }
    d.hex()
}

/// The record of a `cliptune train` run: `lr` and the schedule are the effective values
/// (defaults and the small-data floor resolved), `data_digest` covers what the loop trains on (pixels, labels,
/// captions), `reference_digest` the `--reference` set's pixels and captions (like `--data`, its content, not its
/// path, is what a resume must repeat), `model_digest` the base weights.
pub fn for_train(
    a: &crate::train::run::TrainArgs,
    lr: f32,
    schedule: &crate::train::schedule::Schedule,
    data_digest: &str,
    reference_digest: Option<&str>,
    model_digest: &str,
) -> RunRecord {
    let mut r = RunRecord::new();
    let opt = |o: &Option<String>| o.clone().unwrap_or_else(|| "none".into());
    r.arg("--method", a.method.name())
        .content("--model", model_digest, &a.model_dir.display().to_string())
        .content("--data", data_digest, &a.data)
        .arg("--epochs", a.epochs)
        .arg("--batch", a.batch)
        .arg("--min-steps", a.min_steps.unwrap_or(0))
        .arg("steps", schedule.total)
        .arg("batch size", schedule.batch)
        .arg("--lr", lr)
        .arg("--weight-decay", a.weight_decay)
        .arg("--warmup", schedule.warmup)
        .arg("--max-grad-norm", a.max_grad_norm)
        .arg("--seed", a.seed)
        .arg("--max-steps", a.max_steps.map_or("none".into(), |m| m.to_string()))
        .arg("--wise-alpha", a.wise_alpha)
        .arg("--kgcoop", a.objectives.kgcoop)
        .arg("--feature-preservation", a.objectives.feature_preservation)
        .arg("--reference-weight", a.objectives.reference_weight)
        .arg("--reference-loss", a.objectives.reference_loss)
        .arg(
            "--reference-batch",
            a.objectives.reference_batch.map_or("batch".into(), |b| b.to_string()),
        )
        .arg("--retention-set", opt(&a.retention_set))
        .arg("--min-retention", a.min_retention)
        .arg("--retention-every", a.retention_every);
    if let (Some(spec), Some(digest)) = (&a.objectives.reference, reference_digest) {
        r.content("--reference", digest, spec);
    }
    use crate::train::run::Method;
    match a.method {
        Method::Lora => {
            let l = &a.lora;
            r.arg("--rank", l.rank)
                .arg("--alpha", l.alpha)
                .arg("--lora-dropout", l.dropout)
                .arg("--targets", format!("{:?}", l.targets))
                .arg("--towers", format!("{:?}", l.towers))
                .arg("--layers", format!("{:?}", l.layers))
                .arg("--lora-scale", a.lora_scale);
        }
        Method::Prompt => {
            r.arg("--n-ctx", a.n_ctx)
                .arg("--ctx-init", opt(&a.ctx_init))
                .arg("--class-specific", a.class_specific);
        }
        Method::TextualInversion => {
            r.arg("--new-token", a.new_tokens.join(" "))
                .arg("--init-token", opt(&a.init_token));
        }
        Method::Full | Method::LinearProbe => {}
    }
    r
}

/// The record of a `cliptune pretrain` run (`data_digest` covers pixels and captions).
pub fn for_pretrain(a: &crate::train::pretrain::PretrainArgs, data_digest: &str) -> RunRecord {
    let mut r = RunRecord::new();
    let files: Vec<String> = a.vocab_texts.iter().map(|p| p.display().to_string()).collect();
    r.content("--data", data_digest, &a.data.display().to_string())
        .arg("--config", &a.config)
        .arg("--vocab-texts", files.join(" "))
        .arg("--template", a.templates.join(" | "))
        .arg("--epochs", a.epochs)
        .arg("--batch", a.batch)
        .arg("--lr", a.lr)
        .arg("--weight-decay", a.weight_decay)
        .arg("--warmup", a.warmup)
        .arg("--max-grad-norm", a.max_grad_norm)
        .arg("--seed", a.seed)
        .arg("--max-steps", a.max_steps.map_or("none".into(), |m| m.to_string()))
        .arg("--no-augment", !a.augment);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_argument_is_named_with_both_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.safetensors");
        let mut old = RunRecord::new();
        old.arg("--lr", 0.001).content("--data", "aaaa", "photos/");
        let t = crate::Tensor::from_vec(vec![1.0], &[1], &crate::Device::Cpu).unwrap();
        crate::tensor::io::write_safetensors_with_metadata(&path, &[("x", &t)], &old.metadata()).unwrap();
        assert!(old.check_resume(&path).is_ok());
        let mut moved = RunRecord::new();
        moved.arg("--lr", 0.001).content("--data", "aaaa", "elsewhere/photos/");
        assert!(
            moved.check_resume(&path).is_ok(),
            "the same content under another path is the same data"
        );
        let mut lr = RunRecord::new();
        lr.arg("--lr", 0.002).content("--data", "aaaa", "photos/");
        let e = lr.check_resume(&path).unwrap_err().msg;
        assert!(
            e.contains("--lr") && e.contains("\"0.001\"") && e.contains("\"0.002\""),
            "{e}"
        );
        let mut data = RunRecord::new();
        data.arg("--lr", 0.001).content("--data", "bbbb", "photos2/");
        let e = data.check_resume(&path).unwrap_err().msg;
        assert!(
            e.contains("content of --data") && e.contains("photos/") && e.contains("photos2/"),
            "{e}"
        );
    }
}
