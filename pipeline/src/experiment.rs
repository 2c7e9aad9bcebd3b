//! The training protocol: for every model x n_lf x n_hf x seed, fit on nested training
//! subsets and score on one fixed held-out test set of the target level. A plan may put
//! further levels between the cheapest and the target, each with a fixed count (`pipeline
//! train --levels 0,1,2 --n 32,16,8`): chain models then see every level.

use crate::config::{Layout, SearchConfig, SearchMethod, SearchScope};
use crate::fitlog::FitLog;
use crate::tuning;
use anyhow::{bail, Context, Result};
use mfpipe_data::dataset::{Dataset, LevelData, ROLE_TEST, STATUS_OK};
use mfpipe_data::{metrics, split, NoProgress, Progress};
use mfpipe_fusion::search::Space;
use mfpipe_fusion::{
    registry, Budget, FitContext, FusionError, FusionModel, MfTrainSet, Prediction, Source,
};
use ndarray::{Array1, Array2};
use rayon::prelude::*;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Instant;

/// One line of results.json (keys fixed by the CLI contract).
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Record {
    pub problem: String,
    pub model: String,
    /// Samples from the cheapest source (0 for single-fidelity models).
    pub n_lf: usize,
    /// Samples from the target.
    pub n_hf: usize,
    /// Samples from every source of the plan, cheapest first (0 where the model used none).
    pub n: Vec<usize>,
    pub seed: u64,
    pub rmse: f64,
    pub nrmse: f64,
    pub r2: f64,
    pub mae: f64,
    /// Largest absolute error over the test set (all samples and output points).
    pub max_abs_error: f64,
    pub fit_seconds: f64,
    pub predict_seconds: f64,
    pub hyperparameters: serde_json::Value,
    /// Mean Gaussian negative log predictive density per test value (models with a variance).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nll: Option<f64>,
    /// Share of test values inside the 95 % predictive interval (models with a variance).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coverage95: Option<f64>,
    /// Set when training went non-finite: the fit is scored as the worst (metrics null).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Record {
    /// The record of one fit scored on the test targets `y_test`; a diverged fit gets the
    /// worst possible scores (written as null).
    pub fn new(
        problem: &str,
        model: &str,
        (n_lf, n_hf, seed): (usize, usize, u64),
        fit: &Fit,
        y_test: ndarray::ArrayView2<f64>,
    ) -> Self {
        let score = |f: fn(ndarray::ArrayView2<f64>, ndarray::ArrayView2<f64>) -> f64, worst| {
            fit.pred
                .as_ref()
                .map_or(worst, |p| f(p.mean.view(), y_test))
        };
        let var = fit.pred.as_ref().and_then(|p| p.variance());
        let mean = fit.pred.as_ref().map(|p| p.mean.view());
        let (nll, coverage95) = match (mean, &var) {
            (Some(m), Some(v)) => (
                Some(metrics::nll(m, v.view(), y_test)),
                Some(metrics::coverage95(m, v.view(), y_test)),
            ),
            _ => (None, None),
        };
        Self {
            problem: problem.into(),
            model: model.into(),
            n_lf,
            n_hf,
            n: vec![n_lf, n_hf],
            seed,
            rmse: score(metrics::rmse, f64::INFINITY),
            nrmse: score(metrics::nrmse, f64::INFINITY),
            r2: score(metrics::r2, f64::NEG_INFINITY),
            mae: score(metrics::mae, f64::INFINITY),
            max_abs_error: score(metrics::max_abs_error, f64::INFINITY),
            fit_seconds: fit.fit_seconds,
            predict_seconds: fit.predict_seconds,
            hyperparameters: fit.hyperparameters.clone(),
            nll,
            coverage95,
            error: fit.error.clone(),
        }
    }

    pub fn diverged(&self) -> bool {
        self.error.is_some()
    }
}

/// A model of the plan: `label` names it in results (a config may run one registry model
/// under several settings, e.g. DMF with 3..7 cells), `kind` is its registry name.
#[derive(Debug, Clone)]
pub struct PlanModel {
    pub label: String,
    pub kind: String,
    pub params: serde_json::Value,
}

/// Which fitted models a run keeps (`--save`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Save {
    /// None: results only.
    None,
    /// Every fit.
    #[default]
    All,
    /// Per (N_L, N_H): the fit with the lowest test RMSE over models and seeds.
    Best,
}

impl std::str::FromStr for Save {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "none" => Ok(Save::None),
            "all" => Ok(Save::All),
            "best" => Ok(Save::Best),
            _ => bail!("--save {s:?}: expected all, best or none"),
        }
    }
}

/// A fitted model kept by a run: what [`crate::saved`] needs to write its artifact.
pub struct SavedFit {
    pub label: String,
    pub kind: String,
    /// The hyperparameters it was built with (after any search).
    pub params: serde_json::Value,
    /// As reported in results.json (with the search summary, if any).
    pub hyperparameters: serde_json::Value,
    /// What its predictions carry, as its test prediction did: "mean", "mean and variance"
    /// or "mean and samples".
    pub predicts: &'static str,
    pub n_lf: usize,
    pub n_hf: usize,
    pub seed: u64,
    /// The dataset levels of its training sources, cheapest first, and the sample indices
    /// drawn from each (into that level's arrays).
    pub levels: Vec<usize>,
    pub indices: Vec<Vec<usize>>,
    pub rmse: f64,
    pub n_test: usize,
    /// [`mfpipe_fusion::FusionModel::save_state`].
    pub state: Vec<u8>,
}

pub struct Plan {
    /// Which fitted models to keep.
    pub save: Save,
    pub lf_level: usize,
    pub hf_level: usize,
    /// Levels between the cheapest and the target, each with its fixed training count
    /// (empty for the usual two-level plan).
    pub middle: Vec<(usize, usize)>,
    pub n_lf: Vec<usize>,
    pub n_hf: Vec<usize>,
    pub layout: Layout,
    pub seeds: Vec<u64>,
    pub n_test: usize,
    pub models: Vec<PlanModel>,
    pub budget: Budget,
    pub search: SearchConfig,
}

