//! `cliptune bench`: time one workload (see `cliptune::bench`) and print the result.
use clap::Args;
use cliptune::bench::{self, BenchSpec};
use cliptune::{Device, Error, Result};

#[derive(Args)]
pub struct BenchCli {
    /// embed-image, embed-text, lora-step, coop-step or linear-probe.
    #[arg(long)]
    workload: String,
    /// vit-b-32, vit-b-16, vit-l-14 (random weights) or a model directory.
    #[arg(long, default_value = "vit-b-32")]
    config: String,
    /// Images/texts per iteration (ignored by linear-probe: 1000 x 512 features).
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// auto (a real GPU, else the CPU backend), cpu, or gpu.
    #[arg(long, default_value = "auto")]
    device: String,
    /// Timed iterations.
    #[arg(long, default_value_t = 5)]
    iters: usize,
    /// Untimed iterations first.
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Print one JSON object instead of a line.
    #[arg(long)]
    json: bool,
}

pub fn run(a: BenchCli) -> Result<()> {
    let spec = BenchSpec {
        workload: a.workload,
        config: a.config,
        batch: a.batch,
        iters: a.iters,
        warmup: a.warmup,
    };
    // Names first: no device start-up for a typo.
    bench::validate(&spec)?;
    let dev = Device::select(a.device.parse()?)?;
    let r = bench::run(&spec, &dev)?;
    if a.json {
        println!("{}", r.to_json());
    } else {
        println!("{}", r.to_line());
    }
    match &r.error {
        Some(e) => Err(Error::new(r_kind(e), format!("bench stopped early: {e}"))),
        None => Ok(()),
    }
}

fn r_kind(e: &str) -> cliptune::ErrorKind {
    if e.contains("out of memory") {
        cliptune::ErrorKind::Limit
    } else {
        cliptune::ErrorKind::Invalid
    }
}
