//! One function per subcommand: what the `pipeline` binary runs after parsing. Library
//! callers drive the same steps through `generate`, `experiment`, the studies and `report`.

use crate::cli::*;
use crate::config::{RunConfig, Study};
use crate::export::export_all;
use crate::progress::note;
use crate::util::write_text;
use crate::{
    config, experiment, generate, isolate, progress, rbf_study, report, saved, studies, tradeoff,
    util,
};
use anyhow::{bail, Context, Result};
use mfpipe_data::design::DesignKind;
use mfpipe_data::Progress;
use mfpipe_fusion::Budget;
use mfpipe_solvers::{registry, Simulator};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Run one parsed command line.
pub fn dispatch(cli: Cli) -> Result<()> {
    if let Some(n) = cli.threads {
        if n == 0 {
            bail!("--threads 0: need at least one thread");
        }
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .context("--threads: cannot size the thread pool")?;
    }
    match cli.cmd {
        Cmd::List => list(),
        Cmd::Models => models(),
        Cmd::Solve(a) => solve(a),
        Cmd::Generate(a) => generate(a),
        Cmd::Merge(a) => merge(a),
        Cmd::Check(a) => check(a),
        Cmd::Train(a) => train(a),
        Cmd::Run(a) => run(a),
        Cmd::Predict(a) => predict(a),
        Cmd::Bench(a) => bench(a),
        Cmd::Tradeoff(a) => tradeoff(a),
        Cmd::ProbeRead { path, head } => isolate::probe_main(&path, head),
        Cmd::RbfStudy(a) => rbf_study(a),
    }
}

/// The model table: what each model takes, its default hyperparameters and search space.
fn models() -> Result<()> {
    for m in mfpipe_fusion::registry::MODELS {
        println!("{}: {}", m.name, m.summary);
        println!(
            "  takes      {}{}",
            m.sources.describe(),
            if m.fields_only {
                "; field outputs only (1-D or 2-D)"
            } else {
                ""
            }
        );
        println!(
            "  predicts   {}",
            if m.variance {
                "mean and variance (records get nll, coverage95)"
            } else {
                "mean"
            }
        );
        let defaults = (m.params)(&serde_json::Value::Null)?;
        println!("  defaults   {}", serde_json::to_string(&defaults)?);
        let space = (m.default_space)();
        if !space.is_empty() {
            let dims: Vec<String> = space
                .iter()
                .map(|d| {
                    format!(
                        "{} in [{}, {}]{}",
                        d.name,
                        d.lower,
                        d.upper,
                        if d.log { " (log)" } else { "" }
                    )
                })
                .collect();
            println!("  searched   {}", dims.join(", "));
        }
    }
    Ok(())
}

