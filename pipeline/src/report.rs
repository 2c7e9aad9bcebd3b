//! The outputs of a protocol run (`pipeline run`, `pipeline train`): a [`RunSummary`] and its
//! exporters results.json, splits.json, the figures and report.md.

use crate::config::Layout;
use crate::experiment::{Outcome, Plan, Record};
use crate::export::{export_all, Exporter, HasRecords, ResultsJson};
use crate::plots::{self, Series};
use crate::util::{finite_mean_std, fmt_config, write_text};
use anyhow::Result;
use mfpipe_data::dataset::{Dataset, LevelData};
use mfpipe_data::metrics;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

/// Mean, minimum and maximum of the finite values (diverged fits are counted separately).
fn spread(v: &[f64]) -> (f64, f64, f64) {
    let v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    (
        mean,
        v.iter().cloned().fold(f64::INFINITY, f64::min),
        v.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
    )
}

/// Records of one (model, n_lf, n_hf).
type Group<'a> = ((String, usize, usize), Vec<&'a Record>);

/// Records grouped by (model, n_lf, n_hf), in the plan's model order.
fn groups<'a>(records: &'a [Record], plan: &Plan) -> Vec<Group<'a>> {
    let mut g: BTreeMap<(usize, usize, usize), Vec<&Record>> = BTreeMap::new();
    for r in records {
        let mi = plan
            .models
            .iter()
            .position(|m| m.label == r.model)
            .unwrap_or(usize::MAX);
        g.entry((mi, r.n_lf, r.n_hf)).or_default().push(r);
    }
    g.into_iter()
        .map(|((_, l, h), v)| ((v[0].model.clone(), l, h), v))
        .collect()
}

/// "Best model per training size": for every (N_L, N_H) the model with the lowest mean test
/// RMSE and every model's ratio to it. Single-fidelity models (N_L = 0) compete in every row of
/// their N_H.
fn best_model_table(md: &mut String, grouped: &[Group]) {
    let means: Vec<(&str, usize, usize, f64)> = grouped
        .iter()
        .map(|((m, l, h), recs)| {
            let rmse: Vec<f64> = recs.iter().map(|r| r.rmse).collect();
            (m.as_str(), *l, *h, spread(&rmse).0)
        })
        .collect();
    let mut models: Vec<&str> = Vec::new();
    for (m, ..) in &means {
        if !models.contains(m) {
            models.push(m);
        }
    }
    let mut cells: Vec<(usize, usize)> = means
        .iter()
        .filter(|x| x.1 > 0)
        .map(|x| (x.1, x.2))
        .collect();
    if cells.is_empty() {
        cells = means.iter().map(|x| (0, x.2)).collect();
    }
    cells.sort_unstable();
    cells.dedup();
    if models.len() < 2 || cells.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "## Best model per training size

For each training size the model with the lowest mean test RMSE, and every model's mean RMSE divided by it (1 = the best; single-fidelity models, N_L = 0, compete at every N_L).
"
    );
    let mut head = "| N_L | N_H | best (RMSE) |".to_string();
    let mut rule = "|---|---|---|".to_string();
    for m in &models {
        let _ = write!(head, " {m} |");
        rule.push_str("---|");
    }
    let _ = writeln!(md, "{head}\n{rule}");
    for (l, h) in cells {
        let of = |m: &str| {
            means
                .iter()
                .find(|x| x.0 == m && x.2 == h && (x.1 == l || x.1 == 0))
                .map(|x| x.3)
                .filter(|v| v.is_finite())
        };
        let best = models
            .iter()
            .filter_map(|m| of(m).map(|v| (*m, v)))
            .min_by(|a, b| a.1.total_cmp(&b.1));
        let Some((bm, bv)) = best else { continue };
        let mut row = format!("| {l} | {h} | {bm} ({bv:.3e}) |");
        for m in &models {
            match of(m) {
                Some(v) => {
                    let r = v / bv;
                    let _ = match r {
                        r if r < 10.0 => write!(row, " {r:.2} |"),
                        r if r < 100.0 => write!(row, " {r:.1} |"),
                        r => write!(row, " {r:.0} |"),
                    };
                }
                None => row.push_str(" - |"),
            }
        }
        let _ = writeln!(md, "{row}");
    }
    let _ = writeln!(md);
}

