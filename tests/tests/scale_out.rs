//! Scale-out and determinism: shards computed by separate processes merge into exactly the
//! single-machine dataset; mismatched shard sets are refused; results do not depend on the
//! number of threads.

use mfpipe_data::dataset::STATUS_PENDING;
use mfpipe_data::h5;
use mfpipe_tests::{pipeline, pipeline_bin, stderr, stdout};
use std::process::{Command, Stdio};

const RUN: [&str; 6] = ["--levels", "0,2", "--n", "17,10", "--seed", "9"];

fn generate(dir: &std::path::Path, out: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["generate", "burgers"];
    args.extend(RUN);
    args.extend(["--out", out]);
    args.extend(extra);
    pipeline(dir, &args)
}

#[test]
fn shards_from_separate_processes_merge_into_the_single_run() {
    let d = tempfile::tempdir().unwrap();
    assert!(generate(d.path(), "single.h5", &[]).status.success());
    // Three shards as three concurrent processes, like a job array.
    let children: Vec<_> = (0..3)
        .map(|i| {
            let mut args: Vec<String> = ["generate", "burgers"]
                .iter()
                .chain(RUN.iter())
                .map(|s| s.to_string())
                .collect();
            args.extend([
                "--out".into(),
                format!("s{i}.h5"),
                "--shard".into(),
                format!("{i}/3"),
            ]);
            Command::new(pipeline_bin())
                .args(&args)
                .current_dir(d.path())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    // A shard is not a dataset to train on.
    let o = pipeline(d.path(), &["train", "s1.h5"]);
    assert!(
        stderr(&o).contains("shard 1/3") && stderr(&o).contains("pipeline merge"),
        "{}",
        stderr(&o)
    );
    // Shards split the work: 27 samples round-robin over 3 shards.
    let s0 = h5::read(&d.path().join("s0.h5")).unwrap();
    let done: usize = s0
        .levels
        .iter()
        .map(|l| l.status.iter().filter(|&&s| s != STATUS_PENDING).count())
        .sum();
    assert_eq!(done, 9);

    let o = pipeline(
        d.path(),
        &["merge", "s2.h5", "s0.h5", "s1.h5", "--out", "merged.h5"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = pipeline(d.path(), &["check", "merged.h5", "--same-as", "single.h5"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("same content as single.h5"));
    let merged = h5::read(&d.path().join("merged.h5")).unwrap();
    assert!(merged.same_content(&h5::read(&d.path().join("single.h5")).unwrap()));
    assert!(merged.meta.shard.is_none());
}

#[test]
fn shards_that_do_not_belong_together_are_refused() {
    let d = tempfile::tempdir().unwrap();
    for i in 0..2 {
        assert!(generate(
            d.path(),
            &format!("a{i}.h5"),
            &["--shard", &format!("{i}/2")]
        )
        .status
        .success());
    }
    // Same shard of a run with another seed.
    let o = pipeline(
        d.path(),
        &[
            "generate", "burgers", "--levels", "0,2", "--n", "17,10", "--seed", "10", "--out",
            "b1.h5", "--shard", "1/2",
        ],
    );
    assert!(o.status.success());
    let refuse = |args: &[&str], needle: &str| {
        let o = pipeline(d.path(), args);
        let e = stderr(&o);
        assert!(
            !o.status.success() && e.contains(needle) && e.trim_end().lines().count() == 1,
            "{args:?}: {e}"
        );
    };
    refuse(
        &["merge", "a0.h5", "b1.h5", "--out", "m.h5"],
        "does not belong with a0.h5",
    );
    refuse(
        &["merge", "a0.h5", "a0.h5", "--out", "m.h5"],
        "shard 0/2 given twice",
    );
    refuse(&["merge", "a1.h5", "--out", "m.h5"], "shard 0/2 is missing");
    refuse(
        &["generate", "burgers", "--shard", "2/2"],
        "--shard \"2/2\"",
    );
    refuse(&["generate", "burgers", "--shard", "1-2"], "expected I/N");
    // A shard with an unfinished sample.
    let mut ds = h5::read(&d.path().join("a1.h5")).unwrap();
    let l = &mut ds.levels[0];
    let i = (0..l.len())
        .find(|&i| l.status[i] != STATUS_PENDING)
        .unwrap();
    l.status[i] = STATUS_PENDING;
    h5::write(&d.path().join("a1-unfinished.h5"), &ds).unwrap();
    refuse(
        &["merge", "a0.h5", "a1-unfinished.h5", "--out", "m.h5"],
        "a1-unfinished.h5 is not finished",
    );
    // A whole dataset is not a shard; a shard cannot be resumed as another shard.
    assert!(generate(d.path(), "whole.h5", &[]).status.success());
    refuse(
        &["merge", "whole.h5", "a1.h5", "--out", "m.h5"],
        "whole.h5 is a whole dataset",
    );
    refuse(
        &[
            "generate", "burgers", "--levels", "0,2", "--n", "17,10", "--seed", "9", "--out",
            "a1.h5", "--shard", "0/2", "--resume",
        ],
        "holds shard 1/2, not shard 0/2",
    );
    assert!(!d.path().join("m.h5").exists());
}

#[test]
fn data_and_training_do_not_depend_on_the_thread_count() {
    let d = tempfile::tempdir().unwrap();
    for threads in ["1", "2"] {
        let out = format!("t{threads}");
        let o = Command::new(pipeline_bin())
            .args(["run", "burgers", "--smoke", "--out", &out])
            .env("RAYON_NUM_THREADS", threads)
            .current_dir(d.path())
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let a = h5::read(&d.path().join("t1/burgers.h5")).unwrap();
    let b = h5::read(&d.path().join("t2/burgers.h5")).unwrap();
    assert!(
        a.same_content(&b),
        "datasets differ between 1 and 2 threads"
    );
    let metrics = |dir: &str| -> Vec<(String, u64, u64, u64)> {
        let v: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(d.path().join(dir).join("results.json")).unwrap(),
        )
        .unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["model"].as_str().unwrap().to_string(),
                    r["n_hf"].as_u64().unwrap(),
                    r["seed"].as_u64().unwrap(),
                    r["rmse"].as_f64().unwrap().to_bits(),
                )
            })
            .collect()
    };
    assert_eq!(
        metrics("t1"),
        metrics("t2"),
        "results.json differs between 1 and 2 threads"
    );
}
