//! Experiment configs: serde structs with defaults, `deny_unknown_fields`, and a `check()`
//! that runs before any work. Each problem's default config is embedded in the binary.

use crate::util::one_line;
use anyhow::{bail, Context, Result};
use mfpipe_data::design::DesignKind;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

pub const CONFIG_VERSION: u32 = 1;

/// Default configs, one per problem that has a standard protocol.
const EMBEDDED: &[(&str, &str)] = &[
    ("burgers", include_str!("../../configs/burgers.toml")),
    ("poisson", include_str!("../../configs/poisson.toml")),
    ("borehole", include_str!("../../configs/borehole.toml")),
    ("currin", include_str!("../../configs/currin.toml")),
    ("park", include_str!("../../configs/park.toml")),
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    #[serde(default = "default_version")]
    pub version: u32,
    /// The problem this config is for; omitted = any (the one named on the command line), as
    /// in configs/synthetic-fig3.toml, which serves borehole, currin and park.
    #[serde(default)]
    pub problem: String,
    #[serde(default)]
    pub data: DataConfig,
    #[serde(default)]
    pub protocol: Protocol,
    /// Hyperparameters per model name (missing keys take the model's defaults).
    #[serde(default)]
    pub models: BTreeMap<String, toml::Value>,
    /// Hyperparameter search for the tuned models (Hyperband by default).
    #[serde(default)]
    pub search: SearchConfig,
    /// What `run` does with the data: the training protocol (default) or one of the studies.
    #[serde(default)]
    pub study: Study,
    /// `pipeline tradeoff`: ladder and budgeted fusion.
    #[serde(default)]
    pub tradeoff: TradeoffConfig,
    #[serde(default)]
    pub smoke: Smoke,
}

/// How the tuned models' hyperparameters are chosen (DMF Sec. 3.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SearchMethod {
    /// The configured hyperparameters, no search.
    None,
    Grid,
    Random,
    Median,
    Sha,
    #[default]
    Hyperband,
}

impl SearchMethod {
    pub fn name(self) -> &'static str {
        match self {
            SearchMethod::None => "none",
            SearchMethod::Grid => "grid",
            SearchMethod::Random => "random",
            SearchMethod::Median => "median",
            SearchMethod::Sha => "sha",
            SearchMethod::Hyperband => "hyperband",
        }
    }
}

/// Which fits run a search of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SearchScope {
    /// Once per model x N_L x N_H, on the first seed's training set; every seed's fit then
    /// uses that choice (5x cheaper with 5 seeds; the seeds' spread excludes search noise).
    #[default]
    Cell,
    /// Every fit searches on its own training set.
    Fit,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SearchConfig {
    pub method: SearchMethod,
    pub scope: SearchScope,
    /// Share of each fit's HF training samples held out to score configurations (at least
    /// one sample, and at least two left to train on). The test set is never seen.
    pub validation: f64,
    /// The largest budget R, in units of 1/R of the tuned phase's configured steps; the
    /// smallest rung gets one unit.
    pub units: usize,
    /// Elimination rate of successive halving and Hyperband.
    pub eta: usize,
    /// Configurations drawn by random search, median pruning and successive halving.
    pub trials: usize,
    /// The searched hyperparameters of each tuned model; models not listed are not tuned.
    pub space: BTreeMap<String, Vec<mfpipe_fusion::search::Dim>>,
}

impl Default for SearchConfig {
    /// Hyperband over every model's default search space (the model table's).
    fn default() -> Self {
        Self {
            method: SearchMethod::Hyperband,
            scope: SearchScope::Cell,
            validation: 0.25,
            units: 9,
            eta: 3,
            trials: 9,
            space: mfpipe_fusion::registry::MODELS
                .iter()
                .map(|m| (m.name.to_string(), (m.default_space)()))
                .filter(|(_, dims)| !dims.is_empty())
                .collect(),
        }
    }
}

impl SearchConfig {
    /// The space searched for a model, looked up by its label, then by its registry name.
    pub fn space_for(&self, label: &str, kind: &str) -> Option<mfpipe_fusion::search::Space> {
        let dims = self.space.get(label).or_else(|| self.space.get(kind))?;
        Some(mfpipe_fusion::search::Space { dims: dims.clone() })
    }

