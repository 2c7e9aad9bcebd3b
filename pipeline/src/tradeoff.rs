//! `pipeline tradeoff`: how much accuracy each fidelity buys per CPU-second.
//!
//! 1. The fidelity ladder: every level solved on one common set of inputs; per level the
//!    measured cost per sample (median, min, max), the error against the finest level, the
//!    observed convergence order between successive levels and the failure rate. The numbers
//!    of the levels a dataset holds are stored in it as `ladder_*` attributes.
//! 2. Budgeted fusion: for each total budget B (CPU-seconds), splits of B between LF and HF
//!    samples with N_L c_L + N_H c_H <= B under the measured costs, every fusion model fitted
//!    on each split and seed, against HF-only training at the same budget; the Pareto front of
//!    test error vs cost and the recommended split per budget.
//!
//! Costs are measurements, so they differ a little from run to run. Everything after the
//! measurement uses the costs recorded in the dataset (or given with `--costs`), so a rerun
//! on the same dataset, or with the same `--costs`, reproduces every number bit for bit.

use crate::config::{RunConfig, TradeoffConfig};
use crate::experiment::{Choice, Data, FitJob, JobLoop, Order, Record};
use crate::export::{Exporter, HasRecords, ResultsJson};
use crate::plots::{self, Series};
use crate::util::{finite_mean_std, write_text};
use anyhow::{bail, Result};
use mfpipe_data::dataset::Dataset;
use mfpipe_data::design::{self, DesignKind};
use mfpipe_data::{h5, Progress};
use mfpipe_fusion::Budget;
use mfpipe_solvers::Simulator;
use serde::Serialize;
use std::fmt::Write as _;
use std::path::Path;

/// One level of the ladder.
#[derive(Debug, Clone, Serialize)]
pub struct Rung {
    pub level: usize,
    pub name: String,
    pub cost_median_s: f64,
    pub cost_min_s: f64,
    pub cost_max_s: f64,
    /// RMSE against the reference level over the common inputs and all output points.
    pub error_rmse: f64,
    /// log2(error of this level / error of the next finer one); NaN where undefined.
    pub order: f64,
    pub failure_rate: f64,
}

pub fn ladder(
    sim: &dyn Simulator,
    n: usize,
    seed: u64,
    progress: &dyn Progress,
) -> Result<Vec<Rung>> {
    let xs = design::design(DesignKind::Sobol, &sim.spec().inputs, n, seed ^ 0x001A_DDE4)?;
    let xs: Vec<Vec<f64>> = xs.rows().into_iter().map(|r| r.to_vec()).collect();
    // Levels that take about a minute a sample (Simulator::heavy_from) stay out: the ladder
    // solves every level on every input, and its finest level is the reference.
    let levels: Vec<_> = sim.spec().fidelities[..sim.heavy_from().max(1)].to_vec();
    // One untimed batch first: the first solves of a process pay for starting the thread
    // pool and touching fresh memory, which would be charged to level 0 (measured on `heat`,
    // where a level-0 sample takes ~30 microseconds: level 0 then read dearer than level 1).
    let _ = mfpipe_solvers::solve_many(sim, &xs, 0, seed);
    progress.start("ladder", levels.len() as u64);
    let mut solved = Vec::new();
    for f in &levels {
        solved.push(mfpipe_solvers::solve_many(sim, &xs, f.level, seed));
        progress.advance(1);
    }
    progress.finish();
    let reference = solved.last().expect("at least one level");
    let mut rungs: Vec<Rung> = Vec::new();
    for (f, sols) in levels.iter().zip(&solved) {
        let mut costs: Vec<f64> = sols.iter().flatten().map(|s| s.cost_s).collect();
        costs.sort_by(f64::total_cmp);
        let failed = sols.iter().filter(|s| s.is_err()).count();
        let (mut sq, mut count) = (0.0, 0usize);
        for (a, b) in sols.iter().zip(reference) {
            if let (Ok(a), Ok(b)) = (a, b) {
                for (u, v) in a.values.iter().zip(&b.values) {
                    sq += (u - v) * (u - v);
                    count += 1;
                }
            }
        }
        rungs.push(Rung {
            level: f.level,
            name: f.name.clone(),
            cost_median_s: costs.get(costs.len() / 2).copied().unwrap_or(f64::NAN),
            cost_min_s: costs.first().copied().unwrap_or(f64::NAN),
            cost_max_s: costs.last().copied().unwrap_or(f64::NAN),
            error_rmse: if count > 0 {
                (sq / count as f64).sqrt()
            } else {
                f64::NAN
            },
            order: f64::NAN,
            failure_rate: failed as f64 / xs.len() as f64,
        });
    }
    // The finest level is the reference (error 0): orders only between levels whose errors
    // are both measured against a finer level.
    let last = rungs.len() - 1;
    let refine = if sim.levels_refine() { last } else { 0 };
    for k in 0..refine.saturating_sub(1) {
        rungs[k].order = (rungs[k].error_rmse / rungs[k + 1].error_rmse).log2();
    }
    Ok(rungs)
}

