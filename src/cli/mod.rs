//! Subcommands.
mod devices;

use clap::{Parser, Subcommand};
use cliptune::Result;

#[derive(Parser)]
#[command(name = "cliptune", version, about = "Fine-tune CLIP without breaking it")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the compute devices cliptune sees (GPU adapters and the CPU backend).
    Devices {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Engine self-check: every kernel on the device against the CPU oracle, then a
    /// small two-tower contrastive transformer trained for 40 steps.
    Check {
        /// auto (a real GPU, else the CPU backend), cpu, or gpu (any adapter).
        #[arg(long, default_value = "auto")]
        device: String,
    },
}

pub fn run() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Devices { json } => devices::run(json),
        Command::Check { device } => {
            let dev = cliptune::Device::select(device.parse()?)?;
            cliptune::selfcheck::run(&dev)
        }
    }
}
