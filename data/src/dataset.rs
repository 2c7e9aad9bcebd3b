//! The in-memory form of an `mfpipe/1` dataset, independent of how it is stored.

use crate::{Axis, DataError};
use ndarray::{Array1, Array2};

/// Sample status codes of the schema.
pub const STATUS_OK: u8 = 0;
pub const STATUS_FAILED: u8 = 1;
pub const STATUS_PENDING: u8 = 2;

/// Role codes of the optional `role` array.
pub const ROLE_TRAIN: u8 = 0;
pub const ROLE_TEST: u8 = 1;

/// File-level metadata (root attributes and the common grid).
#[derive(Debug, Clone, PartialEq)]
pub struct Meta {
    pub problem: String,
    pub created: String,
    pub generator: String,
    pub seed: u64,
    pub design: String,
    pub input_names: Vec<String>,
    pub input_units: Vec<String>,
    pub input_lower: Vec<f64>,
    pub input_upper: Vec<f64>,
    pub output_name: String,
    pub output_unit: String,
    pub axes: Vec<Axis>,
    /// `Some(Shard { index, count })` for one shard of a run split across machines
    /// (root attributes `shard_index`, `shard_count`); `None` for a whole dataset.
    pub shard: Option<Shard>,
}

/// Which part of a sharded run a file holds: the samples whose global index (levels in
/// order, samples in order within a level) is `index` modulo `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    /// Whether the sample with this global index belongs to the shard. Round-robin, so
    /// every shard gets the same mix of cheap and expensive levels.
    pub fn owns(&self, global: usize) -> bool {
        global % self.count == self.index
    }
}

impl Meta {
    pub fn output_shape(&self) -> Vec<usize> {
        self.axes.iter().map(|a| a.values.len()).collect()
    }
    pub fn output_len(&self) -> usize {
        self.output_shape().iter().product()
    }
}

/// All samples of one fidelity level. Outputs are flattened row-major over the grid axes.
#[derive(Debug, Clone, PartialEq)]
pub struct LevelData {
    pub level: usize,
    pub name: String,
    pub description: String,
    pub settings: Vec<(String, f64)>,
    pub inputs: Array2<f64>,
    pub outputs: Array2<f64>,
    pub cost_s: Array1<f64>,
    pub status: Array1<u8>,
    pub role: Option<Array1<u8>>,
}

impl LevelData {
    pub fn len(&self) -> usize {
        self.inputs.nrows()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn pending(&self) -> usize {
        self.status.iter().filter(|&&s| s == STATUS_PENDING).count()
    }
    pub fn failed(&self) -> usize {
        self.status.iter().filter(|&&s| s == STATUS_FAILED).count()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    pub meta: Meta,
    /// Sorted by level, cheapest first.
    pub levels: Vec<LevelData>,
}

impl Dataset {
    pub fn level(&self, level: usize) -> Option<&LevelData> {
        self.levels.iter().find(|l| l.level == level)
    }

    /// Refuse a dataset with samples not yet computed: training on it would silently use
    /// fewer samples than the user asked for.
    pub fn require_complete(&self, path: &str) -> Result<(), DataError> {
        if let Some(sh) = self.meta.shard {
            return Err(DataError::Invalid {
                path: path.into(),
                what: format!("this is shard {}/{} of a dataset, not a whole one; combine the shards with `pipeline merge`", sh.index, sh.count),
            });
        }
        for l in &self.levels {
            let pending = l.pending();
            if pending > 0 {
                return Err(DataError::Incomplete {
                    path: path.into(),
                    level: l.level,
                    pending,
                    total: l.len(),
                });
            }
        }
        Ok(())
    }

    /// Equality of everything that is a deterministic function of problem, config and seed:
    /// all arrays and attributes except the wall-clock `cost_s` and the `created` stamp.
    pub fn same_content(&self, other: &Dataset) -> bool {
        let mut a = self.meta.clone();
        let mut b = other.meta.clone();
        a.created.clear();
        b.created.clear();
        a == b
            && self.levels.len() == other.levels.len()
            && self.levels.iter().zip(&other.levels).all(|(x, y)| {
                x.level == y.level
                    && x.name == y.name
                    && x.description == y.description
                    && x.settings == y.settings
                    && x.status == y.status
                    && x.role == y.role
                    && bits_equal(&x.inputs, &y.inputs)
                    && bits_equal(&x.outputs, &y.outputs)
            })
    }
}

/// Bitwise equality (NaN == NaN for failed samples).
fn bits_equal(a: &Array2<f64>, b: &Array2<f64>) -> bool {
    a.dim() == b.dim()
        && a.iter()
            .zip(b.iter())
            .all(|(x, y)| x.to_bits() == y.to_bits())
}
