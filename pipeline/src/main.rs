//! `pipeline`: the mfpipe command line. See DESIGN sec. 4 for the contract.

mod config;
mod experiment;
#[cfg(test)]
mod fuzz;
mod generate;
mod isolate;
mod plots;
mod progress;
mod rbf_study;
mod report;
mod studies;
mod tradeoff;
mod tuning;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use config::{RunConfig, Study};
use mfpipe_data::design::DesignKind;
use mfpipe_data::{h5, Progress};
use mfpipe_fusion::Budget;
use mfpipe_solvers::{registry, Simulator};
use progress::note;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Parser)]
#[command(
    name = "pipeline",
    version,
    about = "mfpipe: multi-fidelity physics surrogates from solver to report"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// List problems, their inputs and fidelity levels.
    List,
    /// Solve one problem at one fidelity.
    Solve(SolveArgs),
    /// Generate a multi-fidelity HDF5 dataset.
    Generate(GenerateArgs),
    /// Combine the shard files of one run into one dataset.
    Merge(MergeArgs),
    /// Validate a dataset and summarise it; optionally compare its content with another.
    Check(CheckArgs),
    /// Train and evaluate fusion models on a dataset.
    Train(TrainArgs),
    /// Generate (if missing), train, evaluate and report, from one config.
    Run(RunArgs),
    /// Measure per-sample solve cost at every fidelity level (markdown table on stdout).
    Bench(BenchArgs),
    /// Cost/accuracy trade-off: the fidelity ladder, budgeted fusion, Pareto front and a
    /// recommended LF/HF split per budget.
    Tradeoff(TradeoffArgs),
    /// The gradient-only paper's study: which RBF surrogates (values, values + gradients,
    /// gradients only) of a mini-batch loss come out positive definite.
    RbfStudy(RbfStudyArgs),
    /// Read a dataset and exit 0 (read), 1 (error) or die with libhdf5: the child side of
    /// `isolate::read`.
    #[command(name = "probe-read", hide = true)]
    ProbeRead { path: PathBuf },
}

#[derive(Args)]
struct TradeoffArgs {
    problem: String,
    #[arg(long)]
    config: Option<PathBuf>,
    /// Total budgets in CPU-seconds, comma-separated (default: the config's [tradeoff]
    /// budgets, 8 to 64 HF samples' worth).
    #[arg(long, value_delimiter = ',', allow_negative_numbers = true)]
    budget: Option<Vec<String>>,
    /// Per-sample costs c_L,c_H in seconds instead of the measured or recorded ones (to
    /// reproduce a study exactly on another machine).
    #[arg(long, value_delimiter = ',', allow_negative_numbers = true)]
    costs: Option<Vec<String>>,
    /// Fusion models fitted on every split (default: the config's, mf-transfer,dmf-trans).
    #[arg(long, value_delimiter = ',')]
    models: Option<Vec<String>>,
    /// Output directory (default: out/<problem>-tradeoff).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Tiny sizes: the whole study in seconds.
    #[arg(long)]
    smoke: bool,
}

#[derive(Args)]
struct RbfStudyArgs {
    /// Output directory (default: out/rbf-study).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Three shape parameters, one draw, batch sizes 3 and full: seconds.
    #[arg(long)]
    smoke: bool,
}

#[derive(Args)]
struct BenchArgs {
    problem: String,
    /// Samples per level (a Sobol design over the inputs, seed 0).
    #[arg(long, default_value_t = 64)]
    samples: usize,
    /// Comma-separated levels (default: all).
    #[arg(long, value_delimiter = ',')]
    levels: Option<Vec<String>>,
}