impl Plan {
    /// The search settings, as a journal key part.
    pub fn search_key(&self) -> String {
        serde_json::to_string(&self.search).unwrap_or_default()
    }

    /// Number of sources a multi-fidelity model is given.
    pub fn n_sources(&self) -> usize {
        2 + self.middle.len()
    }

    /// Refuse, before any work, a model that cannot take this plan's sources.
    pub fn check_models(&self) -> Result<()> {
        for m in &self.models {
            let info = registry::info(&m.kind)?;
            if info.sources.uses_cheaper() {
                info.sources.check(&m.label, self.n_sources())?;
            }
        }
        Ok(())
    }

    /// The search space of a model, if it is tuned.
    pub fn space(&self, m: &PlanModel) -> Option<Space> {
        if self.search.method == SearchMethod::None {
            return None;
        }
        self.search.space_for(&m.label, &m.kind)
    }

    /// The N_L of the per-N_H figures (RMSE vs N_H, MAE fields, predicted vs true): the
    /// largest of a grid; the smallest, whose N_H sweep is complete, of a cross.
    pub fn figure_lf(&self) -> usize {
        match self.layout {
            Layout::Grid => *self.n_lf.iter().max().expect("checked"),
            Layout::Cross => *self.n_lf.iter().min().expect("checked"),
        }
    }

    /// The (N_L, N_H) pairs a multi-fidelity model is fitted on, in order.
    pub fn pairs(&self) -> Vec<(usize, usize)> {
        let (min_lf, max_hf) = (
            *self.n_lf.iter().min().expect("checked"),
            *self.n_hf.iter().max().expect("checked"),
        );
        let mut pairs = Vec::new();
        for &l in &self.n_lf {
            for &h in &self.n_hf {
                let keep = match self.layout {
                    Layout::Grid => true,
                    Layout::Cross => l == min_lf || h == max_hf,
                };
                if keep {
                    pairs.push((l, h));
                }
            }
        }
        pairs
    }
}

/// The outcome of one fit: scored on the test set, or diverged.
pub struct Fit {
    /// The hyperparameters the model was built with.
    pub params: serde_json::Value,
    /// The fitted model (none if training diverged).
    pub model: Option<Box<dyn FusionModel>>,
    pub pred: Option<Prediction>,
    pub fit_seconds: f64,
    pub predict_seconds: f64,
    pub hyperparameters: serde_json::Value,
    pub error: Option<String>,
}

/// Fit one model with `params` and predict `x_test`. `search` is the summary of the search
/// that chose `params`, if one did (recorded under `hyperparameters.search`). A fit whose
/// training goes non-finite is returned as diverged, not as an error.
#[allow(clippy::too_many_arguments)]
pub fn fit_one(
    kind: &str,
    params: &serde_json::Value,
    search: Option<serde_json::Value>,
    train: &MfTrainSet,
    seed: u64,
    budget: Budget,
    x_test: ndarray::ArrayView2<f64>,
) -> Result<Fit> {
    let t0 = Instant::now();
    let mut model = registry::build(kind, params)?;
    let mut ctx = FitContext {
        seed,
        budget,
        progress: &NoProgress,
        memo: None,
    };
    let fitted = model.fit(train, &mut ctx);
    let fit_seconds = t0.elapsed().as_secs_f64();
    let (mut hyperparameters, error) = match fitted {
        Ok(report) => (report.hyperparameters, None),
        Err(e @ FusionError::Diverged { .. }) => (params.clone(), Some(e.to_string())),
        Err(e) => return Err(e.into()),
    };
    if let Some(s) = search {
        if !hyperparameters.is_object() {
            hyperparameters = serde_json::json!({});
        }
        hyperparameters["search"] = s;
    }
    if error.is_some() {
        return Ok(Fit {
            params: params.clone(),
            model: None,
            pred: None,
            fit_seconds,
            predict_seconds: 0.0,
            hyperparameters,
            error,
        });
    }
    let t1 = Instant::now();
    let pred = model.predict(x_test)?;
    Ok(Fit {
        params: params.clone(),
        model: Some(model),
        pred: Some(pred),
        fit_seconds,
        predict_seconds: t1.elapsed().as_secs_f64(),
        hyperparameters,
        error: None,
    })
}

/// Search `space` with `method` on `train` alone ([`tuning::tune`]), then [`fit_one`] the
/// choice; `fit_seconds` includes the search. Also returns the search's timed trials.
#[allow(clippy::too_many_arguments)]
pub fn search_and_fit(
    kind: &str,
    params: &serde_json::Value,
    space: &Space,
    search: &SearchConfig,
    method: SearchMethod,
    train: &MfTrainSet,
    seed: u64,
    budget: Budget,
    x_test: ndarray::ArrayView2<f64>,
) -> Result<(Fit, Vec<tuning::TimedTrial>)> {
    let t0 = Instant::now();
    let t = tuning::tune(kind, params, space, search, method, train, seed, budget)?;
    let searched = t0.elapsed().as_secs_f64();
    let mut fit = fit_one(
        kind,
        &t.params,
        Some(t.summary),
        train,
        seed,
        budget,
        x_test,
    )?;
    fit.fit_seconds += searched;
    Ok((fit, t.trials))
}

/// Everything the report needs besides the records.
/// Outputs up to this many values per sample keep a predicted-vs-true scatter for every N_H.
const SCATTER_ALL_NHF_MAX_OUTPUTS: usize = 16;