/// "What this run shows": sentences computed from the numbers — the best model at each
/// training size, where the best multi-fidelity model beat the best high-fidelity-only one
/// and by how much, and how well the predictive variances are calibrated.
fn what_this_run_shows(md: &mut String, grouped: &[Group]) {
    let mean = |recs: &[&Record], f: fn(&Record) -> Option<f64>| {
        let v: Vec<f64> = recs.iter().filter_map(|r| f(r)).collect();
        spread(&v).0
    };
    // Per N_H: (model, n_lf, mean RMSE), fitted sizes only.
    let mut by_nhf: BTreeMap<usize, Vec<(&str, usize, f64)>> = BTreeMap::new();
    for ((m, l, h), recs) in grouped {
        let r = mean(recs, |r| Some(r.rmse));
        if r.is_finite() {
            by_nhf.entry(*h).or_default().push((m.as_str(), *l, r));
        }
    }
    if by_nhf.is_empty() {
        return;
    }
    let mut lines = Vec::new();
    let best: Vec<String> = by_nhf
        .iter()
        .filter_map(|(h, v)| {
            v.iter()
                .min_by(|a, b| a.2.total_cmp(&b.2))
                .map(|(m, l, r)| {
                    format!(
                        "N_H = {h}: {m} ({r:.2e}{})",
                        if *l > 0 {
                            format!(", N_L = {l}")
                        } else {
                            String::new()
                        }
                    )
                })
        })
        .collect();
    lines.push(format!(
        "- **Best model** (lowest mean test RMSE over seeds) at each HF training size: {}.",
        best.join("; ")
    ));
    let mut versus = Vec::new();
    for (h, v) in &by_nhf {
        let hf = v
            .iter()
            .filter(|x| x.1 == 0)
            .min_by(|a, b| a.2.total_cmp(&b.2));
        let mf = v
            .iter()
            .filter(|x| x.1 > 0)
            .min_by(|a, b| a.2.total_cmp(&b.2));
        if let (Some(hf), Some(mf)) = (hf, mf) {
            let ratio = mf.2 / hf.2;
            let verdict = if ratio < 1.0 {
                format!("{:.0} % lower error", 100.0 * (1.0 - ratio))
            } else {
                format!("{:.0} % higher error", 100.0 * (ratio - 1.0))
            };
            versus.push(format!(
                "N_H = {h}: {} {:.2e} against {} {:.2e} ({verdict})",
                mf.0, mf.2, hf.0, hf.2
            ));
        }
    }
    if !versus.is_empty() {
        lines.push(format!(
            "- **Multi-fidelity against high-fidelity data only** (the best of each kind): {}.",
            versus.join("; ")
        ));
    }
    let mut cov: Vec<(String, f64, f64)> = Vec::new();
    let mut names: Vec<&str> = Vec::new();
    for ((m, ..), _) in grouped {
        if !names.contains(&m.as_str()) {
            names.push(m);
        }
    }
    for m in names {
        let c: Vec<f64> = grouped
            .iter()
            .filter(|((g, ..), _)| g == m)
            .map(|(_, recs)| mean(recs, |r| r.coverage95))
            .filter(|c| c.is_finite())
            .collect();
        if !c.is_empty() {
            let lo = c.iter().cloned().fold(f64::INFINITY, f64::min);
            let hi = c.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            cov.push((m.to_string(), lo, hi));
        }
    }
    if !cov.is_empty() {
        let parts: Vec<String> = cov
            .iter()
            .map(|(m, lo, hi)| {
                let word = if *lo >= 0.9 && *hi <= 0.995 {
                    "calibrated"
                } else if *hi < 0.9 {
                    "overconfident"
                } else if *lo > 0.995 {
                    "underconfident"
                } else if *lo >= 0.9 {
                    "calibrated to conservative"
                } else {
                    "varies with N_H"
                };
                if format!("{lo:.2}") == format!("{hi:.2}") {
                    format!("{m} {lo:.2} ({word})")
                } else {
                    format!("{m} {lo:.2}-{hi:.2} ({word})")
                }
            })
            .collect();
        lines.push(format!(
            "- **Uncertainty**: share of test values inside the 95 % predictive interval, range over training sizes (about 0.95 is calibrated): {}.",
            parts.join("; ")
        ));
    }
    let _ = writeln!(
        md,
        "## What this run shows

{}
",
        lines.join("\n")
    );
}

/// One model's hyperparameters as `key = value` pairs (nested keys dotted; long arrays by
/// their shape), for a table a person can read.
fn readable_hyperparameters(v: &serde_json::Value) -> String {
    fn shape(v: &serde_json::Value) -> Option<String> {
        let a = v.as_array()?;
        match a.first().and_then(|f| f.as_array()) {
            Some(inner) => Some(format!("[{} x {} values]", a.len(), inner.len())),
            None => Some(format!("[{} values]", a.len())),
        }
    }
    /// Four significant figures are what a reader compares.
    fn number(v: &serde_json::Value) -> String {
        match v.as_f64() {
            Some(f) if v.is_f64() => {
                if f != 0.0 && (f.abs() < 1e-3 || f.abs() >= 1e4) {
                    format!("{f:.3e}")
                } else {
                    format!("{}", (f * 1e4).round() / 1e4)
                }
            }
            _ => v.to_string(),
        }
    }
    fn walk(prefix: &str, v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(o) => {
                for (k, x) in o {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&key, x, out);
                }
            }
            serde_json::Value::Array(a) if a.len() > 4 || a.iter().any(|x| x.is_array()) => {
                out.push(format!("{prefix} = {}", shape(v).unwrap_or_default()));
            }
            serde_json::Value::Number(_) => out.push(format!("{prefix} = {}", number(v))),
            serde_json::Value::Array(a) => {
                let items: Vec<String> = a.iter().map(number).collect();
                out.push(format!("{prefix} = [{}]", items.join(", ")));
            }
            x => out.push(format!("{prefix} = {x}")),
        }
    }
    let mut out = Vec::new();
    walk("", v, &mut out);
    out.join(", ")
}

/// The DGMF paper's headline: error reduction of DGMF over the best other method, per problem
/// (arXiv 2311.05606, abstract).
const DGMF_CLAIM: &[(&str, f64)] = &[("poisson", 55.6), ("heat", 58.0), ("burgers", 45.4)];

