//! The in-memory form of an `mfpipe/1` dataset, independent of how it is stored.

use crate::{Axis, DataError};
use ndarray::{Array1, Array2};
use std::collections::BTreeMap;

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

/// One declared extra array of a level (`extras/<name>`), flattened per sample.
#[derive(Debug, Clone, PartialEq)]
pub struct ExtraData {
    pub name: String,
    pub unit: String,
    /// Shape of one sample's array.
    pub shape: Vec<usize>,
    /// [N, prod(shape)], NaN for samples not computed or failed.
    pub values: Array2<f64>,
}

/// Everything one solve contributes to a level: what the journal records, `--resume`
/// restores and `merge` copies.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SampleResult {
    pub status: u8,
    pub cost_s: f64,
    pub seed: u64,
    pub values: Vec<f64>,
    pub diagnostics: BTreeMap<String, f64>,
    /// The solver's reason for status 1, empty otherwise.
    pub failure: String,
    /// (name, flattened values) of each declared extra; empty on failure.
    pub extras: Vec<(String, Vec<f64>)>,
}

/// All samples of one fidelity level. Outputs are flattened row-major over the grid axes.
/// `seed`, `diagnostics`, `failure`, `extras` and `offline_cost_s` are optional members of
/// the schema: files written before them (or by other tools) read with them empty.
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
    pub seed: Option<Array1<u64>>,
    /// One array per diagnostic name; NaN where a sample did not report it.
    pub diagnostics: BTreeMap<String, Array1<f64>>,
    pub failure: Option<Vec<String>>,
    pub extras: Vec<ExtraData>,
    /// CPU seconds of the level's shared offline stage, for problems that have one.
    pub offline_cost_s: Option<f64>,
}

impl LevelData {
    /// A level whose every sample is pending: outputs and extras NaN, no diagnostics yet.
    /// `extras` gives (name, unit, per-sample shape) of each declared extra.
    pub fn all_pending(
        level: usize,
        name: String,
        description: String,
        settings: Vec<(String, f64)>,
        inputs: Array2<f64>,
        output_len: usize,
        extras: &[(String, String, Vec<usize>)],
    ) -> Self {
        let n = inputs.nrows();
        Self {
            level,
            name,
            description,
            settings,
            outputs: Array2::from_elem((n, output_len), f64::NAN),
            cost_s: Array1::zeros(n),
            status: Array1::from_elem(n, STATUS_PENDING),
            role: None,
            seed: Some(Array1::zeros(n)),
            diagnostics: BTreeMap::new(),
            failure: Some(vec![String::new(); n]),
            extras: extras
                .iter()
                .map(|(name, unit, shape)| ExtraData {
                    name: name.clone(),
                    unit: unit.clone(),
                    shape: shape.clone(),
                    values: Array2::from_elem((n, shape.iter().product()), f64::NAN),
                })
                .collect(),
            offline_cost_s: None,
            inputs,
        }
    }

    /// Store one sample's result. A diagnostic seen for the first time gets a column (NaN for
    /// the other samples); an extra the level does not declare, or of the wrong length, is an
    /// error (the solver broke its own declaration).
    pub fn set(&mut self, i: usize, r: &SampleResult) -> Result<(), DataError> {
        self.check_result(i, r, self.outputs.ncols())?;
        self.set_scalars(i, r);
        self.outputs
            .row_mut(i)
            .iter_mut()
            .zip(&r.values)
            .for_each(|(o, v)| *o = *v);
        for e in &mut self.extras {
            let row = r.extras.iter().find(|(name, _)| name == &e.name);
            let mut dst = e.values.row_mut(i);
            match row {
                Some((_, v)) => dst.iter_mut().zip(v).for_each(|(o, x)| *o = *x),
                None => dst.fill(f64::NAN),
            }
        }
        Ok(())
    }