fn list() -> Result<()> {
    for sim in registry::all() {
        println!("{}: {}", sim.name(), sim.spec().summary);
        for s in &sim.spec().inputs {
            println!(
                "  input  {:<10} [{}, {}] {} (default {})",
                s.name,
                s.lower,
                s.upper,
                s.unit,
                s.default_value()
            );
        }
        for f in &sim.spec().fidelities {
            println!("  level  {} {:<8} {}", f.level, f.name, f.description);
        }
        let out = &sim.spec().output;
        println!(
            "  output {} on {:?} ({})",
            out.name,
            out.shape(),
            out.axes
                .iter()
                .map(|a| a.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}

/// Parse `--set NAME=VALUE` pairs against a problem's inputs; unset inputs take their default.
pub fn parse_sets(sim: &dyn Simulator, sets: &[String]) -> Result<Vec<f64>> {
    let specs = &sim.spec().inputs;
    let names: Vec<&str> = specs.iter().map(|p| p.name).collect();
    let defaults: Vec<f64> = specs.iter().map(|s| s.default_value()).collect();
    parse_named(sim.name(), &names, &defaults, sets)
}

/// `--set NAME=VALUE` pairs as values in `names` order; names not given take `defaults`.
fn parse_named(owner: &str, names: &[&str], defaults: &[f64], sets: &[String]) -> Result<Vec<f64>> {
    let mut x: Vec<Option<f64>> = vec![None; names.len()];
    for s in sets {
        let (name, value) = s
            .split_once('=')
            .with_context(|| format!("--set {s:?}: expected NAME=VALUE"))?;
        let (name, value) = (name.trim(), value.trim());
        let k = names.iter().position(|p| *p == name).with_context(|| {
            format!(
                "--set {s:?}: {owner} has no input {name:?} (inputs: {})",
                names.join(", ")
            )
        })?;
        if x[k].is_some() {
            bail!("--set {s:?}: input {name} given twice");
        }
        let v: f64 = value
            .parse()
            .map_err(|_| anyhow::anyhow!("--set {s:?}: {value:?} is not a number"))?;
        x[k] = Some(v);
    }
    Ok(x.iter()
        .zip(defaults)
        .map(|(v, d)| v.unwrap_or(*d))
        .collect())
}

/// Nest a row-major vector by `shape` as JSON arrays, so values[i][j] follows the axes.
fn nest(values: &[f64], shape: &[usize]) -> serde_json::Value {
    if shape.len() <= 1 {
        return json!(values);
    }
    let stride: usize = shape[1..].iter().product();
    serde_json::Value::Array(
        values
            .chunks(stride)
            .map(|c| nest(c, &shape[1..]))
            .collect(),
    )
}

fn solve(a: SolveArgs) -> Result<()> {
    let sim = registry::by_name(&a.problem)?;
    let fid = sim.fidelity(&a.fidelity)?.clone();
    let x = parse_sets(sim.as_ref(), &a.set)?;
    let sample = mfpipe_solvers::Sample::new(x.clone(), fid.level, a.seed);
    let sol = sim.solve(&sample)?;
    let out = &sim.spec().output;
    let inputs: serde_json::Map<String, serde_json::Value> = sim
        .spec()
        .inputs
        .iter()
        .zip(&x)
        .map(|(s, v)| (s.name.to_string(), json!(v)))
        .collect();
    if a.json {
        let obj = json!({
            "problem": sim.name(),
            "fidelity": {"level": fid.level, "name": fid.name},
            "inputs": inputs,
            "shape": out.shape(),
            "axes": out.axes.iter().map(|ax| json!({"name": ax.name, "values": ax.values})).collect::<Vec<_>>(),
            "values": nest(&sol.values, &out.shape()),
            "seed": sample.seed,
            "cost_s": sol.cost_s,
            "diagnostics": sol.diagnostics,
        });
        let mut obj = obj;
        if !sim.spec().extras.is_empty() {
            let extras: serde_json::Map<String, serde_json::Value> = sim
                .spec()
                .extras
                .iter()
                .map(|e| {
                    let v = sol.extras.get(&e.name).map_or(&[][..], |v| &v[..]);
                    (e.name.clone(), nest(v, &e.shape))
                })
                .collect();
            obj["extras"] = serde_json::Value::Object(extras);
        }
        println!("{}", serde_json::to_string(&obj)?);
    } else {
        let (lo, hi) = sol
            .values
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
                (a.min(v), b.max(v))
            });
        println!(
            "{} at fidelity {} ({}): {}",
            sim.name(),
            fid.level,
            fid.name,
            fid.description
        );
        println!("inputs: {}", serde_json::Value::Object(inputs));
        println!(
            "output {} on {:?}: min {lo:.6}, max {hi:.6}",
            out.name,
            out.shape()
        );
        println!("cost: {:.3e} s", sol.cost_s);
        for (k, v) in &sol.diagnostics {
            println!("  {k}: {v}");
        }
    }
    Ok(())
}

/// `pipeline predict`: a saved model at one point (printed) or at many (written to --out).
fn predict(a: PredictArgs) -> Result<()> {
    if let Some(out) = &a.out {
        check_out_file(out, a.force)?;
    }
    let loaded = saved::load(&a.model)?;
    let card = &loaded.card;
    let names = card.input_names();
    let x = match &a.inputs {
        Some(path) => {
            if !a.set.is_empty() {
                bail!("--inputs and --set: give one or the other");
            }
            read_inputs(path, card)?
        }
        None => {
            let centre: Vec<f64> = card
                .dataset
                .inputs
                .iter()
                .map(|i| 0.5 * (i.lower + i.upper))
                .collect();
            let refs: Vec<&str> = names.iter().map(|s| s.as_str()).collect();
            let owner = format!("the model ({})", card.dataset.problem);
            let row = parse_named(&owner, &refs, &centre, &a.set)?;
            ndarray::Array2::from_shape_vec((1, row.len()), row).expect("one row")
        }
    };
    let outside = card.check_inputs(&x, a.extrapolate)?;
    let t0 = Instant::now();
    let pred = loaded
        .model
        .predict(x.view())
        .with_context(|| format!("predicting with {}", loaded.dir.display()))?;
    let cost = t0.elapsed().as_secs_f64();
    let var = pred.variance();
    let target = card.target();
    if let Some(out) = &a.out {
        let units: Vec<String> = card.dataset.inputs.iter().map(|i| i.unit.clone()).collect();
        mfpipe_data::h5::write_predictions(
            out,
            &mfpipe_data::h5::Predictions {
                problem: &card.dataset.problem,
                model: &card.model,
                kind: &card.kind,
                input_names: &names,
                input_units: &units,
                output_name: &card.dataset.output.name,
                output_unit: &card.dataset.output.unit,
                axes: &card.axes(),
                inputs: &x,
                mean: &pred.mean,
                variance: var.as_ref(),
                samples: pred.samples.as_ref(),
            },
        )?;
        note(format!(
            "wrote {} prediction(s) of {} by {} to {} in {cost:.3} s{}",
            x.nrows(),
            card.dataset.output.name,
            card.model,
            out.display(),
            if outside {
                " (some inputs outside the trained range)"
            } else {
                ""
            }
        ));
        return Ok(());
    }
    if x.nrows() != 1 {
        bail!(
            "{} rows of inputs: pass --out FILE.h5 to write their predictions",
            x.nrows()
        );
    }
    let shape = card.shape();
    let inputs: serde_json::Map<String, serde_json::Value> = names
        .iter()
        .zip(x.row(0))
        .map(|(n, v)| (n.clone(), json!(v)))
        .collect();
    let mean: Vec<f64> = pred.mean.row(0).to_vec();
    if a.json {
        let mut obj = json!({
            "problem": card.dataset.problem,
            "fidelity": {"level": target.level, "name": target.name},
            "model": card.model,
            "kind": card.kind,
            "inputs": inputs,
            "shape": shape,
            "axes": card.dataset.output.axes.iter().map(|ax| json!({"name": ax.name, "values": ax.values})).collect::<Vec<_>>(),
            "values": nest(&mean, &shape),
            "seed": card.seed,
            "cost_s": cost,
            "extrapolated": outside,
        });
        if let Some(v) = &var {
            obj["variance"] = nest(&v.row(0).to_vec(), &shape);
        }
        if let Some(s) = &pred.samples {
            obj["samples"] = serde_json::Value::Array(
                s.outer_iter()
                    .map(|k| nest(&k.row(0).to_vec(), &shape))
                    .collect(),
            );
        }
        println!("{}", serde_json::to_string(&obj)?);
        return Ok(());
    }
    let (lo, hi) = mean
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    println!(
        "{} at fidelity {} ({}), predicted by {} ({}; seed {}; trained on {} samples; test RMSE {})",
        card.dataset.problem,
        target.level,
        target.name,
        card.model,
        card.kind,
        card.seed,
        card.training
            .iter()
            .map(|s| format!("{} level-{}", s.indices.len(), s.level))
            .collect::<Vec<_>>()
            .join(" + "),
        card.test.rmse.map_or("n/a".into(), |r| format!("{r:.3e}"))
    );
    println!("inputs: {}", serde_json::Value::Object(inputs));
    println!(
        "output {} on {:?}: min {lo:.6}, max {hi:.6}",
        card.dataset.output.name, shape
    );
    if let Some(v) = &var {
        let sd: Vec<f64> = v.row(0).iter().map(|v| v.max(0.0).sqrt()).collect();
        let mean_sd = sd.iter().sum::<f64>() / sd.len().max(1) as f64;
        let max_sd = sd.iter().cloned().fold(0.0, f64::max);
        println!("predictive std: mean {mean_sd:.3e}, max {max_sd:.3e}");
    }
    if outside {
        println!("note: inputs outside the range the model was trained on (--extrapolate)");
    }
    println!("predicted in {cost:.3e} s");
    Ok(())
}

/// An output file: refused before any work if it exists (without `force`), is a directory,
/// or its directory does not exist.
fn check_out_file(out: &Path, force: bool) -> Result<()> {
    if out.is_dir() {
        bail!("--out {}: is a directory", out.display());
    }
    if out.exists() && !force {
        bail!(
            "--out {}: file exists (pass --force to replace it)",
            out.display()
        );
    }
    let parent = out.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(p) = parent {
        if !p.is_dir() {
            bail!(
                "--out {}: directory {} does not exist",
                out.display(),
                p.display()
            );
        }
    }
    Ok(())
}

/// The inputs of `--inputs`: a CSV with a header of input names (any order), or an mfpipe
/// dataset of the model's problem (its target level's inputs).
fn read_inputs(path: &Path, card: &saved::Card) -> Result<ndarray::Array2<f64>> {
    let names = card.input_names();
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "csv" => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let mut lines = text
                .lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty());
            let (_, header) = lines
                .next()
                .with_context(|| format!("{} is empty", path.display()))?;
            let cols: Vec<&str> = header.split(',').map(|c| c.trim()).collect();
            let mut order = Vec::new();
            for n in &names {
                let k = cols.iter().position(|c| c == n).with_context(|| {
                    format!(
                        "{}: the header has no column {n:?} (the model's inputs: {})",
                        path.display(),
                        names.join(", ")
                    )
                })?;
                order.push(k);
            }
            if let Some(extra) = cols.iter().find(|c| !names.iter().any(|n| n == *c)) {
                bail!(
                    "{}: column {extra:?} is not an input of the model (inputs: {})",
                    path.display(),
                    names.join(", ")
                );
            }
            let mut values = Vec::new();
            let mut rows = 0;
            for (i, line) in lines {
                let cells: Vec<&str> = line.split(',').map(|c| c.trim()).collect();
                if cells.len() != cols.len() {
                    bail!(
                        "{} line {}: {} values, the header has {}",
                        path.display(),
                        i + 1,
                        cells.len(),
                        cols.len()
                    );
                }
                for &k in &order {
                    values.push(cells[k].parse::<f64>().map_err(|_| {
                        anyhow::anyhow!(
                            "{} line {}: {:?} is not a number",
                            path.display(),
                            i + 1,
                            cells[k]
                        )
                    })?);
                }
                rows += 1;
            }
            if rows == 0 {
                bail!("{}: no rows after the header", path.display());
            }
            Ok(ndarray::Array2::from_shape_vec(
                (rows, names.len()),
                values,
            )?)
        }
        "h5" | "hdf5" => {
            let ds = isolate::read(path)?;
            if ds.meta.problem != card.dataset.problem {
                bail!(
                    "{} holds problem {}; the model was trained on {}",
                    path.display(),
                    ds.meta.problem,
                    card.dataset.problem
                );
            }
            if ds.meta.input_names != names {
                bail!(
                    "{}: inputs {:?}, the model's are {:?}",
                    path.display(),
                    ds.meta.input_names,
                    names
                );
            }
            let level = card.target().level;
            let l = ds.level(level).with_context(|| {
                format!(
                    "{} has no fidelity {level} (the model's target level)",
                    path.display()
                )
            })?;
            Ok(l.inputs.clone())
        }
        _ => bail!(
            "--inputs {}: expected a .csv file (header of input names) or an mfpipe .h5 dataset",
            path.display()
        ),
    }
}

