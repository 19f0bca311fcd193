//! `cliptune bench` through the binary on the tiny fixture model: every workload prints one
//! JSON object with positive timings; bad workload/config names exit 1 listing the valid ones.
//! Host out-of-memory under `--max-memory`: the result reached, with `error` set, and
//! `OOM_EXIT_CODE`.
use std::path::PathBuf;
use std::process::Command;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cliptune"));
    c.env("XDG_RUNTIME_DIR", "/tmp");
    c
}

fn tiny() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tiny-clip/hf")
        .display()
        .to_string()
}

fn bench(workload: &str, config: &str, json: bool) -> std::process::Output {
    let mut c = bin();
    c.args([
        "bench",
        "--workload",
        workload,
        "--config",
        config,
        "--batch",
        "4",
        "--iters",
        "1",
        "--warmup",
        "0",
        "--device",
        "cpu",
    ]);
    if json {
        c.arg("--json");
    }
    c.output().unwrap()
}

#[test]
fn every_workload_prints_one_json_object() {
    for w in ["embed-image", "embed-text", "lora-step", "coop-step", "linear-probe"] {
        let o = bench(w, &tiny(), true);
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success(), "{w} failed: {}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(out.trim().lines().count(), 1, "{w}: one line of JSON, got {out}");
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(v["workload"], w);
        assert_eq!(v["device"], "cpu");
        assert_eq!(v["batch"], 4);
        assert_eq!(v["iters"], 1);
        for k in ["median_s", "min_s", "items_per_s", "peak_rss_mib"] {
            let x = v[k].as_f64().unwrap_or_else(|| panic!("{w}: {k} missing in {v}"));
            assert!(x > 0.0 && x.is_finite(), "{w}: {k} = {x}");
        }
        assert!(v["peak_device_mib"].is_null(), "{w}: no device memory on CPU");
        // Progress on stderr (never on stdout, which holds only the JSON).
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("[bench] setup took"), "{w}: no setup progress in {err}");
        assert!(err.contains("[bench] iter 1/1:"), "{w}: no iteration progress in {err}");
        assert!(v.get("error").is_none(), "{w}: {v}");
    }
}

#[test]
fn readable_line_without_json() {
    let o = bench("embed-text", &tiny(), false);
    assert!(o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("embed-text") && out.contains("median"), "{out}");
}

#[test]
fn unknown_names_list_the_valid_ones() {
    let o = bench("embed-everything", &tiny(), true);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    for w in ["embed-image", "embed-text", "lora-step", "coop-step", "linear-probe"] {
        assert!(err.contains(w), "{err}");
    }
    assert!(o.stdout.is_empty());

    let o = bench("embed-image", "vit-z-99", true);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    for c in ["vit-b-32", "vit-b-16", "vit-l-14"] {
        assert!(err.contains(c), "{err}");
    }
}

/// `cliptune bench --device cpu` plus `args`.
fn bench_args(args: &[&str]) -> std::process::Output {
    let mut c = bin();
    c.args(["bench", "--device", "cpu"]).args(args);
    c.output().unwrap()
}

/// The same, `args` split at spaces.
fn bench_words(args: &str) -> std::process::Output {
    bench_args(&args.split_whitespace().collect::<Vec<_>>())
}

fn one_json(o: &std::process::Output) -> serde_json::Value {
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(out.trim().lines().count(), 1, "one line of JSON, got {out}");
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn keys(v: &serde_json::Value) -> Vec<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

const OOM: i32 = cliptune::alloc_guard::OOM_EXIT_CODE;

#[test]
fn host_oom_in_setup_prints_what_was_reached() {
    // vit-b-32's random weights alone are ~580 MiB.
    let o = bench_words("--workload embed-image --config vit-b-32 --iters 1 --warmup 0 --max-memory 64M --json");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(OOM), "{err}");
    let v = one_json(&o);
    let e = v["error"].as_str().unwrap_or_else(|| panic!("no error in {v}"));
    assert!(e.contains("out of memory") && e.contains("setup"), "{e}");
    assert!(e.contains("host budget of 64.0 MiB"), "{e}");
    assert_eq!(v["iters"], 0);
    assert_eq!(v["times_s"], serde_json::json!([]));
    assert_eq!(v["host_budget_mib"].as_f64(), Some(64.0));
    if cfg!(target_os = "linux") {
        assert!(v["peak_rss_mib"].as_f64().unwrap() > 0.0, "{v}");
    }
    // The shape of a normal result, `error` added.
    let ok = one_json(&bench("embed-text", &tiny(), true));
    let mut want = keys(&ok);
    want.push("error".into());
    want.sort();
    assert_eq!(keys(&v), want);
    // One error line (progress lines aside).
    assert_eq!(err.lines().filter(|l| !l.starts_with("[bench]")).count(), 1, "{err}");
    assert!(err.contains("out of memory") && err.contains("64.0 MiB"), "{err}");

    // Without --json: one readable line.
    let o = bench_words("--workload embed-image --config vit-b-32 --max-memory 64M");
    assert_eq!(o.status.code(), Some(OOM));
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(out.trim().lines().count(), 1, "{out}");
    assert!(
        out.contains("host budget 64 MiB") && out.contains("STOPPED: out of memory (host) during setup"),
        "{out}"
    );
}