#[derive(Args)]
struct SolveArgs {
    problem: String,
    /// Level number or name.
    #[arg(long, default_value = "0")]
    fidelity: String,
    /// NAME=VALUE; inputs not given take the centre of their range.
    #[arg(long = "set", value_name = "NAME=VALUE")]
    set: Vec<String>,
    /// Print the solution as one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct GenerateArgs {
    problem: String,
    /// Take defaults from this config's [data] section (else the problem's embedded config).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Comma-separated fidelity levels, cheapest first.
    #[arg(long, value_delimiter = ',')]
    levels: Option<Vec<String>>,
    /// Comma-separated sample counts, one per level.
    #[arg(long, value_delimiter = ',', allow_negative_numbers = true)]
    n: Option<Vec<String>>,
    #[arg(long)]
    design: Option<String>,
    #[arg(long, allow_negative_numbers = true)]
    seed: Option<String>,
    #[arg(long)]
    out: Option<PathBuf>,
    /// Finish an interrupted run of the same settings (harmless when there is none).
    #[arg(long)]
    resume: bool,
    /// Compute only shard I of N (0-based), e.g. 3/16; combine shards with `pipeline merge`.
    #[arg(long)]
    shard: Option<String>,
}

#[derive(Args)]
struct MergeArgs {
    /// Shard files of one run, in any order.
    #[arg(required = true)]
    shards: Vec<PathBuf>,
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args)]
struct CheckArgs {
    dataset: PathBuf,
    /// Also require the same content (all but cost_s and created) as this file.
    #[arg(long = "same-as")]
    same_as: Option<PathBuf>,
}

#[derive(Args)]
struct TrainArgs {
    dataset: PathBuf,
    /// Comma-separated model names.
    #[arg(long, value_delimiter = ',')]
    model: Vec<String>,
    #[arg(long = "n-hf", value_delimiter = ',', allow_negative_numbers = true)]
    n_hf: Option<Vec<String>>,
    #[arg(long = "n-lf", value_delimiter = ',', allow_negative_numbers = true)]
    n_lf: Option<Vec<String>>,
    /// Seeds as a list or range: 0-4 or 0,1,7.
    #[arg(long)]
    seeds: Option<String>,
    /// HF samples held out for testing (when the file has no role array).
    #[arg(long = "n-test", allow_negative_numbers = true)]
    n_test: Option<String>,
    /// Low-fidelity level (default: the cheapest in the file).
    #[arg(long = "lf-level")]
    lf_level: Option<usize>,
    /// High-fidelity level (default: the finest in the file).
    #[arg(long = "hf-level")]
    hf_level: Option<usize>,
    /// Model hyperparameters from this config's [models] section.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Cap every training phase at this many epochs.
    #[arg(long = "max-epochs")]
    max_epochs: Option<usize>,
    /// Hyperparameter search for the tuned models: none, grid, random, median, sha or
    /// hyperband (default: the config's, hyperband).
    #[arg(long)]
    search: Option<String>,
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Args)]
struct RunArgs {
    problem: String,
    #[arg(long)]
    config: Option<PathBuf>,
    /// Output directory (default: out/<problem>, or out/<problem>-smoke).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Tiny sizes from the config's [smoke] section: the whole pipeline in seconds.
    #[arg(long)]
    smoke: bool,
}

fn main() {
    // A panic is a bug, but the user still gets one line, not a backtrace.
    std::panic::set_hook(Box::new(|info| {
        if h5::panic_is_contained() {
            return; // the reader turns it into an ordinary error
        }
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        eprintln!(
            "error: internal error: {msg} (at {})",
            info.location().map(|l| l.to_string()).unwrap_or_default()
        );
    }));
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = e.print();
                std::process::exit(
                    if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                        2
                    } else {
                        0
                    },
                );
            }
            // clap's first paragraph says what is wrong; the usage block after it is noise here.
            let text = e.render().to_string();
            let first = text
                .split("\n\n")
                .next()
                .unwrap_or("invalid arguments")
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            let first = first.trim_start_matches("error: ").to_string();
            eprintln!("error: {first} (see pipeline --help)");
            std::process::exit(2);
        }
    };
    let res = std::panic::catch_unwind(|| dispatch(cli));
    match res {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            eprintln!("error: {}", config::one_line(&format!("{e:#}")));
            std::process::exit(1);
        }
        Err(_) => std::process::exit(101),
    }
}

