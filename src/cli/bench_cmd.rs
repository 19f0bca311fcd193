//! `cliptune bench`: time one workload or one kernel (see `cliptune::bench`) and print
//! the result(s).
use clap::Args;
use cliptune::bench::kernel::{self, KernelBenchSpec};
use cliptune::bench::{self, BenchSpec, HostBudget};
use cliptune::{Device, Error, Result};

#[derive(Args)]
pub struct BenchCli {
    /// embed-image, embed-text, lora-step, coop-step or linear-probe.
    #[arg(long, required_unless_present = "kernel", conflicts_with = "kernel")]
    workload: Option<String>,
    /// Time one kernel instead: matmul, attention, layernorm, softmax, contrastive or
    /// adamw, at CLIP's shapes unless --shape is given; one result per shape.
    #[arg(long)]
    kernel: Option<String>,
    /// With --kernel: a shape to time instead of the defaults (repeatable; also
    /// comma-separated), e.g. 1600x768x768 for matmul (MxNxK), 32x12x77x64 for
    /// attention (BxHxSxD).
    #[arg(long, value_delimiter = ',', requires = "kernel")]
    shape: Vec<String>,
    /// With --kernel matmul: auto, naive (the first kernel), tile128, tile128x64, tile64, skinny
    /// or splitk.
    #[arg(long, default_value = "auto", requires = "kernel")]
    variant: String,
    /// vit-b-32, vit-b-16, vit-l-14 (random weights) or a model directory.
    #[arg(long, default_value = "vit-b-32")]
    config: String,
    /// Images/texts per iteration (ignored by linear-probe: 1000 x 512 features).
    #[arg(long, value_parser = super::args::positive_count, default_value_t = 32)]
    batch: usize,
    /// auto (a real GPU, else the CPU backend), cpu, or gpu.
    #[arg(long, default_value = "auto")]
    device: String,
    /// Timed iterations.
    #[arg(long, value_parser = super::args::positive_count, default_value_t = 5)]
    iters: usize,
    /// Untimed iterations first.
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Print one JSON object instead of a line.
    #[arg(long)]
    json: bool,
    /// Host heap budget: 512M, 2G, 1.5G, 1500MiB, plain bytes (K/M/G/T are powers of
    /// 1024), or none. Default (Linux): the heap in use at the start plus 95 % of
    /// MemAvailable. Running over it prints the result reached with "out of memory" in
    /// `error` and exits with status 3. Counts the Rust heap only, an approximation of RSS:
    /// memory-mapped checkpoints and GPU memory are not counted.
    #[arg(long, value_name = "SIZE")]
    max_memory: Option<String>,
    /// No progress lines on stderr (setup time, each iteration's time and the ETA).
    #[arg(long)]
    quiet: bool,
}

pub fn run(a: BenchCli) -> Result<()> {
    let Some(workload) = a.workload else {
        return run_kernel(a);
    };
    let spec = BenchSpec {
        workload,
        config: a.config,
        batch: a.batch,
        iters: a.iters,
        warmup: a.warmup,
        host_budget: match &a.max_memory {
            Some(s) => HostBudget::parse(s)?,
            None => HostBudget::Auto,
        },
        progress: !a.quiet,
    };
    // Names first: no device start-up for a typo.
    bench::validate(&spec)?;
    let dev = Device::select(a.device.parse()?)?;
    let r = bench::run(&spec, &dev, a.json)?;
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

fn run_kernel(a: BenchCli) -> Result<()> {
    let spec = KernelBenchSpec {
        kernel: a.kernel.unwrap_or_default(),
        shapes: a.shape,
        variant: a.variant,
        iters: a.iters,
        warmup: a.warmup,
        progress: !a.quiet,
    };
    // Names and shapes first: no device start-up for a typo.
    kernel::validate(&spec)?;
    let dev = Device::select(a.device.parse()?)?;
    kernel::run(&spec, &dev, |r| {
        if a.json {
            println!("{}", r.to_json());
        } else {
            println!("{}", r.to_line());
        }
    })?;
    Ok(())
}

fn r_kind(e: &str) -> cliptune::ErrorKind {
    if e.contains("out of memory") {
        cliptune::ErrorKind::Limit
    } else {
        cliptune::ErrorKind::Invalid
    }
}