#[test]
fn host_oom_in_an_iteration_names_it() {
    // Setup holds the weights (~580 MiB) and the batch of 1024 images (588 MiB): ~1170 MiB.
    // The first op of an iteration allocates another image-batch-sized buffer (-> ~1750 MiB).
    // 1450 MiB is ~280 MiB clear of both, and the run stops at that first op (seconds).
    let o = bench_words(
        "--workload embed-image --config vit-b-32 --batch 1024 --iters 1 --warmup 1 --max-memory 1450M --json",
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(OOM), "{err}");
    let v = one_json(&o);
    let e = v["error"].as_str().unwrap_or_else(|| panic!("no error in {v}"));
    assert!(
        e.contains("out of memory") && e.contains("in warmup iteration 1 after 0 timed iterations"),
        "{e}"
    );
    assert!(!e.contains("setup"), "{e}");
    assert_eq!(v["batch"], 1024);
    assert_eq!(v["host_budget_mib"].as_f64(), Some(1450.0));
    if cfg!(target_os = "linux") {
        assert!(
            v["peak_rss_mib"].as_f64().unwrap() > 1000.0,
            "setup's memory is in the peak: {v}"
        );
    }
    assert!(
        err.contains("warmup iteration 1") && err.contains("1450.0 MiB"),
        "{err}"
    );
}