pub struct Outcome {
    pub records: Vec<Record>,
    /// Mean over seeds of the point-wise MAE field, per (model, n_hf), at the largest n_lf.
    pub mae_fields: BTreeMap<(String, usize), Array1<f64>>,
    /// (truth, prediction) of every test value, per (model, n_hf), at the largest n_lf, first
    /// seed: every n_hf for small outputs (the DMF paper's Fig. 14 grid), the largest only for
    /// fields (a grid of them would hold hundreds of MB).
    pub scatter: BTreeMap<(String, usize), (Vec<f64>, Vec<f64>)>,
    /// For outputs that are one curve per sample, in plans that sweep N_L: the predictions of
    /// every test case per (model, N_L) at the smallest N_H, first seed (the DMF paper's
    /// Fig. 12), and the true curves. Empty otherwise.
    pub profiles: BTreeMap<(String, usize), Array2<f64>>,
    pub profile_truth: Option<Array2<f64>>,
    pub n_test: usize,
    pub n_pool_hf: usize,
    pub n_pool_lf: usize,
    /// The sample indices (into each level's arrays in the dataset) of the test set and of
    /// every training set, for splits.json: other tools fit on exactly the same data.
    pub splits: serde_json::Value,
    /// The fitted models the plan keeps, in job order.
    pub saved: Vec<SavedFit>,
}

impl Outcome {
    /// Whether the scatter holds more than one N_H (small outputs): the report then has the
    /// per-N_H figure, and report.md links it.
    pub fn scatter_per_nhf(&self) -> bool {
        let mut n_hf = self.scatter.keys().map(|k| k.1);
        n_hf.next().is_some_and(|first| n_hf.any(|h| h != first))
    }
}

/// Indices of computed samples, split into (training pool, test) for the HF level.
fn hf_split(l: &LevelData, n_test: usize, seed: u64) -> Result<(Vec<usize>, Vec<usize>)> {
    let ok: Vec<usize> = (0..l.len()).filter(|&i| l.status[i] == STATUS_OK).collect();
    if let Some(role) = &l.role {
        let roles: Vec<u8> = role.to_vec();
        let (pool, test) = split::from_roles(&roles);
        let keep = |v: Vec<usize>| {
            v.into_iter()
                .filter(|i| l.status[*i] == STATUS_OK)
                .collect::<Vec<_>>()
        };
        let (pool, test) = (keep(pool), keep(test));
        if test.is_empty() {
            bail!(
                "fidelity {}: the role array marks no usable test sample",
                l.level
            );
        }
        return Ok((pool, test));
    }
    let (pool, test) = split::train_test(ok.len(), n_test, seed)?;
    Ok((
        pool.into_iter().map(|i| ok[i]).collect(),
        test.into_iter().map(|i| ok[i]).collect(),
    ))
}

fn rows(a: &Array2<f64>, idx: &[usize]) -> Array2<f64> {
    a.select(ndarray::Axis(0), idx)
}

/// The usable samples of `l` whose inputs are not those of a test sample of `hf`. A design
/// shared by the levels (a grid) puts cheaper samples at the test inputs: they stay out of
/// training, so no model sees any solve of a test case.
fn off_test(l: &LevelData, hf: &LevelData, test: &[usize]) -> Vec<usize> {
    let key =
        |a: &Array2<f64>, i: usize| -> Vec<u64> { a.row(i).iter().map(|v| v.to_bits()).collect() };
    let at_test: std::collections::HashSet<Vec<u64>> =
        test.iter().map(|&i| key(&hf.inputs, i)).collect();
    usable(l)
        .into_iter()
        .filter(|&i| !at_test.contains(&key(&l.inputs, i)))
        .collect()
}

/// Computed samples not marked as test.
fn usable(l: &LevelData) -> Vec<usize> {
    (0..l.len())
        .filter(|&i| l.status[i] == STATUS_OK && l.role.as_ref().is_none_or(|r| r[i] != ROLE_TEST))
        .collect()
}

/// The samples `idx` of a level as a training source: data, extras and measured costs.
fn source(l: &LevelData, idx: &[usize]) -> Source {
    let mut s = Source::new(rows(&l.inputs, idx), rows(&l.outputs, idx)).at(l.level, &l.name);
    s.cost_s = l.cost_s.select(ndarray::Axis(0), idx);
    s.extras = l
        .extras
        .iter()
        .map(|e| (e.name.clone(), rows(&e.values, idx)))
        .collect();
    s
}

/// Independent seed streams for the LF and HF subsets of one training seed.
fn stream(seed: u64, which: u64) -> u64 {
    seed.wrapping_mul(0x2545_F491_4F6C_DD1D).wrapping_add(which)
}

/// The data side of an experiment: the usable LF and HF training pools and the fixed test set.
pub struct Data<'a> {
    lf: &'a LevelData,
    hf: &'a LevelData,
    lf_pool: Vec<usize>,
    hf_pool: Vec<usize>,
    /// Levels between LF and HF: the level's data, its pool and its fixed count.
    middle: Vec<(&'a LevelData, Vec<usize>, usize)>,
    pub test: Vec<usize>,
    pub x_test: Array2<f64>,
    pub y_test: Array2<f64>,
    /// LF and HF are the same level (single-fidelity data).
    pub single: bool,
    /// The shape of one output on the problem's grid.
    pub shape: Vec<usize>,
}

impl<'a> Data<'a> {
    pub fn new(
        ds: &'a Dataset,
        lf_level: usize,
        hf_level: usize,
        n_test: usize,
        max_lf: usize,
        max_hf: usize,
    ) -> Result<Self> {
        let hf = ds
            .level(hf_level)
            .with_context(|| format!("dataset has no fidelity {hf_level}"))?;
        let lf = ds
            .level(lf_level)
            .with_context(|| format!("dataset has no fidelity {lf_level}"))?;
        let (hf_pool, test) = hf_split(hf, n_test, ds.meta.seed)?;
        let lf_pool = off_test(lf, hf, &test);
        if max_hf > hf_pool.len() {
            bail!("{max_hf} HF training samples requested but fidelity {hf_level} has only {} usable training samples", hf_pool.len());
        }
        let single = lf_level == hf_level;
        if !single && max_lf > lf_pool.len() {
            bail!(
                "{max_lf} LF samples requested but fidelity {lf_level} has only {} usable samples",
                lf_pool.len()
            );
        }
        Ok(Self {
            lf,
            hf,
            x_test: rows(&hf.inputs, &test),
            y_test: rows(&hf.outputs, &test),
            lf_pool,
            hf_pool,
            middle: Vec::new(),
            test,
            single,
            shape: ds.meta.output_shape(),
        })
    }