/// "DGMF against the best other model": per training size, dgmf's mean RMSE, the best other
/// model's, and the percentage change, beside the paper's claimed reduction.
fn dgmf_claim_table(md: &mut String, grouped: &[Group], problem: &str) {
    let mean = |recs: &[&Record]| spread(&recs.iter().map(|r| r.rmse).collect::<Vec<_>>()).0;
    let dgmf: Vec<(usize, usize, f64)> = grouped
        .iter()
        .filter(|((m, ..), _)| m == "dgmf")
        .map(|((_, l, h), recs)| (*l, *h, mean(recs)))
        .collect();
    if dgmf.is_empty() {
        return;
    }
    let claim = DGMF_CLAIM.iter().find(|c| c.0 == problem).map(|c| c.1);
    let mut rows = Vec::new();
    let mut changes = Vec::new();
    for &(l, h, d) in &dgmf {
        let best = grouped
            .iter()
            .filter(|((m, gl, gh), _)| m != "dgmf" && *gh == h && (*gl == l || *gl == 0))
            .map(|((m, ..), recs)| (m.as_str(), mean(recs)))
            .filter(|x| x.1.is_finite())
            .min_by(|a, b| a.1.total_cmp(&b.1));
        let Some((bm, bv)) = best else { continue };
        let change = 100.0 * (d / bv - 1.0);
        changes.push(change);
        rows.push(format!(
            "| {l} | {h} | {d:.3e} | {bm} ({bv:.3e}) | {change:+.1} % |"
        ));
    }
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "## DGMF against the best other model\n\nPer training size: dgmf's mean test RMSE, the best other model's, and the change (negative = dgmf's error is lower). {}\n\n| N_L | N_H | dgmf RMSE | best other (RMSE) | change |\n|---|---|---|---|---|\n{}",
        match claim {
            Some(c) => format!("The DGMF paper reports a {c:.1} % error reduction on {problem} over the state of the art."),
            None => "The DGMF paper makes no claim for this problem.".to_string(),
        },
        rows.join("\n")
    );
    if let Some(c) = claim {
        let best = changes.iter().cloned().fold(f64::INFINITY, f64::min);
        let verdict = if best <= -c {
            "the claimed reduction is reached at least at one training size"
        } else if best < 0.0 {
            "dgmf beats the best other model at some training size, by less than the paper claims"
        } else {
            "dgmf does not beat the best other model at any training size: the claim does not hold on this run"
        };
        let _ = writeln!(
            md,
            "\nPaper: -{c:.1} %. Here: {best:+.1} % at best over the training sizes — {verdict}.\n"
        );
    } else {
        let _ = writeln!(md);
    }
}

/// The accuracy the "samples needed" table asks for (DMF paper, Poisson: R^2 >= 0.997).
const R2_TARGET: f64 = 0.997;

/// Below this mean cost per HF sample (an analytic test function, not a solver) the measured
/// times are the timer's own overhead, and a cost axis would plot noise.
const MIN_MEASURED_COST_S: f64 = 1e-5;

/// RMSE vs N_L at the largest N_H (DMF Fig. 7); single-fidelity models as flat lines.
fn rmse_vs_nlf(dir: &Path, problem: &str, plan: &Plan, grouped: &[Group]) -> Result<()> {
    let max_hf = *plan.n_hf.iter().max().expect("checked");
    let (lo_lf, hi_lf) = (
        *plan.n_lf.iter().min().expect("checked"),
        *plan.n_lf.iter().max().expect("checked"),
    );
    let mut series: Vec<Series> = Vec::new();
    for ((model, n_lf, n_hf), recs) in grouped {
        if *n_hf != max_hf {
            continue;
        }
        let rmse: Vec<f64> = recs.iter().map(|r| r.rmse).collect();
        let (m, lo, hi) = spread(&rmse);
        if !m.is_finite() {
            continue;
        }
        let xs = if *n_lf == 0 {
            vec![lo_lf, hi_lf]
        } else {
            vec![*n_lf]
        };
        for x in xs {
            let p = (x as f64, m, lo, hi);
            match series.iter_mut().find(|s| &s.label == model) {
                Some(s) => s.points.push(p),
                None => series.push(Series {
                    label: model.clone(),
                    points: vec![p],
                }),
            }
        }
    }
    plots::curves(
        &dir.join("rmse_vs_nlf.png"),
        &format!(
            "{problem}: test RMSE vs LF training samples at N_H={max_hf} ({})",
            plots::over_seeds(plan.seeds.len())
        ),
        "number of low-fidelity training samples N_L (single-fidelity models: flat)",
        "RMSE",
        &series,
        plots::XAxis::Counts,
    )
}

/// What a `pipeline run` / `pipeline train` protocol leaves behind: the dataset it used, the
/// plan, the outcome of every fit and the wall time.
pub struct RunSummary<'a> {
    pub ds: &'a Dataset,
    pub dataset_path: &'a Path,
    pub plan: &'a Plan,
    pub outcome: &'a Outcome,
    pub wall_s: f64,
}

impl HasRecords for RunSummary<'_> {
    fn records(&self) -> &[Record] {
        &self.outcome.records
    }
}

fn mean_cost(l: &LevelData) -> f64 {
    l.cost_s.iter().sum::<f64>() / l.len().max(1) as f64
}

