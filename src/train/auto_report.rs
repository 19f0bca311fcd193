//! `--method auto`'s result: each candidate's outcome, the choice among them, and the
//! table written as `auto.json` and `auto.md`.
use super::auto::Candidate;

/// What happened to one candidate.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Trained {
        val_top1: f32,
        retention: f32,
        retention_top1: f32,
        steps: usize,
        seconds: f32,
    },
    Skipped(String),
    Failed(String),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Tried {
    pub candidate: Candidate,
    pub outcome: Outcome,
}

/// The ladder's result, also written as `auto.json` and `auto.md`.
#[derive(Clone, Debug, PartialEq)]
pub struct AutoReport {
    pub min_retention: f32,
    pub retention_set: String,
    pub train_images: usize,
    pub val_images: usize,
    /// The base model's zero-shot top-1 on the validation split and the retention set.
    pub base_val_top1: f32,
    pub base_retention_top1: f32,
    pub tried: Vec<Tried>,
    /// Index into `tried` of the adapter written to `--out`.
    pub chosen: Option<usize>,
    /// Whether the chosen candidate meets `min_retention`.
    pub met: bool,
    pub why: String,
    /// The chosen candidate retrained on all the data (None: nothing met the floor).
    pub refit: Option<Refit>,
}

/// What became of retraining the chosen candidate on all the images (training and
/// validation split together) before writing it.
#[derive(Clone, Debug, PartialEq)]
pub enum Refit {
    /// Its retention still meets the floor: the refit adapter is the one written.
    Kept {
        images: usize,
        retention: f32,
    },
    /// Its retention fell below the floor: the split-trained adapter is written.
    BelowFloor {
        images: usize,
        retention: f32,
    },
    Skipped(String),
    Failed(String),
}

impl Refit {
    fn json(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            Refit::Kept { images, retention } => json!({"status": "kept", "images": images, "retention": retention}),
            Refit::BelowFloor { images, retention } => {
                json!({"status": "below_floor", "images": images, "retention": retention})
            }
            Refit::Skipped(why) => json!({"status": "skipped", "why": why}),
            Refit::Failed(why) => json!({"status": "failed", "why": why}),
        }
    }

    fn sentence(&self, floor: f32) -> String {
        match self {
            Refit::Kept { images, retention } => format!(
                "retrained on all {images} images (training and validation split); its retention {retention:.3} still \
                 meets {floor}, so that adapter is the one written (its accuracy has no held-out images left to be \
                 measured on; the validation top-1 above is the split-trained one's)"
            ),
            Refit::BelowFloor { images, retention } => format!(
                "retrained on all {images} images, its retention fell to {retention:.3}, below {floor}: the \
                 split-trained adapter is the one written"
            ),
            Refit::Skipped(why) => {
                format!("not retrained on all the images ({why}): the split-trained adapter is written")
            }
            Refit::Failed(why) => format!(
                "retraining on all the images failed ({}): the split-trained adapter is written",
                why.replace('|', "/").replace('\n', " ")
            ),
        }
    }
}

/// Best validation top-1 among those meeting the floor (ties: the earlier, cheaper rung);
/// else the best retention (ties: the better validation top-1).
pub fn choose(tried: &[Tried], floor: f32) -> (Option<usize>, bool, String) {
    let trained: Vec<(usize, f32, f32)> = tried
        .iter()
        .enumerate()
        .filter_map(|(i, t)| match t.outcome {
            Outcome::Trained {
                val_top1, retention, ..
            } => Some((i, val_top1, retention)),
            _ => None,
        })
        .collect();
    let meeting: Vec<&(usize, f32, f32)> = trained.iter().filter(|t| t.2 >= floor).collect();
    if let Some(best) = meeting.iter().fold(None::<&&(usize, f32, f32)>, |b, t| match b {
        Some(b) if b.1 >= t.1 => Some(b),
        _ => Some(t),
    }) {
        let key = &tried[best.0].candidate.key;
        let others = meeting.len() - 1;
        let why = format!(
            "{key}: the best validation top-1 ({:.2}%) among the {} candidate{} whose retention meets {floor} \
             (its retention {:.3}){}",
            100.0 * best.1,
            meeting.len(),
            if meeting.len() == 1 { "" } else { "s" },
            best.2,
            if others == 0 && trained.len() > 1 {
                "; no other candidate met the floor".to_string()
            } else {
                String::new()
            }
        );
        return (Some(best.0), true, why);
    }
    match trained.iter().fold(None::<&(usize, f32, f32)>, |b, t| match b {
        Some(b) if b.2 > t.2 || (b.2 == t.2 && b.1 >= t.1) => Some(b),
        _ => Some(t),
    }) {
        Some(best) => (
            Some(best.0),
            false,
            format!(
                "no candidate's retention meets {floor}; kept {}, the best retention ({:.3}, validation top-1 {:.2}%)",
                tried[best.0].candidate.key,
                best.2,
                100.0 * best.1
            ),
        ),
        None => (None, false, "every candidate was skipped or failed".into()),
    }
}

