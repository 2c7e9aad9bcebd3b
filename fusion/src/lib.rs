//! mfpipe's multi-fidelity fusion models, all behind [`FusionModel`].
//!
//! Models only ever see data ([`MfTrainSet`]); they know nothing of solvers or files. A new
//! model is one module under `models/` plus one line in [`registry`].

pub mod dgmf;
pub mod dmf;
pub mod gp;
pub mod mlp;
pub mod models;
pub mod multistage;
pub mod prep;
pub mod rbf;
pub mod registry;
pub mod search;
pub mod state;

use mfpipe_data::Progress;
use ndarray::{Array1, Array2, Array3, ArrayView2};
use serde::{Deserialize, Serialize};
use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum FusionError {
    #[error("unknown model {name:?} (known: {known})")]
    UnknownModel { name: String, known: String },
    #[error("model {model}: invalid hyperparameters: {reason}")]
    BadParams { model: String, reason: String },
    #[error("model {model}: needs {what}")]
    NotEnoughData { model: String, what: String },
    #[error("model {model}: training diverged at epoch {epoch} (loss {loss})")]
    Diverged {
        model: String,
        epoch: usize,
        loss: f64,
    },
    #[error("model {model}: {what}")]
    Numerical { model: String, what: String },
    #[error("model {model} takes {takes}, got {got} source(s)")]
    SourceCount {
        model: String,
        takes: &'static str,
        got: usize,
    },
    #[error("model {model} does not apply here: {why}")]
    NotApplicable { model: String, why: String },
    #[error("model {model}: {reason}")]
    State { model: String, reason: String },
    #[error("model {model}: predict called before fit")]
    NotFitted { model: String },
    #[error("model {model}: inputs have {got} columns, expected {expected}")]
    InputWidth {
        model: String,
        got: usize,
        expected: usize,
    },
    #[error(transparent)]
    Data(#[from] mfpipe_data::DataError),
}

pub type Result<T> = std::result::Result<T, FusionError>;

/// Training data of one source (a fidelity level, or any cheaper model of the target):
/// inputs [N, d], outputs [N, D] (flattened common grid), the source's declared extras
/// ([N, *] each) and the measured CPU cost of each sample.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Source {
    /// The level's name in the dataset ("low", "high", ...).
    pub name: String,
    /// The level number in the dataset.
    pub level: usize,
    pub inputs: Array2<f64>,
    pub outputs: Array2<f64>,
    pub extras: BTreeMap<String, Array2<f64>>,
    /// CPU seconds of each sample's solve.
    pub cost_s: Array1<f64>,
}

impl Source {
    /// A source with only inputs and outputs (unnamed level 0, no extras, zero cost).
    pub fn new(inputs: Array2<f64>, outputs: Array2<f64>) -> Self {
        let n = inputs.nrows();
        Self {
            name: String::new(),
            level: 0,
            inputs,
            outputs,
            extras: BTreeMap::new(),
            cost_s: Array1::zeros(n),
        }
    }

    /// The same source named as `level` of a dataset.
    pub fn at(mut self, level: usize, name: impl Into<String>) -> Self {
        self.level = level;
        self.name = name.into();
        self
    }

    /// The samples `idx` of this source, with their extras and costs.
    pub fn select(&self, idx: &[usize]) -> Self {
        let ax = ndarray::Axis(0);
        Self {
            name: self.name.clone(),
            level: self.level,
            inputs: self.inputs.select(ax, idx),
            outputs: self.outputs.select(ax, idx),
            extras: self
                .extras
                .iter()
                .map(|(k, v)| (k.clone(), v.select(ax, idx)))
                .collect(),
            cost_s: self.cost_s.select(ax, idx),
        }
    }

    pub fn len(&self) -> usize {
        self.inputs.nrows()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Training data from any number of sources, cheapest first; the last is the target, the
/// one predicted. Inputs need not be nested across sources.
#[derive(Debug, Clone)]
pub struct MfTrainSet {
    pub sources: Vec<Source>,
    /// The shape of one output on the problem's grid (`[D]` unless set: a 1-D field or a
    /// scalar); models that work on fields as images read it, the others ignore it.
    pub shape: Vec<usize>,
}

impl MfTrainSet {
    /// Sources with outputs taken as 1-D (shape `[D]`).
    pub fn new(sources: Vec<Source>) -> Self {
        let d = sources.first().map_or(0, |s| s.outputs.ncols());
        Self {
            sources,
            shape: vec![d],
        }
    }
    /// The same set with outputs of grid shape `shape` (row-major, product = D).
    pub fn with_shape(mut self, shape: Vec<usize>) -> Self {
        self.shape = shape;
        self
    }
    /// The source predicted: the last.
    pub fn target(&self) -> &Source {
        self.sources.last().expect("at least one source")
    }
    pub fn n_inputs(&self) -> usize {
        self.target().inputs.ncols()
    }
}

/// How many sources a model takes. The experiment layer checks this before any work, and
/// every model checks it again in `fit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Sources {
    /// Single-fidelity: uses the target only and ignores cheaper sources.
    TargetOnly,
    /// Exactly one cheaper source and the target.
    Two,
    /// A chain of m >= 2 levels, each the next one's cheaper model (recursive over levels).
    Chain,
    /// Any number >= 1 of sources, in any relation to the target.
    Any,
}

impl Sources {
    /// Refuse a count this model cannot take.
    pub fn check(self, model: &str, got: usize) -> Result<()> {
        let ok = match self {
            Sources::TargetOnly | Sources::Any => got >= 1,
            Sources::Two => got == 2,
            Sources::Chain => got >= 2,
        };
        if ok {
            return Ok(());
        }
        Err(FusionError::SourceCount {
            model: model.into(),
            takes: self.describe(),
            got,
        })
    }

