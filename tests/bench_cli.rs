//! `cliptune bench` through the binary on the tiny fixture model: every workload prints one
//! JSON object with positive timings; bad workload/config names exit 1 listing the valid ones.
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