/// One way of spending a budget.
#[derive(Debug, Clone, Serialize)]
pub struct Split {
    pub budget_s: f64,
    /// Share of the budget for HF samples (1 = HF only).
    pub hf_share: f64,
    pub n_lf: usize,
    pub n_hf: usize,
    /// N_L c_L + N_H c_H.
    pub cost_s: f64,
}

pub fn splits(budgets: &[f64], shares: &[f64], c_lf: f64, c_hf: f64) -> Vec<Split> {
    let mut out = Vec::new();
    for &b in budgets {
        let n_hf = (b / c_hf).floor() as usize;
        if n_hf >= 2 {
            out.push(Split {
                budget_s: b,
                hf_share: 1.0,
                n_lf: 0,
                n_hf,
                cost_s: n_hf as f64 * c_hf,
            });
        }
        for &s in shares {
            let n_hf = (s * b / c_hf).floor() as usize;
            let n_lf = ((b - n_hf as f64 * c_hf) / c_lf).floor() as usize;
            if n_hf >= 2 && n_lf >= 2 {
                out.push(Split {
                    budget_s: b,
                    hf_share: s,
                    n_lf,
                    n_hf,
                    cost_s: n_lf as f64 * c_lf + n_hf as f64 * c_hf,
                });
            }
        }
    }
    out
}

/// One (split, model) over the seeds.
#[derive(Debug, Clone, Serialize)]
pub struct Point {
    pub budget_s: f64,
    pub model: String,
    pub hf_share: f64,
    pub n_lf: usize,
    pub n_hf: usize,
    pub cost_s: f64,
    pub rmse_mean: f64,
    pub rmse_std: f64,
    pub rmse: Vec<f64>,
    pub diverged: usize,
    pub pareto: bool,
}

/// Mark the points no other point beats in both cost and mean error.
fn mark_pareto(points: &mut [Point]) {
    let snapshot: Vec<(f64, f64)> = points.iter().map(|p| (p.cost_s, p.rmse_mean)).collect();
    for p in points.iter_mut() {
        p.pareto = p.rmse_mean.is_finite()
            && !snapshot.iter().any(|&(c, r)| {
                c <= p.cost_s && r <= p.rmse_mean && (c < p.cost_s || r < p.rmse_mean)
            });
    }
}

/// Attach the ladder's numbers to the dataset's levels as `ladder_*` attributes.
pub fn annotate(ds: &mut Dataset, rungs: &[Rung], reference: usize) {
    for l in &mut ds.levels {
        l.settings.retain(|(k, _)| !k.starts_with("ladder_"));
        if let Some(r) = rungs.iter().find(|r| r.level == l.level) {
            l.settings.extend([
                ("ladder_cost_median_s".to_string(), r.cost_median_s),
                ("ladder_cost_min_s".to_string(), r.cost_min_s),
                ("ladder_cost_max_s".to_string(), r.cost_max_s),
                ("ladder_error_rmse".to_string(), r.error_rmse),
                ("ladder_order".to_string(), r.order),
                ("ladder_failure_rate".to_string(), r.failure_rate),
                ("ladder_reference_level".to_string(), reference as f64),
            ]);
        }
    }
}