    /// Add the levels between LF and HF, each with its fixed training count.
    pub fn with_middle(mut self, ds: &'a Dataset, middle: &[(usize, usize)]) -> Result<Self> {
        for &(level, n) in middle {
            let l = ds
                .level(level)
                .with_context(|| format!("dataset has no fidelity {level}"))?;
            let pool = off_test(l, self.hf, &self.test);
            if n == 0 || n > pool.len() {
                bail!(
                    "{n} samples requested from fidelity {level}, which has {} usable samples",
                    pool.len()
                );
            }
            self.middle.push((l, pool, n));
        }
        Ok(self)
    }

    /// Training counts of every source for one (N_L, N_H), cheapest first.
    pub fn counts(&self, n_lf: usize, n_hf: usize) -> Vec<usize> {
        let mid = self.middle.iter().map(|m| if n_lf > 0 { m.2 } else { 0 });
        std::iter::once(n_lf)
            .chain(mid)
            .chain(std::iter::once(n_hf))
            .collect()
    }

    /// Sample indices of each middle level for one seed (drawn only when LF data are used).
    pub fn middle_indices(&self, n_lf: usize, seed: u64) -> Result<Vec<Vec<usize>>> {
        self.middle
            .iter()
            .enumerate()
            .map(|(k, (_, pool, n))| {
                if n_lf == 0 {
                    return Ok(Vec::new());
                }
                Ok(split::choose(pool, *n, stream(seed, 3 + k as u64))?)
            })
            .collect()
    }

    /// Sample indices (LF, HF) of [`Data::train_set`]'s training set.
    pub fn train_indices(
        &self,
        n_lf: usize,
        n_hf: usize,
        seed: u64,
    ) -> Result<(Vec<usize>, Vec<usize>)> {
        let hf_idx = split::choose(&self.hf_pool, n_hf, stream(seed, 1))?;
        let lf_idx = if n_lf > 0 {
            split::choose(&self.lf_pool, n_lf, stream(seed, 2))?
        } else {
            Vec::new()
        };
        Ok((lf_idx, hf_idx))
    }

    /// The training set of one seed: n_lf LF samples (none if 0, and then no middle level
    /// either), every middle level's fixed count, and n_hf HF samples, drawn from the pools by
    /// independent streams, so subsets are nested in N_H for a seed.
    pub fn train_set(&self, n_lf: usize, n_hf: usize, seed: u64) -> Result<MfTrainSet> {
        let sources = self
            .training_sources(n_lf, n_hf, seed)?
            .into_iter()
            .map(|(l, idx)| source(l, &idx))
            .collect();
        Ok(MfTrainSet::new(sources).with_shape(self.shape.clone()))
    }

    /// The sources of [`Data::train_set`], cheapest first: each level's data and the sample
    /// indices drawn from it.
    pub fn training_sources(
        &self,
        n_lf: usize,
        n_hf: usize,
        seed: u64,
    ) -> Result<Vec<(&'a LevelData, Vec<usize>)>> {
        let (lf_idx, hf_idx) = self.train_indices(n_lf, n_hf, seed)?;
        let mut sources = Vec::new();
        if n_lf > 0 {
            sources.push((self.lf, lf_idx));
            for ((l, _, _), idx) in self.middle.iter().zip(self.middle_indices(n_lf, seed)?) {
                sources.push((*l, idx));
            }
        }
        sources.push((self.hf, hf_idx));
        Ok(sources)
    }
}

