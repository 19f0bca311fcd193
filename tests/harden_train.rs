//! Training runs, their outputs, signals and concurrent writers (issue 13): one test per
//! class of silent loss or wrong result, through the binary as a user meets it.
mod common;
mod harden_common;
use harden_common::*;

/// 1. A diverging run never writes a non-finite value; it names the checkpoint that holds
/// the last finite state, and `--resume` loads that checkpoint (LoRA, and full, whose
/// checkpoint is a whole model).
#[test]
fn nan_guard_names_a_finite_checkpoint_that_resumes() {
    for method in ["lora", "full"] {
        let d = fresh(&format!("nan-{method}"));
        let data = class_folders(&d.join("data"), &["red", "green"], 4);
        let out = d.join("out");
        let args = ["--method", method, "--lr", "1e37", "--warmup", "0"];
        let err = fails(&mut train(&data, &out, &args), 1);
        assert_has(&err, &["the loss is NaN"]);
        assert_all_finite(&out);
        let named = format!("the last finite state is the checkpoint of step 1 in {}", out.display());
        assert_has(&err, &[&named]);
        if method == "full" {
            assert!(
                out.join("model.safetensors").is_file(),
                "the named full checkpoint has no model"
            );
        }
        let again = fails(&mut train(&data, &out, &[&args[..], &["--resume"]].concat()), 1);
        assert_has(&again, &["resuming from step 1", &named]);
        assert_all_finite(&out);
    }
}

/// The shared safetensors writer refuses non-finite values and leaves the old file.
#[test]
fn shared_writer_refuses_non_finite_tensors() {
    let d = fresh("writer");
    let p = d.join("w.safetensors");
    let good = cliptune::Tensor::from_vec(vec![1.0, 2.0], &[2], &cliptune::Device::Cpu).unwrap();
    cliptune::tensor::io::write_safetensors(&p, &[("w", &good)]).unwrap();
    let before = read(&p);
    let bad = cliptune::Tensor::from_vec(vec![1.0, f32::NAN], &[2], &cliptune::Device::Cpu).unwrap();
    let e = cliptune::tensor::io::write_safetensors(&p, &[("w", &bad)]).unwrap_err();
    assert_eq!(e.kind, cliptune::ErrorKind::NonFinite);
    assert_has(&e.msg, &["'w'", "w.safetensors"]);
    assert_eq!(read(&p), before);
}

/// 2. A second writer of the same output is refused, naming the holder's pid; the lock
/// goes with its holder.
#[test]
fn second_writer_is_refused_naming_the_holder() {
    let d = fresh("lock");
    let data = class_folders(&d.join("data"), &["red", "green"], 4);
    let out = d.join("out");
    let lock = cliptune::io::lock::lock_dir(&out, "test").unwrap();
    let err = fails(&mut train(&data, &out, &[]), 1);
    assert_has(
        &err,
        &[&format!("pid {}", std::process::id()), "writing this train output"],
    );
    let again = cliptune::io::lock::lock_dir(&out, "test").unwrap_err();
    assert_has(&again.msg, &[&format!("pid {}", std::process::id())]);
    drop(lock);
    ok(&mut train(&data, &out, &["--max-steps", "2"]));
    // merge and embed lock their output beside it.
    let merged = d.join("merged");
    let held = cliptune::io::lock::lock_beside(&merged, "test").unwrap();
    let mut m = bin();
    m.args(["merge", "--device", "cpu", "--model"])
        .arg(model())
        .arg("--adapter")
        .arg(&out)
        .arg("--out")
        .arg(&merged);
    assert_has(&fails(&mut m, 1), &["writing this merge output"]);
    let emb = d.join("e.safetensors");
    let held2 = cliptune::io::lock::lock_beside(&emb, "test").unwrap();
    let mut e = bin();
    e.args(["embed", "--device", "cpu", "--text", "a dog", "--model"])
        .arg(model())
        .arg("--out")
        .arg(&emb);
    assert_has(&fails(&mut e, 1), &["writing this embed output"]);
    drop((held, held2));
    ok(&mut m);
}