    pub fn check(&self) -> Result<()> {
        if !(self.validation > 0.0 && self.validation < 1.0) {
            bail!(
                "search.validation = {}: must be a share strictly between 0 and 1",
                self.validation
            );
        }
        if self.units == 0 || self.trials == 0 {
            bail!("search.units and search.trials must be at least 1");
        }
        if self.eta < 2 {
            bail!("search.eta = {}: must be at least 2", self.eta);
        }
        for (model, dims) in &self.space {
            if dims.is_empty() {
                bail!("search.space.{model} is empty");
            }
            mfpipe_fusion::search::Space { dims: dims.clone() }
                .check()
                .map_err(|e| anyhow::anyhow!("search.space.{model}: {e}"))?;
        }
        Ok(())
    }
}

/// One axis of a sensitivity grid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GridAxis {
    pub name: String,
    pub values: Vec<f64>,
}

/// What `run` does after generating the data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Study {
    /// Every model x n_lf x n_hf x seed of [protocol], scored on the held-out test set.
    #[default]
    Protocol,
    /// DMF Fig. 4: test RMSE of one model over a grid of hyperparameters (heat maps over the
    /// first two axes, one panel per value of the third), fixed configuration per cell.
    Sensitivity {
        model: String,
        n_lf: usize,
        n_hf: usize,
        seeds: Vec<u64>,
        grid: Vec<GridAxis>,
    },
    /// DMF Fig. 5: the search methods side by side on one fit: best validation RMSE so far
    /// against wall time, and the test RMSE of each method's choice.
    Searchers {
        model: String,
        n_lf: usize,
        n_hf: usize,
        seed: u64,
        methods: Vec<SearchMethod>,
    },
}

fn default_version() -> u32 {
    CONFIG_VERSION
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    pub design: DesignKind,
    pub seed: u64,
    /// Fidelity levels to generate, cheapest first; the last is the one predicted.
    pub levels: Vec<usize>,
    /// Samples per level.
    pub n: Vec<usize>,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            design: DesignKind::Sobol,
            seed: 0,
            levels: vec![0, 1],
            n: vec![32, 160],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Protocol {
    pub n_lf: Vec<usize>,
    pub n_hf: Vec<usize>,
    /// Training samples from each of `data.levels` (cheapest first, the last the target).
    /// Empty (the default): a two-level plan on the first and last level, swept over `n_lf`
    /// x `n_hf`. Given: every level is a source with exactly these counts (`n_lf`/`n_hf` are
    /// then its first and last entries), so chain models (`ar`, `nar`) see all levels.
    pub n: Vec<usize>,
    /// Which (N_L, N_H) pairs are fitted: every combination, or the DMF paper's two sweeps.
    pub layout: Layout,
    pub seeds: Vec<u64>,
    /// High-fidelity samples held out for testing (ignored when the file has a `role` array).
    pub n_test: usize,
    pub models: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// Every N_L with every N_H.
    #[default]
    Grid,
    /// The smallest N_L with every N_H (DMF Fig. 6), and every N_L with the largest N_H
    /// (Fig. 7).
    Cross,
}

impl Protocol {
    /// Train on every one of `levels` with the matching count of `n` (cheapest first, equal
    /// lengths, checked by the caller): the first and last counts become `n_lf` and `n_hf`,
    /// and the levels between are returned with theirs.
    pub fn per_source(&mut self, levels: &[usize], n: &[usize]) -> Vec<(usize, usize)> {
        self.n_lf = vec![n[0]];
        self.n_hf = vec![n[n.len() - 1]];
        levels[1..levels.len() - 1]
            .iter()
            .copied()
            .zip(n[1..n.len() - 1].iter().copied())
            .collect()
    }
}

impl Default for Protocol {
    fn default() -> Self {
        Self {
            n_lf: vec![32],
            n_hf: vec![4, 8, 16, 32],
            n: vec![],
            layout: Layout::Grid,
            seeds: (0..5).collect(),
            n_test: 128,
            models: vec!["nn-hf".into(), "mf-transfer".into()],
        }
    }
}

/// Overrides applied by `--smoke`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Smoke {
    pub n: Vec<usize>,
    pub n_lf: Vec<usize>,
    pub n_hf: Vec<usize>,
    pub seeds: Vec<u64>,
    pub n_test: usize,
    /// Cap on every training phase's epochs.
    pub max_epochs: usize,
}