    /// What the model takes, for `pipeline models` and error messages.
    pub fn describe(self) -> &'static str {
        match self {
            Sources::TargetOnly => "the target only",
            Sources::Two => "exactly two sources (one cheaper + the target)",
            Sources::Chain => "a chain of m >= 2 levels",
            Sources::Any => "any number of sources",
        }
    }

    /// Whether the model reads anything but the target.
    pub fn uses_cheaper(self) -> bool {
        self != Sources::TargetOnly
    }
}

/// A model's prediction at the target fidelity: the mean [N, D] and, where the model has
/// one, a variance [N, D] or samples [K, N, D] from its predictive distribution.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Prediction {
    pub mean: Array2<f64>,
    pub var: Option<Array2<f64>>,
    pub samples: Option<Array3<f64>>,
}

impl Prediction {
    /// A point prediction (no uncertainty).
    pub fn point(mean: Array2<f64>) -> Self {
        Self {
            mean,
            var: None,
            samples: None,
        }
    }
    /// A Gaussian prediction with per-value variances.
    pub fn gaussian(mean: Array2<f64>, var: Array2<f64>) -> Self {
        Self {
            mean,
            var: Some(var),
            samples: None,
        }
    }
    /// The variance: the model's, or the spread of its samples (K >= 2), if either exists.
    pub fn variance(&self) -> Option<Array2<f64>> {
        if let Some(v) = &self.var {
            return Some(v.clone());
        }
        let s = self.samples.as_ref()?;
        (s.shape()[0] >= 2).then(|| s.var_axis(ndarray::Axis(0), 1.0))
    }
}

/// How much training a fit may spend. Hyperparameter search drives models through this.
/// The default is the model's own configured epochs for every phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Budget {
    /// At most this many epochs in every training phase (`--smoke`, `--max-epochs`).
    pub cap: Option<usize>,
    /// Exactly this many epochs in the last phase, the one trained on the high-fidelity data
    /// (the budget a hyperparameter search allocates); earlier phases stay as configured.
    pub last: Option<usize>,
}

impl Budget {
    pub fn capped(epochs: usize) -> Self {
        Self {
            cap: Some(epochs),
            last: None,
        }
    }

    /// The epochs of each phase, given the configured ones (the last entry is the last phase).
    pub fn phases<const N: usize>(&self, configured: [usize; N]) -> [usize; N] {
        let mut p = configured.map(|c| self.cap.map_or(c, |m| c.min(m)));
        if let (Some(last), Some(slot)) = (self.last, p.last_mut()) {
            *slot = last;
        }
        p
    }
}

/// Work a fit may share with later fits of the same hyperparameter search: a search trains
/// many configurations on one training set, and the phases their searched hyperparameters do
/// not touch (DMF_L's pre-training on the low-fidelity data) are the same every time. Keys
/// are built by the model from everything that determines the stored value.
#[derive(Default)]
pub struct Memo(Mutex<HashMap<u64, Box<dyn Any + Send>>>);

impl Memo {
    /// The value stored under `key`, or `make()`'s (stored for next time).
    pub fn get_or_make<T: Clone + Send + 'static>(
        &self,
        key: u64,
        make: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        let hit = |m: &HashMap<u64, Box<dyn Any + Send>>| {
            m.get(&key).and_then(|v| v.downcast_ref::<T>()).cloned()
        };
        if let Some(v) = hit(&self.0.lock().expect("memo lock")) {
            return Ok(v);
        }
        // Not holding the lock while computing: a fit may take seconds.
        let v = make()?;
        self.0
            .lock()
            .expect("memo lock")
            .insert(key, Box::new(v.clone()));
        Ok(v)
    }
}

/// Everything a fit needs besides data.
pub struct FitContext<'a> {
    pub seed: u64,
    pub budget: Budget,
    pub progress: &'a dyn Progress,
    /// Shared work within one hyperparameter search (`None` outside a search).
    pub memo: Option<&'a Memo>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FitReport {
    pub epochs: usize,
    /// Final training loss (mean squared error in the model's standardised output space).
    pub final_loss: f64,
    /// The hyperparameters actually used (goes into results.json).
    pub hyperparameters: serde_json::Value,
}

/// A multi-fidelity surrogate that predicts the target (last) source of its training set.
/// Its static facts (sources taken, tuned epochs, search space) live in [`registry`], so
/// nothing is built just to ask them.
pub trait FusionModel: Send {
    fn name(&self) -> &'static str;
    fn fit(&mut self, train: &MfTrainSet, ctx: &mut FitContext) -> Result<FitReport>;
    /// The predictive distribution at the target fidelity for inputs [N, d].
    fn predict(&self, x: ArrayView2<f64>) -> Result<Prediction>;
    /// The fitted state as bytes ([`state::save`]); an error before `fit`. With the
    /// hyperparameters the model was built with, it is all a later [`FusionModel::load_state`]
    /// needs to predict exactly as this model does.
    fn save_state(&self) -> Result<Vec<u8>>;
    /// Restore a state from [`FusionModel::save_state`] (of a model built with the same
    /// hyperparameters), as if `fit` had run.
    fn load_state(&mut self, bytes: &[u8]) -> Result<()>;
}
