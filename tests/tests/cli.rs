//! The CLI contract (DESIGN sec. 4): `list`, `solve --json`, and one-line errors with a
//! non-zero exit for every class of bad input.

use mfpipe_tests::{pipeline, stderr, stdout};
use serde_json::Value;

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// Bad input: non-zero exit, exactly one line on stderr naming `needle`, no panic.
fn fails_with(args: &[&str], needle: &str) {
    let d = tmp();
    fails_in(d.path(), args, needle);
}

fn fails_in(dir: &std::path::Path, args: &[&str], needle: &str) {
    let o = pipeline(dir, args);
    let err = stderr(&o);
    assert!(!o.status.success(), "{args:?} should fail; stderr: {err}");
    assert_ne!(o.status.code(), Some(101), "{args:?} panicked: {err}");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "{args:?}: expected a one-line error, got:\n{err}"
    );
    assert!(err.starts_with("error: "), "{args:?}: {err}");
    assert!(
        err.contains(needle),
        "{args:?}: error {err:?} should mention {needle:?}"
    );
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "{err}"
    );
}

#[test]
fn list_names_problem_inputs_and_levels() {
    let o = pipeline(tmp().path(), &["list"]);
    assert!(o.status.success());
    let s = stdout(&o);
    assert!(s.contains("burgers:"));
    assert!(s.contains("nu") && s.contains("[0.001, 0.1]"));
    assert!(s.contains("level  4"));
}

#[test]
fn solve_json_follows_the_contract() {
    let o = pipeline(
        tmp().path(),
        &[
            "solve",
            "burgers",
            "--fidelity",
            "1",
            "--set",
            "nu=0.01",
            "--json",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).expect("stdout is one JSON object");
    assert_eq!(v["problem"], "burgers");
    assert_eq!(v["fidelity"]["level"], 1);
    assert_eq!(v["fidelity"]["name"], "high");
    assert_eq!(v["inputs"]["nu"], 0.01);
    assert_eq!(v["shape"], serde_json::json!([100, 100]));
    let axes = v["axes"].as_array().unwrap();
    assert_eq!(axes[0]["name"], "t");
    assert_eq!(axes[1]["name"], "x");
    assert_eq!(axes[0]["values"].as_array().unwrap().len(), 100);
    assert_eq!(axes[0]["values"][99], 3.0);
    assert_eq!(axes[1]["values"][99], 1.0);
    let vals = v["values"].as_array().unwrap();
    assert_eq!(vals.len(), 100);
    assert_eq!(vals[0].as_array().unwrap().len(), 100);
    // values[i][j] = u(t_i, x_j): t = 0 row is sin(pi x / 2) interpolated, ends at 1.
    assert_eq!(vals[0][99], 1.0);
    assert_eq!(vals[50][0], 0.0);
    assert!(v["cost_s"].as_f64().unwrap() > 0.0);
    assert!(
        v["diagnostics"]["newton_max_final_residual"]
            .as_f64()
            .unwrap()
            < 1e-12
    );
    // The same solve through the library gives the same numbers.
    let lib = mfpipe_solvers::registry::by_name("burgers")
        .unwrap()
        .solve_at(&[0.01], 1)
        .unwrap();
    assert_eq!(vals[37][61].as_f64().unwrap(), lib.values[37 * 100 + 61]);
}

#[test]
fn solve_defaults_missing_inputs_to_the_centre() {
    let o = pipeline(
        tmp().path(),
        &["solve", "burgers", "--fidelity", "low", "--json"],
    );
    assert!(o.status.success());
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["inputs"]["nu"], 0.0505);
    assert_eq!(v["fidelity"]["level"], 0);
}

#[test]
fn bad_solver_input_is_one_line() {
    fails_with(
        &["solve", "wave", "--set", "nu=0.01"],
        "unknown problem \"wave\"",
    );
    fails_with(&["solve", "burgers", "--set", "mu=0.01"], "no input \"mu\"");
    fails_with(
        &["solve", "burgers", "--set", "nu=0.5"],
        "nu = 0.5 is outside its range [0.001, 0.1]",
    );
    fails_with(
        &["solve", "burgers", "--set", "nu=NaN"],
        "not a finite number",
    );
    fails_with(
        &["solve", "burgers", "--set", "nu=abc"],
        "\"abc\" is not a number",
    );
    fails_with(&["solve", "burgers", "--set", "nu"], "expected NAME=VALUE");
    fails_with(
        &["solve", "burgers", "--set", "nu=0.01", "--set", "nu=0.02"],
        "given twice",
    );
    fails_with(
        &["solve", "burgers", "--fidelity", "7"],
        "no fidelity \"7\"",
    );
    fails_with(&["frobnicate"], "unrecognized subcommand");
}

