//! The DMF paper's studies beyond the training protocol, run by `pipeline run` when a config
//! has a `[study]` section: Fig. 4 (`kind = "sensitivity"`: test RMSE over a grid of
//! hyperparameters) and Fig. 5 (`kind = "searchers"`: the search methods against wall time).
//! Fig. 3 needs nothing of its own: it is a protocol over model labels (DMF variants and cell
//! counts), see configs/burgers-fig3.toml.

use crate::config::{GridAxis, RunConfig, SearchConfig, SearchMethod};
use crate::experiment::{Choice, Data, FitJob, JobLoop, Order, Record};
use crate::export::{Exporter, HasRecords, ResultsJson};
use crate::plots::{self, Series};
use crate::tuning::{self, TimedTrial};
use crate::util::{finite_mean_std, fmt_config, write_text};
use anyhow::{Context, Result};
use mfpipe_data::dataset::Dataset;
use mfpipe_data::Progress;
use mfpipe_fusion::search::{Config, Dim, Space};
use mfpipe_fusion::Budget;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

/// Where a study reads its data.
pub struct Levels {
    pub lf: usize,
    pub hf: usize,
}

/// A grid point as `name=value, ...`.
fn fmt_combo(c: &Config) -> String {
    fmt_config(&serde_json::to_value(c).expect("numbers serialise"))
}

/// DMF Fig. 4: every combination of the grid's values, fitted with that configuration (no
/// search) for each seed and scored on the test set. Heat maps over the first two axes (log10
/// of their values), one panel per value of the third.
#[allow(clippy::too_many_arguments)]
pub fn sensitivity(
    ds: &Dataset,
    cfg: &RunConfig,
    levels: &Levels,
    (model, n_lf, n_hf, seeds, grid): (&str, usize, usize, &[u64], &[GridAxis]),
    budget: Budget,
    progress: &dyn Progress,
) -> Result<Sensitivity> {
    let (kind, params) = cfg.model_spec(model)?;
    let data = Data::new(ds, levels.lf, levels.hf, cfg.protocol.n_test, n_lf, n_hf)?;
    let n_lf = if data.single { 0 } else { n_lf };
    let space = Space {
        dims: grid
            .iter()
            .map(|a| Dim {
                name: a.name.clone(),
                lower: a.values.iter().cloned().fold(f64::INFINITY, f64::min),
                upper: a.values.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
                log: false,
                integer: false,
                grid: a.values.clone(),
            })
            .collect(),
    };
    let combos = space.grid();
    let jobs: Vec<(usize, u64)> = (0..combos.len())
        .flat_map(|c| seeds.iter().map(move |&s| (c, s)))
        .collect();
    let fits: Vec<FitJob> = jobs
        .iter()
        .map(|&(c, seed)| FitJob {
            label: model.to_string(),
            kind: kind.clone(),
            params: tuning::merge(&params, &combos[c], &space),
            n_lf,
            n_hf,
            seed,
            choice: Choice::Given(None),
        })
        .collect();
    let records = JobLoop {
        problem: &ds.meta.problem,
        data: &data,
        budget,
        search: &cfg.search,
        order: Order::Parallel,
        keep_states: false,
        log: None,
    }
    .records(&fits, "sensitivity", progress)?;
    Ok(Sensitivity {
        problem: ds.meta.problem.clone(),
        model: model.to_string(),
        params,
        n_lf,
        n_hf,
        seeds: seeds.to_vec(),
        grid: grid.to_vec(),
        combos,
        n_test: data.test.len(),
        records,
    })
}

/// The result of a sensitivity study: every grid point's fits.
pub struct Sensitivity {
    pub problem: String,
    pub model: String,
    pub params: serde_json::Value,
    pub n_lf: usize,
    pub n_hf: usize,
    pub seeds: Vec<u64>,
    pub grid: Vec<GridAxis>,
    /// The grid points, the last axis fastest; `records` holds each point's seeds in turn.
    pub combos: Vec<Config>,
    pub n_test: usize,
    pub records: Vec<Record>,
}

