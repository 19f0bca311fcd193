//! A timed mutation run of one fuzz target on the stable toolchain (no coverage feedback):
//! the committed corpus of `target`, mutated at random through the same entry as the
//! cargo-fuzz target, for `seconds`. Panics are caught and their inputs saved; an input that
//! takes over 30 s is reported as a hang. For machines where building the instrumented
//! cargo-fuzz targets is too slow.
//!
//! `cargo run --release --example fuzz_soak -- TARGET SECONDS [RNG_SEED]`
//! prints `target=.. seconds=.. runs=.. crashes=.. hangs=.. rng_seed=..` at the end; crash
//! inputs go to fuzz/artifacts/TARGET/.
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cliptune::fuzz_entry::{by_name, mutate, Rng, TARGETS};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = || -> ! {
        eprintln!(
            "usage: fuzz_soak TARGET SECONDS [RNG_SEED]; targets: {}",
            TARGETS.join(", ")
        );
        std::process::exit(2)
    };
    let (Some(target), Some(seconds)) = (args.get(1), args.get(2).and_then(|s| s.parse::<u64>().ok())) else {
        usage()
    };
    let Some(run) = by_name(target) else { usage() };
    let rng_seed = args.get(3).and_then(|s| s.parse::<u64>().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
            | 1
    });
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(root.join("corpus").join(target))
        .expect("fuzz/corpus/TARGET")
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    seeds.sort();
    assert!(!seeds.is_empty(), "empty corpus for {target}");
    let artifacts = root.join("artifacts").join(target);
    let scratch = std::env::temp_dir().join(format!("cliptune-soak-{target}-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();

    // Watchdog: the start time (ms since `t0`) of the input in flight, 0 between inputs.
    let t0 = Instant::now();
    let in_flight = Arc::new(AtomicU64::new(0));
    let current: Arc<std::sync::Mutex<Vec<u8>>> = Arc::default();
    {
        let (in_flight, current, artifacts, target) =
            (in_flight.clone(), current.clone(), artifacts.clone(), target.clone());
        std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_secs(1));
            let started = in_flight.load(Ordering::SeqCst);
            // `started` can be a millisecond ahead of this thread's clock reading.
            if started > 0 && (t0.elapsed().as_millis() as u64).saturating_sub(started) > 30_000 {
                std::fs::create_dir_all(&artifacts).unwrap();
                let p = artifacts.join("hang");
                std::fs::write(&p, &*current.lock().unwrap()).unwrap();
                println!("target={target} HANG: an input ran over 30 s; saved to {}", p.display());
                std::process::exit(3);
            }
        });
    }
    std::panic::set_hook(Box::new(|info| eprintln!("panic: {info}")));
    let mut rng = Rng(rng_seed);
    let (mut runs, mut crashes) = (0u64, 0u64);
    let end = Duration::from_secs(seconds);
    while t0.elapsed() < end {
        let seed = &seeds[rng.below(seeds.len())];
        let input = if runs < seeds.len() as u64 {
            seed.clone()
        } else {
            mutate(seed, &mut rng)
        };
        *current.lock().unwrap() = input.clone();
        in_flight.store(t0.elapsed().as_millis() as u64 + 1, Ordering::SeqCst);
        let ok = catch_unwind(AssertUnwindSafe(|| run(&scratch, &input))).is_ok();
        in_flight.store(0, Ordering::SeqCst);
        runs += 1;
        if !ok {
            crashes += 1;
            std::fs::create_dir_all(&artifacts).unwrap();
            let p = artifacts.join(format!("crash-{crashes}"));
            std::fs::write(&p, &input).unwrap();
            eprintln!("crash input saved to {}", p.display());
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    println!(
        "target={target} seconds={:.0} runs={runs} crashes={crashes} hangs=0 rng_seed={rng_seed}",
        t0.elapsed().as_secs_f64()
    );
}