/// The recorded cost of a level, if the dataset carries its ladder.
pub fn recorded_cost(ds: &Dataset, level: usize) -> Option<f64> {
    ds.level(level)?
        .settings
        .iter()
        .find(|(k, _)| k == "ladder_cost_median_s")
        .map(|(_, v)| *v)
}

/// The result of a trade-off study. Serialised as tradeoff.json (the fields not skipped).
#[derive(Serialize)]
pub struct Tradeoff {
    pub problem: String,
    pub lf_level: usize,
    pub hf_level: usize,
    pub cost_lf_s: f64,
    pub cost_hf_s: f64,
    pub costs_from: String,
    pub ladder: Vec<Rung>,
    pub budgets_s: Vec<f64>,
    pub points: Vec<Point>,
    /// Per budget, the point with the smallest mean test RMSE.
    pub recommendation: Vec<Point>,
    /// Whether the levels refine one solution (`Simulator::levels_refine`): if not, the
    /// ladder has no convergence order and report.md says why.
    pub levels_refine: bool,
    /// The study's settings (models, baseline, shares, seeds, ladder size).
    #[serde(skip)]
    pub settings: TradeoffConfig,
    #[serde(skip)]
    pub n_test: usize,
    #[serde(skip)]
    pub records: Vec<Record>,
}

impl HasRecords for Tradeoff {
    fn records(&self) -> &[Record] {
        &self.records
    }
}