/// 3. A merged model lists what it contains; the adapter is refused on it (by the list,
/// and by the weights fingerprint when the list is gone), and so is merging it again.
#[test]
fn merged_adapter_cannot_be_applied_twice() {
    let d = fresh("merge");
    let data = class_folders(&d.join("data"), &["red", "green"], 4);
    let lora = d.join("lora");
    ok(&mut train(&data, &lora, &["--max-steps", "3", "--lr", "5e-2"]));
    let merged = d.join("merged");
    let merge = |out: &std::path::Path, model: &std::path::Path| {
        let mut m = bin();
        m.args(["merge", "--device", "cpu", "--model"])
            .arg(model)
            .arg("--adapter")
            .arg(&lora)
            .arg("--out")
            .arg(out);
        m
    };
    ok(&mut merge(&merged, &model()));
    let rec: serde_json::Value = serde_json::from_slice(&read(&merged.join("merged_from.json"))).unwrap();
    assert_eq!(rec["merged"].as_array().unwrap().len(), 1, "{rec}");
    let embed = |m: &std::path::Path| {
        let mut e = bin();
        e.args(["embed", "--device", "cpu", "--text", "a dog", "--model"])
            .arg(m)
            .arg("--adapter")
            .arg(&lora)
            .arg("--out")
            .arg(d.join("e.safetensors"));
        e
    };
    assert_has(
        &fails(&mut embed(&merged), 1),
        &["already contains it", "merged_from.json"],
    );
    assert_has(
        &fails(&mut merge(&d.join("twice"), &merged), 1),
        &["already contains it"],
    );
    assert!(!d.join("twice").exists());
    std::fs::remove_file(merged.join("merged_from.json")).unwrap();
    assert_has(
        &fails(&mut embed(&merged), 1),
        &["weights fingerprint", "add the update twice"],
    );
    // The base model still takes it.
    ok(&mut embed(&model()));
}

/// 4. `--resume` refuses changed arguments and changed data, naming both values; the
/// same arguments continue to the uninterrupted run's bytes, with a log that has every
/// step once. --stop-after marks the adapter partial.
#[test]
fn resume_refuses_changed_arguments_and_continues_exactly() {
    let d = fresh("resume");
    let data = class_folders(&d.join("data"), &["red", "green"], 4);
    let other = class_folders(&d.join("other"), &["red", "blue"], 4);
    let full = d.join("full");
    ok(&mut train(&data, &full, &[]));
    assert_eq!(manifest(&full)["info"]["final"], true);
    let out = d.join("out");
    ok(&mut train(&data, &out, &["--stop-after", "2"]));
    assert_eq!(manifest(&out)["info"]["final"], false, "a --stop-after run is partial");
    let err = fails(&mut train(&data, &out, &["--resume", "--lr", "2e-2"]), 1);
    assert_has(&err, &["--lr", "\"0.01\"", "\"0.02\""]);
    let err = fails(&mut train(&data, &out, &["--resume", "--seed", "4"]), 1);
    assert_has(&err, &["--seed", "\"3\"", "\"4\""]);
    let err = fails(&mut train(&data, &out, &["--resume", "--rank", "3"]), 1);
    assert_has(&err, &["--rank"]);
    let err = fails(&mut train(&other, &out, &["--resume"]), 1);
    assert_has(
        &err,
        &[
            "content of --data",
            &data.display().to_string(),
            &other.display().to_string(),
        ],
    );
    // A kill after logging step 3 but before its checkpoint: the resumed log has it once.
    let log = out.join("train_log.jsonl");
    let mut text = String::from_utf8(read(&log)).unwrap();
    text.push_str("{\"step\":3,\"epoch\":0,\"loss\":1.0,\"lr\":0.01}\n{\"step\":4,");
    std::fs::write(&log, text).unwrap();
    ok(&mut train(&data, &out, &["--resume"]));
    assert_eq!(manifest(&out)["info"]["final"], true);
    let steps = logged_steps(&log);
    assert_eq!(
        steps,
        (1..=steps.len() as u64).collect::<Vec<_>>(),
        "each step logged once"
    );
    for f in ["adapter_model.safetensors", "trainer_state.safetensors"] {
        assert!(
            read(&out.join(f)) == read(&full.join(f)),
            "{f} differs from the uninterrupted run's"
        );
    }
}