/// Run `plan` on `ds`. With a `log`, every finished search and fit is journaled as it
/// completes and taken from the journal when it is already there (`--resume`).
pub fn run(
    ds: &Dataset,
    plan: &Plan,
    progress: &dyn Progress,
    log: Option<&FitLog>,
) -> Result<Outcome> {
    // What every journal key starts with: the dataset and the budget.
    let run_key = format!(
        "{}|{}|{}|{:?}|{}|{}|{}|{:?}|{}",
        ds.meta.problem,
        ds.meta.created,
        ds.meta.seed,
        plan.budget,
        plan.search_key(),
        plan.lf_level,
        plan.hf_level,
        plan.middle,
        plan.n_test
    );
    let max_hf = *plan.n_hf.iter().max().unwrap();
    // LF samples are needed only when some model takes a cheaper source (an HF-only run
    // with a large --n-lf is not short of anything).
    let mut any_multi = false;
    for m in &plan.models {
        any_multi |= registry::info(&m.kind)?.sources.uses_cheaper();
    }
    let max_lf = if any_multi {
        *plan.n_lf.iter().max().unwrap()
    } else {
        0
    };
    let data = Data::new(
        ds,
        plan.lf_level,
        plan.hf_level,
        plan.n_test,
        max_lf,
        max_hf,
    )?;
    let data = data.with_middle(ds, &plan.middle)?;
    plan.check_models()?;
    if ds.meta.output_len() == 1 {
        for m in &plan.models {
            if registry::info(&m.kind)?.fields_only {
                bail!(
                    "model {} models fields, and {}'s output is one value per sample",
                    m.label,
                    ds.meta.problem
                );
            }
        }
    }
    let y_test = &data.y_test;
    let jobs = jobs(plan, data.single)?;
    // With scope = "cell", each (model, N_L, N_H) is searched once, on the first seed's
    // training set, and every seed's fit uses that choice.
    let mut cells: Vec<(&PlanModel, usize, usize)> = Vec::new();
    if plan.search.scope == SearchScope::Cell {
        for j in &jobs {
            if plan.space(j.model).is_some()
                && !cells
                    .iter()
                    .any(|c| c.0.label == j.model.label && c.1 == j.n_lf && c.2 == j.n_hf)
            {
                cells.push((j.model, j.n_lf, j.n_hf));
            }
        }
    }
    progress.start("searching and training", (cells.len() + jobs.len()) as u64);
    let first_seed = plan.seeds[0];
    let chosen: Vec<Result<tuning::Tuned>> = cells
        .par_iter()
        .map(|&(m, n_lf, n_hf)| {
            let key = format!(
                "search|{run_key}|{}|{}|{}|{n_lf}|{n_hf}|{first_seed}",
                m.label, m.kind, m.params
            );
            if let Some((params, summary)) = log.and_then(|l| l.get(&key)) {
                progress.advance(1);
                return Ok(tuning::Tuned {
                    params,
                    summary,
                    trials: Vec::new(),
                });
            }
            let train = data.train_set(n_lf, n_hf, first_seed)?;
            let space = plan.space(m).expect("cells have a space");
            let t = tuning::tune(
                &m.kind,
                &m.params,
                &space,
                &plan.search,
                plan.search.method,
                &train,
                first_seed,
                plan.budget,
            )
            .with_context(|| format!("searching {} with n_lf={n_lf} n_hf={n_hf}", m.label))?;
            if let Some(l) = log {
                l.put(&key, &(&t.params, &t.summary))?;
            }
            progress.advance(1);
            Ok(t)
        })
        .collect();
    let mut by_cell = BTreeMap::new();
    for (c, t) in cells.iter().zip(chosen) {
        let mut t = t?;
        t.summary["scope"] = "cell".into();
        t.summary["searched_on_seed"] = first_seed.into();
        by_cell.insert((c.0.label.clone(), c.1, c.2), (t.params, t.summary));
    }
    let fits: Vec<FitJob> = jobs
        .iter()
        .map(|j| {
            let cell = by_cell.get(&(j.model.label.clone(), j.n_lf, j.n_hf));
            let (params, choice) = match (cell, plan.space(j.model)) {
                (Some((params, summary)), _) => {
                    (params.clone(), Choice::Given(Some(summary.clone())))
                }
                (None, Some(space)) => (
                    j.model.params.clone(),
                    Choice::Search(space, plan.search.method),
                ),
                (None, None) => (j.model.params.clone(), Choice::Given(None)),
            };
            FitJob {
                label: j.model.label.clone(),
                kind: j.model.kind.clone(),
                params,
                n_lf: j.n_lf,
                n_hf: j.n_hf,
                seed: j.seed,
                choice,
            }
        })
        .collect();
    let results = JobLoop {
        problem: &ds.meta.problem,
        data: &data,
        budget: plan.budget,
        search: &plan.search,
        order: Order::Parallel,
        keep_states: plan.save != Save::None,
        log: log.map(|l| (l, run_key.as_str())),
    }
    .run(&fits, progress)?;
    progress.finish();

    let mut records = Vec::new();
    let mut mae_sum: BTreeMap<(String, usize), (Array1<f64>, usize)> = BTreeMap::new();
    let mut scatter = BTreeMap::new();
    let mut profiles = BTreeMap::new();
    let curves = ds.meta.axes.len() == 1 && plan.n_lf.len() > 1;
    let min_hf = plan.n_hf.iter().copied().min().unwrap_or(0);
    let mut saved = Vec::new();
    for (j, r) in jobs.iter().zip(results) {
        let JobResult {
            record,
            pred,
            state,
            ..
        } = r;
        if let (Some((state, params)), Some(p)) = (state, &pred) {
            let (levels, indices) = data
                .training_sources(j.n_lf, j.n_hf, j.seed)?
                .into_iter()
                .map(|(l, idx)| (l.level, idx))
                .unzip();
            saved.push(SavedFit {
                label: j.model.label.clone(),
                kind: j.model.kind.clone(),
                params,
                hyperparameters: record.hyperparameters.clone(),
                predicts: match (&p.var, &p.samples) {
                    (_, Some(_)) => "mean and samples",
                    (Some(_), None) => "mean and variance",
                    (None, None) => "mean",
                },
                n_lf: j.n_lf,
                n_hf: j.n_hf,
                seed: j.seed,
                levels,
                indices,
                rmse: record.rmse,
                n_test: data.test.len(),
                state,
            });
        }
        let pred = pred.map(|p| p.mean);
        if let (Some(p), true) = (&pred, curves && j.n_hf == min_hf && j.seed == plan.seeds[0]) {
            profiles.insert((j.model.label.clone(), j.n_lf), p.clone());
        }
        if let (Some(pred), true) = (pred, j.n_lf == plan.figure_lf() || j.n_lf == 0) {
            let field = metrics::mae_field(pred.view(), y_test.view());
            let e = mae_sum
                .entry((j.model.label.clone(), j.n_hf))
                .or_insert((Array1::zeros(field.len()), 0));
            e.0 += &field;
            e.1 += 1;
            let small = y_test.ncols() <= SCATTER_ALL_NHF_MAX_OUTPUTS;
            if (j.n_hf == max_hf || small) && j.seed == plan.seeds[0] {
                scatter.insert(
                    (j.model.label.clone(), j.n_hf),
                    (
                        y_test.iter().copied().collect(),
                        pred.iter().copied().collect(),
                    ),
                );
            }
        }
        records.push(record);
    }
    let mae_fields = mae_sum
        .into_iter()
        .map(|(k, (s, c))| (k, s / c as f64))
        .collect();
    let mut train = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for j in &jobs {
        if seen.insert((j.n_lf, j.n_hf, j.seed)) {
            let (lf, hf) = data.train_indices(j.n_lf, j.n_hf, j.seed)?;
            let mut entry = serde_json::json!({
                "n_lf": j.n_lf, "n_hf": j.n_hf, "seed": j.seed, "lf": lf, "hf": hf,
            });
            if !plan.middle.is_empty() {
                entry["middle"] = data.middle_indices(j.n_lf, j.seed)?.into();
            }
            train.push(entry);
        }
    }
    let mut splits = serde_json::json!({
        "lf_level": plan.lf_level,
        "hf_level": plan.hf_level,
        "test_hf": data.test,
        "train": train,
    });
    if !plan.middle.is_empty() {
        splits["middle_levels"] = plan.middle.iter().map(|m| m.0).collect::<Vec<_>>().into();
    }
    if plan.save == Save::Best {
        saved = best_per_cell(saved);
    }
    Ok(Outcome {
        saved,
        records,
        mae_fields,
        scatter,
        profile_truth: (!profiles.is_empty()).then(|| y_test.clone()),
        profiles,
        splits,
        n_test: data.test.len(),
        n_pool_hf: data.hf_pool.len(),
        n_pool_lf: if data.single { 0 } else { data.lf_pool.len() },
    })
}

