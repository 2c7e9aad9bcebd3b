//! mfpipe's physics solvers, one module per problem, all behind [`Simulator`].
//!
//! A new problem is one module implementing [`Simulator`] plus one line in
//! [`registry::all`]. Solvers never see HDF5, burn or terminal output: they take inputs and a
//! level and return values on the problem's common grid.

pub mod burgers;
pub mod cem;
pub mod heat;
pub mod md;
pub mod plasmonic;
pub mod poisson;
pub mod registry;
pub mod synthetic;
pub mod tridiag;

pub use mfpipe_data::{
    sample_seed, Axis, ExtraSpec, Fidelity, InputSpec, OutputSpec, ProblemSpec, Scale,
};
use rayon::prelude::*;
use std::collections::BTreeMap;
use thiserror::Error;

/// One solve to do: an input vector at a level, with the sample's seed. The seed comes from
/// [`sample_seed`] (run seed + input bits), so every level of one input gets the same one.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub x: Vec<f64>,
    pub level: usize,
    pub seed: u64,
}

impl Sample {
    /// The sample of `x` at `level` in a run seeded with `run_seed`.
    pub fn new(x: Vec<f64>, level: usize, run_seed: u64) -> Self {
        let seed = sample_seed(run_seed, &x);
        Self { x, level, seed }
    }
}

/// The result of one solve.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Solution {
    /// Output on the common grid, flattened row-major in axis order.
    pub values: Vec<f64>,
    /// The declared extra arrays, by name, each flattened row-major.
    pub extras: BTreeMap<String, Vec<f64>>,
    /// CPU seconds spent on this sample: the solving thread's (see [`CpuClock`]), or the whole
    /// process's when one solve is itself parallel and samples run one at a time.
    pub cost_s: f64,
    /// Solver diagnostics (iterations, residuals, energy drift, ...), stored with the sample.
    pub diagnostics: BTreeMap<String, f64>,
}

/// Why a solve did not happen or did not succeed. Input problems are shared vocabulary;
/// a solver's own failure is [`SolveError::Failed`], in the solver's words, so a new solver
/// never edits this enum.
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
    /// The solver ran and failed; the reason and whatever diagnostics it had are stored
    /// with the sample (status 1).
    #[error("{reason}")]
    Failed {
        reason: String,
        diagnostics: BTreeMap<String, f64>,
    },
}

impl SolveError {
    /// A solver failure with no diagnostics.
    pub fn failed(reason: impl Into<String>) -> Self {
        Self::Failed {
            reason: reason.into(),
            diagnostics: BTreeMap::new(),
        }
    }
}

/// The results of [`Simulator::solve_batch`]: one per sample, in order, the CPU seconds spent
/// on each (failed ones included: a failure costs too), and the CPU seconds of any shared
/// offline stage per level (absent for problems without one).
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub results: Vec<Result<Solution, SolveError>>,
    pub cost_s: Vec<f64>,
    pub offline_cost_s: BTreeMap<usize, f64>,
}

impl Batch {
    /// A batch from per-sample results, each timed on its own thread.
    pub fn from_timed(timed: Vec<(Result<Solution, SolveError>, f64)>) -> Self {
        let (results, cost_s) = timed
            .into_iter()
            .map(|(r, c)| {
                // A solver's own figure wins: it may exclude set-up that is not the sample's.
                let c = r.as_ref().map_or(c, |s| s.cost_s);
                (r, c)
            })
            .unzip();
        Self {
            results,
            cost_s,
            offline_cost_s: BTreeMap::new(),
        }
    }
}

/// Solve `s` and measure the calling thread's CPU seconds, success or failure.
pub fn timed_solve(
    sim: &(impl Simulator + ?Sized),
    s: &Sample,
) -> (Result<Solution, SolveError>, f64) {
    let clock = CpuClock::start();
    let r = sim.solve(s);
    (r, clock.seconds())
}

/// A physics problem at several fidelities.
pub trait Simulator: Send + Sync {
    /// Name, summary, inputs, fidelities, output grid and declared extras.
    fn spec(&self) -> &ProblemSpec;

    /// Solve one sample (0 = cheapest level). Implementations call [`check_sample`] first.
    fn solve(&self, s: &Sample) -> Result<Solution, SolveError>;