/// 4, `--reference`: its set is recorded by content, like `--data`: a resume with other
/// captions under the same path, or without the set, is refused naming it; the same set
/// moved elsewhere resumes.
#[test]
fn resume_refuses_a_changed_reference_set() {
    let d = fresh("resume-reference");
    let data = class_folders(&d.join("data"), &["red", "green"], 4);
    let rows = [(0, "a red tile"), (1, "a green tile"), (2, "a blue tile")];
    let reference = caption_csv(&d.join("ref"), &rows);
    let r = reference.display().to_string();
    let out = d.join("out");
    ok(&mut train(&data, &out, &["--stop-after", "2", "--reference", &r]));

    let moved = caption_csv(&d.join("moved"), &rows);
    let changed = caption_csv(
        &d.join("changed"),
        &[(0, "a red tile"), (1, "a green tile"), (2, "a cyan tile")],
    );
    let c = changed.display().to_string();
    let err = fails(&mut train(&data, &out, &["--resume", "--reference", &c]), 1);
    assert_has(&err, &["content of --reference", &r, &c]);
    let err = fails(&mut train(&data, &out, &["--resume"]), 1);
    assert_has(&err, &["content of --reference", &r, "not set"]);
    assert_eq!(
        manifest(&out)["info"]["final"],
        false,
        "a refused resume changed nothing"
    );

    ok(&mut train(
        &data,
        &out,
        &["--resume", "--reference", &moved.display().to_string()],
    ));
    assert_eq!(manifest(&out)["info"]["final"], true);
}

/// 8. Nonsense numbers are refused when the command line is read; textual inversion
/// refuses a word the vocabulary already has.
#[test]
fn bad_flags_and_existing_words_are_refused() {
    let d = fresh("flags");
    let data = class_folders(&d.join("data"), &["red", "green"], 2);
    let out = d.join("out");
    for (flag, value) in [
        ("--lr", "-1e-3"),
        ("--lr", "nan"),
        ("--weight-decay", "-0.1"),
        ("--weight-decay", "inf"),
        ("--max-grad-norm", "0"),
        ("--lora-dropout", "1"),
        ("--wise-alpha", "1.5"),
        ("--batch", "0"),
        ("--epochs", "0"),
        ("--rank", "0"),
    ] {
        let arg = format!("{flag}={value}");
        let err = fails(&mut train(&data, &out, &[&arg]), 2);
        assert_has(&err, &[flag]);
    }
    let mut p = bin();
    p.args(["pretrain", "--lr=-1", "--data", "x.csv", "--out"]).arg(&out);
    assert_has(&fails(&mut p, 2), &["--lr"]);
    let mut p = bin();
    p.args(["pretrain", "--weight-decay=-1", "--data", "x.csv", "--out"])
        .arg(&out);
    assert_has(&fails(&mut p, 2), &["--weight-decay"]);
    assert!(!out.exists(), "a refused command wrote nothing");
    let csv = caption_csv(&d, &[(0, "a photo of dog on grass"), (1, "a photo of dog in the sea")]);
    let err = fails(
        &mut train(&csv, &out, &["--method", "textual-inversion", "--new-token", "dog"]),
        1,
    );
    assert_has(&err, &["--new-token \"dog\"", "already a word"]);
}

