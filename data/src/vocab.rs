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

impl Axis {
    /// `n` equally spaced points from `lower` to `upper` (both included).
    pub fn uniform(name: &str, unit: &str, lower: f64, upper: f64, n: usize) -> Self {
        let step = (n.max(2) - 1) as f64;
        Self {
            name: name.into(),
            unit: unit.into(),
            values: (0..n)
                .map(|i| lower + (upper - lower) * i as f64 / step)
                .collect(),
        }
    }
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

/// A per-sample array a problem stores besides its output (e.g. the coarse coefficients of a
/// multiscale solve that a downstream model needs). Shape is per sample.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExtraSpec {
    pub name: String,
    pub unit: String,
    pub shape: Vec<usize>,
}

impl ExtraSpec {
    /// Number of values in one sample's flattened extra (row-major).
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Everything static about a problem: what `pipeline list` shows and a dataset's header
/// holds. One struct instead of a getter per field, so a problem states itself once.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProblemSpec {
    pub name: &'static str,
    /// One-line summary for `pipeline list`.
    pub summary: &'static str,
    pub inputs: Vec<InputSpec>,
    /// Cheapest first; `fidelities[i].level == i`.
    pub fidelities: Vec<Fidelity>,
    pub output: OutputSpec,
    /// Declared extra per-sample arrays (empty for most problems).
    pub extras: Vec<ExtraSpec>,
}

impl ProblemSpec {
    /// A fidelity given as a level number or a level name.
    pub fn fidelity(&self, key: &str) -> Option<&Fidelity> {
        self.fidelities
            .iter()
            .find(|f| f.name == key || key.parse::<usize>().ok() == Some(f.level))
    }
    /// The level names, comma-separated (for error messages).
    pub fn level_names(&self) -> String {
        self.fidelities
            .iter()
            .map(|f| f.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The seed of one sample: a hash of the run's seed and the bits of its input vector, so every
/// fidelity of one input gets the same seed (a stochastic solver starts all levels of an input
/// from the same state), and the seed does not depend on the order samples are solved in.
pub fn sample_seed(run_seed: u64, x: &[f64]) -> u64 {
    // SplitMix64 finaliser over each word: cheap, well mixed, stable across platforms.
    fn mix(mut z: u64) -> u64 {
        z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    x.iter().fold(mix(run_seed), |h, v| mix(h ^ v.to_bits()))
}

/// Progress and cost observer for long steps. Libraries report through it; the binary
/// decides whether that becomes a terminal progress bar or nothing.
pub trait Progress: Sync {
    fn start(&self, _label: &str, _total: u64) {}
    fn advance(&self, _n: u64) {}
    /// What was started last, for a person watching ("dmf-trans N_L=32 N_H=8 seed 3").
    fn working_on(&self, _what: &str) {}
    fn finish(&self) {}
    /// A one-line status message for a person ("resuming out/burgers.h5").
    fn note(&self, _msg: &str) {}
}

/// An observer that ignores everything (tests, pipes).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;
impl Progress for NoProgress {}
