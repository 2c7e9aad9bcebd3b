//! Saved models from the CLI: `run` and `train` keep every fit under <out>/models/, and
//! `pipeline predict` loads one and predicts exactly what the run scored.

use mfpipe_data::{h5, metrics};
use mfpipe_tests::{pipeline, stderr};
use ndarray::{Array2, Axis};
use std::path::Path;

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The `mean` of a predictions file as [N, D].
fn predicted_mean(path: &Path) -> Array2<f64> {
    let f = hdf5::File::open(path).unwrap();
    let m = f.dataset("mean").unwrap().read_dyn::<f64>().unwrap();
    let n = m.shape()[0];
    let d = m.len() / n;
    m.into_shape_with_order((n, d)).unwrap()
}

#[test]
fn every_saved_model_reproduces_its_test_score_through_predict() {
    let d = tempfile::tempdir().unwrap();
    let o = pipeline(d.path(), &["run", "currin", "--smoke", "--out", "o"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = d.path().join("o");
    let results = json(&out.join("results.json"));
    let splits = json(&out.join("splits.json"));
    let index = json(&out.join("models/index.json"));
    let saved = index["models"].as_array().unwrap();
    // `--save all` (the default): one saved model per fit.
    assert_eq!(saved.len(), results.as_array().unwrap().len());

    let ds = h5::read(&out.join("currin.h5")).unwrap();
    let hf = ds
        .level(splits["hf_level"].as_u64().unwrap() as usize)
        .unwrap();
    let test: Vec<usize> = splits["test_hf"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let truth = hf.outputs.select(Axis(0), &test);
    let mut kinds = std::collections::BTreeSet::new();
    for m in saved {
        let dir = out.join("models").join(m["dir"].as_str().unwrap());
        let pred = d.path().join(format!("{}.h5", m["dir"].as_str().unwrap()));
        let o = pipeline(
            d.path(),
            &[
                "predict",
                dir.to_str().unwrap(),
                "--inputs",
                out.join("currin.h5").to_str().unwrap(),
                "--out",
                pred.to_str().unwrap(),
            ],
        );
        assert!(o.status.success(), "{}", stderr(&o));
        let mean = predicted_mean(&pred).select(Axis(0), &test);
        let record = results
            .as_array()
            .unwrap()
            .iter()
            .find(|r| {
                ["model", "n_lf", "n_hf", "seed"]
                    .iter()
                    .all(|k| r[*k] == m[*k])
            })
            .unwrap();
        // The same bits as in the run, so the same RMSE to the last bit.
        assert_eq!(
            metrics::rmse(mean.view(), truth.view()),
            record["rmse"].as_f64().unwrap(),
            "{}",
            m["dir"]
        );
        kinds.insert(m["kind"].as_str().unwrap().to_string());
    }
    assert!(kinds.len() >= 5, "{kinds:?}");

    // One point, as JSON in the shape of `solve --json`, with the GP's variance.
    let best = out.join("models/best");
    let best_card = json(&best.join("model.json"));
    assert_eq!(best_card["format"], "mfpipe-model/1");
    assert_eq!(best_card["dataset"]["problem"], "currin");
    let o = pipeline(
        d.path(),
        &[
            "predict",
            best.to_str().unwrap(),
            "--set",
            "x1=0.3",
            "--set",
            "x2=0.6",
            "--json",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let p: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for k in [
        "problem", "fidelity", "inputs", "shape", "axes", "values", "seed",
    ] {
        assert!(p.get(k).is_some(), "predict --json lacks {k}: {p}");
    }
    assert_eq!(p["inputs"]["x1"], 0.3);
    let y = p["values"][0].as_f64().unwrap();
    // Currin's high-fidelity function at (0.3, 0.6) is about 9.5; a fit on the smoke sizes
    // gets the right magnitude.
    assert!((5.0..14.0).contains(&y), "{y}");

    // Refusals: one line each, non-zero exit, nothing written.
    let refused = |args: &[&str], says: &str| {
        let o = pipeline(d.path(), args);
        let err = stderr(&o);
        assert!(!o.status.success(), "{args:?} succeeded");
        assert!(
            err.contains(says) && err.trim().lines().count() == 1,
            "{args:?}: {err}"
        );
    };
    let b = best.to_str().unwrap();
    refused(&["predict", b, "--set", "x1=2"], "outside the range");
    refused(&["predict", b, "--set", "x9=0.5"], "no input \"x9\"");
    refused(&["predict", out.to_str().unwrap()], "not a saved model");
    std::fs::write(d.path().join("bad.csv"), "x1,x3\n0.5,0.5\n").unwrap();
    refused(
        &["predict", b, "--inputs", "bad.csv", "--out", "x.h5"],
        "no column \"x2\"",
    );
    std::fs::write(d.path().join("in.csv"), "x2,x1\n0.6,0.3\n0.1,0.9\n").unwrap();
    refused(&["predict", b, "--inputs", "in.csv"], "pass --out");
    let o = pipeline(
        d.path(),
        &["predict", b, "--inputs", "in.csv", "--out", "two.h5"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    // Columns are matched by name: row 0 is (x1, x2) = (0.3, 0.6), as --set gave above.
    assert_eq!(predicted_mean(&d.path().join("two.h5"))[[0, 0]], y);
    refused(
        &["predict", b, "--inputs", "in.csv", "--out", "two.h5"],
        "file exists",
    );
    // The predictions file opens in xarray as documented, without a warning.
    let script = r#"
import xarray as xr
p = xr.open_dataset("two.h5", engine="h5netcdf")
assert p["mean"].dims[0] == "sample" and p["mean"].sizes["sample"] == 2, p["mean"].dims
assert "variance" not in p or p["variance"].dims == p["mean"].dims
assert list(p["input"].values) == ["x1", "x2"]
assert abs(float(p["inputs"].sel(input="x1")[0]) - 0.3) < 1e-15
assert p.attrs["problem"] == "currin" and p.attrs["schema"] == "mfpipe-predictions/1"
"#;
    let o = std::process::Command::new("python3")
        .args(["-W", "error", "-c", script])
        .current_dir(d.path())
        .output()
        .expect("python3 (scripts/setup installs xarray and h5netcdf for it)");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // With --extrapolate the point outside is predicted and flagged.
    let o = pipeline(
        d.path(),
        &["predict", b, "--set", "x1=1.5", "--extrapolate", "--json"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let p: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(p["extrapolated"], true);

    // A model of another format version, or whose state belongs to another model, is refused.
    let copy = d.path().join("copy");
    std::fs::create_dir(&copy).unwrap();
    for f in ["model.json", "state.cbor"] {
        std::fs::copy(best.join(f), copy.join(f)).unwrap();
    }
    let card = std::fs::read_to_string(copy.join("model.json")).unwrap();
    std::fs::write(
        copy.join("model.json"),
        card.replace("mfpipe-model/1", "mfpipe-model/9"),
    )
    .unwrap();
    refused(&["predict", "copy", "--set", "x1=0.5"], "mfpipe-model/9");
    std::fs::write(copy.join("model.json"), card).unwrap();
    let nn = saved
        .iter()
        .find(|m| m["kind"] == "nn-hf")
        .expect("the currin config runs nn-hf");
    std::fs::copy(
        out.join("models")
            .join(nn["dir"].as_str().unwrap())
            .join("state.cbor"),
        copy.join("state.cbor"),
    )
    .unwrap();
    refused(&["predict", "copy", "--set", "x1=0.5"], "state.cbor");
}

#[test]
fn train_keeps_the_best_fit_per_cell_or_none() {
    let d = tempfile::tempdir().unwrap();
    let o = pipeline(
        d.path(),
        &["run", "park", "--smoke", "--out", "o", "--save", "none"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!d.path().join("o/models").exists());
    let o = pipeline(
        d.path(),
        &[
            "train",
            "o/park.h5",
            "--model",
            "gp-hf,ar",
            "--n-lf",
            "10",
            "--n-hf",
            "4,6",
            "--seeds",
            "0-1",
            "--n-test",
            "6",
            "--out",
            "t",
            "--save",
            "best",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let results = json(&d.path().join("t/results.json"));
    let index = json(&d.path().join("t/models/index.json"));
    let saved = index["models"].as_array().unwrap();
    // Cells are (N_L, N_H) as results.json has them; gp-hf, single-fidelity, fits N_L = 0:
    // (0, 4), (0, 6), (10, 4), (10, 6).
    let cells: std::collections::BTreeSet<(u64, u64)> = results
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["n_lf"].as_u64().unwrap(), r["n_hf"].as_u64().unwrap()))
        .collect();
    assert_eq!(saved.len(), cells.len());
    for m in saved {
        let cell = |r: &serde_json::Value| r["n_lf"] == m["n_lf"] && r["n_hf"] == m["n_hf"];
        let best = results
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| cell(r))
            .map(|r| r["rmse"].as_f64().unwrap())
            .fold(f64::INFINITY, f64::min);
        assert_eq!(m["rmse"].as_f64().unwrap(), best);
    }
    // models/best is the best at the largest N_H.
    let best = std::fs::read_link(d.path().join("t/models/best")).unwrap();
    assert_eq!(index["best"].as_str().unwrap(), best.to_str().unwrap());
    assert!(best.to_str().unwrap().contains("-nh6-"));
    // A second train into the same directory is refused before any work, unless --force.
    let again = |force: bool| {
        let mut args = vec![
            "train",
            "o/park.h5",
            "--model",
            "gp-hf",
            "--n-lf",
            "10",
            "--n-hf",
            "4",
            "--seeds",
            "0",
            "--n-test",
            "6",
            "--out",
            "t",
            "--save",
            "none",
        ];
        if force {
            args.push("--force");
        }
        pipeline(d.path(), &args)
    };
    let o = again(false);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--force"), "{}", stderr(&o));
    assert!(again(true).status.success());
    // --save none leaves no models of the replaced run behind.
    assert!(!d.path().join("t/models").exists());
}

/// results.json without what differs between any two runs: wall-clock timings.
fn without_timings(path: &Path) -> serde_json::Value {
    let mut v = json(path);
    for r in v.as_array_mut().unwrap() {
        let r = r.as_object_mut().unwrap();
        r.remove("fit_seconds");
        r.remove("predict_seconds");
        if let Some(s) = r
            .get_mut("hyperparameters")
            .and_then(|h| h.get_mut("search"))
            .and_then(|s| s.as_object_mut())
        {
            s.remove("seconds");
        }
    }
    v
}

#[test]
fn a_killed_train_resumes_to_the_same_results_and_models() {
    use mfpipe_tests::pipeline_bin;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};
    let d = tempfile::tempdir().unwrap();
    let o = pipeline(
        d.path(),
        &["run", "currin", "--smoke", "--out", "o", "--save", "none"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let args = |out: &'static str| {
        vec![
            "train",
            "o/currin.h5",
            "--model",
            "nn-hf,dmf-trans,gp-hf,ar",
            "--n-hf",
            "4,8",
            "--n-lf",
            "8",
            "--seeds",
            "0-1",
            "--n-test",
            "4",
            "--max-epochs",
            "300",
            "--out",
            out,
        ]
    };
    let o = pipeline(d.path(), &args("full"));
    assert!(o.status.success(), "{}", stderr(&o));
    // SIGKILL after the first and after a few journaled fits (or searches).
    for (trial, after) in [1usize, 5].into_iter().enumerate() {
        let out = if trial == 0 { "k0" } else { "k1" };
        let fits = d.path().join(out).join(".fits");
        let mut child = Command::new(pipeline_bin())
            .args(args(out))
            .current_dir(d.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let t0 = Instant::now();
        let done = || {
            std::fs::read_dir(&fits)
                .map(|r| {
                    r.filter(|e| {
                        e.as_ref()
                            .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "cbor"))
                    })
                    .count()
                })
                .unwrap_or(0)
        };
        while done() < after && t0.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_millis(5));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        let journaled = done();
        let mut resume = args(out);
        resume.push("--resume");
        let o = pipeline(d.path(), &resume);
        assert!(o.status.success(), "{}", stderr(&o));
        if journaled > 0 && !d.path().join(out).join("results.json").exists() {
            assert!(stderr(&o).contains("resuming"), "{}", stderr(&o));
        }
        assert_eq!(
            without_timings(&d.path().join(out).join("results.json")),
            without_timings(&d.path().join("full/results.json")),
            "trial {trial}: killed after {journaled} journaled fits"
        );
        // The same fitted states, byte for byte, and no journal left behind.
        let index = json(&d.path().join("full/models/index.json"));
        for m in index["models"].as_array().unwrap() {
            let dir = m["dir"].as_str().unwrap();
            let a = std::fs::read(d.path().join("full/models").join(dir).join("state.cbor"));
            let b = std::fs::read(
                d.path()
                    .join(out)
                    .join("models")
                    .join(dir)
                    .join("state.cbor"),
            );
            assert_eq!(a.unwrap(), b.unwrap(), "{dir}");
        }
        assert!(!fits.exists());
    }
}