impl AutoReport {
    pub(super) fn retention_of(&self, i: usize) -> Option<f32> {
        match self.tried.get(i)?.outcome {
            Outcome::Trained { retention, .. } => Some(retention),
            _ => None,
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::json;
        let rows: Vec<serde_json::Value> = self
            .tried
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let mut r = json!({"candidate": t.candidate.key, "method": t.candidate.method.name(), "chosen": self.chosen == Some(i)});
                let o = r.as_object_mut().expect("an object");
                match &t.outcome {
                    Outcome::Trained {
                        val_top1,
                        retention,
                        retention_top1,
                        steps,
                        seconds,
                    } => {
                        o.insert("status".into(), json!("trained"));
                        o.insert("val_top1".into(), json!(val_top1));
                        o.insert("retention".into(), json!(retention));
                        o.insert("retention_top1".into(), json!(retention_top1));
                        o.insert("meets_min_retention".into(), json!(*retention >= self.min_retention));
                        o.insert("steps".into(), json!(steps));
                        o.insert("seconds".into(), json!(seconds));
                    }
                    Outcome::Skipped(why) => {
                        o.insert("status".into(), json!("skipped"));
                        o.insert("why".into(), json!(why));
                    }
                    Outcome::Failed(why) => {
                        o.insert("status".into(), json!("failed"));
                        o.insert("why".into(), json!(why));
                    }
                }
                r
            })
            .collect();
        json!({
            "min_retention": self.min_retention,
            "retention_set": self.retention_set,
            "train_images": self.train_images,
            "val_images": self.val_images,
            "base": {"val_top1": self.base_val_top1, "retention_top1": self.base_retention_top1},
            "candidates": rows,
            "chosen": self.chosen.map(|i| self.tried[i].candidate.key.clone()),
            "meets_min_retention": self.met,
            "why": self.why,
            "refit": self.refit.as_ref().map(Refit::json),
        })
    }

    pub fn to_markdown(&self) -> String {
        let mut s = format!(
            "# cliptune train --method auto\n\n{} training / {} validation images; retention: zero-shot top-1 on \
             {} relative to the base model (base {:.2}%), floor {}.\n\n\
             | candidate | validation top-1 | retention | meets floor | steps | time | note |\n\
             |---|---|---|---|---|---|---|\n\
             | zero-shot (base) | {:.2}% | 1.000 | yes | 0 | - | the starting point |\n",
            self.train_images,
            self.val_images,
            self.retention_set,
            100.0 * self.base_retention_top1,
            self.min_retention,
            100.0 * self.base_val_top1
        );
        for (i, t) in self.tried.iter().enumerate() {
            let mark = if self.chosen == Some(i) { " **chosen**" } else { "" };
            match &t.outcome {
                Outcome::Trained {
                    val_top1,
                    retention,
                    steps,
                    seconds,
                    ..
                } => s.push_str(&format!(
                    "| {}{mark} | {:.2}% | {retention:.3} | {} | {steps} | {seconds:.1}s | |\n",
                    t.candidate.key,
                    100.0 * val_top1,
                    if *retention >= self.min_retention { "yes" } else { "no" }
                )),
                Outcome::Skipped(why) => s.push_str(&format!(
                    "| {} | - | - | - | - | - | skipped: {why} |\n",
                    t.candidate.key
                )),
                Outcome::Failed(why) => s.push_str(&format!(
                    "| {} | - | - | - | - | - | failed: {} |\n",
                    t.candidate.key,
                    why.replace('|', "/").replace('\n', " ")
                )),
            }
        }
        s.push_str(&format!("\nChosen: {}\n", self.why));
        if let Some(r) = &self.refit {
            s.push_str(&format!("\nRefit: {}\n", r.sentence(self.min_retention)));
        }
        s
    }
}
