//! mfpipe's multi-fidelity fusion models, all behind [`FusionModel`].
//!
//! Models only ever see data ([`MfTrainSet`]); they know nothing of solvers or files. A new
//! model is one module under `models/` plus one line in [`registry`].

pub mod dmf;
pub mod mlp;
pub mod models;
pub mod prep;
pub mod registry;
pub mod search;

use mfpipe_data::Progress;
use ndarray::{Array2, ArrayView2};
use serde::Serialize;
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Budget {
    /// The model's own configured epochs.
    #[default]
    Configured,
    /// At most this many epochs (for every training phase of the model).
    Epochs(usize),
}

/// Everything a fit needs besides data.
pub struct FitContext<'a> {
    pub seed: u64,
    pub budget: Budget,
    pub progress: &'a dyn Progress,
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
    fn fit(&mut self, train: &MfTrainSet, ctx: &mut FitContext) -> Result<FitReport>;
    /// Predictions [N, D] at the highest fidelity for inputs [N, d].
    fn predict(&self, x: ArrayView2<f64>) -> Result<Array2<f64>>;
}