impl HasRecords for Sensitivity {
    fn records(&self) -> &[Record] {
        &self.records
    }
}

impl Sensitivity {
    /// Per grid point: mean and std of the test RMSE over seeds, and the diverged count.
    fn stats(&self) -> Vec<(f64, f64, usize)> {
        let per_seed = self.seeds.len();
        (0..self.combos.len())
            .map(|c| {
                let r: Vec<f64> = self.records[c * per_seed..(c + 1) * per_seed]
                    .iter()
                    .map(|r| r.rmse)
                    .collect();
                let (m, s) = finite_mean_std(&r);
                (m, s, r.iter().filter(|x| !x.is_finite()).count())
            })
            .collect()
    }
}

/// sensitivity.png: heat maps of the test RMSE (log colour scale) over the first two axes, a
/// panel per third.
pub struct SensitivityFigure;

impl Exporter<Sensitivity> for SensitivityFigure {
    fn export(&self, s: &Sensitivity, dir: &Path) -> Result<Vec<String>> {
        let (grid, model, n_lf, n_hf) = (&s.grid, &s.model, s.n_lf, s.n_hf);
        let per_seed = s.seeds.len();
        let stats = s.stats();
        // combos are ordered with the last axis fastest: index = ((i0 * n1) + i1) * n2 + i2.
        let (n0, n1) = (grid[0].values.len(), grid[1].values.len());
        let n2 = grid.get(2).map_or(1, |a| a.values.len());
        let mut fields = BTreeMap::new();
        for k in 0..n2 {
            let f: Vec<f64> = (0..n0 * n1).map(|ij| stats[ij * n2 + k].0).collect();
            fields.insert((0, k), f);
        }
        let panels: Vec<String> = match grid.get(2) {
            Some(a) => a
                .values
                .iter()
                .map(|v| format!("{} = {v:.0e}", a.name))
                .collect(),
            None => vec![String::new()],
        };
        let log = |a: &GridAxis| a.values.iter().map(|v| v.log10()).collect::<Vec<_>>();
        let (a0, a1) = (log(&grid[0]), log(&grid[1]));
        let (l0, l1) = (
            format!("log10 {}", grid[0].name),
            format!("log10 {}", grid[1].name),
        );
        plots::field_grid(
            &dir.join("sensitivity.png"),
            &format!(
                "{}: test RMSE of {model}, N_L={n_lf}, N_H={n_hf}, {}",
                s.problem,
                match per_seed {
                    1 => "1 seed".to_string(),
                    n => format!("mean over {n} seeds"),
                }
            ),
            &[String::new()],
            &panels,
            &fields,
            [(&l0, &a0), (&l1, &a1)],
            "test RMSE",
        )?;

        Ok(vec!["sensitivity.png".into()])
    }
}

/// report.md of a sensitivity study.
pub struct SensitivityMarkdown;