impl RunSummary<'_> {
    /// Mean measured cost per sample of the LF and HF levels, and the fixed cost of the
    /// middle levels of a chain (their counts do not change with N_L and N_H).
    fn costs(&self) -> (f64, f64, f64) {
        let (ds, plan) = (self.ds, self.plan);
        let hf = ds.level(plan.hf_level).expect("checked by the experiment");
        let lf = ds.level(plan.lf_level).expect("checked by the experiment");
        let c_middle: f64 = plan
            .middle
            .iter()
            .filter_map(|&(l, n)| ds.level(l).map(|l| n as f64 * mean_cost(l)))
            .sum();
        (mean_cost(lf), mean_cost(hf), c_middle)
    }

    /// The models whose curves the profile figure shows, one row each: dmf-trans (the
    /// paper's Fig. 12 model) when run, and the multi-fidelity model with the lowest mean RMSE
    /// at the largest N_L.
    fn profile_models(&self) -> Vec<String> {
        let (plan, out) = (self.plan, self.outcome);
        if out.profiles.is_empty() {
            return vec![];
        }
        let max_lf = plan.n_lf.iter().copied().max().unwrap_or(0);
        let min_hf = plan.n_hf.iter().copied().min().unwrap_or(0);
        let mut rows: Vec<String> = plan
            .models
            .iter()
            .map(|m| m.label.clone())
            .filter(|m| m == "dmf-trans" && out.profiles.contains_key(&(m.clone(), max_lf)))
            .collect();
        let best = groups(&out.records, plan)
            .into_iter()
            .filter(|((_, n_lf, n_hf), _)| *n_lf == max_lf && *n_hf == min_hf)
            .map(|((m, _, _), recs)| {
                (
                    m,
                    finite_mean_std(&recs.iter().map(|r| r.rmse).collect::<Vec<_>>()).0,
                )
            })
            .filter(|(_, e)| e.is_finite())
            .min_by(|a, b| a.1.total_cmp(&b.1));
        if let Some((m, _)) = best {
            if !rows.contains(&m) {
                rows.push(m);
            }
        }
        rows
    }

    fn nlf_plot(&self) -> bool {
        self.plan.n_lf.len() > 1
    }

    fn has_fields(&self) -> bool {
        self.ds.meta.axes.len() == 2
    }
}

/// splits.json: the sample indices of the test set and of every training set.
pub struct SplitsJson;

impl Exporter<RunSummary<'_>> for SplitsJson {
    fn export(&self, s: &RunSummary, dir: &Path) -> Result<Vec<String>> {
        write_text(
            &dir.join("splits.json"),
            &(serde_json::to_string(&s.outcome.splits)? + "\n"),
        )?;
        Ok(vec!["splits.json".into()])
    }
}

/// The figures: RMSE vs N_H (and vs N_L), cost vs RMSE, MAE fields, predicted vs true.
pub struct Figures;

