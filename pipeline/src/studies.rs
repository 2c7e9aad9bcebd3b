//! The DMF paper's studies beyond the training protocol, run by `pipeline run` when a config
//! has a `[study]` section: Fig. 4 (`kind = "sensitivity"`: test RMSE over a grid of
//! hyperparameters) and Fig. 5 (`kind = "searchers"`: the search methods against wall time).
//! Fig. 3 needs nothing of its own: it is a protocol over model labels (DMF variants and cell
//! counts), see configs/burgers-fig3.toml.

use crate::config::{GridAxis, RunConfig, SearchMethod};
use crate::experiment::{run_records, search_and_fit, Choice, Data, FitJob, Record};
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

fn write_records(dir: &Path, records: &[Record]) -> Result<()> {
    write_text(
        &dir.join("results.json"),
        &(serde_json::to_string_pretty(records)? + "\n"),
    )
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
    dir: &Path,
    progress: &dyn Progress,
) -> Result<Vec<String>> {
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
    let records = run_records(
        &ds.meta.problem,
        &data,
        &fits,
        (budget, &cfg.search),
        "sensitivity",
        progress,
    )?;
    write_records(dir, &records)?;

    let per_seed = seeds.len();
    let stats: Vec<(f64, f64, usize)> = (0..combos.len())
        .map(|c| {
            let r: Vec<f64> = records[c * per_seed..(c + 1) * per_seed]
                .iter()
                .map(|r| r.rmse)
                .collect();
            let (m, s) = finite_mean_std(&r);
            (m, s, r.iter().filter(|x| !x.is_finite()).count())
        })
        .collect();

    // combos are ordered with the last axis fastest: index = ((i0 * n1) + i1) * n2 + i2.
    let (n0, n1) = (grid[0].values.len(), grid[1].values.len());
    let n2 = grid.get(2).map_or(1, |a| a.values.len());
    let mut fields = BTreeMap::new();
    for k in 0..n2 {
        let f: Vec<f64> = (0..n0 * n1)
            .map(|ij| stats[ij * n2 + k].0.log10())
            .collect();
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
            "{}: log10 test RMSE of {model}, N_L={n_lf}, N_H={n_hf}, mean over {per_seed} seeds",
            ds.meta.problem
        ),
        &[String::new()],
        &panels,
        &fields,
        (&a0, &a1),
        (&l0, &l1),
    )?;

    let best = (0..combos.len())
        .filter(|&c| stats[c].0.is_finite())
        .min_by(|&a, &b| stats[a].0.total_cmp(&stats[b].0));
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# mfpipe study: sensitivity of `{model}` on `{}` (DMF Fig. 4)\n",
        ds.meta.problem
    );
    let _ = writeln!(
        md,
        "Every combination of {} is fitted with that fixed configuration (no search), N_L = {n_lf}, N_H = {n_hf}, seeds {seeds:?}, and scored on the {} held-out HF test samples. Other hyperparameters: `{params}`.\n",
        grid.iter().map(|a| format!("{} in {:?}", a.name, a.values)).collect::<Vec<_>>().join(", "),
        data.test.len()
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
    Ok(vec![
        "results.json".into(),
        "sensitivity.png".into(),
        "report.md".into(),
    ])
}

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
    dir: &Path,
    progress: &dyn Progress,
) -> Result<Vec<String>> {
    let (kind, params) = cfg.model_spec(model)?;
    let data = Data::new(ds, levels.lf, levels.hf, cfg.protocol.n_test, n_lf, n_hf)?;
    let n_lf = if data.single { 0 } else { n_lf };
    let train = data.train_set(n_lf, n_hf, seed)?;
    let space = cfg
        .search
        .space_for(model, &kind)
        .context("no search.space for the study's model")?;
    let dims = &space.dims;
    progress.start("searchers", methods.len() as u64);
    let mut rows = Vec::new();
    let mut series = Vec::new();
    let mut records = Vec::new();
    for &method in methods {
        let (fit, trials) = search_and_fit(
            &kind,
            &params,
            &space,
            &cfg.search,
            method,
            &train,
            seed,
            budget,
            data.x_test.view(),
        )
        .with_context(|| format!("{} search", method.name()))?;
        let rec = Record::new(
            &ds.meta.problem,
            &format!("{model} ({})", method.name()),
            (n_lf, n_hf, seed),
            &fit,
            data.y_test.view(),
        );
        series.push(best_so_far(method.name(), &trials));
        rows.push((
            method,
            rec.hyperparameters["search"].clone(),
            rec.rmse,
            rec.fit_seconds,
        ));
        records.push(rec);
        progress.advance(1);
    }
    progress.finish();
    write_records(dir, &records)?;
    plots::curves(
        &dir.join("searchers.png"),
        &format!(
            "{}: {model}, best validation RMSE so far vs wall time (N_L={n_lf}, N_H={n_hf}, seed {seed})",
            ds.meta.problem
        ),
        "wall seconds since the search started",
        "best validation RMSE so far",
        &series,
        plots::XAxis::Log,
    )?;
    let s = &cfg.search;
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# mfpipe study: search methods for `{model}` on `{}` (DMF Fig. 5)\n",
        ds.meta.problem
    );
    let _ = writeln!(
        md,
        "One fit (N_L = {n_lf}, N_H = {n_hf}, seed {seed}); {:.0} % of its HF training samples are held out for validation. Budgets are in units of 1/{} of the tuned phase's steps (R = {} units, eta = {}); random search, median pruning and successive halving draw {} configurations, grid search takes the product of the `grid` values. Space: {}. Each method's choice is refitted on all training samples and scored on the {} held-out HF test samples; the methods ran one after another on this machine.\n",
        100.0 * s.validation, s.units, s.units, s.eta, s.trials,
        dims.iter().map(|d| format!("{} in [{:.0e}, {:.0e}]{}", d.name, d.lower, d.upper, if d.log { " (log)" } else { "" })).collect::<Vec<_>>().join(", "),
        data.test.len()
    );
    let _ = writeln!(md, "![search methods](searchers.png)\n");
    let _ = writeln!(md, "| method | evaluations | budget (units) | search + refit s | chosen | validation RMSE | test RMSE |\n|---|---|---|---|---|---|---|");
    for (method, summary, rmse, secs) in &rows {
        let chosen = fmt_config(&summary["chosen"]);
        let _ = writeln!(
            md,
            "| {} | {} | {} | {secs:.1} | {chosen} | {:.4e} | {rmse:.4e} |",
            method.name(),
            summary["evaluations"],
            summary["budget_units"],
            summary["validation_rmse"].as_f64().unwrap_or(f64::NAN),
        );
    }
    write_text(&dir.join("report.md"), &md)?;
    Ok(vec![
        "results.json".into(),
        "searchers.png".into(),
        "report.md".into(),
    ])
}

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