fn parse_list<T: std::str::FromStr>(flag: &str, v: &[String]) -> Result<Vec<T>> {
    v.iter()
        .map(|s| {
            s.trim()
                .parse::<T>()
                .map_err(|_| anyhow::anyhow!("{flag} {s:?}: expected a non-negative integer"))
        })
        .collect()
}

const MAX_SEEDS: u64 = 10_000;

fn parse_seeds(s: &str) -> Result<Vec<u64>> {
    let bad = || anyhow::anyhow!("--seeds {s:?}: expected a range like 0-4 or a list like 0,1,7");
    if let Some((a, b)) = s.split_once('-') {
        let (a, b): (u64, u64) = (
            a.trim().parse().map_err(|_| bad())?,
            b.trim().parse().map_err(|_| bad())?,
        );
        if a > b {
            return Err(bad());
        }
        // Every seed is a full set of fits; a typo like 0-1000000 would otherwise start
        // millions of them and print nothing until the first finished.
        if b - a >= MAX_SEEDS {
            bail!(
                "--seeds {s}: {} seeds; at most {MAX_SEEDS} (each seed repeats every fit)",
                (b - a).saturating_add(1)
            );
        }
        return Ok((a..=b).collect());
    }
    s.split(',')
        .map(|x| x.trim().parse::<u64>().map_err(|_| bad()))
        .collect()
}

