//! End to end: generate -> HDF5 -> train -> report, crash safety of `generate`, and
//! datasets written by other tools.

use mfpipe_data::dataset::{STATUS_OK, STATUS_PENDING};
use mfpipe_data::h5;
use mfpipe_tests::{pipeline, pipeline_bin, stderr};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn smoke_run_writes_results_report_and_plots() {
    let d = tempfile::tempdir().unwrap();
    let o = pipeline(d.path(), &["run", "burgers", "--smoke", "--out", "smoke"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = d.path().join("smoke");
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    let recs = results.as_array().unwrap();
    // 8 models x 2 HF sizes x 2 seeds (the [smoke] section of configs/burgers.toml).
    assert_eq!(recs.len(), 32);
    let models: std::collections::BTreeSet<&str> =
        recs.iter().map(|r| r["model"].as_str().unwrap()).collect();
    assert_eq!(
        models.into_iter().collect::<Vec<_>>(),
        [
            "ar",
            "dmf-2",
            "dmf-trans",
            "gar",
            "gp-hf",
            "mf-transfer",
            "nar",
            "nn-hf"
        ]
    );
    let keys: Vec<&str> = recs[0]
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    for k in [
        "problem",
        "model",
        "n_lf",
        "n_hf",
        "seed",
        "rmse",
        "nrmse",
        "r2",
        "mae",
        "fit_seconds",
        "predict_seconds",
        "hyperparameters",
    ] {
        assert!(keys.contains(&k), "results.json lacks {k}: {keys:?}");
    }
    for r in recs {
        let rmse = r["rmse"].as_f64().unwrap();
        assert!(rmse.is_finite() && rmse > 0.0);
        // The fields range over about [0, 1]; a model that ignores its inputs or a broken
        // decode would not get within a fraction of that.
        assert!(rmse < 0.2, "rmse {rmse} for {r}");
    }
    for f in [
        "report.md",
        "rmse_vs_nhf.png",
        "mae_fields.png",
        "pred_vs_true.png",
        "cost_vs_rmse.png",
        "config.toml",
        "burgers.h5",
    ] {
        let p = out.join(f);
        assert!(
            p.exists() && std::fs::metadata(&p).unwrap().len() > 100,
            "{f} missing"
        );
    }
    let png = std::fs::read(out.join("rmse_vs_nhf.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    // Every figure has a vector twin for slides and papers; the field panels are embedded in
    // it as one image each (not 10^4 rectangles), under a MIME type renderers accept; no
    // temporary figure is left behind.
    for entry in std::fs::read_dir(&out).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().to_string();
        assert!(!name.contains(".tmp."), "{name} left behind");
        if let Some(stem) = name.strip_suffix(".png") {
            let svg = std::fs::read_to_string(out.join(format!("{stem}.svg")))
                .unwrap_or_else(|e| panic!("{stem}.svg: {e}"));
            assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        }
    }
    let svg = std::fs::read_to_string(out.join("mae_fields.svg")).unwrap();
    assert!(svg.contains("href=\"data:image/png;base64,"));
    assert!(!svg.contains("\"data:png;"));
    assert!(
        svg.matches("<rect").count() < 2000,
        "fields drawn as rectangles"
    );
    // Hyperband (the default) chose dmf-trans's and dmf-2's learning rates and weight decay, once per
    // (model, N_H) on the first seed's training data, within the configured space, and the
    // fits ran with the chosen values.
    let bounds = [
        ("lambda1", 1e-6, 1e-2),
        ("r1", 1e-5, 1e-2),
        ("r2", 1e-5, 1e-2),
        ("r3", 1e-4, 3e-2),
    ];
    for r in recs {
        let hp = &r["hyperparameters"];
        let model = r["model"].as_str().unwrap();
        if !model.starts_with("dmf") {
            assert!(hp.get("search").is_none(), "{model} is not tuned");
            continue;
        }
        let s = &hp["search"];
        assert_eq!(s["method"], "hyperband", "{r}");
        assert_eq!(
            s["evaluations"], 22,
            "R = 9, eta = 3: 13 + 6 + 3 evaluations"
        );
        assert_eq!(s["searched_on_seed"], 0);
        assert!(s["validation_rmse"].as_f64().unwrap() > 0.0);
        let chosen = s["chosen"].as_object().unwrap();
        let names: Vec<&str> = chosen.keys().map(|k| k.as_str()).collect();
        let expect: &[&str] = if model == "dmf-trans" {
            &["lambda1", "r1", "r2", "r3"]
        } else {
            &["lambda1", "r2", "r3"]
        };
        assert_eq!(names, expect);
        for (name, lo, hi) in bounds {
            if let Some(v) = chosen.get(name) {
                let v = v.as_f64().unwrap();
                assert!((lo..=hi).contains(&v), "{name} = {v}");
                assert_eq!(hp[name].as_f64().unwrap(), v, "the fit used the choice");
            }
        }
        let twin = recs
            .iter()
            .find(|o| o["model"] == r["model"] && o["n_hf"] == r["n_hf"] && o["seed"] != r["seed"])
            .unwrap();
        assert_eq!(twin["hyperparameters"]["search"]["chosen"], s["chosen"]);
    }
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("### Searched configurations"));
    // A second run reuses the dataset instead of regenerating it.
    let o = pipeline(d.path(), &["run", "burgers", "--smoke", "--out", "smoke"]);
    assert!(o.status.success());
    assert!(stderr(&o).contains("using existing dataset"));
}

fn generate_args<'a>(out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "generate", "burgers", "--levels", "0,4", "--n", "300,300", "--seed", "7", "--out", out,
    ];
    v.extend(extra);
    v
}