#[test]
fn bad_generate_arguments_are_one_line() {
    fails_with(&["generate", "burgers", "--n=-5,3"], "--n \"-5\"");
    fails_with(
        &["generate", "burgers", "--levels", "0,1", "--n", "4"],
        "--levels has 2 entries but --n has 1",
    );
    fails_with(
        &["generate", "burgers", "--levels", "0,9", "--n", "4,4"],
        "no fidelity \"9\"",
    );
    fails_with(
        &["generate", "burgers", "--levels", "1,0", "--n", "4,4"],
        "strictly increasing",
    );
    fails_with(
        &["generate", "burgers", "--design", "halton"],
        "unknown design \"halton\"",
    );
    fails_with(&["generate", "burgers", "--seed", "-1"], "--seed \"-1\"");
    fails_with(
        &["generate", "burgers", "--n", "0,4"],
        "at least one sample",
    );
}

#[test]
fn a_grid_shape_must_fit_the_design() {
    fails_with(
        &[
            "generate", "burgers", "--grid", "4x4", "--levels", "0", "--n", "16",
        ],
        "--grid \"4x4\" needs --design grid",
    );
    fails_with(
        &[
            "generate", "md", "--design", "grid", "--grid", "5x19", "--levels", "4", "--n", "114",
        ],
        "shape [5, 19] has 95 points, not n = 114",
    );
    fails_with(
        &[
            "generate", "md", "--design", "grid", "--grid", "6xa", "--levels", "4", "--n", "114",
        ],
        "expected counts per input like 6x19",
    );
}

#[test]
fn bad_configs_are_one_line() {
    let d = tmp();
    std::fs::write(
        d.path().join("broken.toml"),
        "version = 1\nproblem = \"burgers\"\n[data\nseed = 1\n",
    )
    .unwrap();
    fails_in(
        d.path(),
        &["run", "burgers", "--config", "broken.toml"],
        "malformed config at line 3",
    );
    std::fs::write(
        d.path().join("unknown.toml"),
        "version = 1\nproblem = \"burgers\"\nfoo = 3\n",
    )
    .unwrap();
    fails_in(
        d.path(),
        &["run", "burgers", "--config", "unknown.toml"],
        "unknown field `foo`",
    );
    std::fs::write(
        d.path().join("neg.toml"),
        "version = 1\nproblem = \"burgers\"\n[data]\nn = [-4, 10]\n",
    )
    .unwrap();
    fails_in(
        d.path(),
        &["run", "burgers", "--config", "neg.toml"],
        "malformed config",
    );
    std::fs::write(
        d.path().join("small.toml"),
        "version = 1\nproblem = \"burgers\"\n[data]\nn = [32, 40]\n",
    )
    .unwrap();
    fails_in(
        d.path(),
        &["run", "burgers", "--config", "small.toml"],
        "only 40",
    );
    std::fs::write(
        d.path().join("model.toml"),
        "version = 1\nproblem = \"burgers\"\n[protocol]\nmodels = [\"gpx\"]\n",
    )
    .unwrap();
    fails_in(
        d.path(),
        &["run", "burgers", "--config", "model.toml"],
        "unknown model \"gpx\"",
    );
    std::fs::write(
        d.path().join("grid.toml"),
        "version = 1\nproblem = \"md\"\n[data]\ngrid = [6, 19]\n",
    )
    .unwrap();
    fails_in(
        d.path(),
        &["run", "md", "--config", "grid.toml"],
        "data.grid [6, 19] needs design = \"grid\"",
    );
    std::fs::write(
        d.path().join("levels.toml"),
        "version = 1\nproblem = \"md\"\n[data]\nlevels = [0, 4]\nn = [8, 8]\n[protocol]\nlevels = [2, 4]\n",
    )
    .unwrap();
    fails_in(
        d.path(),
        &["run", "md", "--config", "levels.toml"],
        "level 2 is not in data.levels [0, 4]",
    );
    std::fs::write(
        d.path().join("hp.toml"),
        "version = 1\nproblem = \"burgers\"\n[models.nn-hf]\nlr = -1.0\n",
    )
    .unwrap();
    fails_in(
        d.path(),
        &["run", "burgers", "--config", "hp.toml"],
        "learning rate -1",
    );
    fails_in(
        d.path(),
        &["run", "burgers", "--config", "missing.toml"],
        "cannot read config missing.toml",
    );
    // TOML's nan and inf are named by key, not "invalid type: null".
    std::fs::write(
        d.path().join("nan.toml"),
        "version = 1\nproblem = \"burgers\"\n[models.dmf-trans]\nr1 = nan\n",
    )
    .unwrap();
    fails_in(
        d.path(),
        &["run", "burgers", "--config", "nan.toml"],
        "models.dmf-trans.r1 = NaN: not a finite number",
    );
    // An empty file is not silently the generic experiment: a config states its version.
    std::fs::write(d.path().join("empty.toml"), "").unwrap();
    fails_in(
        d.path(),
        &["run", "burgers", "--config", "empty.toml"],
        "missing field `version`",
    );
    // Lists that name an entry twice, and an empty test set.
    for (body, needle) in [
        (
            "[protocol]\nseeds = [0, 0]\n",
            "protocol.seeds [0, 0] lists 0 twice",
        ),
        (
            "[protocol]\nmodels = [\"ar\", \"ar\"]\n",
            "protocol.models [\"ar\", \"ar\"] lists \"ar\" twice",
        ),
        ("[protocol]\nn_test = 0\n", "protocol.n_test = 0"),
    ] {
        std::fs::write(
            d.path().join("lists.toml"),
            format!("version = 1\nproblem = \"burgers\"\n{body}"),
        )
        .unwrap();
        fails_in(
            d.path(),
            &["run", "burgers", "--config", "lists.toml"],
            needle,
        );
    }
}