impl Exporter<Sensitivity> for SensitivityMarkdown {
    fn export(&self, s: &Sensitivity, dir: &Path) -> Result<Vec<String>> {
        let (grid, model, n_lf, n_hf, seeds, params) =
            (&s.grid, &s.model, s.n_lf, s.n_hf, &s.seeds, &s.params);
        let (combos, per_seed, stats) = (&s.combos, s.seeds.len(), s.stats());
        let best = (0..combos.len())
            .filter(|&c| stats[c].0.is_finite())
            .min_by(|&a, &b| stats[a].0.total_cmp(&stats[b].0));
        let mut md = String::new();
        let _ = writeln!(
            md,
            "# mfpipe study: sensitivity of `{model}` on `{}` (DMF Fig. 4)\n",
            s.problem
        );
        let _ = writeln!(
        md,
        "Every combination of {} is fitted with that fixed configuration (no search), N_L = {n_lf}, N_H = {n_hf}, seeds {seeds:?}, and scored on the {} held-out HF test samples. Other hyperparameters: `{params}`.\n",
        grid.iter().map(|a| format!("{} in {:?}", a.name, a.values)).collect::<Vec<_>>().join(", "),
        s.n_test
    );
        let _ = writeln!(md, "![sensitivity](sensitivity.png)\n");
        let names: Vec<&str> = grid.iter().map(|a| a.name.as_str()).collect();
        let _ = writeln!(
            md,
            "| {} | test RMSE (mean ± std over seeds) | diverged |\n|{}---|---|",
            names.join(" | "),
            "---|".repeat(names.len())
        );
        for (c, combo) in combos.iter().enumerate() {
            let vals: Vec<String> = names.iter().map(|n| format!("{:.0e}", combo[*n])).collect();
            let mark = if Some(c) == best { " **best**" } else { "" };
            let _ = writeln!(
                md,
                "| {} | {:.4e} ± {:.1e}{mark} | {} of {per_seed} |",
                vals.join(" | "),
                stats[c].0,
                stats[c].1,
                stats[c].2
            );
        }
        if let Some(b) = best {
            let (worst, _) = stats
                .iter()
                .filter(|s| s.0.is_finite())
                .fold((0.0f64, 0.0), |a, s| if s.0 > a.0 { (s.0, s.1) } else { a });
            let _ = writeln!(
                md,
                "\nBest: {} ({:.4e}); worst finite: {worst:.4e}, {:.1}x the best.",
                fmt_combo(&combos[b]),
                stats[b].0,
                worst / stats[b].0
            );
        }
        write_text(&dir.join("report.md"), &md)?;
        Ok(vec!["report.md".into()])
    }
}

/// Every output of a sensitivity study.
pub const SENSITIVITY_EXPORTERS: [&dyn Exporter<Sensitivity>; 3] =
    [&ResultsJson, &SensitivityFigure, &SensitivityMarkdown];

/// DMF Fig. 5: each search method on the same fit (same training set, validation split and
/// seed), run one after the other so that their wall times are comparable. Each method's
/// choice is refitted on all training samples and scored on the test set.
#[allow(clippy::too_many_arguments)]
pub fn searchers(
    ds: &Dataset,
    cfg: &RunConfig,
    levels: &Levels,
    (model, n_lf, n_hf, seed, methods): (&str, usize, usize, u64, &[SearchMethod]),
    budget: Budget,
    progress: &dyn Progress,
) -> Result<Searchers> {
    let (kind, params) = cfg.model_spec(model)?;
    let data = Data::new(ds, levels.lf, levels.hf, cfg.protocol.n_test, n_lf, n_hf)?;
    let n_lf = if data.single { 0 } else { n_lf };
    let space = cfg
        .search
        .space_for(model, &kind)
        .context("no search.space for the study's model")?;
    let jobs: Vec<FitJob> = methods
        .iter()
        .map(|&method| FitJob {
            label: format!("{model} ({})", method.name()),
            kind: kind.clone(),
            params: params.clone(),
            n_lf,
            n_hf,
            seed,
            choice: Choice::Search(space.clone(), method),
        })
        .collect();
    progress.start("searchers", jobs.len() as u64);
    let results = JobLoop {
        problem: &ds.meta.problem,
        data: &data,
        budget,
        search: &cfg.search,
        order: Order::OneAtATime,
        keep_states: false,
        log: None,
    }
    .run(&jobs, progress)?;
    progress.finish();
    let (records, trials) = results.into_iter().map(|r| (r.record, r.trials)).unzip();
    Ok(Searchers {
        problem: ds.meta.problem.clone(),
        model: model.to_string(),
        n_lf,
        n_hf,
        seed,
        methods: methods.to_vec(),
        search: cfg.search.clone(),
        space,
        n_test: data.test.len(),
        records,
        trials,
    })
}

/// The result of a searchers study: per method its record and its search's timed trials.
pub struct Searchers {
    pub problem: String,
    pub model: String,
    pub n_lf: usize,
    pub n_hf: usize,
    pub seed: u64,
    pub methods: Vec<SearchMethod>,
    pub search: SearchConfig,
    pub space: Space,
    pub n_test: usize,
    pub records: Vec<Record>,
    pub trials: Vec<Vec<TimedTrial>>,
}