impl Exporter<RunSummary<'_>> for Figures {
    fn export(&self, s: &RunSummary, dir: &Path) -> Result<Vec<String>> {
        let (ds, plan, out) = (s.ds, s.plan, s.outcome);
        let mut files = Vec::new();
        let problem = &ds.meta.problem;
        // The middle levels of a chain cost their fixed counts whenever cheaper data are used.
        let (c_lf, c_hf, c_middle) = s.costs();
        let grouped = groups(&out.records, plan);

        // RMSE vs N_H, one curve per (model, n_lf); a cross layout's N_H sweep is at one N_L.
        let mut series: Vec<Series> = Vec::new();
        let mut cost_series: Vec<Series> = Vec::new();
        let cross = plan.layout == Layout::Cross;
        let multi_lf = plan.n_lf.len() > 1 && !cross;
        for ((model, n_lf, n_hf), recs) in &grouped {
            if cross && *n_lf != 0 && *n_lf != plan.figure_lf() {
                continue;
            }
            let label = if multi_lf && *n_lf > 0 {
                format!("{model} (N_L={n_lf})")
            } else {
                model.clone()
            };
            let rmse: Vec<f64> = recs.iter().map(|r| r.rmse).collect();
            let (m, lo, hi) = spread(&rmse);
            if !m.is_finite() {
                continue; // every seed diverged: nothing to plot
            }
            let middle = if *n_lf > 0 { c_middle } else { 0.0 };
            let cost = *n_lf as f64 * c_lf + middle + *n_hf as f64 * c_hf;
            for (list, x) in [(&mut series, *n_hf as f64), (&mut cost_series, cost)] {
                match list.iter_mut().find(|s| s.label == label) {
                    Some(s) => s.points.push((x, m, lo, hi)),
                    None => list.push(Series {
                        label: label.clone(),
                        points: vec![(x, m, lo, hi)],
                    }),
                }
            }
        }
        plots::curves(
            &dir.join("rmse_vs_nhf.png"),
            &format!(
                "{problem}: test RMSE vs HF training samples ({})",
                plots::over_seeds(plan.seeds.len())
            ),
            "number of high-fidelity training samples N_H",
            "RMSE",
            &series,
            plots::XAxis::Counts,
        )?;
        files.push("rmse_vs_nhf.png".into());
        let nlf_plot = s.nlf_plot();
        if nlf_plot {
            rmse_vs_nlf(dir, problem, plan, &grouped)?;
            files.push("rmse_vs_nlf.png".into());
        }
        if c_hf >= MIN_MEASURED_COST_S {
            plots::curves(
                &dir.join("cost_vs_rmse.png"),
                &format!("{problem}: test RMSE vs CPU cost of the training data"),
                "CPU seconds to generate the training data (N_L c_L + N_H c_H)",
                "RMSE",
                &cost_series,
                plots::XAxis::Log,
            )?;
            files.push("cost_vs_rmse.png".into());
        }

        // MAE fields (paper Fig. 9): rows = models, columns = N_H, so each row reads as one
        // model's error shrinking with more HF data and the figure fits a page's width.
        let axes = &ds.meta.axes;
        if s.has_fields() {
            let models: Vec<String> = plan.models.iter().map(|m| m.label.clone()).collect();
            let cols: Vec<String> = plan.n_hf.iter().map(|n| format!("N_H={n}")).collect();
            let mut fields = BTreeMap::new();
            for (r, m) in models.iter().enumerate() {
                for (c, n) in plan.n_hf.iter().enumerate() {
                    if let Some(f) = out.mae_fields.get(&(m.clone(), *n)) {
                        fields.insert((r, c), f.to_vec());
                    }
                }
            }
            plots::field_grid(
                &dir.join("mae_fields.png"),
                &format!(
                    "{problem}: point-wise MAE over the test set (mean over seeds, log colour scale)"
                ),
                &models,
                &cols,
                &fields,
                [
                    (&axes[0].name, &axes[0].values),
                    (&axes[1].name, &axes[1].values),
                ],
                &match ds.meta.output_unit.as_str() {
                    "" | "1" => format!("MAE of {}", ds.meta.output_name),
                    u => format!("MAE of {} ({u})", ds.meta.output_name),
                },
            )?;
            files.push("mae_fields.png".into());
        }
        let max_hf = *plan.n_hf.iter().max().unwrap();
        let r2_of = |m: &str, n_hf: usize| {
            out.records
                .iter()
                .find(|r| {
                    r.model == m
                        && r.n_hf == n_hf
                        && r.seed == plan.seeds[0]
                        && (r.n_lf == plan.figure_lf() || r.n_lf == 0)
                })
                .map(|r| r.r2)
        };
        let panel = |m: &str, n_hf: usize, label: String| {
            let (t, p) = out.scatter.get(&(m.to_string(), n_hf))?;
            Some((label, r2_of(m, n_hf)?, t.clone(), p.clone()))
        };
        let panels: Vec<_> = plan
            .models
            .iter()
            .filter_map(|m| panel(&m.label, max_hf, m.label.clone()))
            .collect();
        plots::scatter(
            &dir.join("pred_vs_true.png"),
            &format!(
                "{problem}: predicted vs true, N_H={max_hf}, seed {}",
                plan.seeds[0]
            ),
            &panels,
        )?;
        // Small outputs: every model at every N_H, one row per model (DMF Fig. 14).
        let n_hfs: Vec<usize> = plan.n_hf.clone();
        let grid: Vec<_> = plan
            .models
            .iter()
            .flat_map(|m| {
                n_hfs
                    .iter()
                    .filter_map(|&h| panel(&m.label, h, format!("{}, N_H={h}", m.label)))
                    .collect::<Vec<_>>()
            })
            .collect();
        if out.scatter_per_nhf() && !grid.is_empty() {
            plots::scatter_grid(
                &dir.join("pred_vs_true_by_nhf.png"),
                &format!(
                    "{problem}: predicted vs true for each N_H (rows: models), seed {}",
                    plan.seeds[0]
                ),
                &grid,
                n_hfs.len(),
                true,
            )?;
            files.push("pred_vs_true_by_nhf.png".into());
        }
        files.push("pred_vs_true.png".into());

        // Output curves per test case, predicted over true, for every N_L (DMF Fig. 12).
        let rows = s.profile_models();
        if let (Some(truth), false) = (&out.profile_truth, rows.is_empty()) {
            let min_hf = plan.n_hf.iter().copied().min().unwrap_or(0);
            let curves = |a: &ndarray::Array2<f64>| {
                a.rows().into_iter().map(|r| r.to_vec()).collect::<Vec<_>>()
            };
            let mut panels = Vec::new();
            for m in &rows {
                for &n_lf in &plan.n_lf {
                    if let Some(p) = out.profiles.get(&(m.clone(), n_lf)) {
                        let max_err = metrics::max_abs_error(p.view(), truth.view());
                        panels.push(plots::ProfilePanel {
                            label: format!(
                                "{m}, N_L={n_lf}: max |error| {} {}",
                                plots::plain_number(max_err),
                                ds.meta.output_unit
                            ),
                            truth: curves(truth),
                            pred: curves(p),
                        });
                    }
                }
            }
            let axis = &ds.meta.axes[0];
            plots::profiles(
                &dir.join("profiles.png"),
                &format!(
                    "{problem}: {} test cases, predicted vs true, N_H={min_hf}, seed {} (rows: {})",
                    truth.nrows(),
                    plan.seeds[0],
                    rows.join(", ")
                ),
                (
                    &axis.values,
                    &format!("{} ({})", axis.name, axis.unit),
                    &format!("{} ({})", ds.meta.output_name, ds.meta.output_unit),
                ),
                &panels,
                plan.n_lf.len(),
            )?;
            files.push("profiles.png".into());
        }

        Ok(files)
    }
}

/// report.md: the tables, with the figures of [`Figures`] linked.
pub struct Markdown;