    /// Solve many samples. The default is a parallel map over [`Simulator::solve`] (rayon,
    /// one sample per task, each solve single-threaded, so results do not depend on the thread
    /// count). Override it when samples share an offline stage (build it once, report its cost
    /// in [`Batch::offline_cost_s`]) or when one solve is parallel inside (solve one sample
    /// after another).
    fn solve_batch(&self, batch: &[Sample]) -> Batch {
        Batch::from_timed(batch.par_iter().map(|s| timed_solve(self, s)).collect())
    }

    /// The first level whose single solve takes more than a few CPU-seconds (default: none,
    /// the number of levels). The conformance tests and `pipeline bench` without `--levels`
    /// stop below it; every level stays available to every command.
    fn heavy_from(&self) -> usize {
        self.spec().fidelities.len()
    }

    /// Whether the levels are refinements converging to one solution (meshes, time steps):
    /// then the trade-off ladder reports an observed convergence order. False for problems
    /// whose levels are different systems (plasmonic: arrays of 2 to 10 000 spheres).
    fn levels_refine(&self) -> bool {
        true
    }

    /// Solve `x` at `level` as sample of a run seeded 0 (for one-off solves and tests).
    fn solve_at(&self, x: &[f64], level: usize) -> Result<Solution, SolveError> {
        self.solve(&Sample::new(x.to_vec(), level, 0))
    }

    /// The problem's name (shorthand for `spec().name`).
    fn name(&self) -> &'static str {
        self.spec().name
    }

    /// Resolve a fidelity given as a level number or a level name.
    fn fidelity(&self, key: &str) -> Result<&Fidelity, SolveError> {
        let spec = self.spec();
        spec.fidelity(key)
            .ok_or_else(|| SolveError::UnknownFidelity {
                problem: spec.name,
                level: key.to_string(),
                max: spec.fidelities.len().saturating_sub(1),
                names: spec.level_names(),
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

/// Check a sample's inputs and level against `spec`.
pub fn check_sample(spec: &ProblemSpec, s: &Sample) -> Result<(), SolveError> {
    check_inputs(spec.name, &spec.inputs, &s.x)?;
    if s.level >= spec.fidelities.len() {
        return Err(SolveError::UnknownFidelity {
            problem: spec.name,
            level: s.level.to_string(),
            max: spec.fidelities.len().saturating_sub(1),
            names: spec.level_names(),
        });
    }
    Ok(())
}

/// CPU time of the calling thread. A sample's cost is the CPU its thread spent, not wall time:
/// with samples solved in parallel, wall time counts the waits of a contended machine, and
/// the trade-off study budgets in CPU-seconds.
#[derive(Debug, Clone, Copy)]
pub struct CpuClock(f64);

impl CpuClock {
    pub fn start() -> Self {
        Self(thread_cpu_seconds())
    }
    /// CPU seconds of this thread since [`CpuClock::start`].
    pub fn seconds(&self) -> f64 {
        (thread_cpu_seconds() - self.0).max(0.0)
    }
}

/// CPU seconds consumed by the calling thread (`CLOCK_THREAD_CPUTIME_ID`).
pub fn thread_cpu_seconds() -> f64 {
    clock_seconds(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// CPU seconds consumed by the whole process, all threads (`CLOCK_PROCESS_CPUTIME_ID`): the
/// cost of a solve that is itself parallel.
pub fn process_cpu_seconds() -> f64 {
    clock_seconds(libc::CLOCK_PROCESS_CPUTIME_ID)
}

fn clock_seconds(clock: libc::clockid_t) -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; clock_gettime only writes into it.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    if rc != 0 {
        return 0.0;
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// Solve many samples of one level (the same run seed) through [`Simulator::solve_batch`].
pub fn solve_many(
    sim: &dyn Simulator,
    xs: &[Vec<f64>],
    level: usize,
    run_seed: u64,
) -> Vec<Result<Solution, SolveError>> {
    let batch: Vec<Sample> = xs
        .iter()
        .map(|x| Sample::new(x.clone(), level, run_seed))
        .collect();
    sim.solve_batch(&batch).results
}
