//! The small vocabulary every crate speaks: inputs, fidelities, output grids, progress.

use serde::{Deserialize, Serialize};

/// How an input is sampled between its bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scale {
    Linear,
    Log,
}

/// One scalar input of a problem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputSpec {
    pub name: &'static str,
    pub unit: &'static str,
    pub lower: f64,
    pub upper: f64,
    pub scale: Scale,
}

impl InputSpec {
    /// The documented default of every input: the centre of its range.
    pub fn default_value(&self) -> f64 {
        0.5 * (self.lower + self.upper)
    }

    /// Map u in [0, 1] to the input's range, honouring its scale.
    pub fn from_unit(&self, u: f64) -> f64 {
        match self.scale {
            Scale::Linear => self.lower + u * (self.upper - self.lower),
            Scale::Log => (self.lower.ln() + u * (self.upper.ln() - self.lower.ln())).exp(),
        }
    }
}

/// One fidelity level of a problem; level 0 is the cheapest.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fidelity {
    pub level: usize,
    pub name: String,
    pub description: String,
    /// The level's own numeric settings (mesh size, time step, ...), stored as HDF5 attributes.
    pub settings: Vec<(String, f64)>,
}

/// One axis of the common output grid.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Axis {
    pub name: String,
    pub unit: String,
    pub values: Vec<f64>,
}

/// The common output grid every fidelity of a problem reports on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutputSpec {
    pub name: String,
    pub unit: String,
    pub axes: Vec<Axis>,
}

impl OutputSpec {
    pub fn shape(&self) -> Vec<usize> {
        self.axes.iter().map(|a| a.values.len()).collect()
    }
    /// Number of values in one flattened output (row-major in axis order).
    pub fn len(&self) -> usize {
        self.shape().iter().product()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Progress and cost observer for long steps. Libraries report through it; the binary
/// decides whether that becomes a terminal progress bar or nothing.
pub trait Progress: Sync {
    fn start(&self, _label: &str, _total: u64) {}
    fn advance(&self, _n: u64) {}
    fn finish(&self) {}
}

/// An observer that ignores everything (tests, pipes).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;
impl Progress for NoProgress {}
