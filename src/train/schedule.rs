//! The step schedule: how many steps, the learning rate at each, and the batch order.
use crate::tensor::Rng;

/// lr at `step` (0-based): linear warmup to `base`, then cosine decay to 0.
pub fn lr_at(base: f32, step: usize, warmup: usize, total: usize) -> f32 {
    if step < warmup {
        return base * (step + 1) as f32 / warmup as f32;
    }
    let progress = (step - warmup) as f32 / (total - warmup).max(1) as f32;
    base * 0.5 * (1.0 + (std::f32::consts::PI * progress.min(1.0)).cos())
}

/// Batches of indices for each epoch, shuffled with the seed.
pub(crate) fn batches(n: usize, batch: usize, epoch: usize, seed: u64) -> Vec<Vec<usize>> {
    let mut idx: Vec<usize> = (0..n).collect();
    let mut rng = Rng::new(seed ^ (epoch as u64).wrapping_mul(0x9E37));
    for i in (1..n).rev() {
        idx.swap(i, rng.below(i + 1));
    }
    idx.chunks(batch.max(1)).map(|c| c.to_vec()).collect()
}

/// The run's length and warmup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    pub batch: usize,
    pub epochs: usize,
    pub total: usize,
    pub warmup: usize,
    /// How the length was chosen, for the progress header.
    pub why: String,
}

impl Schedule {
    /// `epochs` passes over `n` examples at `batch`, cut at `max_steps`; warmup 10 % of
    /// the steps (at most 100) unless given.
    ///
    /// With a floor (`min_steps`), small data still gets enough optimizer steps: the batch
    /// is capped at a quarter of the data (at least 4 batches an epoch) and the epochs are
    /// extended until the run reaches the floor (`max_steps` still cuts it).
    pub fn new(
        n: usize,
        batch: usize,
        epochs: usize,
        max_steps: Option<usize>,
        warmup: Option<usize>,
        min_steps: Option<usize>,
    ) -> Schedule {
        let (mut batch, mut epochs) = (batch, epochs);
        let floor = min_steps.unwrap_or(0);
        let mut why;
        if floor > 0 {
            // Never below 2 unless asked: a contrastive batch of one pair has nothing to
            // contrast (its loss is 0 whatever the weights).
            batch = batch.min(n.div_ceil(4).max(2));
        }
        let per_epoch = n.div_ceil(batch);
        let mut total = per_epoch * epochs;
        if total < floor {
            why = format!(
                "floor of {floor} because the data gives {per_epoch} batches/epoch of {batch} ({epochs} epochs would be {total} steps)"
            );
            epochs = floor.div_ceil(per_epoch);
            total = floor;
        } else {
            why = format!("{epochs} epochs of {per_epoch} batches of {batch}");
        }
        if let Some(m) = max_steps.filter(|&m| m < total) {
            total = m;
            why = format!("--max-steps {m} (otherwise: {why})");
        }
        Schedule {
            batch,
            epochs,
            total,
            warmup: warmup.unwrap_or((total / 10).min(100)),
            why,
        }
    }
}