impl Exporter<RunSummary<'_>> for Markdown {
    fn export(&self, s: &RunSummary, dir: &Path) -> Result<Vec<String>> {
        let (ds, plan, out) = (s.ds, s.plan, s.outcome);
        let (dataset_path, wall_s) = (s.dataset_path, s.wall_s);
        let problem = &ds.meta.problem;
        let grouped = groups(&out.records, plan);
        let (c_lf, c_hf, _) = s.costs();
        let (nlf_plot, has_fields, axes) = (s.nlf_plot(), s.has_fields(), &ds.meta.axes);
        let mut md = String::new();
        let _ = writeln!(md, "# mfpipe report: `{problem}`\n");
        let _ = writeln!(
            md,
            "Dataset `{}` (schema mfpipe/1, design {}, seed {}, generator {}).\n",
            dataset_path.display(),
            ds.meta.design,
            ds.meta.seed,
            ds.meta.generator
        );
        let _ = writeln!(md, "| level | name | description | samples | failed | mean cost per sample (s) |\n|---|---|---|---|---|---|");
        for l in &ds.levels {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {:.3e} |",
                l.level,
                l.name,
                l.description,
                l.len(),
                l.failed(),
                mean_cost(l)
            );
        }
        let _ = writeln!(
        md,
        "\nProtocol: low fidelity = level {}, high fidelity = level {}; N_L in {:?}, N_H in {:?}, seeds {:?}. \
         Test set: {} held-out high-fidelity samples (the same for every model and seed); training subsets are drawn per seed from a pool of {} HF and {} LF samples and are nested in N_H. \
         Errors are over all test samples{}, in the data's own units; NRMSE = RMSE / std of the test targets.\n",
        plan.lf_level, plan.hf_level, plan.n_lf, plan.n_hf, plan.seeds, out.n_test, out.n_pool_hf, out.n_pool_lf,
        match ds.meta.output_len() {
            1 => String::new(),
            n => format!(" and all {n} output points"),
        }
    );
        if !plan.middle.is_empty() {
            let mid: Vec<String> = plan
                .middle
                .iter()
                .map(|(l, n)| format!("level {l} ({n} samples)"))
                .collect();
            let _ = writeln!(
            md,
            "Sources: a chain of {} levels. Between the low and the high fidelity: {}, drawn per seed and given to every multi-fidelity model (chain models such as `ar` and `nar` use each level; single-fidelity models use the high fidelity only).\n",
            plan.n_sources(),
            mid.join(", ")
        );
        }
        let _ = writeln!(md, "Wall time of training and evaluation: {wall_s:.1} s.\n");
        what_this_run_shows(&mut md, &grouped);
        let _ = writeln!(md, "## Test error\n\n| model | N_L | N_H | RMSE (mean ± std over seeds) | NRMSE | R² | MAE | max abs error | fit s | diverged |\n|---|---|---|---|---|---|---|---|---|---|");
        for ((model, n_lf, n_hf), recs) in &grouped {
            let col = |f: fn(&Record) -> f64| recs.iter().map(|r| f(r)).collect::<Vec<f64>>();
            let rmse = col(|r| r.rmse);
            let (m, _, _) = spread(&rmse);
            let _ = writeln!(
            md,
            "| {model} | {n_lf} | {n_hf} | {m:.4e} ± {:.1e} | {:.4} | {:.5} | {:.4e} | {:.4e} | {:.2} | {} of {} |",
            finite_mean_std(&rmse).1,
            spread(&col(|r| r.nrmse)).0,
            spread(&col(|r| r.r2)).0,
            spread(&col(|r| r.mae)).0,
            spread(&col(|r| r.max_abs_error)).0,
            spread(&col(|r| r.fit_seconds)).0,
            recs.iter().filter(|r| r.diverged()).count(),
            recs.len()
        );
        }
        let _ = writeln!(md, "\nA fit whose training goes non-finite is stopped and scored as the worst: its metrics are null in results.json, it is left out of the means above and counted under \"diverged\".\n");
        best_model_table(&mut md, &grouped);
        dgmf_claim_table(&mut md, &grouped, &ds.meta.problem);
        let calibrated: Vec<&Group> = grouped
            .iter()
            .filter(|(_, recs)| recs.iter().any(|r| r.nll.is_some()))
            .collect();
        if !calibrated.is_empty() {
            let _ = writeln!(md, "## Predictive uncertainty\n\nFor the models that predict a variance: the mean Gaussian negative log predictive density per test value (NLL, nats; lower is better) and the share of test values inside the 95 % predictive interval (a calibrated model scores about 0.95), mean over seeds.\n\n| model | N_L | N_H | NLL | coverage 95 % |\n|---|---|---|---|---|");
            for ((model, n_lf, n_hf), recs) in calibrated {
                let nll: Vec<f64> = recs.iter().filter_map(|r| r.nll).collect();
                let cov: Vec<f64> = recs.iter().filter_map(|r| r.coverage95).collect();
                let _ = writeln!(
                    md,
                    "| {model} | {n_lf} | {n_hf} | {:.3} | {:.3} |",
                    spread(&nll).0,
                    spread(&cov).0
                );
            }
            let _ = writeln!(md);
        }
        // The DMF paper states this criterion for Poisson only; elsewhere it would be a number
        // chosen for another problem.
        if ds.meta.problem == "poisson" {
            let _ = writeln!(
        md,
        "## High-fidelity samples needed for R² ≥ {R2_TARGET}\n\nThe smallest N_H at which the mean R² over seeds reaches {R2_TARGET} (the DMF paper's Poisson criterion), at N_L = {}.\n\n| model | smallest N_H | best mean R² (at N_H) |\n|---|---|---|",
        plan.figure_lf()
    );
            for m in &plan.models {
                let curve: Vec<(usize, f64)> = grouped
                    .iter()
                    .filter(|((model, n_lf, _), _)| {
                        model == &m.label && (*n_lf == plan.figure_lf() || *n_lf == 0)
                    })
                    .map(|((_, _, n_hf), recs)| {
                        (
                            *n_hf,
                            spread(&recs.iter().map(|r| r.r2).collect::<Vec<_>>()).0,
                        )
                    })
                    .collect();
                let reached = curve.iter().find(|(_, r2)| *r2 >= R2_TARGET).map(|c| c.0);
                let best = curve
                    .iter()
                    .filter(|c| c.1.is_finite())
                    .max_by(|a, b| a.1.total_cmp(&b.1));
                let _ = writeln!(
                    md,
                    "| {} | {} | {} |",
                    m.label,
                    reached.map_or("not reached".to_string(), |n| n.to_string()),
                    best.map_or("-".to_string(), |(n, r2)| format!("{r2:.5} ({n})"))
                );
            }
            let _ = writeln!(md);
        }
        let _ = writeln!(md, "\n![RMSE vs N_H](rmse_vs_nhf.png)\n");
        if nlf_plot {
            let _ = writeln!(md, "![RMSE vs N_L](rmse_vs_nlf.png)\n");
        }
        if has_fields {
            let _ = writeln!(md, "## Mean absolute error fields\n\nPoint-wise MAE over the test set, averaged over seeds (rows: N_H; columns: models; axes {} vertical, {} horizontal).\n\n![MAE fields](mae_fields.png)\n", axes[0].name, axes[1].name);
        }
        let _ = writeln!(
            md,
            "## Predicted vs true\n\nAll panels on one scale; each shows at most about 4000 evenly strided test values plus its 200 largest errors.\n\n![predicted vs true](pred_vs_true.png)\n"
        );
        if out.scatter_per_nhf() {
            let _ = writeln!(
                md,
                "Every model at every N_H (first seed; R² in each caption):\n\n![predicted vs true for each N_H](pred_vs_true_by_nhf.png)\n"
            );
        }
        let rows = s.profile_models();
        if !rows.is_empty() {
            let min_hf = plan.n_hf.iter().copied().min().unwrap_or(0);
            let _ = writeln!(
                md,
                "## Predicted curves\n\nEvery test case's {} curve, predicted (red) over true (black), at N_H = {min_hf} for each N_L (first seed; rows: {}). The DMF paper's Fig. 12.\n\n![predicted curves](profiles.png)\n",
                ds.meta.output_name,
                rows.join(", ")
            );
            let _ = writeln!(
                md,
                "Maximum absolute error over all test cases and output points ({}), mean over seeds:\n\n| model | {} |\n|---|{}",
                ds.meta.output_unit,
                plan.n_lf.iter().map(|n| format!("N_L = {n}")).collect::<Vec<_>>().join(" | "),
                "---|".repeat(plan.n_lf.len())
            );
            for m in &plan.models {
                let cells: Vec<String> = plan
                    .n_lf
                    .iter()
                    .map(|&n_lf| {
                        let v: Vec<f64> = out
                            .records
                            .iter()
                            .filter(|r| {
                                r.model == m.label
                                    && r.n_hf == min_hf
                                    && (r.n_lf == n_lf || r.n_lf == 0)
                            })
                            .map(|r| r.max_abs_error)
                            .collect();
                        let (mean, _) = finite_mean_std(&v);
                        if mean.is_finite() {
                            plots::plain_number(mean)
                        } else {
                            "–".into()
                        }
                    })
                    .collect();
                let _ = writeln!(md, "| {} | {} |", m.label, cells.join(" | "));
            }
            let _ = writeln!(md);
        }
        if c_hf >= MIN_MEASURED_COST_S {
            let _ = writeln!(md, "## Cost vs accuracy\n\nCPU cost of the training data from the measured per-sample solve times (LF {c_lf:.3e} s, HF {c_hf:.3e} s per sample).\n\n![cost vs accuracy](cost_vs_rmse.png)\n");
        } else {
            let _ = writeln!(md, "## Cost vs accuracy\n\nNot drawn: a high-fidelity sample takes {c_hf:.1e} s, below what a per-sample timer measures reliably ({MIN_MEASURED_COST_S:.0e} s), so its cost would be the timer's noise; here the cost of a training set is its sample counts.\n");
        }
        let _ = writeln!(md, "## Hyperparameters\n\nAs used by each model's first fit (after any search; fitted GP hyperparameters included; every fit's are in results.json).\n\n| model | hyperparameters |\n|---|---|");
        for m in plan.models.iter().map(|m| &m.label) {
            if let Some(r) = out.records.iter().find(|r| &r.model == m) {
                let mut hp = r.hyperparameters.clone();
                if let Some(o) = hp.as_object_mut() {
                    o.remove("search");
                }
                let _ = writeln!(md, "| `{m}` | {} |", readable_hyperparameters(&hp));
            }
        }
        let searched: Vec<&Record> = out
            .records
            .iter()
            .filter(|r| {
                r.hyperparameters
                    .get("search")
                    .and_then(|s| s.get("chosen"))
                    .is_some()
            })
            .collect();
        if !searched.is_empty() {
            let s = &plan.search;
            let _ = writeln!(
            md,
            "\n### Searched configurations\n\nMethod `{}` (R = {} units of 1/{} of the tuned phase's steps, eta = {}); {} The test set is not used.\n\n| model | N_L | N_H | seed | chosen | validation RMSE | evaluations | search s | test RMSE |\n|---|---|---|---|---|---|---|---|---|",
            s.method.name(), s.units, s.units, s.eta,
            match s.scope {
                crate::config::SearchScope::Cell => format!("one search per model x N_L x N_H, on the first seed's training set: it holds out {:.0} % of that set's HF samples for validation and chooses on them; every seed's fit then trains with that choice on all of its training samples.", 100.0 * s.validation),
                crate::config::SearchScope::Fit => format!("each fit holds out {:.0} % of its own HF training samples for validation, chooses on them, then refits on all its training samples.", 100.0 * s.validation),
            }
        );
            for r in &searched {
                let x = &r.hyperparameters["search"];
                let chosen = fmt_config(&x["chosen"]);
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} | {chosen} | {:.4e} | {} | {:.1} | {:.4e} |",
                    r.model,
                    r.n_lf,
                    r.n_hf,
                    r.seed,
                    x["validation_rmse"].as_f64().unwrap_or(f64::NAN),
                    x["evaluations"],
                    x["seconds"].as_f64().unwrap_or(f64::NAN),
                    r.rmse
                );
            }
            let few: Vec<String> = searched
                .iter()
                .filter(|r| {
                    r.hyperparameters["search"]["validation_samples"]
                        .as_u64()
                        .is_some_and(|n| n < 3)
                })
                .map(|r| format!("{} at N_H = {}", r.model, r.n_hf))
                .collect();
            if !few.is_empty() {
                let mut cells = few;
                cells.sort();
                cells.dedup();
                let _ = writeln!(
                    md,
                    "\n**Warning**: the searches for {} chose on fewer than 3 validation samples: a choice made on one or two samples is close to noise.",
                    cells.join(", ")
                );
            }
        }
        write_text(&dir.join("report.md"), &md)?;
        Ok(vec!["report.md".into()])
    }
}