/// Per (N_L, N_H), the saved fit with the lowest test RMSE (the first on a tie).
fn best_per_cell(saved: Vec<SavedFit>) -> Vec<SavedFit> {
    let mut best: BTreeMap<(usize, usize), SavedFit> = BTreeMap::new();
    for s in saved {
        // A NaN RMSE (a diverged fit) never wins; the first of equals does.
        let better = best
            .get(&(s.n_lf, s.n_hf))
            .is_none_or(|b| s.rmse.total_cmp(&b.rmse).is_lt() && !s.rmse.is_nan());
        if better {
            best.insert((s.n_lf, s.n_hf), s);
        }
    }
    best.into_values().collect()
}

/// How a job's hyperparameters are chosen.
#[derive(Debug, Clone)]
pub enum Choice {
    /// As given; with the summary of the search that chose them, if one did (recorded under
    /// `hyperparameters.search`).
    Given(Option<serde_json::Value>),
    /// Searched over this space with this method on the job's own training data
    /// ([`search_and_fit`]).
    Search(Space, SearchMethod),
}

/// One fit of any study: a model (label in the results, registry kind, parameters) on one
/// training-set size and seed.
#[derive(Debug, Clone)]
pub struct FitJob {
    pub label: String,
    pub kind: String,
    pub params: serde_json::Value,
    pub n_lf: usize,
    pub n_hf: usize,
    pub seed: u64,
    pub choice: Choice,
}

/// What one job gives back: its scored record, the prediction on the test set (none if the
/// fit diverged) and, for a searched job, the search's timed trials.
pub struct JobResult {
    pub record: Record,
    pub pred: Option<Prediction>,
    /// With [`JobLoop::keep_states`], the fitted model's state and the hyperparameters it was
    /// built with (none if the fit diverged).
    pub state: Option<(Vec<u8>, serde_json::Value)>,
    pub trials: Vec<tuning::TimedTrial>,
}

/// A finished job as the journal keeps it: record, test prediction, fitted state.
type Journaled = (
    Record,
    Option<Prediction>,
    Option<(Vec<u8>, serde_json::Value)>,
);

/// How the loop schedules its jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// All jobs in parallel (rayon); the default of every study.
    Parallel,
    /// One after another, so that each job's wall time is its own (the searchers study
    /// compares search methods by wall time).
    OneAtATime,
}

/// The one job loop of every study (protocol, sensitivity, searchers, trade-off): for each
/// job its training set from `data`, the fit (or search and fit), and its record scored on
/// the test set. Results come back in job order whatever the [`Order`].
pub struct JobLoop<'a> {
    pub problem: &'a str,
    pub data: &'a Data<'a>,
    pub budget: Budget,
    pub search: &'a SearchConfig,
    pub order: Order,
    /// Keep every fitted model's state ([`JobResult::state`]).
    pub keep_states: bool,
    /// Journal finished jobs (and take those already journaled) under keys that start with
    /// the given run key. A journaled job comes back without its search trials: only the
    /// protocol, which does not read them, journals.
    pub log: Option<(&'a FitLog, &'a str)>,
}

impl JobLoop<'_> {
    /// Run `jobs`; `progress` advances once per job (the caller starts and finishes it).
    pub fn run(&self, jobs: &[FitJob], progress: &dyn Progress) -> Result<Vec<JobResult>> {
        let one = |j: &FitJob| {
            progress.working_on(&format!(
                "{} N_L={} N_H={} seed {}",
                j.label, j.n_lf, j.n_hf, j.seed
            ));
            let r = match self.log {
                Some((log, run)) => {
                    let key = format!(
                        "fit|{run}|{}|{}|{}|{}|{}|{}|{:?}|{}",
                        j.label,
                        j.kind,
                        j.params,
                        j.n_lf,
                        j.n_hf,
                        j.seed,
                        j.choice,
                        self.keep_states
                    );
                    match log.get::<Journaled>(&key) {
                        Some((record, pred, state)) => Ok(JobResult {
                            record,
                            pred,
                            state,
                            trials: Vec::new(),
                        }),
                        None => self.job(j).and_then(|r| {
                            // Borrowed, encoded as the owned tuple is.
                            log.put(&key, &(&r.record, &r.pred, &r.state))?;
                            Ok(r)
                        }),
                    }
                }
                None => self.job(j),
            };
            progress.advance(1);
            r
        };
        match self.order {
            Order::Parallel => jobs.par_iter().map(one).collect(),
            Order::OneAtATime => jobs.iter().map(one).collect(),
        }
    }

    /// [`JobLoop::run`] for a study that keeps only the records, under its own progress label.
    pub fn records(
        &self,
        jobs: &[FitJob],
        label: &str,
        progress: &dyn Progress,
    ) -> Result<Vec<Record>> {
        progress.start(label, jobs.len() as u64);
        let out = self.run(jobs, progress)?;
        progress.finish();
        Ok(out.into_iter().map(|r| r.record).collect())
    }

    fn job(&self, j: &FitJob) -> Result<JobResult> {
        let train = self.data.train_set(j.n_lf, j.n_hf, j.seed)?;
        let x_test = self.data.x_test.view();
        let (fit, trials) = match &j.choice {
            Choice::Given(summary) => fit_one(
                &j.kind,
                &j.params,
                summary.clone(),
                &train,
                j.seed,
                self.budget,
                x_test,
            )
            .map(|fit| (fit, Vec::new())),
            Choice::Search(space, method) => search_and_fit(
                &j.kind,
                &j.params,
                space,
                self.search,
                *method,
                &train,
                j.seed,
                self.budget,
                x_test,
            ),
        }
        .with_context(|| {
            format!(
                "{} with n_lf={} n_hf={} seed={}",
                j.label, j.n_lf, j.n_hf, j.seed
            )
        })?;
        let mut record = Record::new(
            self.problem,
            &j.label,
            (j.n_lf, j.n_hf, j.seed),
            &fit,
            self.data.y_test.view(),
        );
        record.n = self.data.counts(j.n_lf, j.n_hf);
        let state = match (&fit.model, self.keep_states) {
            (Some(m), true) => Some((m.save_state()?, fit.params.clone())),
            _ => None,
        };
        Ok(JobResult {
            record,
            pred: fit.pred,
            state,
            trials,
        })
    }
}