impl HasRecords for Searchers {
    fn records(&self) -> &[Record] {
        &self.records
    }
}

/// searchers.png: best validation RMSE so far against wall time, one curve per method.
pub struct SearchersFigure;

impl Exporter<Searchers> for SearchersFigure {
    fn export(&self, s: &Searchers, dir: &Path) -> Result<Vec<String>> {
        let series: Vec<Series> = s
            .methods
            .iter()
            .zip(&s.trials)
            .map(|(m, t)| best_so_far(m.name(), t))
            .collect();
        plots::curves(
            &dir.join("searchers.png"),
            &format!(
                "{}: {}, best validation RMSE so far vs wall time (N_L={}, N_H={}, seed {})",
                s.problem, s.model, s.n_lf, s.n_hf, s.seed
            ),
            "wall seconds since the search started",
            "best validation RMSE so far",
            &series,
            plots::XAxis::Log,
        )?;
        Ok(vec!["searchers.png".into()])
    }
}

/// report.md of a searchers study.
pub struct SearchersMarkdown;

impl Exporter<Searchers> for SearchersMarkdown {
    fn export(&self, s: &Searchers, dir: &Path) -> Result<Vec<String>> {
        let (model, n_lf, n_hf, seed) = (&s.model, s.n_lf, s.n_hf, s.seed);
        let (dims, c) = (&s.space.dims, &s.search);
        let mut md = String::new();
        let _ = writeln!(
            md,
            "# mfpipe study: search methods for `{model}` on `{}` (DMF Fig. 5)\n",
            s.problem
        );
        let _ = writeln!(
            md,
            "One fit (N_L = {n_lf}, N_H = {n_hf}, seed {seed}); {:.0} % of its HF training samples are held out for validation. Budgets are in units of 1/{} of the tuned phase's steps (R = {} units, eta = {}); random search, median pruning and successive halving draw {} configurations, grid search takes the product of the `grid` values. Space: {}. Each method's choice is refitted on all training samples and scored on the {} held-out HF test samples; the methods ran one after another on this machine.\n",
            100.0 * c.validation, c.units, c.units, c.eta, c.trials,
            dims.iter().map(|d| format!("{} in [{:.0e}, {:.0e}]{}", d.name, d.lower, d.upper, if d.log { " (log)" } else { "" })).collect::<Vec<_>>().join(", "),
            s.n_test
        );
        let _ = writeln!(md, "![search methods](searchers.png)\n");
        let _ = writeln!(md, "| method | evaluations | budget (units) | search + refit s | chosen | validation RMSE | test RMSE |\n|---|---|---|---|---|---|---|");
        for (method, rec) in s.methods.iter().zip(&s.records) {
            let summary = &rec.hyperparameters["search"];
            let chosen = fmt_config(&summary["chosen"]);
            let _ = writeln!(
                md,
                "| {} | {} | {} | {:.1} | {chosen} | {:.4e} | {:.4e} |",
                method.name(),
                summary["evaluations"],
                summary["budget_units"],
                rec.fit_seconds,
                summary["validation_rmse"].as_f64().unwrap_or(f64::NAN),
                rec.rmse,
            );
        }
        write_text(&dir.join("report.md"), &md)?;
        Ok(vec!["report.md".into()])
    }
}

/// Every output of a searchers study.
pub const SEARCHERS_EXPORTERS: [&dyn Exporter<Searchers>; 3] =
    [&ResultsJson, &SearchersFigure, &SearchersMarkdown];

/// The running minimum of the finite validation scores against the time each was known.
fn best_so_far(label: &str, trials: &[TimedTrial]) -> Series {
    let mut best = f64::INFINITY;
    let mut points = Vec::new();
    for t in trials {
        if let Some(s) = t.score {
            if s < best {
                best = s;
            }
        }
        if best.is_finite() && t.t > 0.0 {
            points.push((t.t, best, best, best));
        }
    }
    Series {
        label: label.into(),
        points,
    }
}