impl Default for Smoke {
    fn default() -> Self {
        Self {
            n: vec![8, 16],
            n_lf: vec![8],
            n_hf: vec![4, 8],
            seeds: vec![0, 1],
            n_test: 8,
            max_epochs: 60,
        }
    }
}

/// The levels and per-level sample counts of a generation, named as the user gave them
/// (config keys or CLI flags): non-empty, one count per level, levels strictly increasing,
/// every count at least 1.
pub fn check_levels(levels: &[usize], n: &[usize], names: (&str, &str)) -> Result<()> {
    let (ln, nn) = names;
    if levels.is_empty() {
        bail!("{ln} is empty");
    }
    if levels.len() != n.len() {
        bail!("{ln} has {} entries but {nn} has {}", levels.len(), n.len());
    }
    if levels.windows(2).any(|w| w[0] >= w[1]) {
        bail!("{ln} {levels:?}: must be strictly increasing (cheapest first)");
    }
    if n.contains(&0) {
        bail!("{nn} {n:?}: every level needs at least one sample");
    }
    Ok(())
}

impl RunConfig {
    /// The generic defaults, for a problem without an embedded config of its own.
    pub fn generic(problem: &str) -> Self {
        Self {
            version: CONFIG_VERSION,
            problem: problem.into(),
            data: Default::default(),
            protocol: Default::default(),
            models: Default::default(),
            search: Default::default(),
            study: Default::default(),
            tradeoff: Default::default(),
            smoke: Default::default(),
        }
    }

