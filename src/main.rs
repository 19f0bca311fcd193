//! The `cliptune` binary: argument parsing and progress output only; the work is in
//! the library.
mod cli;

// Counts the heap so `cliptune bench` can stop with a report under a host memory budget.
#[global_allocator]
static ALLOC: cliptune::alloc_guard::GuardedAlloc = cliptune::alloc_guard::GuardedAlloc;

fn main() {
    if let Err(e) = cli::run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