fn dispatch(cli: Cli) -> Result<()> {
    match cli.cmd {
        Cmd::List => list(),
        Cmd::Solve(a) => solve(a),
        Cmd::Generate(a) => generate(a),
        Cmd::Merge(a) => merge(a),
        Cmd::Check(a) => check(a),
        Cmd::Train(a) => train(a),
        Cmd::Run(a) => run(a),
        Cmd::Bench(a) => bench(a),
        Cmd::Tradeoff(a) => tradeoff(a),
        Cmd::ProbeRead { path } => isolate::probe_main(&path),
        Cmd::RbfStudy(a) => rbf_study(a),
    }
}

fn list() -> Result<()> {
    for sim in registry::all() {
        println!("{}: {}", sim.name(), sim.summary());
        for s in sim.inputs() {
            println!(
                "  input  {:<10} [{}, {}] {} (default {})",
                s.name,
                s.lower,
                s.upper,
                s.unit,
                s.default_value()
            );
        }
        for f in sim.fidelities() {
            println!("  level  {} {:<8} {}", f.level, f.name, f.description);
        }
        let out = sim.output();
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
fn parse_sets(sim: &dyn Simulator, sets: &[String]) -> Result<Vec<f64>> {
    let specs = sim.inputs();
    let mut x: Vec<Option<f64>> = vec![None; specs.len()];
    for s in sets {
        let (name, value) = s
            .split_once('=')
            .with_context(|| format!("--set {s:?}: expected NAME=VALUE"))?;
        let (name, value) = (name.trim(), value.trim());
        let k = specs.iter().position(|p| p.name == name).with_context(|| {
            format!(
                "--set {s:?}: {} has no input {name:?} (inputs: {})",
                sim.name(),
                specs.iter().map(|p| p.name).collect::<Vec<_>>().join(", ")
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
        .zip(specs)
        .map(|(v, s)| v.unwrap_or_else(|| s.default_value()))
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
    let sol = sim.solve(&x, fid.level)?;
    let out = sim.output();
    let inputs: serde_json::Map<String, serde_json::Value> = sim
        .inputs()
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
            "cost_s": sol.cost_s,
            "diagnostics": sol.diagnostics,
        });
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

fn parse_list<T: std::str::FromStr>(flag: &str, v: &[String]) -> Result<Vec<T>> {
    v.iter()
        .map(|s| {
            s.trim()
                .parse::<T>()
                .map_err(|_| anyhow::anyhow!("{flag} {s:?}: expected a non-negative integer"))
        })
        .collect()
}

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
        return Ok((a..=b).collect());
    }
    s.split(',')
        .map(|x| x.trim().parse::<u64>().map_err(|_| bad()))
        .collect()
}

fn base_config(problem: &str, path: Option<&Path>) -> Result<RunConfig> {
    let mut cfg = match path {
        Some(p) => RunConfig::load(p)?,
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
    let cfg = base_config(&a.problem, a.config.as_deref())?;
    let mut spec = generate::GenSpec {
        design: cfg.data.design,
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
    let s = generate::generate(sim.as_ref(), &spec, &out, a.resume)?;
    let failed: usize = s.dataset.levels.iter().map(|l| l.failed()).sum();
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
        Some(p) => RunConfig::load(p)?,
        None => RunConfig::embedded(&ds.meta.problem)
            .unwrap_or_else(|_| RunConfig::generic(&ds.meta.problem)),
    };
    if !a.model.is_empty() {
        cfg.protocol.models = a.model.clone();
    }
    if let Some(v) = &a.n_hf {
        cfg.protocol.n_hf = parse_list("--n-hf", v)?;
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
            .map_err(|_| anyhow::anyhow!("--n-test {s:?}: expected a non-negative integer"))?;
    }
    let lf_level = a.lf_level.unwrap_or(ds.levels[0].level);
    let hf_level = a.hf_level.unwrap_or(ds.levels.last().unwrap().level);
    let out = a
        .out
        .unwrap_or_else(|| PathBuf::from("out").join(format!("{}-train", ds.meta.problem)));
    if let Some(s) = &a.search {
        cfg.search.method =
            serde_json::from_value(serde_json::Value::String(s.clone())).map_err(|_| {
                anyhow::anyhow!(
                    "--search {s:?}: expected none, grid, random, median, sha or hyperband"
                )
            })?;
    }
    let budget = a.max_epochs.map(Budget::capped).unwrap_or_default();
    train_and_report(&cfg, &ds, &a.dataset, lf_level, hf_level, budget, &out)
}

fn train_and_report(
    cfg: &RunConfig,
    ds: &mfpipe_data::dataset::Dataset,
    path: &Path,
    lf_level: usize,
    hf_level: usize,
    budget: Budget,
    out: &Path,
) -> Result<()> {
    let p = &cfg.protocol;
    if p.models.is_empty() || p.n_hf.is_empty() || p.n_lf.is_empty() || p.seeds.is_empty() {
        bail!("nothing to train: models, n_hf, n_lf and seeds must all be non-empty");
    }
    if p.n_hf.contains(&0) {
        bail!("--n-hf {:?}: need at least one HF training sample", p.n_hf);
    }
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
        lf_level,
        hf_level,
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
    let outcome = experiment::run(ds, &plan, &bar)?;
    let wall = t0.elapsed().as_secs_f64();
    let w = report::write(out, ds, path, &plan, &outcome, wall)?;
    report::write_text(&out.join("config.toml"), &toml::to_string(cfg)?)?;
    bar.finish();
    note(format!(
        "trained {} fits in {wall:.1} s; wrote {} in {}",
        outcome.records.len(),
        w.files.join(", "),
        out.display()
    ));
    Ok(())
}

fn run(a: RunArgs) -> Result<()> {
    let sim = registry::by_name(&a.problem)?;
    let mut cfg = base_config(&a.problem, a.config.as_deref())?;
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
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let dataset = out.join(format!("{}.h5", a.problem));
    let spec = generate::GenSpec {
        design: cfg.data.design,
        seed: cfg.data.seed,
        levels: cfg.data.levels.clone(),
        n: cfg.data.n.clone(),
        shard: None,
    };
    let t0 = Instant::now();
    let ds = ensure_dataset(sim.as_ref(), &spec, &dataset)?;
    let lf_level = *cfg.data.levels.first().unwrap();
    let hf_level = *cfg.data.levels.last().unwrap();
    let levels = studies::Levels {
        lf: lf_level,
        hf: hf_level,
    };
    let bar = progress::Bar::new();
    let files = match &cfg.study {
        Study::Protocol => {
            train_and_report(&cfg, &ds, &dataset, lf_level, hf_level, budget, &out)?;
            None
        }
        Study::Sensitivity {
            model,
            n_lf,
            n_hf,
            seeds,
            grid,
        } => Some(studies::sensitivity(
            &ds,
            &cfg,
            &levels,
            (model, *n_lf, *n_hf, seeds, grid),
            budget,
            &out,
            &bar,
        )?),
        Study::Searchers {
            model,
            n_lf,
            n_hf,
            seed,
            methods,
        } => Some(studies::searchers(
            &ds,
            &cfg,
            &levels,
            (model, *n_lf, *n_hf, *seed, methods),
            budget,
            &out,
            &bar,
        )?),
    };
    bar.finish();
    if let Some(files) = files {
        report::write_text(&out.join("config.toml"), &toml::to_string(&cfg)?)?;
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

/// The dataset of `spec` at `path`: reused when complete, resumed when interrupted, generated
/// when missing; a file from other settings is refused.
fn ensure_dataset(
    sim: &dyn Simulator,
    spec: &generate::GenSpec,
    path: &Path,
) -> Result<mfpipe_data::dataset::Dataset> {
    let t0 = Instant::now();
    let expected = generate::skeleton(sim, spec)?;
    Ok(match isolate::read(path) {
        Ok(ds) if generate::same_run(&expected, &ds) && ds.require_complete("").is_ok() => {
            note(format!("using existing dataset {}", path.display()));
            ds
        }
        Ok(ds) if generate::same_run(&expected, &ds) => {
            note(format!("resuming {}", path.display()));
            generate::generate(sim, spec, path, true)?.dataset
        }
        Ok(_) => bail!(
            "{} exists but was generated with other settings; remove it or pass another --out",
            path.display()
        ),
        Err(e)
            if matches!(
                e.downcast_ref::<mfpipe_data::DataError>(),
                Some(mfpipe_data::DataError::Missing { .. })
            ) =>
        {
            let s = generate::generate(sim, spec, path, false)?;
            note(format!(
                "generated {} ({} samples) in {:.2} s",
                path.display(),
                s.computed,
                t0.elapsed().as_secs_f64()
            ));
            s.dataset
        }
        Err(e) => return Err(e),
    })
}

fn tradeoff(a: TradeoffArgs) -> Result<()> {
    let sim = registry::by_name(&a.problem)?;
    let mut cfg = base_config(&a.problem, a.config.as_deref())?;
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
    let lf = *cfg.data.levels.first().unwrap();
    let hf = *cfg.data.levels.last().unwrap();
    if lf == hf {
        bail!(
            "tradeoff needs two fidelity levels in data.levels, got {:?}",
            cfg.data.levels
        );
    }
    let out = a.out.unwrap_or_else(|| {
        PathBuf::from("out").join(format!(
            "{}-tradeoff{}",
            a.problem,
            if a.smoke { "-smoke" } else { "" }
        ))
    });
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
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
        design: cfg.data.design,
        seed: cfg.data.seed,
        levels: vec![lf, hf],
        n: vec![max_lf, max_hf + t.n_test],
        shard: None,
    };
    let mut ds = ensure_dataset(sim.as_ref(), &spec, &path)?;
    if recorded.is_none() {
        tradeoff::store(&path, &mut ds, &rungs)?;
    }
    let files = tradeoff::study(
        &ds,
        &cfg,
        &t,
        &rungs,
        (lf, hf),
        (c_lf, c_hf, from),
        &budgets,
        budget,
        &out,
        &bar,
    )?;
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

/// Per-sample cost at each level: every sample is solved once on one thread (the cost a
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
        None => sim.fidelities().iter().map(|f| f.level).collect(),
    };
    let xs = mfpipe_data::design::design(DesignKind::Sobol, sim.inputs(), a.samples, 0)?;
    let xs: Vec<Vec<f64>> = xs.rows().into_iter().map(|r| r.to_vec()).collect();
    println!(
        "{}: {} samples per level, {} rayon threads",
        sim.name(),
        a.samples,
        rayon::current_num_threads()
    );
    println!();
    println!(
        "| level | name | median s/sample | min | max | failed | parallel wall s | samples/s |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for level in levels {
        let fid = sim.fidelity(&level.to_string())?.clone();
        let mut costs = Vec::with_capacity(xs.len());
        let mut failed = 0;
        for x in &xs {
            match sim.solve(x, level) {
                Ok(s) => costs.push(s.cost_s),
                Err(_) => failed += 1,
            }
        }
        costs.sort_by(f64::total_cmp);
        let t0 = Instant::now();
        let _ = mfpipe_solvers::solve_many(sim.as_ref(), &xs, level);
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
    let shards = a
        .shards
        .iter()
        .map(|p| Ok((p.display().to_string(), isolate::read(p)?)))
        .collect::<Result<Vec<_>>>()?;
    let merged = generate::merge(&shards)?;
    if a.out.exists() {
        bail!(
            "{} already exists; remove it or choose another --out",
            a.out.display()
        );
    }
    h5::write(&a.out, &merged)?;
    let n: usize = merged.levels.iter().map(|l| l.len()).sum();
    note(format!(
        "merged {} shards into {} ({n} samples)",
        shards.len(),
        a.out.display()
    ));
    Ok(())
}

fn check(a: CheckArgs) -> Result<()> {
    let ds = isolate::read(&a.dataset)?;
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
    }
    if let Some(other) = &a.same_as {
        let b = isolate::read(other)?;
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
    let wall = t0.elapsed().as_secs_f64();
    rbf_study::report(&rows, &s, &out, wall)?;
    note(format!(
        "rbf-study: {} surrogates in {wall:.1} s; see {}",
        rows.len(),
        out.join("report.md").display()
    ));
    Ok(())
}