    /// The embedded default for a problem.
    pub fn embedded(problem: &str) -> Result<Self> {
        let (_, text) = EMBEDDED.iter().find(|(p, _)| *p == problem).with_context(|| {
            format!("no default config for problem {problem:?} (defaults exist for: {}); pass --config FILE", EMBEDDED.iter().map(|(p, _)| *p).collect::<Vec<_>>().join(", "))
        })?;
        let mut cfg = Self::parse(text, &format!("embedded config of {problem}"))?;
        if cfg.problem.is_empty() {
            cfg.problem = problem.into();
        }
        Ok(cfg)
    }

    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config {}", path.display()))?;
        Self::parse(&text, &path.display().to_string())
    }

    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        let cfg: RunConfig = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            let at = line.map(|l| format!(" at line {l}")).unwrap_or_default();
            anyhow::anyhow!("{origin}: malformed config{at}: {}", one_line(e.message()))
        })?;
        cfg.check()
            .with_context(|| format!("{origin}: invalid config"))?;
        Ok(cfg)
    }

    /// Apply `--smoke`: same pipeline, tiny sizes.
    pub fn smoke(&mut self) {
        let s = self.smoke.clone();
        let (max_lf, max_hf) = (
            s.n_lf.iter().copied().max().unwrap_or(1),
            s.n_hf.iter().copied().max().unwrap_or(1),
        );
        match &mut self.study {
            Study::Protocol => {}
            Study::Sensitivity {
                n_lf, n_hf, seeds, ..
            } => {
                *n_lf = (*n_lf).min(max_lf);
                *n_hf = (*n_hf).min(max_hf);
                seeds.truncate(s.seeds.len().max(1));
            }
            Study::Searchers { n_lf, n_hf, .. } => {
                *n_lf = (*n_lf).min(max_lf);
                *n_hf = (*n_hf).min(max_hf);
            }
        }
        self.data.n = s.n.clone();
        if !self.protocol.n.is_empty() {
            // Per-source counts shrink with the smoke data: the sweeps' largest at the ends,
            // the middle levels at most what the smoke data generate.
            let m = self.protocol.n.len();
            for (i, c) in self.protocol.n.iter_mut().enumerate() {
                *c = match i {
                    0 => max_lf,
                    _ if i == m - 1 => max_hf,
                    _ => (*c).min(s.n.get(i).copied().unwrap_or(1)),
                };
            }
        }
        self.protocol.n_lf = s.n_lf;
        self.protocol.n_hf = s.n_hf;
        self.protocol.seeds = s.seeds;
        self.protocol.n_test = s.n_test;
    }

    pub fn check(&self) -> Result<()> {
        if self.version != CONFIG_VERSION {
            bail!(
                "version = {} is not supported (expected {CONFIG_VERSION})",
                self.version
            );
        }
        let d = &self.data;
        check_levels(&d.levels, &d.n, ("data.levels", "data.n"))?;
        let p = &self.protocol;
        for (name, v) in [("protocol.n_hf", &p.n_hf), ("protocol.n_lf", &p.n_lf)] {
            if v.is_empty() {
                bail!("{name} is empty");
            }
        }
        if p.n_hf.contains(&0) {
            bail!(
                "protocol.n_hf {:?}: need at least one HF training sample",
                p.n_hf
            );
        }
        if p.seeds.is_empty() {
            bail!("protocol.seeds is empty");
        }
        if p.models.is_empty() {
            bail!("protocol.models is empty");
        }
        for m in &p.models {
            self.model_spec(m).context("protocol.models")?;
        }
        for m in self.models.keys() {
            let (kind, params) = self.model_spec(m)?;
            // Bad hyperparameters fail now, not after data generation.
            (mfpipe_fusion::registry::info(&kind)?.params)(&params)?;
        }
        if !p.n.is_empty() {
            if p.n.len() != d.levels.len() {
                bail!(
                    "protocol.n has {} entries but data.levels has {}: one training count per level",
                    p.n.len(),
                    d.levels.len()
                );
            }
            for ((l, n), avail) in d.levels.iter().zip(&p.n).zip(&d.n) {
                if *n == 0 || n > avail {
                    bail!("protocol.n asks for {n} samples of level {l}, data.n generates {avail}");
                }
            }
        }
        self.search.check()?;
        self.tradeoff.check()?;
        for m in self.search.space.keys() {
            self.model_spec(m).context("search.space")?;
        }
        match &self.study {
            Study::Protocol => {}
            Study::Sensitivity {
                model,
                n_hf,
                seeds,
                grid,
                ..
            } => {
                self.model_spec(model).context("study.model")?;
                if !(2..=3).contains(&grid.len())
                    || grid.iter().take(2).any(|a| a.values.len() < 2)
                    || grid.iter().any(|a| a.values.is_empty())
                {
                    bail!("study.grid needs 2 or 3 axes; the first two (the heat map's) need at least 2 values each");
                }
                if grid
                    .iter()
                    .take(2)
                    .flat_map(|a| &a.values)
                    .any(|v| !(*v > 0.0 && v.is_finite()))
                {
                    bail!("study.grid: the heat map's axes are drawn on a log scale and need positive values");
                }
                if seeds.is_empty() || *n_hf == 0 {
                    bail!("study.seeds must not be empty and study.n_hf must be at least 1");
                }
            }
            Study::Searchers {
                model,
                n_hf,
                methods,
                ..
            } => {
                let (kind, _) = self.model_spec(model).context("study.model")?;
                if methods.is_empty() || methods.contains(&SearchMethod::None) {
                    bail!("study.methods must list search methods (grid, random, median, sha, hyperband)");
                }
                if self.search.space_for(model, &kind).is_none() {
                    bail!("study.model {model:?} has no search.space entry to search over");
                }
                if *n_hf < 3 {
                    bail!("study.n_hf = {n_hf}: a search needs at least 3 HF samples (2 to fit, 1 to validate)");
                }
            }
        }
        let hf_n = *d.n.last().unwrap();
        let max_hf = p.n_hf.iter().max().unwrap();
        if d.levels.len() > 1 {
            let lf_n = d.n[0];
            let max_lf = p.n_lf.iter().max().unwrap();
            if *max_lf > lf_n {
                bail!("protocol.n_lf asks for {max_lf} LF samples but data.n gives level {} only {lf_n}", d.levels[0]);
            }
        }
        if max_hf + p.n_test > hf_n {
            bail!("protocol needs {max_hf} HF training + {} test samples but data.n gives level {} only {hf_n}", p.n_test, d.levels.last().unwrap());
        }
        if self.smoke.max_epochs == 0 {
            bail!("smoke.max_epochs must be at least 1");
        }
        Ok(())
    }

    /// The sources the protocol trains on: (cheapest level, target level, middle levels with
    /// their counts). With `protocol.n`, every data level with its count, and `n_lf`/`n_hf`
    /// become that count; otherwise the first and last data level.
    pub fn chain(&mut self) -> (usize, usize, Vec<(usize, usize)>) {
        let l = &self.data.levels;
        let (lf, hf) = (l[0], l[l.len() - 1]);
        if self.protocol.n.is_empty() {
            return (lf, hf, Vec::new());
        }
        let middle = self.protocol.per_source(l, &self.protocol.n.clone());
        (lf, hf, middle)
    }

    /// A model's hyperparameter table as JSON (what the fusion registry takes).
    pub fn model_params(&self, model: &str) -> Result<serde_json::Value> {
        match self.models.get(model) {
            Some(v) => Ok(serde_json::to_value(v)?),
            None => Ok(serde_json::Value::Null),
        }
    }

    /// A model label's registry name and hyperparameters. A label is a registry name, or the
    /// key of a `[models.<label>]` table whose `model = "<registry name>"` says what it runs
    /// (so one config can compare, say, DMF with 3 and with 7 cells).
    pub fn model_spec(&self, label: &str) -> Result<(String, serde_json::Value)> {
        let mut params = self.model_params(label)?;
        let kind = match params.as_object_mut().and_then(|o| o.remove("model")) {
            Some(serde_json::Value::String(s)) => s,
            Some(other) => bail!("[models.{label}]: model = {other}: expected a model name"),
            None => label.to_string(),
        };
        if !mfpipe_fusion::registry::names().contains(&kind.as_str()) {
            bail!(
                "unknown model {kind:?} (known: {}; or name a [models.{label}] table with model = \"...\")",
                mfpipe_fusion::registry::names().join(", ")
            );
        }
        Ok((kind, params))
    }
}

