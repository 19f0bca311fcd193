//! The `cliptune` binary: argument parsing and progress output only; the work is in
//! the library.
mod cli;

fn main() {
    if let Err(e) = cli::run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