/// The config of `problem`: the file at `path` (a note names the `sections` the command
/// uses that the file leaves to the generic defaults) or the embedded default.
fn base_config(problem: &str, path: Option<&Path>, sections: &[&str]) -> Result<RunConfig> {
    let mut cfg = match path {
        Some(p) => RunConfig::load(p, sections)?,
        None => match RunConfig::embedded(problem) {
            Ok(c) => c,
            // Problems without a standard protocol still generate with the generic defaults.
            Err(_) => RunConfig::generic(problem),
        },
    };
    if cfg.problem.is_empty() {
        cfg.problem = problem.into();
    } else if cfg.problem != problem {
        bail!("config is for problem {:?}, not {problem:?}", cfg.problem);
    }
    Ok(cfg)
}

fn generate(a: GenerateArgs) -> Result<()> {
    let sim = registry::by_name(&a.problem)?;
    let cfg = base_config(&a.problem, a.config.as_deref(), &["data"])?;
    let mut spec = generate::GenSpec {
        design: cfg.data.design,
        grid: cfg.data.grid.clone(),
        seed: cfg.data.seed,
        levels: cfg.data.levels.clone(),
        n: cfg.data.n.clone(),
        shard: a.shard.as_deref().map(parse_shard).transpose()?,
    };
    if let Some(l) = &a.levels {
        spec.levels = l
            .iter()
            .map(|s| sim.fidelity(s.trim()).map(|f| f.level))
            .collect::<Result<_, _>>()?;
    }
    if let Some(n) = &a.n {
        spec.n = parse_list("--n", n)?;
    }
    if let Some(d) = &a.design {
        spec.design = d.parse::<DesignKind>()?;
        if spec.design != DesignKind::Grid {
            spec.grid.clear();
        }
    }
    if let Some(g) = &a.grid {
        if spec.design != DesignKind::Grid {
            bail!("--grid {g:?} needs --design grid");
        }
        spec.grid = g
            .split('x')
            .map(|k| k.trim().parse::<usize>().ok().filter(|&k| k > 0))
            .collect::<Option<_>>()
            .ok_or_else(|| anyhow::anyhow!("--grid {g:?}: expected counts per input like 6x19"))?;
    }
    if let Some(s) = &a.seed {
        spec.seed = s
            .parse()
            .map_err(|_| anyhow::anyhow!("--seed {s:?}: expected a non-negative integer"))?;
    }
    config::check_levels(&spec.levels, &spec.n, ("--levels", "--n"))?;
    let out = a
        .out
        .unwrap_or_else(|| PathBuf::from(format!("{}.h5", a.problem)));
    let t0 = Instant::now();
    let s = generate::generate(sim.as_ref(), &spec, &out, a.resume, &progress::Bar::new())?;
    let failed = s.failed;
    let part = spec
        .shard
        .map(|sh| format!(" (shard {}/{})", sh.index, sh.count))
        .unwrap_or_default();
    note(format!(
        "wrote {}{part}: {} samples computed, {} reused, {} failed, {:.2} s",
        out.display(),
        s.computed,
        s.reused,
        failed,
        t0.elapsed().as_secs_f64()
    ));
    Ok(())
}