/// The `[tradeoff]` section of a config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TradeoffConfig {
    /// Inputs solved at every level for the ladder.
    pub ladder_samples: usize,
    /// Total budgets in units of one HF sample's measured cost (used when `budgets_s` is
    /// empty and no `--budget` is given).
    pub budgets_hf: Vec<f64>,
    /// Total budgets in CPU-seconds (override `budgets_hf`).
    pub budgets_s: Vec<f64>,
    /// Shares of each budget spent on HF samples by the fusion models (the rest buys LF).
    pub hf_shares: Vec<f64>,
    /// Fusion models fitted on every split, and the HF-only baseline.
    pub models: Vec<String>,
    pub baseline: String,
    pub seeds: Vec<u64>,
    pub n_test: usize,
}

impl Default for TradeoffConfig {
    fn default() -> Self {
        Self {
            ladder_samples: 16,
            budgets_hf: vec![8.0, 16.0, 32.0, 64.0],
            budgets_s: vec![],
            hf_shares: vec![0.25, 0.5, 0.75],
            models: vec!["mf-transfer".into(), "dmf-trans".into()],
            baseline: "nn-hf".into(),
            seeds: vec![0, 1, 2],
            n_test: 100,
        }
    }
}

impl TradeoffConfig {
    pub fn check(&self) -> Result<()> {
        if self.ladder_samples == 0 || self.seeds.is_empty() || self.models.is_empty() {
            bail!("tradeoff.ladder_samples, tradeoff.seeds and tradeoff.models must not be empty");
        }
        if self.hf_shares.iter().any(|s| !(*s > 0.0 && *s < 1.0)) {
            bail!(
                "tradeoff.hf_shares {:?}: each share must be strictly between 0 and 1",
                self.hf_shares
            );
        }
        if self
            .budgets_hf
            .iter()
            .chain(&self.budgets_s)
            .any(|b| !(b.is_finite() && *b > 0.0))
        {
            bail!("tradeoff budgets must be positive numbers");
        }
        if self.budgets_s.is_empty() && self.budgets_hf.is_empty() {
            bail!("tradeoff: no budgets (budgets_hf or budgets_s)");
        }
        Ok(())
    }
}