/// Fit every split of every budget; the study's summary.
#[allow(clippy::too_many_arguments)]
pub fn study(
    ds: &Dataset,
    cfg: &RunConfig,
    t: &TradeoffConfig,
    rungs: &[Rung],
    (lf_level, hf_level): (usize, usize),
    (c_lf, c_hf, costs_from): (f64, f64, &str),
    budgets: &[f64],
    budget: Budget,
    progress: &dyn Progress,
) -> Result<Tradeoff> {
    let plan = splits(budgets, &t.hf_shares, c_lf, c_hf);
    if plan.is_empty() {
        bail!("no budget buys 2 HF samples (c_H = {c_hf:.3e} s); raise the budgets");
    }
    let max_lf = plan.iter().map(|s| s.n_lf).max().unwrap_or(0);
    let max_hf = plan.iter().map(|s| s.n_hf).max().unwrap_or(0);
    let data = Data::new(ds, lf_level, hf_level, t.n_test, max_lf, max_hf)?;
    let mut jobs = Vec::new();
    for (k, s) in plan.iter().enumerate() {
        let models: Vec<&String> = if s.n_lf == 0 {
            vec![&t.baseline]
        } else {
            t.models.iter().collect()
        };
        for m in models {
            for &seed in &t.seeds {
                jobs.push((k, m.clone(), seed));
            }
        }
    }
    let fits = jobs
        .iter()
        .map(|(k, m, seed)| {
            let (kind, params) = cfg.model_spec(m)?;
            Ok(FitJob {
                label: m.clone(),
                kind,
                params,
                n_lf: plan[*k].n_lf,
                n_hf: plan[*k].n_hf,
                seed: *seed,
                choice: Choice::Given(None),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let recs = JobLoop {
        problem: &ds.meta.problem,
        data: &data,
        budget,
        search: &cfg.search,
        order: Order::Parallel,
        keep_states: false,
        log: None,
    }
    .records(&fits, "budgeted fits", progress)?;
    let per = t.seeds.len();
    let mut points: Vec<Point> = recs
        .chunks(per)
        .zip(jobs.chunks(per))
        .map(|(r, j)| {
            let s = &plan[j[0].0];
            let rmse: Vec<f64> = r.iter().map(|r| r.rmse).collect();
            let (m, sd) = finite_mean_std(&rmse);
            Point {
                budget_s: s.budget_s,
                model: j[0].1.clone(),
                hf_share: s.hf_share,
                n_lf: s.n_lf,
                n_hf: s.n_hf,
                cost_s: s.cost_s,
                rmse_mean: m,
                rmse_std: sd,
                rmse,
                diverged: r.iter().filter(|r| r.diverged()).count(),
                pareto: false,
            }
        })
        .collect();
    mark_pareto(&mut points);
    let recommendation: Vec<Point> = budgets
        .iter()
        .filter_map(|b| {
            points
                .iter()
                .filter(|p| p.budget_s == *b && p.rmse_mean.is_finite())
                .min_by(|a, c| a.rmse_mean.total_cmp(&c.rmse_mean))
                .cloned()
        })
        .collect();

    Ok(Tradeoff {
        problem: ds.meta.problem.clone(),
        lf_level,
        hf_level,
        cost_lf_s: c_lf,
        cost_hf_s: c_hf,
        costs_from: costs_from.to_string(),
        ladder: rungs.to_vec(),
        budgets_s: budgets.to_vec(),
        points,
        recommendation,
        levels_refine: true, // the caller, which holds the simulator, sets it
        settings: t.clone(),
        n_test: data.test.len(),
        records: recs,
    })
}

/// tradeoff.json: the ladder, every point, the Pareto front and the recommendation.
pub struct TradeoffJson;

impl Exporter<Tradeoff> for TradeoffJson {
    fn export(&self, s: &Tradeoff, dir: &Path) -> Result<Vec<String>> {
        write_text(
            &dir.join("tradeoff.json"),
            &(serde_json::to_string_pretty(s)? + "\n"),
        )?;
        Ok(vec!["tradeoff.json".into()])
    }
}

/// ladder.png (error vs cost per level) and budget.png (RMSE vs budget, Pareto front).
pub struct TradeoffFigures;

impl Exporter<Tradeoff> for TradeoffFigures {
    fn export(&self, s: &Tradeoff, dir: &Path) -> Result<Vec<String>> {
        let (rungs, t, budgets, points) = (&s.ladder, &s.settings, &s.budgets_s, &s.points);
        // Ladder plot: error vs cost per level (the reference level has no error of its own).
        let ladder_pts: Vec<(f64, f64, f64, f64)> = rungs
            .iter()
            .filter(|r| r.error_rmse > 0.0 && r.error_rmse.is_finite())
            .map(|r| (r.cost_median_s, r.error_rmse, r.error_rmse, r.error_rmse))
            .collect();
        plots::curves(
            &dir.join("ladder.png"),
            &format!(
                "{}: error against level {} vs cost per sample, one point per level",
                s.problem,
                rungs.last().map_or(0, |r| r.level)
            ),
            "median CPU seconds per sample",
            "RMSE against the finest level",
            &[Series {
                label: "levels (cheapest left)".into(),
                points: ladder_pts,
            }],
            plots::XAxis::Log,
        )?;
        // Budget plot: per model the best split at each budget, HF only, and the Pareto front.
        let mut series: Vec<Series> = Vec::new();
        let mut labels: Vec<String> = t.models.clone();
        labels.push(t.baseline.clone());
        for m in &labels {
            let pts: Vec<(f64, f64, f64, f64)> = budgets
                .iter()
                .filter_map(|b| {
                    points
                        .iter()
                        .filter(|p| &p.model == m && p.budget_s == *b && p.rmse_mean.is_finite())
                        .min_by(|a, c| a.rmse_mean.total_cmp(&c.rmse_mean))
                        .map(|p| {
                            let f: Vec<f64> =
                                p.rmse.iter().copied().filter(|x| x.is_finite()).collect();
                            let lo = f.iter().cloned().fold(f64::INFINITY, f64::min);
                            let hi = f.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                            (*b, p.rmse_mean, lo, hi)
                        })
                })
                .collect();
            if !pts.is_empty() {
                let label = if *m == t.baseline {
                    format!("{m} (HF only)")
                } else {
                    format!("{m} (best split)")
                };
                series.push(Series { label, points: pts });
            }
        }
        let mut front: Vec<(f64, f64, f64, f64)> = points
            .iter()
            .filter(|p| p.pareto)
            .map(|p| (p.cost_s, p.rmse_mean, p.rmse_mean, p.rmse_mean))
            .collect();
        front.sort_by(|a, b| a.0.total_cmp(&b.0));
        series.push(Series {
            label: "Pareto front (cost actually spent)".into(),
            points: front,
        });
        plots::curves(
            &dir.join("budget.png"),
            &format!(
                "{}: test RMSE vs CPU budget ({})",
                s.problem,
                plots::over_seeds(t.seeds.len())
            ),
            "CPU seconds of training data (N_L c_L + N_H c_H)",
            "test RMSE",
            &series,
            plots::XAxis::Log,
        )?;

        Ok(vec!["ladder.png".into(), "budget.png".into()])
    }
}

/// report.md of a trade-off study.
pub struct TradeoffMarkdown;

impl Exporter<Tradeoff> for TradeoffMarkdown {
    fn export(&self, s: &Tradeoff, dir: &Path) -> Result<Vec<String>> {
        let (rungs, t, points, recommendation) =
            (&s.ladder, &s.settings, &s.points, &s.recommendation);
        let (lf_level, hf_level, c_lf, c_hf) = (s.lf_level, s.hf_level, s.cost_lf_s, s.cost_hf_s);
        let costs_from = &s.costs_from;
        let mut md = String::new();
        let _ = writeln!(md, "# mfpipe trade-off study: `{}`\n", s.problem);
        let _ = writeln!(md, "## Fidelity ladder\n\nEvery level solved on the same {} inputs (Sobol); error = RMSE against level {} over all samples and output points; order = log2 of the error ratio of successive levels. These numbers are stored in the dataset as `ladder_*` attributes of each level it holds.\n", t.ladder_samples, rungs.last().map_or(0, |r| r.level));
        if !s.levels_refine {
            let _ = writeln!(md, "This problem's levels are different systems, not refinements of one, so the error against the finest level measures how much the answer changes, not a discretisation error, and no order is given.\n");
        }
        let _ = writeln!(md, "| level | name | median s/sample | min | max | error vs reference | observed order | failure rate |\n|---|---|---|---|---|---|---|---|");
        for r in rungs {
            let order = if r.order.is_finite() {
                format!("{:.2}", r.order)
            } else {
                "-".into()
            };
            let _ = writeln!(
                md,
                "| {} | {} | {:.3e} | {:.3e} | {:.3e} | {:.3e} | {order} | {:.2} |",
                r.level,
                r.name,
                r.cost_median_s,
                r.cost_min_s,
                r.cost_max_s,
                r.error_rmse,
                r.failure_rate
            );
        }
        let _ = writeln!(md, "\n![ladder](ladder.png)\n");
        let _ = writeln!(md, "## Budgeted fusion\n\nLF = level {lf_level}, HF = level {hf_level}; costs c_L = {c_lf:.3e} s and c_H = {c_hf:.3e} s per sample ({costs_from}). For each budget B the fusion models ({}) are fitted on N_H = floor(share B / c_H) HF and N_L = floor((B - N_H c_H) / c_L) LF samples for shares {:?}, and `{}` on N_H = floor(B / c_H) HF samples alone; seeds {:?}; test set {} held-out HF samples. Configured hyperparameters, no search.\n", t.models.join(", "), t.hf_shares, t.baseline, t.seeds, s.n_test);
        let _ = writeln!(md, "| budget s | model | HF share | N_L | N_H | cost s | test RMSE (mean ± std) | Pareto |\n|---|---|---|---|---|---|---|---|");
        for p in points.iter() {
            let _ = writeln!(
                md,
                "| {:.3e} | {} | {:.2} | {} | {} | {:.3e} | {:.4e} ± {:.1e} | {} |",
                p.budget_s,
                p.model,
                p.hf_share,
                p.n_lf,
                p.n_hf,
                p.cost_s,
                p.rmse_mean,
                p.rmse_std,
                if p.pareto { "yes" } else { "" }
            );
        }
        let _ = writeln!(md, "\n![budget](budget.png)\n\n## Recommendation\n\n| budget s | spend it on | test RMSE | HF only at the same budget | gain |\n|---|---|---|---|---|");
        for r in recommendation.iter() {
            let hf_only = points
                .iter()
                .find(|p| p.budget_s == r.budget_s && p.n_lf == 0)
                .map(|p| p.rmse_mean);
            let (hf, gain) = match hf_only {
                Some(h) => (format!("{h:.4e}"), format!("{:.2}x", h / r.rmse_mean)),
                None => ("-".into(), "-".into()),
            };
            let what = if r.n_lf == 0 {
                format!("{} HF samples only ({})", r.n_hf, r.model)
            } else {
                format!("{} LF + {} HF samples, {}", r.n_lf, r.n_hf, r.model)
            };
            let _ = writeln!(
                md,
                "| {:.3e} | {what} | {:.4e} ± {:.1e} | {hf} | {gain} |",
                r.budget_s, r.rmse_mean, r.rmse_std
            );
        }
        write_text(&dir.join("report.md"), &md)?;
        Ok(vec!["report.md".into()])
    }
}

/// Every output of a trade-off study.
pub const EXPORTERS: [&dyn Exporter<Tradeoff>; 4] = [
    &TradeoffJson,
    &ResultsJson,
    &TradeoffFigures,
    &TradeoffMarkdown,
];

/// Write the dataset with its ladder attributes (atomic, like every write).
pub fn store(path: &Path, ds: &mut Dataset, rungs: &[Rung]) -> Result<()> {
    let reference = rungs.last().map_or(0, |r| r.level);
    annotate(ds, rungs, reference);
    h5::write(path, ds)?;
    Ok(())
}

/// HF-sample-equivalent budgets to CPU-seconds.
pub fn budgets_s(t: &TradeoffConfig, c_hf: f64) -> Vec<f64> {
    if t.budgets_s.is_empty() {
        t.budgets_hf.iter().map(|b| b * c_hf).collect()
    } else {
        t.budgets_s.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_respect_the_budget_and_include_hf_only() {
        let s = splits(&[1.0], &[0.25, 0.5], 0.01, 0.1);
        assert_eq!(s[0].n_lf, 0);
        assert_eq!(s[0].n_hf, 10);
        assert_eq!((s[1].n_hf, s[1].n_lf), (2, 80));
        assert_eq!((s[2].n_hf, s[2].n_lf), (5, 50));
        for x in &s {
            assert!(x.cost_s <= 1.0 + 1e-12);
        }
        // A budget that buys fewer than 2 HF samples gives nothing.
        assert!(splits(&[0.15], &[0.5], 0.01, 0.1).is_empty());
    }

    #[test]
    fn the_pareto_front_keeps_only_undominated_points() {
        let p = |cost: f64, rmse: f64| Point {
            budget_s: 1.0,
            model: "m".into(),
            hf_share: 0.5,
            n_lf: 1,
            n_hf: 1,
            cost_s: cost,
            rmse_mean: rmse,
            rmse_std: 0.0,
            rmse: vec![],
            diverged: 0,
            pareto: false,
        };
        let mut pts = vec![
            p(1.0, 3.0),
            p(2.0, 2.0),
            p(2.0, 2.5),
            p(3.0, 1.0),
            p(4.0, 1.5),
        ];
        mark_pareto(&mut pts);
        let front: Vec<bool> = pts.iter().map(|p| p.pareto).collect();
        assert_eq!(front, [true, true, false, true, false]);
    }
}