fn train(a: TrainArgs) -> Result<()> {
    let ds = isolate::read(&a.dataset)?;
    ds.require_complete(&a.dataset.display().to_string())?;
    let mut cfg = match &a.config {
        Some(p) => RunConfig::load(p, &["protocol", "models"])?,
        None => RunConfig::embedded(&ds.meta.problem)
            .unwrap_or_else(|_| RunConfig::generic(&ds.meta.problem)),
    };
    if !cfg.problem.is_empty() && cfg.problem != ds.meta.problem {
        bail!(
            "config is for problem {:?}, but {} holds {:?}",
            cfg.problem,
            a.dataset.display(),
            ds.meta.problem
        );
    }
    if !a.model.is_empty() {
        cfg.protocol.models = a.model.clone();
        config::no_duplicates("--model", &cfg.protocol.models)?;
    }
    if let Some(v) = &a.n_hf {
        cfg.protocol.n_hf = parse_list("--n-hf", v)?;
        if cfg.protocol.n_hf.contains(&0) {
            bail!(
                "--n-hf {:?}: need at least one HF training sample",
                cfg.protocol.n_hf
            );
        }
    }
    if let Some(v) = &a.n_lf {
        cfg.protocol.n_lf = parse_list("--n-lf", v)?;
    }
    if let Some(s) = &a.seeds {
        cfg.protocol.seeds = parse_seeds(s)?;
    }
    if let Some(s) = &a.n_test {
        cfg.protocol.n_test = s
            .parse()
            .ok()
            .filter(|&n: &usize| n > 0)
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "--n-test {s:?}: expected a positive integer (the fits are scored on these samples)"
                )
            })?;
    }
    for (name, list) in [
        ("--n-lf", &cfg.protocol.n_lf),
        ("--n-hf", &cfg.protocol.n_hf),
    ] {
        config::no_duplicates(name, list)?;
    }
    config::no_duplicates("--seeds", &cfg.protocol.seeds)?;
    let mut middle = Vec::new();
    let (mut lf_level, mut hf_level) = (ds.levels[0].level, ds.levels.last().unwrap().level);
    if let Some(l) = &a.levels {
        if a.lf_level.is_some() || a.hf_level.is_some() {
            bail!("--levels replaces --lf-level/--hf-level; give one or the other");
        }
        let levels: Vec<usize> = parse_list("--levels", l)?;
        if levels.len() < 2 || levels.windows(2).any(|w| w[0] >= w[1]) {
            bail!("--levels {levels:?}: need at least two levels, strictly increasing (cheapest first)");
        }
        for &l in &levels {
            if ds.level(l).is_none() {
                bail!(
                    "--levels: {} has no fidelity {l} (it has {:?})",
                    a.dataset.display(),
                    ds.levels.iter().map(|l| l.level).collect::<Vec<_>>()
                );
            }
        }
        (lf_level, hf_level) = (levels[0], levels[levels.len() - 1]);
        match &a.n {
            Some(n) => {
                if a.n_lf.is_some() || a.n_hf.is_some() {
                    bail!("--n replaces --n-lf/--n-hf; give one or the other");
                }
                let n: Vec<usize> = parse_list("--n", n)?;
                if n.len() != levels.len() {
                    bail!(
                        "--n has {} counts but --levels has {} levels: one count per level",
                        n.len(),
                        levels.len()
                    );
                }
                // A zero for the target alone is the zero-shot question (a model asked for a
                // fidelity it has no training data of: dgmf with a continuous fidelity); models
                // that need target data refuse it in their fit, by name.
                if n[..n.len() - 1].contains(&0) {
                    bail!(
                        "--n {n:?}: every level but the target needs at least one training sample"
                    );
                }
                middle = cfg.protocol.per_source(&levels, &n);
            }
            None if levels.len() > 2 => {
                bail!("--levels with more than two levels needs --n: one training count per level")
            }
            None => {}
        }
    } else if a.n.is_some() {
        bail!("--n gives one count per level of --levels; pass --levels too");
    } else {
        lf_level = a.lf_level.unwrap_or(lf_level);
        hf_level = a.hf_level.unwrap_or(hf_level);
        if lf_level >= hf_level {
            bail!(
                "--lf-level {lf_level} is not below --hf-level {hf_level}: levels are numbered cheapest first, and the low fidelity is the cheaper one"
            );
        }
    }
    let out = a
        .out
        .unwrap_or_else(|| PathBuf::from("out").join(format!("{}-train", ds.meta.problem)));
    if out.join("results.json").exists() && !a.force && !a.resume {
        bail!(
            "{} holds the results of an earlier run (pass --force to replace them, or --out another directory)",
            out.display()
        );
    }
    if let Some(s) = &a.search {
        cfg.search.method =
            serde_json::from_value(serde_json::Value::String(s.clone())).map_err(|_| {
                anyhow::anyhow!(
                    "--search {s:?}: expected none, grid, random, median, sha or hyperband"
                )
            })?;
    }
    let budget = a.max_epochs.map(Budget::capped).unwrap_or_default();
    let chain = (lf_level, hf_level, middle);
    train_and_report(
        &cfg,
        &ds,
        &a.dataset,
        chain,
        (budget, a.save, a.resume),
        &out,
    )
}