/// 9. Data that cannot teach anything is refused with the reason; the data report counts
/// rows that repeat one image as duplicates.
#[test]
fn unlearnable_data_is_refused() {
    let d = fresh("learn");
    let out = d.join("out");
    let one = caption_csv(&d.join("one"), &[(0, "a photo of a red square")]);
    assert_has(
        &fails(&mut train(&one, &out, &[]), 1),
        &["1 image-caption row", "at least 2"],
    );
    // One image under one caption, twice: the loader merges the rows into one pair.
    let twice = d.join("twice");
    png(&twice.join("a.png"), 0, 0);
    std::fs::write(
        twice.join("c.csv"),
        "image,caption\na.png,a red square\na.png,a red square\n",
    )
    .unwrap();
    assert_has(
        &fails(&mut train(&twice.join("c.csv"), &out, &[]), 1),
        &["1 image-caption row"],
    );
    // Twelve copies of one file under one caption.
    let same = d.join("same");
    png(&same.join("a.png"), 0, 0);
    let mut text = String::from("image,caption\n");
    for i in 0..12 {
        std::fs::copy(same.join("a.png"), same.join(format!("copy{i}.png"))).unwrap();
        text.push_str(&format!("copy{i}.png,a photo of a red square\n"));
    }
    std::fs::write(same.join("c.csv"), &text).unwrap();
    let err = fails(&mut train(&same.join("c.csv"), &out, &[]), 1);
    assert_has(
        &err,
        &[
            "all 12 rows are the same image with the same caption",
            "duplicate images: 1 groups (12 files)",
        ],
    );
    let recs = cliptune::data::captions::load_captions(&same.join("c.csv")).unwrap();
    let r = cliptune::data::report::report_captions(&recs);
    assert_eq!(r.duplicate_groups.len(), 1, "{r}");
    assert_eq!(r.duplicate_groups[0].len(), 12);
    // One class for a classifier.
    let one_class = class_folders(&d.join("cls"), &["red"], 4);
    for method in ["prompt", "lora", "linear-probe"] {
        let err = fails(&mut train(&one_class, &out, &["--method", method]), 1);
        assert_has(&err, &["one class ('red')", method]);
    }
}

/// 12. Leftovers of dead processes are removed by the next run; a live process's are
/// kept; another method is refused in an adapter directory.
#[test]
fn leftovers_are_cleaned_and_foreign_methods_refused() {
    let d = fresh("leftovers");
    let data = class_folders(&d.join("data"), &["red", "green"], 4);
    let out = d.join("out");
    ok(&mut train(&data, &out, &["--max-steps", "2"]));
    let dead = dead_pid();
    let stale = out.join(format!(".adapter_model.safetensors.{dead}.tmp"));
    let live = out.join(format!(".adapter_model.safetensors.{}.tmp", std::process::id()));
    std::fs::write(&stale, b"half").unwrap();
    std::fs::write(&live, b"in progress").unwrap();
    ok(&mut train(&data, &out, &["--max-steps", "2"]));
    assert!(!stale.exists(), "a dead run's temporary file survived");
    assert!(live.exists(), "a live process's temporary file was removed");
    let stale_merge = d.join(format!(".merged.merge-{dead}"));
    std::fs::create_dir_all(stale_merge.join("x")).unwrap();
    let mut m = bin();
    m.args(["merge", "--device", "cpu", "--model"])
        .arg(model())
        .arg("--adapter")
        .arg(&out)
        .arg("--out")
        .arg(d.join("merged"));
    ok(&mut m);
    assert!(!stale_merge.exists(), "a dead merge's directory survived");
    let err = fails(&mut train(&data, &out, &["--method", "prompt"]), 1);
    assert_has(&err, &["holds a lora run", "prompt"]);
    assert!(out.join("adapter_model.safetensors").is_file());
}

/// 13. Memory is estimated before allocating: an absurd rank is a clear error.
#[test]
fn absurd_rank_is_refused_before_allocating() {
    let d = fresh("memory");
    let data = class_folders(&d.join("data"), &["red", "green"], 2);
    let err = fails(&mut train(&data, &d.join("out"), &["--rank", "100000000"]), 1);
    assert_has(&err, &["--method lora needs about", "MemAvailable", "lower --rank"]);
}

