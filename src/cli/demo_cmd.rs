//! `cliptune demo`: argument parsing for `cliptune::demo` (every method on a new domain,
//! target accuracy and retention side by side).
use std::path::PathBuf;

use clap::Args;
use cliptune::demo::{run_demo, table, DemoArgs};
use cliptune::{Device, Result};

#[derive(Args)]
pub struct DemoCli {
    /// A Hugging Face CLIPModel directory with heldout.json/.png (default: the embedded cliptune-mini).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Held-out sprite sheet of the model's own domain (default: MODEL/heldout.json).
    #[arg(long)]
    heldout: Option<PathBuf>,
    /// General sprite sheet (classes + captions, none of them held-out classes) for the
    /// regularised rows' reference term (default: MODEL/reference.json where it exists).
    #[arg(long)]
    reference: Option<PathBuf>,
    /// Report directory (new, empty, or a previous demo report, which is replaced).
    #[arg(long, default_value = "demo-report")]
    out: PathBuf,
    /// Fashion-MNIST training images per class.
    #[arg(long, value_parser = super::args::positive_count, default_value_t = 16)]
    shots: usize,
    /// Fashion-MNIST test images per class.
    #[arg(long, value_parser = super::args::positive_count, default_value_t = 100)]
    test_per_class: usize,
    /// Epochs for every method (default: per method, about 10 minutes on 2 CPU cores in all).
    #[arg(long, value_parser = super::args::positive_count)]
    epochs: Option<usize>,
    /// At most this many steps per method.
    #[arg(long, value_parser = super::args::positive_count)]
    max_steps: Option<usize>,
    /// Only these rows, comma-separated keys (e.g. lora-both,lora-both-fp); default: all.
    #[arg(long, value_delimiter = ',')]
    methods: Option<Vec<String>>,
    /// auto (a real GPU, else the CPU backend), cpu, or gpu (any adapter).
    #[arg(long, default_value = "auto")]
    device: String,
    /// Print results.json instead of the table.
    #[arg(long)]
    json: bool,
}

pub fn run(c: DemoCli) -> Result<()> {
    // Refuse a foreign --out before anything slow (device start-up) happens.
    cliptune::demo::check_out(&c.out)?;
    let _lock = cliptune::io::lock::lock_beside(&c.out, "demo")?;
    let mut a = DemoArgs::new(c.out);
    a.model = c.model;
    a.heldout = c.heldout;
    a.reference = c.reference;
    a.shots = c.shots;
    a.test_per_class = c.test_per_class;
    a.epochs = c.epochs;
    a.max_steps = c.max_steps;
    a.methods = c.methods;
    a.device = Device::select(c.device.parse()?)?;
    let r = run_demo(&a)?;
    if c.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&cliptune::demo::results_json(&r)).unwrap_or_default()
        );
    } else {
        println!();
        print!("{}", table(&r));
    }
    eprintln!(
        "[demo] done in {:.0}s ({:.1} min); report: {}",
        r.seconds,
        r.seconds / 60.0,
        r.out.join("report.html").display()
    );
    Ok(())
}