#[test]
fn bad_max_memory_names_the_flag_and_the_forms() {
    for bad in ["banana", "0", "12Q", "1.2.3G"] {
        let o = bench_args(&["--workload", "embed-text", "--config", &tiny(), "--max-memory", bad]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{bad}: {err}");
        // One error line (progress lines aside).
        assert_eq!(err.lines().filter(|l| !l.starts_with("[bench]")).count(), 1, "{err}");
        assert!(err.contains(&format!("--max-memory '{bad}'")), "{err}");
        for form in ["512M", "2G", "1500MiB", "none"] {
            assert!(err.contains(form), "{err}");
        }
        assert!(o.stdout.is_empty());
    }
}

#[test]
fn max_memory_forms_and_the_default() {
    let t = tiny();
    let budget = |extra: &[&str]| {
        let mut a = vec![
            "--workload",
            "embed-text",
            "--config",
            &t,
            "--batch",
            "2",
            "--iters",
            "1",
            "--json",
        ];
        a.extend_from_slice(extra);
        let o = bench_args(&a);
        assert!(o.status.success(), "{extra:?}: {}", String::from_utf8_lossy(&o.stderr));
        let v = one_json(&o);
        assert!(v.get("error").is_none(), "{v}");
        v["host_budget_mib"].clone()
    };
    assert_eq!(budget(&["--max-memory", "8G"]).as_f64(), Some(8192.0));
    assert_eq!(budget(&["--max-memory", "1500MiB"]).as_f64(), Some(1500.0));
    assert_eq!(budget(&["--max-memory", "1073741824"]).as_f64(), Some(1024.0));
    assert!(budget(&["--max-memory", "none"]).is_null());
    if std::path::Path::new("/proc/meminfo").exists() {
        let b = budget(&[]).as_f64().expect("a default budget from MemAvailable");
        assert!(b > 0.0);
    }
    let o = bench_args(&[
        "--workload",
        "embed-text",
        "--config",
        &tiny(),
        "--iters",
        "1",
        "--max-memory",
        "8G",
    ]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("host budget 8192 MiB"));
    let help = String::from_utf8_lossy(&bin().args(["bench", "--help"]).output().unwrap().stdout).to_string();
    assert!(help.contains(&format!("exits with status {OOM}")), "{help}");
}

#[test]
fn quiet_drops_the_progress_lines() {
    let o = bench_args(&[
        "--workload",
        "linear-probe",
        "--config",
        &tiny(),
        "--iters",
        "1",
        "--warmup",
        "0",
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("[bench]"), "--quiet still printed progress: {err}");
    assert!(String::from_utf8_lossy(&o.stdout).contains("linear-probe"));
}

/// The binary with `args` split at spaces (no implied --device).
fn cli_words(args: &str) -> std::process::Output {
    bin().args(args.split_whitespace()).output().unwrap()
}

/// `--kernel` on the CPU and on the WGSL device: one JSON object per shape with the keys
/// tools/bench_kernels_torch.py writes too; FLOP and byte rates consistent with the time.
#[test]
fn every_kernel_prints_one_json_object_per_shape() {
    let small = [
        ("matmul", "33x20x17,2x9x8x12"),
        ("attention", "2x3x9x64,1x2x5x16"),
        ("layernorm", "7x24"),
        ("softmax", "9x13"),
        ("contrastive", "6x16"),
        ("adamw", "1000"),
    ];
    for device in ["cpu", "gpu"] {
        for (kernel, shapes) in small {
            let args = format!(
                "bench --kernel {kernel} --shape {shapes} --device {device} --iters 2 --warmup 1 --json --quiet"
            );
            let o = cli_words(&args);
            assert!(o.status.success(), "{args}: {}", String::from_utf8_lossy(&o.stderr));
            let out = String::from_utf8_lossy(&o.stdout);
            let lines: Vec<&str> = out.trim().lines().collect();
            let want: Vec<&str> = shapes.split(',').collect();
            assert_eq!(lines.len(), want.len(), "{args}: one object per shape, got {out}");
            for (line, shape) in lines.iter().zip(want) {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                assert_eq!(v["kernel"], kernel);
                assert_eq!(v["shape"], shape);
                assert_eq!(v["iters"], 2);
                let wall = v["wall_ms"].as_f64().unwrap();
                assert!(wall > 0.0 && wall.is_finite(), "{args}: wall_ms {v}");
                let (gflops, gbps) = (v["gflops"].as_f64().unwrap(), v["gbps"].as_f64().unwrap());
                assert!(gflops > 0.0 && gbps > 0.0, "{args}: {v}");
                if device == "cpu" {
                    assert_eq!(v["backend"], "cpu");
                    assert!(v["gpu_ms"].is_null(), "{args}: no GPU time on the CPU: {v}");
                } else {
                    assert_ne!(v["backend"], "cpu");
                    assert!(!v["adapter"].as_str().unwrap().is_empty());
                    // gpu_ms is null only without timestamp queries; never above the wall time.
                    if let Some(g) = v["gpu_ms"].as_f64() {
                        assert!(g > 0.0 && g <= wall, "{args}: gpu_ms {g} vs wall_ms {wall}");
                    }
                }
            }
        }
    }
}

#[test]
fn kernel_bench_bad_input_names_the_flag() {
    let cases = [
        ("bench --kernel matmull --device cpu", "valid kernels are"),
        ("bench --kernel matmul --shape 16x16 --device cpu", "--shape '16x16'"),
        ("bench --kernel matmul --shape 16x0x4 --device cpu", "at least 1"),
        ("bench --kernel attention --shape 2xax9x64 --device cpu", "not a number"),
        (
            "bench --kernel matmul --variant tile999 --device cpu",
            "valid variants are",
        ),
        (
            "bench --kernel softmax --variant naive --device cpu",
            "only the matmul kernel",
        ),
        (
            "bench --kernel matmul --shape 8x8x8 --variant naive --device cpu",
            "GPU kernels",
        ),
    ];
    for (args, want) in cases {
        let o = cli_words(args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args} should fail");
        assert!(err.contains(want), "{args}: expected '{want}' in: {err}");
        assert!(
            o.stdout.is_empty(),
            "{args}: nothing on stdout, got {}",
            String::from_utf8_lossy(&o.stdout)
        );
    }
    // --workload and --kernel together, and neither, are usage errors.
    assert!(!cli_words("bench --kernel matmul --workload lora-step").status.success());
    assert!(!cli_words("bench --device cpu").status.success());
}
