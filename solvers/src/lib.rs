//! mfpipe's physics solvers, one module per problem, all behind [`Simulator`].
//!
//! A new problem is one module implementing [`Simulator`] plus one line in
//! [`registry::all`]. Solvers never see HDF5, burn or terminal output: they take inputs and a
//! level and return values on the problem's common grid.

pub mod burgers;
pub mod poisson;
pub mod registry;
pub mod synthetic;
pub mod tridiag;

pub use mfpipe_data::{Axis, Fidelity, InputSpec, OutputSpec, Scale};
use rayon::prelude::*;
use std::collections::BTreeMap;
use thiserror::Error;

/// The result of one solve.
#[derive(Debug, Clone, PartialEq)]
pub struct Solution {
    /// Output on the common grid, flattened row-major in axis order.
    pub values: Vec<f64>,
    /// Wall-clock seconds of the solve.
    pub cost_s: f64,
    /// Solver diagnostics (iterations, residuals, energy, ...), reported as-is.
    pub diagnostics: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, Error, PartialEq)]
pub enum SolveError {
    #[error("unknown problem {name:?} (known: {known})")]
    UnknownProblem { name: String, known: String },
    #[error("{problem} expects {expected} inputs, got {got}")]
    InputCount {
        problem: &'static str,
        expected: usize,
        got: usize,
    },
    #[error("input {name} = {value} is not a finite number")]
    NotFinite { name: &'static str, value: f64 },
    #[error("input {name} = {value} is outside its range [{lower}, {upper}]")]
    OutOfRange {
        name: &'static str,
        value: f64,
        lower: f64,
        upper: f64,
    },
    #[error("{problem} has no fidelity {level:?} (levels 0..={max}: {names})")]
    UnknownFidelity {
        problem: &'static str,
        level: String,
        max: usize,
        names: String,
    },
    #[error("Newton did not converge at time step {step} after {iters} iterations (max-norm residual {residual:.3e})")]
    NotConverged {
        step: usize,
        iters: usize,
        residual: f64,
    },
    #[error("singular linear system at row {row}")]
    Singular { row: usize },
}

/// A physics problem at several fidelities.
pub trait Simulator: Send + Sync {
    fn name(&self) -> &'static str;
    /// One-line summary for `pipeline list`.
    fn summary(&self) -> &'static str;
    fn inputs(&self) -> &[InputSpec];
    fn fidelities(&self) -> &[Fidelity];
    fn output(&self) -> OutputSpec;
    /// Solve at `level` (0 = cheapest). Implementations call [`check_inputs`] first.
    fn solve(&self, x: &[f64], level: usize) -> Result<Solution, SolveError>;

    /// Resolve a fidelity given as a level number or a level name.
    fn fidelity(&self, key: &str) -> Result<&Fidelity, SolveError> {
        let fids = self.fidelities();
        fids.iter()
            .find(|f| f.name == key || key.parse::<usize>().ok() == Some(f.level))
            .ok_or_else(|| SolveError::UnknownFidelity {
                problem: self.name(),
                level: key.to_string(),
                max: fids.len().saturating_sub(1),
                names: fids
                    .iter()
                    .map(|f| f.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

/// Validate an input vector against the problem's specs: count, finiteness, range.
pub fn check_inputs(
    problem: &'static str,
    specs: &[InputSpec],
    x: &[f64],
) -> Result<(), SolveError> {
    if x.len() != specs.len() {
        return Err(SolveError::InputCount {
            problem,
            expected: specs.len(),
            got: x.len(),
        });
    }
    for (s, &v) in specs.iter().zip(x) {
        if !v.is_finite() {
            return Err(SolveError::NotFinite {
                name: s.name,
                value: v,
            });
        }
        if v < s.lower || v > s.upper {
            return Err(SolveError::OutOfRange {
                name: s.name,
                value: v,
                lower: s.lower,
                upper: s.upper,
            });
        }
    }
    Ok(())
}

/// Check that `level` exists for `sim`.
pub fn check_level(sim: &dyn Simulator, level: usize) -> Result<(), SolveError> {
    sim.fidelity(&level.to_string()).map(|_| ())
}

/// Solve many samples at one level in parallel (rayon). Results keep the input order, and
/// each solve is single-threaded, so the output does not depend on the thread count.
pub fn solve_many(
    sim: &dyn Simulator,
    xs: &[Vec<f64>],
    level: usize,
) -> Vec<Result<Solution, SolveError>> {
    xs.par_iter().map(|x| sim.solve(x, level)).collect()
}