    /// Whether `r` fits sample `i` of this level: `i` in range, `d_out` output values, only
    /// declared extras, each of its declared length (from the extra's shape, so a head whose
    /// values stream elsewhere checks the same way as a level held whole).
    pub fn check_result(&self, i: usize, r: &SampleResult, d_out: usize) -> Result<(), DataError> {
        let n = self.len();
        let bad = |what: String| DataError::Numeric(format!("fidelity {}: {what}", self.level));
        if i >= n {
            return Err(bad(format!("sample {i} out of range (n = {n})")));
        }
        if r.values.len() != d_out {
            return Err(bad(format!(
                "sample {i} has {} output values, expected {d_out}",
                r.values.len()
            )));
        }
        for (name, v) in &r.extras {
            let Some(e) = self.extras.iter().find(|e| &e.name == name) else {
                return Err(bad(format!("sample {i} has an undeclared extra {name:?}")));
            };
            let len: usize = e.shape.iter().product();
            if v.len() != len {
                return Err(bad(format!(
                    "extra {name:?} of sample {i} has {} values, expected {len}",
                    v.len()
                )));
            }
        }
        Ok(())
    }

    /// The per-sample scalars of [`LevelData::set`] (status, cost, seed, failure text,
    /// diagnostics), not the output and extras values: what a level whose values stream to
    /// a file (`h5::Stream`) keeps in memory. `i` must be in range.
    pub fn set_scalars(&mut self, i: usize, r: &SampleResult) {
        let n = self.len();
        self.status[i] = r.status;
        self.cost_s[i] = r.cost_s;
        self.seed.get_or_insert_with(|| Array1::zeros(n))[i] = r.seed;
        self.failure.get_or_insert_with(|| vec![String::new(); n])[i] = r.failure.clone();
        for (name, &v) in &r.diagnostics {
            self.diagnostics
                .entry(name.clone())
                .or_insert_with(|| Array1::from_elem(n, f64::NAN))[i] = v;
        }
    }

    /// One sample's result as stored (the inverse of [`LevelData::set`]).
    pub fn get(&self, i: usize) -> SampleResult {
        SampleResult {
            status: self.status[i],
            cost_s: self.cost_s[i],
            seed: self.seed.as_ref().map_or(0, |s| s[i]),
            values: self.outputs.row(i).to_vec(),
            diagnostics: self
                .diagnostics
                .iter()
                .filter(|(_, v)| !v[i].is_nan())
                .map(|(k, v)| (k.clone(), v[i]))
                .collect(),
            failure: self
                .failure
                .as_ref()
                .map_or_else(String::new, |f| f[i].clone()),
            extras: if self.status[i] == STATUS_OK {
                self.extras
                    .iter()
                    .map(|e| (e.name.clone(), e.values.row(i).to_vec()))
                    .collect()
            } else {
                Vec::new()
            },
        }
    }

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
    /// all arrays and attributes except the measured `cost_s`, `offline_cost_s` and the
    /// `created` stamp.
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
                    && x.seed == y.seed
                    && x.failure == y.failure
                    && bits_equal(&x.inputs, &y.inputs)
                    && bits_equal(&x.outputs, &y.outputs)
                    && x.diagnostics.len() == y.diagnostics.len()
                    && x.diagnostics
                        .iter()
                        .zip(&y.diagnostics)
                        .all(|(a, b)| a.0 == b.0 && bits_equal1(a.1, b.1))
                    && x.extras.len() == y.extras.len()
                    && x.extras.iter().zip(&y.extras).all(|(a, b)| {
                        a.name == b.name
                            && a.unit == b.unit
                            && a.shape == b.shape
                            && bits_equal(&a.values, &b.values)
                    })
            })
    }
}

fn bits_equal1(a: &Array1<f64>, b: &Array1<f64>) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

/// Bitwise equality (NaN == NaN for failed samples).
fn bits_equal(a: &Array2<f64>, b: &Array2<f64>) -> bool {
    a.dim() == b.dim()
        && a.iter()
            .zip(b.iter())
            .all(|(x, y)| x.to_bits() == y.to_bits())
}
