//! mfpipe's multi-fidelity fusion models, all behind [`FusionModel`].
//!
//! Models only ever see data ([`MfTrainSet`]); they know nothing of solvers or files. A new
//! model is one module under `models/` plus one line in [`registry`].

pub mod dmf;
pub mod gp;
pub mod mlp;
pub mod models;
pub mod prep;
pub mod rbf;
pub mod registry;
pub mod search;

use mfpipe_data::Progress;
use ndarray::{Array2, ArrayView2};
use serde::Serialize;
use std::any::Any;
use std::collections::HashMap;
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

/// Training data of one fidelity: inputs [N, d], outputs [N, D] (flattened common grid).
#[derive(Debug, Clone)]
pub struct LevelSet {
    pub inputs: Array2<f64>,
    pub outputs: Array2<f64>,
}

/// Training data at every fidelity used, cheapest first; the last is the one predicted.
/// High-fidelity inputs need not be a subset of low-fidelity inputs.
#[derive(Debug, Clone)]
pub struct MfTrainSet {
    pub levels: Vec<LevelSet>,
}

impl MfTrainSet {
    pub fn highest(&self) -> &LevelSet {
        self.levels.last().expect("at least one level")
    }
    pub fn n_inputs(&self) -> usize {
        self.highest().inputs.ncols()
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

/// A multi-fidelity surrogate that predicts the highest fidelity in its training set.
pub trait FusionModel: Send {
    fn name(&self) -> &'static str;
    /// Whether the model uses lower-fidelity data at all (single-fidelity baselines do not,
    /// and are fitted once per high-fidelity size rather than once per low-fidelity size).
    fn uses_low_fidelity(&self) -> bool {
        true
    }
    /// Epochs of the last training phase as configured: the budget a search allocates in
    /// fractions of (see [`Budget::last`]).
    fn tuned_epochs(&self) -> usize;
    fn fit(&mut self, train: &MfTrainSet, ctx: &mut FitContext) -> Result<FitReport>;
    /// Predictions [N, D] at the highest fidelity for inputs [N, d].
    fn predict(&self, x: ArrayView2<f64>) -> Result<Array2<f64>>;
    /// Predictive variances [N, D] of those predictions, for models that have them (the GP
    /// baselines); `None` for point predictors.
    fn predict_var(&self, _x: ArrayView2<f64>) -> Result<Option<Array2<f64>>> {
        Ok(None)
    }
}