/// 16. SIGTERM / Ctrl-C: the step finishes, a resumable checkpoint is written, the exit
/// status is 128 + signal, and --resume reaches the uninterrupted run's bytes. A
/// directory whose first checkpoint never happened serves a fresh run and a resume.
#[test]
fn signals_stop_with_a_resumable_checkpoint() {
    let d = fresh("signals");
    let data = class_folders(&d.join("data"), &["red", "green"], 4);
    let long = ["--epochs", "40", "--checkpoint-every", "1000"];
    let reference = d.join("reference");
    ok(&mut train(&data, &reference, &long));
    for (sig, code, twice) in [
        (libc::SIGTERM, 143, false),
        (libc::SIGINT, 130, false),
        (libc::SIGTERM, 143, true),
    ] {
        let out = d.join(format!("out-{sig}-{twice}"));
        let mut child = train(&data, &out, &long)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        assert!(
            wait_for_lines(&out.join("train_log.jsonl"), 3, &mut child),
            "the run ended early"
        );
        signal(&child, sig);
        if twice {
            signal(&child, sig);
        }
        let o = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(code), "{err}");
        if !twice {
            assert_has(&err, &["--resume", "resumable checkpoint"]);
            assert!(out.join("trainer_state.safetensors").is_file());
            assert_eq!(manifest(&out)["info"]["final"], false);
        }
        ok(&mut train(&data, &out, &[&long[..], &["--resume"]].concat()));
        for f in ["adapter_model.safetensors", "trainer_state.safetensors"] {
            assert!(
                read(&out.join(f)) == read(&reference.join(f)),
                "{f} differs after {sig}"
            );
        }
    }
    // Killed before its first checkpoint: only the lock and a temporary file remain.
    let early = d.join("early");
    std::fs::create_dir_all(&early).unwrap();
    std::fs::write(early.join(".cliptune.lock"), b"").unwrap();
    std::fs::write(
        early.join(format!(".trainer_state.safetensors.{}.tmp", dead_pid())),
        b"x",
    )
    .unwrap();
    let err = ok(&mut train(&data, &early, &["--max-steps", "2", "--resume"]));
    assert_has(&err, &["starting from step 0"]);
    std::fs::remove_dir_all(&early).unwrap();
    std::fs::create_dir_all(&early).unwrap();
    std::fs::write(early.join(".cliptune.lock"), b"").unwrap();
    std::fs::write(early.join("train_log.jsonl"), b"{\"step\":1").unwrap();
    ok(&mut train(&data, &early, &["--max-steps", "2"]));
}

/// 16, from a library caller (the Python package's Ctrl-C): the same stop as a signal, one
/// condition in the loop. The step finishes, a resumable checkpoint is written, the run
/// ends with an `Interrupted` error naming it, and --resume reaches the uninterrupted
/// run's bytes.
#[test]
fn a_callers_cancellation_is_the_same_stop_as_a_signal() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let d = fresh("cancel");
    let data = class_folders(&d.join("data"), &["red", "green"], 4);
    let long = ["--epochs", "40", "--checkpoint-every", "1000"];
    let reference = d.join("reference");
    ok(&mut train(&data, &reference, &long));
    let out = d.join("out");
    let (cancel, ended) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    // Cancel once the run has logged three steps (its own progress, not a timer).
    let setter = {
        let (cancel, ended, log) = (cancel.clone(), ended.clone(), out.join("train_log.jsonl"));
        std::thread::spawn(move || {
            while !ended.load(Ordering::SeqCst) {
                let lines = std::fs::read_to_string(&log).map(|t| t.lines().count()).unwrap_or(0);
                if lines >= 3 {
                    cancel.store(true, Ordering::SeqCst);
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        })
    };
    let args = train_args(&data, &out, &long);
    let r = cliptune::cancel::scoped(cancel.clone(), || cliptune::cli::train(&args));
    ended.store(true, Ordering::SeqCst);
    setter.join().unwrap();
    let e = r.err().expect("a cancelled run ends with an error");
    assert_eq!(e.kind, cliptune::ErrorKind::Interrupted, "{}", e.msg);
    assert_has(&e.msg, &["resumable checkpoint", &out.display().to_string()]);
    assert!(out.join("trainer_state.safetensors").is_file());
    assert_eq!(manifest(&out)["info"]["final"], false);
    assert!(!cliptune::cancel::requested(), "the caller's flag stays with its scope");
    ok(&mut train(&data, &out, &[&long[..], &["--resume"]].concat()));
    for f in ["adapter_model.safetensors", "trainer_state.safetensors"] {
        assert!(
            read(&out.join(f)) == read(&reference.join(f)),
            "{f} differs after a cancellation and --resume"
        );
    }
}