/// Every output of a protocol run, in the order they are written.
pub fn write(dir: &Path, summary: &RunSummary) -> Result<Vec<String>> {
    export_all(
        summary,
        dir,
        &[&ResultsJson, &SplitsJson, &Figures, &Markdown],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SearchConfig;
    use crate::experiment::PlanModel;
    use mfpipe_fusion::Budget;

    fn record(model: &str, n_lf: usize, n_hf: usize, seed: u64, rmse: f64) -> Record {
        Record {
            problem: "toy".into(),
            model: model.into(),
            n_lf,
            n_hf,
            n: vec![n_lf, n_hf],
            seed,
            rmse,
            nrmse: rmse,
            r2: 1.0 - rmse,
            mae: rmse,
            max_abs_error: rmse,
            fit_seconds: 0.0,
            predict_seconds: 0.0,
            hyperparameters: serde_json::Value::Null,
            nll: None,
            coverage95: None,
            error: rmse.is_nan().then(|| "diverged".into()),
        }
    }

    #[test]
    fn records_group_by_cell_in_the_plans_model_order_and_diverged_fits_stay_out_of_means() {
        let plan = Plan {
            save: crate::experiment::Save::None,
            lf_level: 0,
            hf_level: 1,
            middle: vec![],
            n_lf: vec![8],
            n_hf: vec![2, 4],
            layout: Layout::Grid,
            seeds: vec![0, 1, 2],
            n_test: 4,
            models: ["zeta", "alpha"]
                .iter()
                .map(|m| PlanModel {
                    label: m.to_string(),
                    kind: m.to_string(),
                    params: serde_json::Value::Null,
                })
                .collect(),
            budget: Budget::default(),
            search: SearchConfig::default(),
        };
        // Shuffled, as fits finish in any order.
        let records = vec![
            record("alpha", 8, 4, 1, 0.3),
            record("zeta", 8, 2, 0, 0.2),
            record("alpha", 8, 4, 0, 0.1),
            record("zeta", 8, 2, 1, f64::NAN),
            record("zeta", 8, 2, 2, 0.4),
            record("alpha", 8, 2, 0, 0.5),
        ];
        let g = groups(&records, &plan);
        let keys: Vec<_> = g.iter().map(|(k, v)| (k.clone(), v.len())).collect();
        assert_eq!(
            keys,
            vec![
                (("zeta".to_string(), 8, 2), 3),
                (("alpha".to_string(), 8, 2), 1),
                (("alpha".to_string(), 8, 4), 2),
            ]
        );
        let rmse: Vec<f64> = g[0].1.iter().map(|r| r.rmse).collect();
        let (mean, lo, hi) = spread(&rmse);
        assert!(
            (mean - 0.3).abs() < 1e-15,
            "the NaN of the diverged fit is left out"
        );
        assert_eq!((lo, hi), (0.2, 0.4));
    }
}
