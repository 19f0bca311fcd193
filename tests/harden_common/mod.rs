//! Shared by the training-hardening tests (with `mod common;` beside it: the binary and
//! fresh directories come from `common::cli`): tiny data sets, runs, their outputs.
#![allow(dead_code)]
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub use crate::common::cli::{bin, fresh};
pub use crate::common::tiny_model_dir as model;

/// An 8x8 PNG: a class colour plus a per-image pattern.
pub fn png(path: &Path, class: u8, i: u8) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let img = image::RgbImage::from_fn(8, 8, |x, y| {
        let v = (x as u8).wrapping_mul(29) ^ (y as u8).wrapping_mul(13) ^ i.wrapping_mul(7);
        match class % 3 {
            0 => image::Rgb([200, v, v / 2]),
            1 => image::Rgb([v / 2, 200, v]),
            _ => image::Rgb([v, v / 2, 200]),
        }
    });
    img.save(path).unwrap();
}

/// Class folders `root/<class>/<i>.png`, `per` images for each class name.
pub fn class_folders(root: &Path, classes: &[&str], per: u8) -> PathBuf {
    for (c, name) in classes.iter().enumerate() {
        for i in 0..per {
            png(&root.join(name).join(format!("{i}.png")), c as u8, i);
        }
    }
    root.to_path_buf()
}

/// A caption CSV over new images: `rows` (class, caption).
pub fn caption_csv(dir: &Path, rows: &[(u8, &str)]) -> PathBuf {
    let mut text = String::from("image,caption\n");
    for (i, (c, cap)) in rows.iter().enumerate() {
        let img = dir.join(format!("img{i}.png"));
        png(&img, *c, i as u8);
        text.push_str(&format!("img{i}.png,{cap}\n"));
    }
    let p = dir.join("captions.csv");
    std::fs::write(&p, text).unwrap();
    p
}

/// `cliptune train` on the tiny model, LoRA rank 2, checkpoint every step, exactly the
/// epochs asked (no small-data step floor); a flag in `extra` (`--flag value`,
/// `--flag=value` or a bare switch) replaces the default.
pub fn train(data: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut c = bin();
    c.arg("train").args(train_args(data, out, extra));
    c
}

/// The flags [`train`] passes after `train` (also for the library's `cli::train`).
pub fn train_args(data: &Path, out: &Path, extra: &[&str]) -> Vec<String> {
    let defaults = [
        ("--method", "lora"),
        ("--min-steps", "0"),
        ("--epochs", "3"),
        ("--batch", "4"),
        ("--rank", "2"),
        ("--lr", "1e-2"),
        ("--checkpoint-every", "1"),
        ("--seed", "3"),
    ];
    let given: Vec<&str> = extra
        .iter()
        .filter(|a| a.starts_with("--"))
        .map(|a| a.split('=').next().unwrap())
        .collect();
    let mut v: Vec<String> = vec!["--device".into(), "cpu".into(), "--model".into()];
    v.push(model().display().to_string());
    v.extend([
        "--data".into(),
        data.display().to_string(),
        "--out".into(),
        out.display().to_string(),
    ]);
    for (flag, value) in defaults {
        if !given.contains(&flag) {
            v.extend([flag.to_string(), value.to_string()]);
        }
    }
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

/// Exit code (None: killed by a signal) and stderr.
pub fn run(c: &mut Command) -> (Option<i32>, String) {
    let o: Output = c.output().unwrap();
    (o.status.code(), String::from_utf8_lossy(&o.stderr).to_string())
}

/// Run and require success; returns stderr.
pub fn ok(c: &mut Command) -> String {
    let (code, err) = run(c);
    assert_eq!(code, Some(0), "command failed:\n{err}");
    err
}

/// Run and require exit code `want`; returns stderr.
pub fn fails(c: &mut Command, want: i32) -> String {
    let (code, err) = run(c);
    assert_eq!(code, Some(want), "expected exit {want}:\n{err}");
    err
}

pub fn assert_has(s: &str, parts: &[&str]) {
    for p in parts {
        assert!(s.contains(p), "missing {p:?} in:\n{s}");
    }
}

pub fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

pub fn manifest(out: &Path) -> serde_json::Value {
    serde_json::from_slice(&read(&out.join("cliptune_adapter.json"))).unwrap()
}

/// The steps logged in a train log, in order.
pub fn logged_steps(log: &Path) -> Vec<u64> {
    String::from_utf8(read(log))
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("torn log line {l:?}: {e}"));
            v["step"].as_u64().unwrap()
        })
        .collect()
}

/// Every float in every safetensors file of `dir` is finite, and every file parses.
pub fn assert_all_finite(dir: &Path) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.extension().and_then(|x| x.to_str()) != Some("safetensors") {
            continue;
        }
        let bytes = read(&p);
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap_or_else(|e| panic!("{}: torn: {e}", p.display()));
        for (name, t) in st.tensors() {
            if t.dtype() == safetensors::Dtype::F32 {
                for c in t.data().chunks_exact(4) {
                    let v = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                    assert!(v.is_finite(), "{}: {name} holds {v}", p.display());
                }
            }
        }
    }
}

/// The pid of a process that has ended.
pub fn dead_pid() -> u32 {
    let mut c = Command::new("true").spawn().unwrap();
    let pid = c.id();
    c.wait().unwrap();
    pid
}

/// Wait (bounded) until `log` has at least `n` lines.
pub fn wait_for_lines(log: &Path, n: usize, child: &mut std::process::Child) -> bool {
    for _ in 0..6000 {
        if let Ok(t) = std::fs::read_to_string(log) {
            if t.lines().count() >= n {
                return true;
            }
        }
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    false
}

pub fn signal(child: &std::process::Child, sig: i32) {
    // SAFETY: sending a signal to our own child process.
    unsafe {
        libc::kill(child.id() as i32, sig);
    }
}