/// One fit to do: a model on one training-set size and seed.
#[derive(Debug, Clone)]
pub struct Job<'a> {
    pub model: &'a PlanModel,
    pub n_lf: usize,
    pub n_hf: usize,
    pub seed: u64,
}

/// Every fit of a plan, in order: each model on every (N_L, N_H) pair and seed; a
/// single-fidelity model (or any model on single-fidelity data) once per (N_H, seed), with
/// N_L = 0. Refuses an unknown model.
pub fn jobs(plan: &Plan, single: bool) -> Result<Vec<Job<'_>>> {
    let mut jobs = Vec::new();
    for model in &plan.models {
        let multi = !single && registry::info(&model.kind)?.sources.uses_cheaper();
        let pairs = if multi {
            plan.pairs()
        } else {
            plan.n_hf.iter().map(|&h| (0, h)).collect()
        };
        for (n_lf, n_hf) in pairs {
            for &seed in &plan.seeds {
                jobs.push(Job {
                    model,
                    n_lf,
                    n_hf,
                    seed,
                });
            }
        }
    }
    Ok(jobs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mfpipe_data::dataset::{Meta, SampleResult};
    use mfpipe_data::Axis;

    /// A dataset of three levels over one input, y = level + x at two output points, with an
    /// extra array and a cost per sample; sample counts per level as given.
    fn dataset(counts: [usize; 3]) -> Dataset {
        let meta = Meta {
            problem: "toy".into(),
            created: String::new(),
            generator: "test".into(),
            seed: 1,
            design: "grid".into(),
            input_names: vec!["x".into()],
            input_units: vec!["1".into()],
            input_lower: vec![0.0],
            input_upper: vec![1.0],
            output_name: "y".into(),
            output_unit: "1".into(),
            axes: vec![Axis {
                name: "p".into(),
                unit: "1".into(),
                values: vec![0.0, 1.0],
            }],
            shard: None,
        };
        let extras = [("coarse".to_string(), "1".to_string(), vec![1])];
        let levels = counts
            .iter()
            .enumerate()
            .map(|(level, &n)| {
                let x = Array2::from_shape_fn((n, 1), |(i, _)| (i as f64 + 0.5) / n as f64);
                let mut l = LevelData::all_pending(
                    level,
                    format!("level{level}"),
                    String::new(),
                    vec![],
                    x.clone(),
                    2,
                    &extras,
                );
                for i in 0..n {
                    let v = level as f64 + x[[i, 0]];
                    l.set(
                        i,
                        &SampleResult {
                            status: STATUS_OK,
                            cost_s: 0.1 * (level + 1) as f64,
                            values: vec![v, 2.0 * v],
                            extras: vec![("coarse".into(), vec![v])],
                            ..Default::default()
                        },
                    )
                    .unwrap();
                }
                l
            })
            .collect();
        Dataset { meta, levels }
    }

    fn model(label: &str) -> PlanModel {
        PlanModel {
            label: label.into(),
            kind: label.into(),
            params: serde_json::Value::Null,
        }
    }

    fn plan(models: &[&str], middle: Vec<(usize, usize)>, layout: Layout) -> Plan {
        Plan {
            save: crate::experiment::Save::None,
            lf_level: 0,
            hf_level: 2,
            middle,
            n_lf: vec![6, 10],
            n_hf: vec![2, 4],
            layout,
            seeds: vec![0, 1],
            n_test: 5,
            models: models.iter().map(|m| model(m)).collect(),
            budget: Budget::default(),
            search: SearchConfig::default(),
        }
    }

    #[test]
    fn pairs_follow_the_layout() {
        let grid = plan(&["ar"], vec![], Layout::Grid).pairs();
        assert_eq!(grid, vec![(6, 2), (6, 4), (10, 2), (10, 4)]);
        // The DMF paper's cross: the smallest N_L with every N_H, every N_L with the largest.
        let cross = plan(&["ar"], vec![], Layout::Cross).pairs();
        assert_eq!(cross, vec![(6, 2), (6, 4), (10, 4)]);
    }

    #[test]
    fn single_fidelity_models_are_fitted_once_per_n_hf_and_seed() {
        let p = plan(&["nn-hf", "ar"], vec![], Layout::Grid);
        let jobs = jobs(&p, false).unwrap();
        let count = |m: &str| jobs.iter().filter(|j| j.model.label == m).count();
        assert_eq!(count("ar"), 4 * 2);
        assert_eq!(count("nn-hf"), 2 * 2);
        assert!(jobs
            .iter()
            .filter(|j| j.model.label == "nn-hf")
            .all(|j| j.n_lf == 0));
        // On single-fidelity data every model is fitted that way.
        assert!(jobs_of(&p, true).iter().all(|j| j.n_lf == 0));
        let bad = plan(&["kriging"], vec![], Layout::Grid);
        assert!(super::jobs(&bad, false).is_err());
    }

    fn jobs_of(p: &Plan, single: bool) -> Vec<Job<'_>> {
        jobs(p, single).unwrap()
    }

    #[test]
    fn a_model_that_cannot_take_the_plans_sources_is_refused_before_any_fit() {
        let three = plan(&["ar", "nar", "nn-hf"], vec![(1, 4)], Layout::Grid);
        assert_eq!(three.n_sources(), 3);
        three.check_models().unwrap();
        let e = plan(&["ar", "gar"], vec![(1, 4)], Layout::Grid)
            .check_models()
            .unwrap_err()
            .to_string();
        assert!(e.contains("gar") && e.contains("exactly two"), "{e}");
        plan(&["gar"], vec![], Layout::Grid).check_models().unwrap();
    }

    #[test]
    fn training_sets_are_nested_in_n_hf_and_never_touch_the_test_set() {
        let ds = dataset([20, 12, 16]);
        let data = Data::new(&ds, 0, 2, 5, 10, 8).unwrap();
        assert_eq!(data.test.len(), 5);
        for seed in 0..3 {
            let (_, small) = data.train_indices(6, 3, seed).unwrap();
            let (lf, large) = data.train_indices(6, 8, seed).unwrap();
            assert!(small.iter().all(|i| large.contains(i)), "nested in N_H");
            assert!(
                large.iter().all(|i| !data.test.contains(i)),
                "disjoint from test"
            );
            assert_eq!(lf.len(), 6);
        }
        let (_, a) = data.train_indices(6, 8, 0).unwrap();
        let (_, b) = data.train_indices(6, 8, 1).unwrap();
        assert_ne!(a, b, "seeds draw different sets");
        // Asking for more than the pool holds is an error naming the level.
        let e = Data::new(&ds, 0, 2, 5, 10, 12).err().unwrap().to_string();
        assert!(e.contains("fidelity 2"), "{e}");
    }

    #[test]
    fn cheaper_samples_at_the_test_inputs_stay_out_of_training() {
        // Levels 0 and 2 share one design (16 points each), as a grid design does.
        let ds = dataset([16, 12, 16]);
        let data = Data::new(&ds, 0, 2, 5, 11, 8).unwrap();
        let hf = ds.level(2).unwrap();
        let test_x: Vec<f64> = data.test.iter().map(|&i| hf.inputs[[i, 0]]).collect();
        let lf = ds.level(0).unwrap();
        assert_eq!(data.lf_pool.len(), 11);
        assert!(data
            .lf_pool
            .iter()
            .all(|&i| !test_x.contains(&lf.inputs[[i, 0]])));
        // Asking for every LF sample is refused: five sit at test inputs.
        assert!(Data::new(&ds, 0, 2, 5, 12, 8).is_err());
    }

    #[test]
    fn a_three_level_train_set_carries_every_level_with_its_extras_and_costs() {
        let ds = dataset([20, 12, 16]);
        let data = Data::new(&ds, 0, 2, 5, 10, 8)
            .unwrap()
            .with_middle(&ds, &[(1, 7)])
            .unwrap();
        assert_eq!(data.counts(10, 4), vec![10, 7, 4]);
        assert_eq!(data.counts(0, 4), vec![0, 0, 4]);
        let t = data.train_set(10, 4, 0).unwrap();
        let lv: Vec<(usize, usize)> = t.sources.iter().map(|s| (s.level, s.len())).collect();
        assert_eq!(lv, vec![(0, 10), (1, 7), (2, 4)]);
        for s in &t.sources {
            assert_eq!(s.name, format!("level{}", s.level));
            // y = level + x, and the extra carries the first output value.
            for i in 0..s.len() {
                let v = s.level as f64 + s.inputs[[i, 0]];
                assert_eq!(s.outputs[[i, 0]], v);
                assert_eq!(s.extras["coarse"][[i, 0]], v);
                assert_eq!(s.cost_s[i], 0.1 * (s.level + 1) as f64);
            }
        }
        // Without LF data (a single-fidelity fit) the middle level is left out too.
        assert_eq!(data.train_set(0, 4, 0).unwrap().sources.len(), 1);
        assert!(Data::new(&ds, 0, 2, 5, 10, 8)
            .unwrap()
            .with_middle(&ds, &[(1, 13)])
            .is_err());
    }

    #[test]
    fn a_record_scores_mean_and_variance_when_the_model_has_one() {
        let y = Array2::from_shape_fn((4, 2), |(i, j)| (i + j) as f64);
        let fit = |var: Option<Array2<f64>>| Fit {
            params: serde_json::json!({}),
            model: None,
            pred: Some(Prediction {
                mean: &y + 1.0,
                var,
                samples: None,
            }),
            fit_seconds: 0.0,
            predict_seconds: 0.0,
            hyperparameters: serde_json::json!({}),
            error: None,
        };
        let point = Record::new("toy", "m", (3, 2, 0), &fit(None), y.view());
        assert_eq!((point.n.clone(), point.rmse), (vec![3, 2], 1.0));
        assert!(point.nll.is_none() && point.coverage95.is_none());
        let json = serde_json::to_value(&point).unwrap();
        assert!(
            json.get("nll").is_none(),
            "absent, not null, without a variance"
        );
        let g = Record::new("toy", "m", (3, 2, 0), &fit(Some(y.mapv(|_| 1.0))), y.view());
        let expect = 0.5 * (2.0 * std::f64::consts::PI).ln() + 0.5;
        assert!((g.nll.unwrap() - expect).abs() < 1e-12);
        assert_eq!(g.coverage95, Some(1.0));
    }
}