#[test]
fn killed_generate_resumes_to_the_same_content() {
    let d = tempfile::tempdir().unwrap();
    let o = pipeline(d.path(), &generate_args("full.h5", &[]));
    assert!(o.status.success(), "{}", stderr(&o));
    let full = h5::read(&d.path().join("full.h5")).unwrap();
    full.require_complete("full.h5").unwrap();

    // Start the same run and SIGKILL it once some samples are journaled.
    let journal = d.path().join("part.h5.journal");
    let mut child = Command::new(pipeline_bin())
        .args(generate_args("part.h5", &[]))
        .current_dir(d.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while std::fs::metadata(&journal).map(|m| m.len()).unwrap_or(0) < 200_000
        && t0.elapsed() < Duration::from_secs(60)
    {
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    let killed_early = journal.exists();
    if killed_early {
        // What a reader sees after the kill: a valid file that says it is incomplete.
        let part = h5::read(&d.path().join("part.h5")).unwrap();
        assert!(part
            .levels
            .iter()
            .any(|l| l.status.iter().any(|&s| s == STATUS_PENDING)));
        assert!(part.require_complete("part.h5").is_err());
        let o = pipeline(d.path(), &["train", "part.h5"]);
        assert!(!o.status.success() && stderr(&o).contains("not yet computed"));
        // Resuming without --resume is refused rather than overwriting.
        let o = pipeline(d.path(), &generate_args("part.h5", &[]));
        assert!(!o.status.success() && stderr(&o).contains("--resume"));
    }
    let o = pipeline(d.path(), &generate_args("part.h5", &["--resume"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let msg = stderr(&o);
    if killed_early {
        assert!(
            !msg.contains(" 0 reused"),
            "the resumed run must reuse journaled samples: {msg}"
        );
    }
    let resumed = h5::read(&d.path().join("part.h5")).unwrap();
    assert!(
        resumed.same_content(&full),
        "resumed file differs from an uninterrupted run"
    );
    assert!(!journal.exists());
    assert!(resumed
        .levels
        .iter()
        .all(|l| l.status.iter().all(|&s| s == STATUS_OK)));
}

#[test]
fn same_seed_gives_identical_content_and_another_seed_does_not() {
    let d = tempfile::tempdir().unwrap();
    for (name, seed) in [("a.h5", "3"), ("b.h5", "3"), ("c.h5", "4")] {
        let o = pipeline(
            d.path(),
            &[
                "generate", "burgers", "--levels", "0,1", "--n", "6,5", "--seed", seed, "--out",
                name,
            ],
        );
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let r = |n: &str| h5::read(&d.path().join(n)).unwrap();
    assert!(r("a.h5").same_content(&r("b.h5")));
    assert!(!r("a.h5").same_content(&r("c.h5")));
}

/// Write a dataset the way another tool (h5py) would, with an explicit role array, and
/// check that `train` uses exactly that split.
#[test]
fn train_honours_a_role_array_written_by_another_tool() {
    let d = tempfile::tempdir().unwrap();
    let o = pipeline(
        d.path(),
        &[
            "generate", "burgers", "--levels", "0,1", "--n", "10,20", "--out", "base.h5",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let mut ds = h5::read(&d.path().join("base.h5")).unwrap();
    // Test = the first 5 HF samples; train on the rest.
    let roles: Vec<u8> = (0..20).map(|i| u8::from(i < 5)).collect();
    ds.levels[1].role = Some(ndarray::Array1::from(roles));
    h5::write(&d.path().join("roles.h5"), &ds).unwrap();
    let o = pipeline(
        d.path(),
        &[
            "train",
            "roles.h5",
            "--model",
            "nn-hf",
            "--n-hf",
            "4,15",
            "--n-lf",
            "10",
            "--seeds",
            "0-1",
            "--max-epochs",
            "30",
            "--out",
            "tr",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let report = std::fs::read_to_string(d.path().join("tr/report.md")).unwrap();
    assert!(report.contains("Test set: 5 held-out"), "{report}");
    // 16 training samples requested but only 15 are marked for training.
    let o = pipeline(
        d.path(),
        &[
            "train",
            "roles.h5",
            "--model",
            "nn-hf",
            "--n-hf",
            "16",
            "--seeds",
            "0",
            "--max-epochs",
            "5",
            "--out",
            "tr2",
        ],
    );
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("only 15 usable training samples"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_diverging_fit_is_scored_worst_and_the_run_goes_on() {
    let d = tempfile::tempdir().unwrap();
    // r3 = 1e30 blows the new layer NN_l up within a few steps.
    std::fs::write(
        d.path().join("diverge.toml"),
        r#"
version = 1
problem = "burgers"
[data]
n = [8, 16]
[protocol]
n_lf = [8]
n_hf = [4]
seeds = [0]
n_test = 8
models = ["nn-hf", "dmf-trans"]
[search]
method = "none"
[models.dmf-trans]
steps = 20
fine_tune_steps = 20
r3 = 1e30
"#,
    )
    .unwrap();
    let o = pipeline(
        d.path(),
        &["run", "burgers", "--config", "diverge.toml", "--out", "o"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let recs: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(d.path().join("o/results.json")).unwrap())
            .unwrap();
    let dmf = recs.iter().find(|r| r["model"] == "dmf-trans").unwrap();
    assert!(dmf["rmse"].is_null(), "{dmf}");
    assert!(dmf["error"].as_str().unwrap().contains("diverged"));
    let nn = recs.iter().find(|r| r["model"] == "nn-hf").unwrap();
    assert!(nn["rmse"].as_f64().unwrap().is_finite());
    assert!(nn.get("error").is_none());
    let report = std::fs::read_to_string(d.path().join("o/report.md")).unwrap();
    assert!(report.contains("| 1 of 1 |"), "{report}");
}

fn config(name: &str) -> String {
    format!("{}/../configs/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_dmf_paper_figures_run_from_the_cli() {
    let d = tempfile::tempdir().unwrap();
    let run = |cfg: &str, out: &str| -> Vec<serde_json::Value> {
        let o = pipeline(
            d.path(),
            &[
                "run",
                "burgers",
                "--config",
                &config(cfg),
                "--smoke",
                "--out",
                out,
            ],
        );
        assert!(o.status.success(), "{cfg}: {}", stderr(&o));
        assert!(d.path().join(out).join("report.md").exists());
        serde_json::from_str(
            &std::fs::read_to_string(d.path().join(out).join("results.json")).unwrap(),
        )
        .unwrap()
    };
    // Fig. 3: the DMF frameworks and DMF_L with 3..7 cells under their own labels.
    let recs = run("burgers-fig3.toml", "fig3");
    let labels: std::collections::BTreeSet<&str> =
        recs.iter().map(|r| r["model"].as_str().unwrap()).collect();
    assert_eq!(labels.len(), 8);
    let seven = recs
        .iter()
        .find(|r| r["model"] == "dmf-trans-7cells")
        .unwrap();
    assert_eq!(seven["hyperparameters"]["cells"], 7);
    assert_eq!(
        seven["hyperparameters"]["architecture"]
            .as_array()
            .unwrap()
            .len(),
        21
    );
    // Fig. 4: 4 x 4 x 3 learning-rate combinations, one seed in the smoke size.
    let recs = run("burgers-fig4.toml", "fig4");
    assert_eq!(recs.len(), 48);
    let combos: std::collections::BTreeSet<String> = recs
        .iter()
        .map(|r| {
            let h = &r["hyperparameters"];
            format!("{} {} {}", h["r1"], h["r2"], h["r3"])
        })
        .collect();
    assert_eq!(
        combos.len(),
        48,
        "every grid cell was fitted with its own rates"
    );
    assert!(d.path().join("fig4/sensitivity.png").exists());
    // Fig. 5: one record per search method, each with its own search summary.
    let recs = run("burgers-fig5.toml", "fig5");
    let methods: Vec<&str> = recs
        .iter()
        .map(|r| r["hyperparameters"]["search"]["method"].as_str().unwrap())
        .collect();
    assert_eq!(methods, ["grid", "random", "median", "sha", "hyperband"]);
    let evals: Vec<u64> = recs
        .iter()
        .map(|r| {
            r["hyperparameters"]["search"]["evaluations"]
                .as_u64()
                .unwrap()
        })
        .collect();
    // Grid: 3^3 configurations; random: 9; successive halving: 9 + 3 + 1; Hyperband 22.
    assert_eq!(evals[0], 27);
    assert_eq!(evals[1], 9);
    assert_eq!(evals[3], 13);
    assert_eq!(evals[4], 22);
    assert!(d.path().join("fig5/searchers.png").exists());
}

#[test]
fn the_test_functions_run_end_to_end_with_their_embedded_configs() {
    // The paper's two sweeps ("cross" layout): at smoke size N_L = 8 with N_H = 4, 8 and
    // N_H = 8 with N_L = 8, 12; multi-fidelity models fit 3 pairs, single-fidelity ones 2.
    let d = tempfile::tempdir().unwrap();
    for p in ["borehole", "currin", "park"] {
        let o = pipeline(d.path(), &["run", p, "--smoke", "--out", p]);
        assert!(o.status.success(), "{p}: {}", stderr(&o));
        let ds = h5::read(&d.path().join(p).join(format!("{p}.h5"))).unwrap();
        assert_eq!(ds.meta.problem, p);
        assert_eq!(ds.levels[1].outputs.dim().1, 1, "scalar output");
        let recs: Vec<serde_json::Value> = serde_json::from_str(
            &std::fs::read_to_string(d.path().join(p).join("results.json")).unwrap(),
        )
        .unwrap();
        let count = |m: &str| recs.iter().filter(|r| r["model"] == m).count();
        for (m, n) in [
            ("nn-hf", 4),
            ("dmf-trans", 6),
            ("gp-hf", 4),
            ("ar", 6),
            ("nar", 6),
            ("gar", 6),
        ] {
            assert_eq!(count(m), n, "{p}: {m}");
        }
        assert!(recs
            .iter()
            .all(|r| r["problem"] == p && r["rmse"].as_f64().unwrap() > 0.0));
        let pairs: std::collections::BTreeSet<(u64, u64)> = recs
            .iter()
            .filter(|r| r["model"] == "ar")
            .map(|r| (r["n_lf"].as_u64().unwrap(), r["n_hf"].as_u64().unwrap()))
            .collect();
        assert_eq!(
            pairs.into_iter().collect::<Vec<_>>(),
            [(8, 4), (8, 8), (12, 8)]
        );
        // GP hyperparameters come from the marginal likelihood and are recorded.
        let gp = recs.iter().find(|r| r["model"] == "gp-hf").unwrap();
        assert!(
            gp["hyperparameters"]["gp"]["log_marginal_likelihood"].is_f64(),
            "{gp}"
        );
        assert!(d.path().join(p).join("rmse_vs_nlf.png").exists());
    }
    // poisson: a 2-D field problem with its own embedded config (levels 0 and 2).
    let o = pipeline(d.path(), &["run", "poisson", "--smoke", "--out", "poisson"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let ds = h5::read(&d.path().join("poisson/poisson.h5")).unwrap();
    assert_eq!(
        ds.levels.iter().map(|l| l.level).collect::<Vec<_>>(),
        [0, 2]
    );
    assert!(d.path().join("poisson/mae_fields.png").exists());
    // The Fig. 3 config for the test functions runs for any of them.
    let o = pipeline(
        d.path(),
        &[
            "run",
            "park",
            "--config",
            &config("synthetic-fig3.toml"),
            "--smoke",
            "--out",
            "park-fig3",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn the_rbf_study_runs_and_the_full_batch_loss_gives_positive_definite_surrogates() {
    let d = tempfile::tempdir().unwrap();
    let o = pipeline(d.path(), &["rbf-study", "--smoke", "--out", "rbf"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(d.path().join("rbf/results.json")).unwrap())
            .unwrap();
    // 2 batch sizes x 3 shape parameters x 1 draw x 3 surrogates.
    assert_eq!(rows.len(), 18);
    // The full-batch loss is one convex quadratic: at a moderate shape parameter every
    // construction must come out positive definite over the whole grid.
    for r in rows
        .iter()
        .filter(|r| r["batch"] == 121 && r["shape"] == 0.01)
    {
        assert_eq!(r["pd_everywhere"], true, "{r}");
    }
    // Cross-validation picks exactly one shape parameter per batch, draw and construction,
    // and on the full batch the picked surrogate is positive definite too.
    for batch in [3, 121] {
        for s in ["rbf-f", "rbf-fg", "rbf-g"] {
            let picked: Vec<_> = rows
                .iter()
                .filter(|r| r["batch"] == batch && r["surrogate"] == s && r["cv_choice"] == true)
                .collect();
            assert_eq!(picked.len(), 1, "{batch} {s}");
            if batch == 121 {
                assert_eq!(picked[0]["pd_everywhere"], true, "{}", picked[0]);
            }
        }
    }
    let report = std::fs::read_to_string(d.path().join("rbf/report.md")).unwrap();
    assert!(report.contains("| 3 | rbf-g |"));
    assert!(report.contains("chosen by cross-validation"));
}

#[test]
fn md_runs_on_its_grid_and_trains_on_the_stable_levels_only() {
    // The embedded md config at smoke size: a 3 x 4 grid solved at all five time steps (the
    // failure table), training on dt = 5 fs against dt = 1 fs.
    let d = tempfile::tempdir().unwrap();
    let o = pipeline(d.path(), &["run", "md", "--smoke", "--out", "md"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let ds = h5::read(&d.path().join("md/md.h5")).unwrap();
    assert_eq!(ds.meta.design, "grid");
    // The 3 x 4 shape is in the inputs: 3 temperatures, 4 densities.
    let distinct = |j: usize| {
        let mut v: Vec<u64> = ds.levels[0]
            .inputs
            .column(j)
            .iter()
            .map(|x| x.to_bits())
            .collect();
        v.sort();
        v.dedup();
        v.len()
    };
    assert_eq!((distinct(0), distinct(1)), (3, 4));
    assert_eq!(ds.levels.len(), 5);
    // One design for every level: every time step of one input from the same start.
    for l in &ds.levels {
        assert_eq!(l.inputs, ds.levels[0].inputs);
        assert_eq!(l.seed, ds.levels[0].seed);
    }
    assert!(
        ds.levels[0].failed() > 0,
        "dt = 20 fs blows up on part of the grid"
    );
    assert_eq!(ds.levels[4].failed(), 0);
    let splits: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.path().join("md/splits.json")).unwrap())
            .unwrap();
    assert_eq!(splits["lf_level"], 2);
    assert_eq!(splits["hf_level"], 4);
    let test: Vec<u64> = serde_json::from_value(splits["test_hf"].clone()).unwrap();
    for t in splits["train"].as_array().unwrap() {
        for i in t["lf"].as_array().unwrap() {
            assert!(!test.contains(&i.as_u64().unwrap()), "LF at a test input");
        }
    }
    let report = std::fs::read_to_string(d.path().join("md/report.md")).unwrap();
    assert!(report.contains("| 0 | dt20fs |"), "{report}");
}

#[test]
fn a_sweep_over_n_lf_of_a_curve_output_draws_the_predicted_curves() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("md.toml"),
        "version = 1\nproblem = \"md\"\n[data]\ndesign = \"grid\"\ngrid = [3, 4]\nlevels = [2, 4]\nn = [12, 12]\n\
         [protocol]\nn_lf = [4, 8]\nn_hf = [3]\nseeds = [0]\nn_test = 4\nmodels = [\"ar\", \"nn-hf\"]\n\
         [models.nn-hf]\nepochs = 50\n",
    )
    .unwrap();
    let o = pipeline(
        d.path(),
        &["run", "md", "--config", "md.toml", "--out", "o"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(d.path().join("o/profiles.png").exists());
    let report = std::fs::read_to_string(d.path().join("o/report.md")).unwrap();
    assert!(report.contains("## Predicted curves"), "{report}");
    assert!(report.contains("| ar | "), "{report}");
    let recs: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(d.path().join("o/results.json")).unwrap())
            .unwrap();
    for r in &recs {
        let (max, mae) = (
            r["max_abs_error"].as_f64().unwrap(),
            r["mae"].as_f64().unwrap(),
        );
        assert!(max >= mae && mae > 0.0, "{r}");
    }
}

#[test]
fn a_level_group_opens_in_xarray_with_named_dimensions_coordinates_and_units() {
    // What a Python user does with a file (scripts/setup installs xarray and h5netcdf);
    // -W error turns any warning (phony dimensions, undecodable attributes) into a failure.
    let d = tempfile::tempdir().unwrap();
    let o = pipeline(
        d.path(),
        &[
            "generate", "burgers", "--levels", "0,1", "--n", "4,6", "--out", "b.h5",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let script = r#"
import xarray as xr
ds = xr.open_dataset("b.h5", engine="h5netcdf", group="fidelity/1")
u = ds["outputs"]
assert u.dims == ("sample", "t", "x"), u.dims
assert u.sizes == {"sample": 6, "t": 100, "x": 100}, u.sizes
assert float(ds["t"][-1]) == 3.0 and float(ds["x"][-1]) == 1.0
assert list(ds["input"].values) == ["nu"]
assert ds["inputs"].dims == ("sample", "input")
assert ds["cost_s"].attrs["units"] == "s"
assert list(ds["status"].attrs["flag_values"]) == [0, 1, 2]
assert ds["status"].attrs["flag_meanings"] == "ok solver_failed not_computed"
assert u.attrs["long_name"] == "u"
nu = ds["inputs"].sel(input="nu").values
assert ((nu >= 0.001) & (nu <= 0.1)).all()
print("ok", u.dims)
"#;
    let o = std::process::Command::new("python3")
        .args(["-W", "error", "-c", script])
        .current_dir(d.path())
        .output()
        .expect("python3 (scripts/setup installs xarray and h5netcdf for it)");
    assert!(
        o.status.success(),
        "xarray could not open the level group as documented:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The multi-stage paper's experiments run from the CLI (smoke sizes): every scheme trains
/// all its stages, and on the linear heat problem the coarse target is exactly affine in the
/// five source parameters (the reference point the report prints).
#[test]
fn the_multistage_studies_run_from_the_cli() {
    let d = tempfile::tempdir().unwrap();
    for (problem, cfg, schemes, stages) in [
        ("cem-heat", "cem-heat-multistage.toml", 3, 3),
        ("cem-steady", "cem-steady-multistage.toml", 2, 2),
    ] {
        let out = format!("o-{problem}");
        let o = pipeline(
            d.path(),
            &[
                "run",
                problem,
                "--config",
                &config(cfg),
                "--smoke",
                "--out",
                &out,
            ],
        );
        assert!(
            o.status.success(),
            "{problem}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let text = std::fs::read_to_string(d.path().join(&out).join("multistage.json")).unwrap();
        let s: serde_json::Value = serde_json::from_str(&text).unwrap();
        let runs = s["runs"].as_array().unwrap();
        assert_eq!(
            runs.len(),
            schemes,
            "{problem}: one run per scheme at smoke size"
        );
        for r in runs {
            let st = r["stages"].as_array().unwrap();
            assert_eq!(st.len(), stages);
            assert!(st
                .iter()
                .all(|x| x["test_error"].as_f64().unwrap().is_finite()));
        }
        let mean = s["mean_baseline"].as_f64().unwrap();
        assert!(mean > 0.01 && mean < 1.0, "{problem}: mean baseline {mean}");
        if problem == "cem-heat" {
            let affine = s["affine_baseline"].as_f64().unwrap();
            assert!(affine < 1e-8, "linear problem: affine fit error {affine:e}");
        }
        let report = std::fs::read_to_string(d.path().join(&out).join("report.md")).unwrap();
        assert!(report.contains("stage 1 error"), "{report}");
    }
}

/// The DGMF comparison runs from the CLI (smoke size): dgmf's records carry samples' NLL and
/// coverage, and the report sets dgmf against the best other model beside the paper's claim.
/// The zero-shot form (`--n ...,0`) trains dgmf with a continuous fidelity on the cheaper
/// levels only, while a model that needs target data refuses by name.
#[test]
fn the_dgmf_comparison_and_its_zero_shot_form_run_from_the_cli() {
    let d = tempfile::tempdir().unwrap();
    let o = pipeline(
        d.path(),
        &[
            "run",
            "heat",
            "--config",
            &config("heat-dgmf.toml"),
            "--smoke",
            "--out",
            "o",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.path().join("o/results.json")).unwrap())
            .unwrap();
    let dg: Vec<&serde_json::Value> = results
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["model"] == "dgmf")
        .collect();
    assert!(!dg.is_empty());
    for r in &dg {
        let cov = r["coverage95"].as_f64().unwrap();
        assert!(r["rmse"].as_f64().unwrap().is_finite() && (0.0..=1.0).contains(&cov));
    }
    let report = std::fs::read_to_string(d.path().join("o/report.md")).unwrap();
    assert!(report.contains("## DGMF against the best other model"));
    assert!(report.contains("58.0 % error reduction on heat"));

    let data = d.path().join("o/heat.h5");
    let zero_shot = |model: &str| {
        pipeline(
            d.path(),
            &[
                "train",
                data.to_str().unwrap(),
                "--levels",
                "0,1",
                "--n",
                "8,0",
                "--model",
                model,
                "--config",
                &config("heat-dgmf-zero-shot.toml"),
                "--seeds",
                "0",
                "--n-test",
                "8",
                "--max-epochs",
                "5",
                "--out",
                &format!("z-{model}"),
            ],
        )
    };
    let o = zero_shot("dgmf");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = zero_shot("nn-hf");
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("nn-hf") && err.lines().count() == 1, "{err}");
}