#[test]
fn output_paths_are_checked_before_work_and_named() {
    let d = tmp();
    std::fs::write(d.path().join("afile"), "not a directory").unwrap();
    for cmd in [
        vec!["run", "currin", "--smoke", "--out", "afile"],
        vec!["tradeoff", "currin", "--smoke", "--out", "afile"],
    ] {
        fails_in(d.path(), &cmd, "--out afile exists and is not a directory");
    }
    fails_in(
        d.path(),
        &["run", "currin", "--smoke", "--out", "/proc/mfpipe-out"],
        "cannot create the output directory /proc/mfpipe-out",
    );
    fails_in(
        d.path(),
        &["generate", "currin", "--n", "5,5", "--out", "afile/x.h5"],
        "afile/x.h5",
    );
    // Nothing was computed on the way to those errors.
    assert!(!d.path().join("afile.h5").exists());
}

#[test]
fn bad_train_arguments_are_one_line_and_refused_before_work() {
    let d = tmp();
    let o = pipeline(
        d.path(),
        &[
            "generate", "burgers", "--levels", "0,1", "--n", "12,12", "--out", "b.h5",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let train = |extra: &[&str]| {
        let mut a = vec!["train", "b.h5", "--n-hf", "2", "--n-lf", "2"];
        if !extra.contains(&"--n-test") {
            a.extend_from_slice(&["--n-test", "4"]);
        }
        a.extend_from_slice(extra);
        a.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let currin = format!("{}/../configs/currin.toml", env!("CARGO_MANIFEST_DIR"));
    for (extra, needle) in [
        (
            vec!["--config", currin.as_str()],
            "config is for problem \"currin\", but b.h5 holds \"burgers\"",
        ),
        (
            vec!["--n-test", "0"],
            "--n-test \"0\": expected a positive integer",
        ),
        (
            vec!["--lf-level", "1", "--hf-level", "0"],
            "--lf-level 1 is not below --hf-level 0",
        ),
        (vec!["--models", "ar,ar"], "lists \"ar\" twice"),
        (vec!["--seeds", "0,0"], "--seeds [0, 0] lists 0 twice"),
        (vec!["--seeds", "0-1000000"], "1000001 seeds; at most 10000"),
    ] {
        let args = train(&extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        fails_in(d.path(), &args, needle);
    }
    // An HF-only model does not need the LF samples it does not use.
    let args = train(&[
        "--models", "nn-hf", "--n-lf", "50", "--seeds", "0", "--out", "o",
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = pipeline(d.path(), &args);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn bad_datasets_are_one_line() {
    let d = tmp();
    fails_in(d.path(), &["train", "none.h5"], "none.h5: no such file");
    std::fs::write(d.path().join("empty.h5"), b"").unwrap();
    fails_in(d.path(), &["train", "empty.h5"], "the file is empty");
    std::fs::write(
        d.path().join("junk.h5"),
        b"this is not an HDF5 file at all, just text\n".repeat(50),
    )
    .unwrap();
    fails_in(d.path(), &["train", "junk.h5"], "not a readable HDF5 file");
    {
        let f = hdf5::File::create(d.path().join("other.h5")).unwrap();
        let s: hdf5::types::VarLenUnicode = "netcdf4".parse().unwrap();
        f.new_attr::<hdf5::types::VarLenUnicode>()
            .shape(())
            .create("schema")
            .unwrap()
            .write_scalar(&s)
            .unwrap();
        // Close for real (HDF5 locks open files) before `pipeline` opens it.
        f.close().unwrap();
    }
    fails_in(d.path(), &["train", "other.h5"], "schema is \"netcdf4\"");
    {
        let f = hdf5::File::create(d.path().join("noschema.h5")).unwrap();
        f.create_group("fidelity").unwrap();
        f.close().unwrap();
    }
    fails_in(d.path(), &["train", "noschema.h5"], "expected \"mfpipe/1\"");
}

/// libhdf5 segfaults on some damaged files and loops forever on others (both files are cases
/// of the HDF5 fuzzer, `scripts/fuzz`). `pipeline` reads in a child first, so the user gets
/// one line and exit 1 instead of a dead or stuck process.
#[test]
fn files_that_crash_or_hang_libhdf5_are_one_line() {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    for (file, needle) in [
        ("libhdf5-segfault.h5", "crashed on it"),
        ("libhdf5-loop.h5", "did not finish in 2 s"),
    ] {
        let d = tmp();
        std::fs::copy(fixtures.join(file), d.path().join(file)).unwrap();
        let t0 = std::time::Instant::now();
        let o = std::process::Command::new(mfpipe_tests::pipeline_bin())
            .args(["check", file])
            .current_dir(d.path())
            .env("MFPIPE_READ_TIMEOUT", "2")
            .output()
            .unwrap();
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{file}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{file}: {err}");
        assert!(err.contains(file), "{file}: {err}");
        // Another libhdf5 build may read the file to an ordinary error instead; Debian's
        // 1.10.8 (what scripts/setup installs) crashes or loops, which `needle` names.
        println!(
            "{file}: {} ({:.1} s)",
            err.trim_end(),
            t0.elapsed().as_secs_f64()
        );
        if !err.contains(needle) {
            println!("{file}: this libhdf5 did not crash or loop on it");
        }
    }
}

#[test]
fn huge_counts_are_refused_before_allocating() {
    fails_with(
        &["generate", "burgers", "--levels", "0", "--n", "99999999999"],
        "99999999999 samples of burgers level 0 would need",
    );
    fails_with(
        &["bench", "burgers", "--samples", "99999999999"],
        "bench --samples 99999999999 would need",
    );
}

#[test]
fn a_full_stdout_is_an_error_not_a_panic() {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let o = std::process::Command::new(mfpipe_tests::pipeline_bin())
        .arg("list")
        .stdout(full)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.starts_with("error: cannot write to stdout"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}

#[test]
fn a_second_writer_is_refused_at_once_and_a_killed_ones_lock_is_taken_over() {
    use std::process::{Command, Stdio};
    let d = tmp();
    let args = [
        "generate", "md", "--design", "sobol", "--levels", "4", "--n", "24", "--out", "md.h5",
    ];
    let mut first = Command::new(mfpipe_tests::pipeline_bin())
        .current_dir(d.path())
        .args(args)
        .env("RAYON_NUM_THREADS", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lock = d.path().join("md.h5.lock");
    let t = std::time::Instant::now();
    while std::fs::read_to_string(&lock).map_or(true, |s| s.trim().is_empty()) {
        assert!(t.elapsed().as_secs() < 30, "the first writer never locked");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let mut again = args.to_vec();
    again.push("--resume");
    fails_in(
        d.path(),
        &again,
        &format!("md.h5 is being written by process {}", first.id()),
    );
    first.kill().unwrap();
    first.wait().unwrap();
    // The kernel dropped the killed writer's lock: the next writer resumes.
    let o = pipeline(d.path(), &again);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!lock.exists(), "the lock file goes with its writer");
}