fn train_and_report(
    cfg: &RunConfig,
    ds: &mfpipe_data::dataset::Dataset,
    path: &Path,
    (lf_level, hf_level, middle): (usize, usize, Vec<(usize, usize)>),
    (budget, save, resume): (Budget, experiment::Save, bool),
    out: &Path,
) -> Result<()> {
    let p = &cfg.protocol;
    if p.models.is_empty() || p.n_hf.is_empty() || p.n_lf.is_empty() || p.seeds.is_empty() {
        bail!("nothing to train: models, n_hf, n_lf and seeds must all be non-empty");
    }
    // N_H = 0 arrives only as the zero-shot run of `train --levels ... --n ...,0`: --n-hf and
    // configs refuse it before this point.
    let models = p
        .models
        .iter()
        .map(|m| {
            let (kind, params) = cfg.model_spec(m)?;
            Ok(experiment::PlanModel {
                label: m.clone(),
                kind,
                params,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let plan = experiment::Plan {
        save,
        lf_level,
        hf_level,
        middle,
        n_lf: p.n_lf.clone(),
        n_hf: p.n_hf.clone(),
        layout: p.layout,
        seeds: p.seeds.clone(),
        n_test: p.n_test,
        models,
        budget,
        search: cfg.search.clone(),
    };
    let bar = progress::Bar::new();
    let t0 = Instant::now();
    crate::util::output_dir(out)?;
    let log = crate::fitlog::FitLog::open(out, resume)?;
    if resume && !log.is_empty() {
        note(format!(
            "resuming: {} finished searches and fits in {}",
            log.len(),
            out.display()
        ));
    }
    let outcome = experiment::run(ds, &plan, &bar, Some(&log))?;
    let wall = t0.elapsed().as_secs_f64();
    let files = report::write(
        out,
        &report::RunSummary {
            ds,
            dataset_path: path,
            plan: &plan,
            outcome: &outcome,
            wall_s: wall,
        },
    )?;
    write_text(&out.join("config.toml"), &toml::to_string(cfg)?)?;
    let mut files = files;
    let models = out.join("models");
    if !outcome.saved.is_empty() {
        saved::write_all(&models, &outcome.saved, ds, path)?;
        files.push(format!("models/ ({} saved)", outcome.saved.len()));
    } else if models.join("index.json").is_file() {
        // Models of an earlier run would not match these results.
        std::fs::remove_dir_all(&models)
            .with_context(|| format!("cannot remove {}", models.display()))?;
    }
    log.finish()?;
    bar.finish();
    note(format!(
        "trained {} fits in {wall:.1} s; wrote {} in {}",
        outcome.records.len(),
        files.join(", "),
        out.display()
    ));
    Ok(())
}

fn run(a: RunArgs) -> Result<()> {
    let sim = registry::by_name(&a.problem)?;
    let mut cfg = base_config(
        &a.problem,
        a.config.as_deref(),
        &["data", "protocol", "models"],
    )?;
    if a.config.is_none() && RunConfig::embedded(&a.problem).is_err() {
        bail!(
            "no default config for problem {:?}; pass --config FILE",
            a.problem
        );
    }
    let budget = if a.smoke {
        cfg.smoke();
        cfg.check().context("config after --smoke")?;
        Budget::capped(cfg.smoke.max_epochs)
    } else {
        Budget::default()
    };
    let out = a.out.unwrap_or_else(|| {
        PathBuf::from("out").join(if a.smoke {
            format!("{}-smoke", a.problem)
        } else {
            a.problem.clone()
        })
    });
    crate::util::output_dir(&out)?;
    let dataset = out.join(format!("{}.h5", a.problem));
    let spec = generate::GenSpec {
        design: cfg.data.design,
        grid: cfg.data.grid.clone(),
        seed: cfg.data.seed,
        levels: cfg.data.levels.clone(),
        n: cfg.data.n.clone(),
        shard: None,
    };
    let t0 = Instant::now();
    let ds = generate::ensure(sim.as_ref(), &spec, &dataset, &progress::Bar::new())?;
    let chain = cfg.chain();
    let (lf_level, hf_level) = (chain.0, chain.1);
    let levels = studies::Levels {
        lf: lf_level,
        hf: hf_level,
    };
    let bar = progress::Bar::new();
    let files = match &cfg.study {
        Study::Protocol => {
            train_and_report(&cfg, &ds, &dataset, chain, (budget, a.save, a.resume), &out)?;
            None
        }
        Study::Sensitivity {
            model,
            n_lf,
            n_hf,
            seeds,
            grid,
        } => {
            let study = studies::sensitivity(
                &ds,
                &cfg,
                &levels,
                (model, *n_lf, *n_hf, seeds, grid),
                budget,
                &bar,
            )?;
            Some(export_all(&study, &out, &studies::SENSITIVITY_EXPORTERS)?)
        }
        Study::Searchers {
            model,
            n_lf,
            n_hf,
            seed,
            methods,
        } => {
            let study = studies::searchers(
                &ds,
                &cfg,
                &levels,
                (model, *n_lf, *n_hf, *seed, methods),
                budget,
                &bar,
            )?;
            Some(export_all(&study, &out, &studies::SEARCHERS_EXPORTERS)?)
        }
        Study::Multistage {
            target,
            n_train,
            n_test,
            seeds,
            attention,
            schemes,
            params,
        } => {
            let study = crate::multistage::run(
                &ds,
                hf_level,
                (target, *n_train, *n_test, seeds, attention, schemes, params),
                cfg.data.seed,
                &bar,
            )?;
            Some(export_all(
                &study,
                &out,
                &crate::multistage::MULTISTAGE_EXPORTERS,
            )?)
        }
    };
    bar.finish();
    if let Some(files) = files {
        write_text(&out.join("config.toml"), &toml::to_string(&cfg)?)?;
        note(format!("wrote {} in {}", files.join(", "), out.display()));
    }
    note(format!(
        "pipeline run {} finished in {:.1} s; see {}",
        a.problem,
        t0.elapsed().as_secs_f64(),
        out.join("report.md").display()
    ));
    Ok(())
}

fn tradeoff(a: TradeoffArgs) -> Result<()> {
    let sim = registry::by_name(&a.problem)?;
    let mut cfg = base_config(
        &a.problem,
        a.config.as_deref(),
        &["data", "protocol", "models"],
    )?;
    let mut t = cfg.tradeoff.clone();
    let budget = if a.smoke {
        cfg.smoke();
        t.ladder_samples = t.ladder_samples.min(4);
        t.seeds.truncate(1);
        t.budgets_hf.truncate(2);
        t.n_test = cfg.smoke.n_test;
        Budget::capped(cfg.smoke.max_epochs)
    } else {
        Budget::default()
    };
    if let Some(m) = &a.models {
        t.models = m.clone();
    }
    t.check()?;
    for m in t.models.iter().chain([&t.baseline]) {
        cfg.model_spec(m).context("tradeoff.models")?;
    }
    let parse = |flag: &str, v: &[String]| -> Result<Vec<f64>> {
        v.iter()
            .map(|s| {
                s.trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite() && *x > 0.0)
                    .ok_or_else(|| {
                        anyhow::anyhow!("{flag} {s:?}: expected positive numbers of seconds")
                    })
            })
            .collect()
    };
    let train = cfg.train_levels();
    let lf = *train.first().unwrap();
    let hf = *train.last().unwrap();
    if lf == hf {
        bail!("tradeoff needs two training levels (protocol.levels or data.levels), got {train:?}");
    }
    let out = a.out.unwrap_or_else(|| {
        PathBuf::from("out").join(format!(
            "{}-tradeoff{}",
            a.problem,
            if a.smoke { "-smoke" } else { "" }
        ))
    });
    crate::util::output_dir(&out)?;
    let path = out.join(format!("{}.h5", a.problem));
    let t0 = Instant::now();
    let bar = progress::Bar::new();
    let rungs = tradeoff::ladder(sim.as_ref(), t.ladder_samples, cfg.data.seed, &bar)?;
    let existing = isolate::read(&path).ok();
    let recorded = existing.as_ref().and_then(|d| {
        Some((
            tradeoff::recorded_cost(d, lf)?,
            tradeoff::recorded_cost(d, hf)?,
        ))
    });
    let measured = |level: usize| {
        rungs
            .iter()
            .find(|r| r.level == level)
            .map(|r| r.cost_median_s)
            .unwrap_or(f64::NAN)
    };
    let (c_lf, c_hf, from) = match (&a.costs, recorded) {
        (Some(c), _) => {
            let c = parse("--costs", c)?;
            if c.len() != 2 {
                bail!("--costs takes two numbers, c_L,c_H (seconds per sample)");
            }
            (c[0], c[1], "given with --costs")
        }
        (None, Some((l, h))) => (l, h, "recorded in the dataset by the run that generated it"),
        (None, None) => (measured(lf), measured(hf), "measured by this run's ladder"),
    };
    if !(c_lf > 0.0 && c_hf > 0.0) {
        bail!("could not measure the per-sample costs of levels {lf} and {hf}");
    }
    let budgets = match &a.budget {
        Some(b) => parse("--budget", b)?,
        None => tradeoff::budgets_s(&t, c_hf),
    };
    let plan = tradeoff::splits(&budgets, &t.hf_shares, c_lf, c_hf);
    let max_lf = plan.iter().map(|s| s.n_lf).max().unwrap_or(0).max(1);
    let max_hf = plan.iter().map(|s| s.n_hf).max().unwrap_or(0);
    if max_hf < 2 {
        bail!("no budget buys 2 HF samples at c_H = {c_hf:.3e} s; raise --budget");
    }
    let spec = generate::GenSpec {
        // A budget buys any number of samples; a grid has one size. Grid configs trade off
        // on a Sobol design over the same box.
        design: match cfg.data.design {
            DesignKind::Grid => DesignKind::Sobol,
            d => d,
        },
        grid: vec![],
        seed: cfg.data.seed,
        levels: vec![lf, hf],
        n: vec![max_lf, max_hf.saturating_add(t.n_test)],
        shard: None,
    };
    let mut ds = generate::ensure(sim.as_ref(), &spec, &path, &progress::Bar::new())?;
    if recorded.is_none() {
        tradeoff::store(&path, &mut ds, &rungs)?;
    }
    let mut study = tradeoff::study(
        &ds,
        &cfg,
        &t,
        &rungs,
        (lf, hf),
        (c_lf, c_hf, from),
        &budgets,
        budget,
        &bar,
    )?;
    study.levels_refine = sim.levels_refine();
    let files = export_all(&study, &out, &tradeoff::EXPORTERS)?;
    bar.finish();
    note(format!(
        "pipeline tradeoff {} finished in {:.1} s; wrote {} in {}",
        a.problem,
        t0.elapsed().as_secs_f64(),
        files.join(", "),
        out.display()
    ));
    Ok(())
}

/// Per-sample cost at each level: every sample is solved once on one thread (the CPU seconds a
/// dataset records), then the whole design again across all rayon threads (throughput).
fn bench(a: BenchArgs) -> Result<()> {
    let sim = registry::by_name(&a.problem)?;
    if a.samples == 0 {
        bail!("--samples must be at least 1");
    }
    let levels: Vec<usize> = match &a.levels {
        Some(l) => l
            .iter()
            .map(|s| sim.fidelity(s.trim()).map(|f| f.level))
            .collect::<Result<_, _>>()?,
        None => {
            let heavy = sim.heavy_from();
            if heavy < sim.spec().fidelities.len() {
                eprintln!(
                    "note: levels {heavy} and up take about a minute per sample; pass --levels to time them"
                );
            }
            (0..heavy).collect()
        }
    };
    let d = sim.spec().inputs.len();
    util::check_memory(
        &format!("bench --samples {}", a.samples),
        a.samples,
        8 * (d + 2),
    )?;
    let xs = mfpipe_data::design::design(DesignKind::Sobol, &sim.spec().inputs, a.samples, 0)?;
    let xs: Vec<Vec<f64>> = xs.rows().into_iter().map(|r| r.to_vec()).collect();
    println!(
        "{}: {} samples per level, {} rayon threads",
        sim.name(),
        a.samples,
        rayon::current_num_threads()
    );
    println!();
    println!(
        "| level | name | median CPU s/sample | min | max | failed | parallel wall s | samples/s |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for level in levels {
        let fid = sim.fidelity(&level.to_string())?.clone();
        let mut costs = Vec::with_capacity(xs.len());
        let mut failed = 0;
        for x in &xs {
            match sim.solve_at(x, level) {
                Ok(s) => costs.push(s.cost_s),
                Err(_) => failed += 1,
            }
        }
        costs.sort_by(f64::total_cmp);
        let t0 = Instant::now();
        let _ = mfpipe_solvers::solve_many(sim.as_ref(), &xs, level, 0);
        let wall = t0.elapsed().as_secs_f64();
        let med = costs.get(costs.len() / 2).copied().unwrap_or(f64::NAN);
        println!(
            "| {level} | {} | {med:.3e} | {:.3e} | {:.3e} | {failed} | {wall:.3} | {:.0} |",
            fid.name,
            costs.first().copied().unwrap_or(f64::NAN),
            costs.last().copied().unwrap_or(f64::NAN),
            xs.len() as f64 / wall
        );
    }
    Ok(())
}

/// `I/N` with 0 <= I < N.
fn parse_shard(s: &str) -> Result<mfpipe_data::dataset::Shard> {
    let bad = || anyhow::anyhow!("--shard {s:?}: expected I/N with 0 <= I < N, e.g. 0/4");
    let (i, n) = s.split_once('/').ok_or_else(bad)?;
    let (index, count): (usize, usize) = (
        i.trim().parse().map_err(|_| bad())?,
        n.trim().parse().map_err(|_| bad())?,
    );
    if count == 0 || index >= count {
        return Err(bad());
    }
    Ok(mfpipe_data::dataset::Shard { index, count })
}

fn merge(a: MergeArgs) -> Result<()> {
    if a.out.exists() {
        bail!(
            "{} already exists; remove it or choose another --out",
            a.out.display()
        );
    }
    let n = generate::merge(&a.shards, &a.out)?;
    note(format!(
        "merged {} shards into {} ({n} samples)",
        a.shards.len(),
        a.out.display()
    ));
    Ok(())
}

fn check(a: CheckArgs) -> Result<()> {
    // The head, then every value block by block: a file of any size, in bounded memory.
    let ds = isolate::read_head(&a.dataset)?;
    mfpipe_data::h5::check_values(&a.dataset, &ds)?;
    let m = &ds.meta;
    println!(
        "{}: schema mfpipe/1, problem {}, design {}, seed {}, generator {}",
        a.dataset.display(),
        m.problem,
        m.design,
        m.seed,
        m.generator
    );
    if let Some(sh) = m.shard {
        println!("  shard {}/{} of a sharded run", sh.index, sh.count);
    }
    println!(
        "  inputs {:?}; output {} on {:?} ({})",
        m.input_names,
        m.output_name,
        m.output_shape(),
        m.axes
            .iter()
            .map(|a| a.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    for l in &ds.levels {
        let roles = l
            .role
            .as_ref()
            .map(|r| {
                format!(
                    ", role: {} train / {} test",
                    r.iter().filter(|&&v| v == 0).count(),
                    r.iter().filter(|&&v| v == 1).count()
                )
            })
            .unwrap_or_default();
        println!(
            "  fidelity {} ({}): {} samples, {} failed, {} pending{roles}",
            l.level,
            l.name,
            l.len(),
            l.failed(),
            l.pending()
        );
        if !l.diagnostics.is_empty() {
            let names: Vec<&str> = l.diagnostics.keys().map(String::as_str).collect();
            println!("    diagnostics: {}", names.join(", "));
        }
        for e in &l.extras {
            println!("    extra {} {:?} ({})", e.name, e.shape, e.unit);
        }
        if let Some(c) = l.offline_cost_s {
            println!("    offline stage: {c:.3e} CPU s");
        }
        // The first failure reason, so a user sees why without opening the file.
        if let Some((i, why)) = l
            .failure
            .iter()
            .flatten()
            .enumerate()
            .find(|(_, f)| !f.is_empty())
        {
            println!("    sample {i} failed: {why}");
        }
    }
    if let Some(other) = &a.same_as {
        // Content comparison holds both files whole (datasets that fit in memory).
        let (ds, b) = (isolate::read(&a.dataset)?, isolate::read(other)?);
        if !ds.same_content(&b) {
            bail!(
                "{} and {} differ in content",
                a.dataset.display(),
                other.display()
            );
        }
        println!("  same content as {}", other.display());
    }
    Ok(())
}

fn rbf_study(a: RbfStudyArgs) -> Result<()> {
    let s = if a.smoke {
        rbf_study::Settings::smoke()
    } else {
        rbf_study::Settings::paper()
    };
    let out = a.out.unwrap_or_else(|| PathBuf::from("out/rbf-study"));
    let t0 = Instant::now();
    let rows = rbf_study::run(&s)?;
    let study = rbf_study::RbfStudy {
        rows,
        settings: s,
        wall_s: t0.elapsed().as_secs_f64(),
    };
    export_all(&study, &out, &rbf_study::EXPORTERS)?;
    note(format!(
        "rbf-study: {} surrogates in {:.1} s; see {}",
        study.rows.len(),
        study.wall_s,
        out.join("report.md").display()
    ));
    Ok(())
}
