//! `cem-steady`, `cem-heat`, `cem-richards`: CEM-GMsFEM multiscale model reduction (Chung,
//! Efendiev, Leung 2018) on the three model problems of the multi-stage learning paper, with the
//! CEM levels as fidelities.
//!
//! Fine scale: 100 x 100 bilinear (Q1) elements on (0, 1)^2, h = 0.01, the conductivity
//! constant on each fine element (evaluated at its centre), u = 0 on the boundary
//! ([`fem`]). Coarse scale: 10 x 10 cells, H = 0.1, and the CEM multiscale space of
//! [`basis`] with L_i = 1, 2, 3 functions per cell (levels 0, 1, 2), m = 3 oversampling layers
//! by default ([`LAYERS`]), the relaxed form by default. Level 3 is the fine FEM solution itself. Output:
//! the solution (at the terminal time for the transient problems) on the 100 x 100 grid
//! x_i = i/99, y_j = j/99, bilinear in the fine Q1 function.
//!
//! - `cem-steady` (multi-stage paper Sec. 5): -div(kappa grad u) = 1 with
//!   kappa = kappa0 + |kappa1| + |kappa2|, kappa0 = 8 + p0,
//!   kappa1 = e^{x1 + x2 + p1} cos(2 pi x2/eps) sin(2 pi x1/eps),
//!   kappa2 = e^{x1 x2 + p2} cos(2 pi x1/eps) sin(2 pi x2/eps), eps = 0.1; inputs p0 in [-2, 2],
//!   p1 in [-1.2, 1.2], p2 in [-1.5, 1.5]. Every sample has its own field, so its multiscale
//!   basis is its own: the basis construction is part of the sample's cost (diagnostic
//!   `basis_s`), not a shared offline stage.
//! - `cem-heat` (Sec. 4.1, linear case): u_t = div(kappa grad u) + f on (0, pi], u = 0 at t = 0
//!   and on the boundary, 31 backward-Euler steps (dt = pi/31); the source f of eq. (5): five
//!   rectangles carrying e^{1 + cos t} + xi1, -e^{1 + cos t} + xi2, 6 cos t + xi3,
//!   t^2/2 + 0.5 + xi4, -(pi - t)^2/2 + xi5 with inputs xi1..xi5 in [-0.5, 0.5]. The
//!   conductivity is the fixed high-contrast field of [`high_contrast`]: background 1 with
//!   channels and inclusions of 1e4.
//! - `cem-richards` (Sec. 4.1, nonlinear case): the same with the conductivity
//!   a(x, u) = kappa(x) exp(gamma u), gamma = 20, Picard iterations per time step (on the
//!   coarse system for the CEM levels, with the basis built once from kappa).
//!
//! For the two transient problems the field is fixed, so each basis is built once per process
//! ([`Simulator::solve_batch`] builds it before the samples and reports its CPU time as the
//! level's `offline_cost_s`); a sample's cost is its online work only.
//!
//! Extras (what the multi-stage model needs), at every level:
//! - `cem-steady`: the coarse-cell means of |kappa0|, |kappa1|, |kappa2| (over the cell's fine
//!   elements: the components that enter kappa, since the signed kappa1, kappa2 average to about
//!   zero over a cell of one period) and of this level's solution (`u_mean`), and kappa
//!   max-pooled over each cell (`kappa_maxpool`, the paper's raw-data reduction), each
//!   [10, 10] indexed (x, y).
//! - `cem-heat` / `cem-richards`: `source_proj_1..3` [31, 10, 10]: the Galerkin loads
//!   int f(t_k) psi_j^(i) of the source at t_k = k dt, k = 1..31, on the 1st, 2nd and 3rd CEM basis
//!   function of each cell (the L_i = 3 space), indexed (k, x, y); and `coarse_coeffs`
//!   [10, 10, 3]: u_H = (R^T R)^-1 R^T u_h, the least-squares coefficients of this level's
//!   terminal solution in the L_i = 3 space (the paper's learning target at level 3); and
//!   `source_maxpool` [31, 10, 10]: the source max-pooled over each coarse cell (pool 10,
//!   stride 10), the paper's raw-data reduction.
//!
//! Options (read when the problem is built, like the plasmonic ones): `MFPIPE_CEM_LAYERS`
//! (m, default 3) and `MFPIPE_CEM_FORM` (`relaxed` | `constrained`).

pub mod basis;
pub mod fem;

use crate::{
    check_sample, process_cpu_seconds, Axis, Batch, CpuClock, ExtraSpec, Fidelity, InputSpec,
    OutputSpec, ProblemSpec, Sample, Scale, Simulator, Solution, SolveError,
};
use basis::{CemSpace, Form, Options};
use faer::linalg::solvers::{Llt, Solve};
use faer::{Mat, Side};
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::f64::consts::PI;
use std::sync::{Arc, OnceLock};

/// Fine elements per side.
pub const FINE: usize = 100;
/// Coarse cells per side.
pub const COARSE: usize = 10;
/// Backward-Euler steps of the transient problems over (0, pi].
pub const STEPS: usize = 31;
/// The nonlinearity of `cem-richards`: a = kappa exp(GAMMA u).
pub const GAMMA: f64 = 20.0;
/// The high conductivity of the channels and inclusions of `cem-heat` / `cem-richards`.
pub const CONTRAST: f64 = 1e4;
/// The period of the `cem-steady` oscillations.
pub const EPS: f64 = 0.1;
const GRID: usize = 100;
/// Default oversampling layers m. DESIGN's 2 makes the CEM errors grow with L_i on all three
/// problems (the localisation error of more constraints outweighs the richer space); from 3 on
/// they fall with L_i (docs/decisions.md has the measurements). `MFPIPE_CEM_LAYERS` sets it.
pub const LAYERS: usize = 3;
/// Basis functions per cell at the CEM levels 0, 1, 2.
const PER_CELL: [usize; 3] = [1, 2, 3];
/// Picard: stop when the update's max norm is below this fraction of the iterate's.
const PICARD_TOL: f64 = 1e-9;
const PICARD_MAX: usize = 100;

/// Which model problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Steady,
    Heat,
    Richards,
}

/// Options that change the CEM levels (not the problem).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CemOptions {
    pub layers: usize,
    pub form: Form,
}

impl Default for CemOptions {
    fn default() -> Self {
        Self {
            layers: LAYERS,
            form: Form::Relaxed,
        }
    }
}

impl CemOptions {
    /// The defaults overridden by `MFPIPE_CEM_LAYERS` and `MFPIPE_CEM_FORM`.
    pub fn from_env() -> Result<Self, String> {
        let mut o = Self::default();
        if let Ok(v) = std::env::var("MFPIPE_CEM_LAYERS") {
            o.layers = v
                .trim()
                .parse()
                .ok()
                .filter(|m| (1..=COARSE).contains(m))
                .ok_or_else(|| {
                    format!(
                        "MFPIPE_CEM_LAYERS={v:?} is not a whole number of layers in 1..={COARSE}"
                    )
                })?;
        }
        if let Ok(v) = std::env::var("MFPIPE_CEM_FORM") {
            o.form = match v.trim() {
                "relaxed" => Form::Relaxed,
                "constrained" => Form::Constrained,
                _ => {
                    return Err(format!(
                        "MFPIPE_CEM_FORM={v:?} is not one of relaxed, constrained"
                    ))
                }
            };
        }
        Ok(o)
    }
}

/// The centre of fine element e of the n x n grid.
fn centre(n: usize, e: usize) -> (f64, f64) {
    let h = 1.0 / n as f64;
    (((e % n) as f64 + 0.5) * h, ((e / n) as f64 + 0.5) * h)
}

/// The `cem-steady` conductivity per fine element and its three components
/// (kappa0, |kappa1|, |kappa2|), for inputs p = [p0, p1, p2].
pub fn steady_kappa(n: usize, p: &[f64]) -> (Vec<f64>, [Vec<f64>; 3]) {
    let mut parts: [Vec<f64>; 3] = Default::default();
    for e in 0..n * n {
        let (x1, x2) = centre(n, e);
        let w = 2.0 * PI / EPS;
        parts[0].push(8.0 + p[0]);
        parts[1].push(((x1 + x2 + p[1]).exp() * (w * x2).cos() * (w * x1).sin()).abs());
        parts[2].push(((x1 * x2 + p[2]).exp() * (w * x1).cos() * (w * x2).sin()).abs());
    }
    let kappa = (0..n * n)
        .map(|e| parts[0][e] + parts[1][e] + parts[2][e])
        .collect();
    (kappa, parts)
}

/// The high-contrast conductivity of `cem-heat` / `cem-richards` on the n x n grid (n a
/// multiple of 100 keeps every feature on whole elements), with `contrast` in the features and
/// 1 elsewhere. In coarse-cell units (H = 0.1):
/// - four horizontal channels y in [0.11, 0.13], [0.37, 0.39], [0.51, 0.53], [0.77, 0.79], each
///   running x in [0.05, 0.95] (they cross eight or nine coarse cells and end inside the first
///   and last);
/// - square inclusions [0.04, 0.06]^2 offset inside every coarse cell (cx, cy) with cx + cy even
///   (50 of them), clear of the channels.
///
/// So no coarse cell holds more than one channel piece and one inclusion. Functions constant
/// on each high-conductivity region carry almost all the s-weight at a tiny energy, so a cell
/// has as many small local eigenvalues as such regions (the constant mode's 0 among them):
/// two at most, which L_i >= 2 captures.
pub fn high_contrast(n: usize, contrast: f64) -> Vec<f64> {
    const CHANNELS: [(f64, f64); 4] = [(0.11, 0.13), (0.37, 0.39), (0.51, 0.53), (0.77, 0.79)];
    (0..n * n)
        .map(|e| {
            let (x, y) = centre(n, e);
            let channel =
                (0.05..=0.95).contains(&x) && CHANNELS.iter().any(|&(a, b)| y > a && y < b);
            let (cx, cy) = ((x * 10.0).floor(), (y * 10.0).floor());
            let (ox, oy) = (x - 0.1 * cx, y - 0.1 * cy);
            let inclusion = ((cx + cy) as usize).is_multiple_of(2)
                && ox > 0.04
                && ox < 0.06
                && oy > 0.04
                && oy < 0.06;
            if channel || inclusion {
                contrast
            } else {
                1.0
            }
        })
        .collect()
}

/// The source of eq. (5) at time t for xi = [xi1..xi5], per fine element (its centre decides
/// which rectangle it is in; the rectangles' sides lie on element edges for n = 100).
pub fn source(n: usize, t: f64, xi: &[f64]) -> Vec<f64> {
    // (x range, y range, value) of each rectangle.
    type Patch = ((f64, f64), (f64, f64), f64);
    let boxes: [Patch; 5] = [
        ((0.15, 0.25), (0.8, 0.9), (1.0 + t.cos()).exp() + xi[0]),
        ((0.8, 0.9), (0.3, 0.4), -(1.0 + t.cos()).exp() + xi[1]),
        ((0.2, 0.3), (0.15, 0.25), 6.0 * t.cos() + xi[2]),
        ((0.8, 0.9), (0.45, 0.55), 0.5 * t * t + 0.5 + xi[3]),
        ((0.2, 0.3), (0.3, 0.4), -0.5 * (PI - t).powi(2) + xi[4]),
    ];
    (0..n * n)
        .map(|e| {
            let (x, y) = centre(n, e);
            boxes
                .iter()
                .find(|((x0, x1), (y0, y1), _)| x > *x0 && x < *x1 && y > *y0 && y < *y1)
                .map_or(0.0, |b| b.2)
        })
        .collect()
}

/// The CEM Galerkin solution of -div(kappa grad u) = f (f per element) in `space`: the nodal
/// function R c and the coefficients c.
pub fn solve_steady(
    space: &CemSpace,
    kappa: &[f64],
    f: &[f64],
) -> Result<(Vec<f64>, Vec<f64>), SolveError> {
    let k = space.coarse_matrix(kappa, 0.0);
    let rhs = space.project(&fem::load_const(space.n, f));
    let c = dense_solve(&k, &rhs)?;
    Ok((space.expand(&c), c))
}

fn dense_llt(a: &Mat<f64>) -> Result<Llt<f64>, SolveError> {
    a.llt(Side::Lower).map_err(|e| {
        SolveError::failed(format!("the coarse system is not positive definite: {e:?}"))
    })
}

fn dense_solve(a: &Mat<f64>, b: &[f64]) -> Result<Vec<f64>, SolveError> {
    Ok(llt_solve(&dense_llt(a)?, b))
}

fn llt_solve(llt: &Llt<f64>, b: &[f64]) -> Vec<f64> {
    let x = llt.solve(Mat::<f64>::from_fn(b.len(), 1, |r, _| b[r]));
    (0..b.len()).map(|r| x[(r, 0)]).collect()
}

/// The coarse-cell maxima of a per-element field (max-pooling, pool 10, stride 10), indexed
/// (x, y).
fn cell_max(field: &[f64]) -> Vec<f64> {
    let r = FINE / COARSE;
    let mut out = vec![f64::NEG_INFINITY; COARSE * COARSE];
    for (e, &v) in field.iter().enumerate() {
        let slot = &mut out[((e % FINE) / r) * COARSE + (e / FINE) / r];
        *slot = slot.max(v);
    }
    out
}

/// The coarse-cell means of a per-element field, indexed (x, y).
fn cell_means(field: &[f64]) -> Vec<f64> {
    let r = FINE / COARSE;
    let mut out = vec![0.0; COARSE * COARSE];
    for (e, v) in field.iter().enumerate() {
        let (ex, ey) = (e % FINE, e / FINE);
        out[(ex / r) * COARSE + ey / r] += v / (r * r) as f64;
    }
    out
}

/// What a transient problem shares across samples at one CEM space: the space, its coarse mass
/// matrix and the factored step matrix of the linear problem.
struct Shared {
    space: CemSpace,
    mass: Mat<f64>,
    /// Cholesky of M_H / dt + A_H (the linear problem's step matrix).
    step: Llt<f64>,
    /// Cholesky of R^T R (built for the L_i = 3 space, which the extras use).
    gram: Option<Llt<f64>>,
}

/// The three CEM problems.
pub struct Cem {
    kind: Kind,
    spec: ProblemSpec,
    opts: Result<CemOptions, String>,
    kappa: Vec<f64>,
    /// Per CEM level (L_i = 1, 2, 3): the shared space of a transient problem, built once.
    shared: [OnceLock<Result<Arc<Shared>, SolveError>>; 3],
}

impl Cem {
    /// The problem with the options of the environment.
    pub fn new(kind: Kind) -> Self {
        Self::build(kind, CemOptions::from_env())
    }

    pub fn with_options(kind: Kind, opts: CemOptions) -> Self {
        Self::build(kind, Ok(opts))
    }

    fn build(kind: Kind, opts: Result<CemOptions, String>) -> Self {
        let o = opts.clone().unwrap_or_default();
        let form = match o.form {
            Form::Relaxed => "relaxed",
            Form::Constrained => "constrained",
        };
        let mut fidelities: Vec<Fidelity> = PER_CELL
            .iter()
            .enumerate()
            .map(|(level, &l)| Fidelity {
                level,
                name: format!("cem{l}"),
                description: format!(
                    "CEM-GMsFEM, {COARSE}x{COARSE} coarse cells, {l} basis function(s) per cell, {} oversampling layers ({form} form), on {FINE}x{FINE} Q1 elements",
                    o.layers
                ),
                settings: vec![
                    ("basis_per_cell".into(), l as f64),
                    ("oversampling_layers".into(), o.layers as f64),
                    ("coarse_cells".into(), COARSE as f64),
                    ("fine_elements".into(), FINE as f64),
                    ("constrained_form".into(), f64::from(o.form == Form::Constrained)),
                ],
            })
            .collect();
        fidelities.push(Fidelity {
            level: 3,
            name: "fine".into(),
            description: format!("Q1 finite elements on {FINE}x{FINE} elements, sparse Cholesky"),
            settings: vec![("fine_elements".into(), FINE as f64)],
        });
        let unit = |name| InputSpec {
            name,
            unit: "1",
            lower: -0.5,
            upper: 0.5,
            scale: Scale::Linear,
        };
        let (name, summary, inputs, kappa) = match kind {
            Kind::Steady => (
                "cem-steady",
                "-div(kappa grad u) = 1 with an oscillating kappa(p0, p1, p2), CEM-GMsFEM levels (L_i = 1, 2, 3) and the fine Q1 FEM; output u(x, y) on a 100x100 grid",
                vec![
                    InputSpec { name: "p0", lower: -2.0, upper: 2.0, ..unit("p0") },
                    InputSpec { name: "p1", lower: -1.2, upper: 1.2, ..unit("p1") },
                    InputSpec { name: "p2", lower: -1.5, upper: 1.5, ..unit("p2") },
                ],
                Vec::new(),
            ),
            Kind::Heat => (
                "cem-heat",
                "u_t = div(kappa grad u) + f(xi1..xi5) in a high-contrast medium to t = pi, CEM-GMsFEM levels (L_i = 1, 2, 3) and the fine Q1 FEM; output u(x, y, pi) on a 100x100 grid",
                ["xi1", "xi2", "xi3", "xi4", "xi5"].map(unit).to_vec(),
                high_contrast(FINE, CONTRAST),
            ),
            Kind::Richards => (
                "cem-richards",
                "u_t = div(kappa e^{20u} grad u) + f(xi1..xi5) in a high-contrast medium to t = pi (Picard), CEM-GMsFEM levels (L_i = 1, 2, 3) and the fine Q1 FEM; output u(x, y, pi) on a 100x100 grid",
                ["xi1", "xi2", "xi3", "xi4", "xi5"].map(unit).to_vec(),
                high_contrast(FINE, CONTRAST),
            ),
        };
        let extras = match kind {
            Kind::Steady => [
                "kappa0_mean",
                "kappa1_mean",
                "kappa2_mean",
                "kappa_maxpool",
                "u_mean",
            ]
            .map(|n| ExtraSpec {
                name: n.into(),
                unit: "1".into(),
                shape: vec![COARSE, COARSE],
            })
            .to_vec(),
            Kind::Heat | Kind::Richards => {
                let mut v: Vec<ExtraSpec> = (1..=3)
                    .map(|j| ExtraSpec {
                        name: format!("source_proj_{j}"),
                        unit: "1".into(),
                        shape: vec![STEPS, COARSE, COARSE],
                    })
                    .collect();
                v.push(ExtraSpec {
                    name: "source_maxpool".into(),
                    unit: "1".into(),
                    shape: vec![STEPS, COARSE, COARSE],
                });
                v.push(ExtraSpec {
                    name: "coarse_coeffs".into(),
                    unit: "1".into(),
                    shape: vec![COARSE, COARSE, 3],
                });
                v
            }
        };
        Self {
            kind,
            spec: ProblemSpec {
                name,
                summary,
                inputs,
                fidelities,
                output: OutputSpec {
                    name: "u".into(),
                    unit: "1".into(),
                    axes: vec![
                        Axis::uniform("x", "1", 0.0, 1.0, GRID),
                        Axis::uniform("y", "1", 0.0, 1.0, GRID),
                    ],
                },
                extras,
            },
            opts,
            kappa,
            shared: Default::default(),
        }
    }

    fn options(&self) -> Result<CemOptions, SolveError> {
        self.opts.clone().map_err(SolveError::failed)
    }

    fn space_options(&self, per_cell: usize) -> Result<Options, SolveError> {
        let o = self.options()?;
        Ok(Options {
            coarse: COARSE,
            per_cell,
            layers: o.layers,
            form: o.form,
        })
    }

    /// The shared space with `per_cell` functions of a transient problem, built on first use.
    fn shared(&self, per_cell: usize) -> Result<Arc<Shared>, SolveError> {
        self.shared[per_cell - 1]
            .get_or_init(|| {
                let space = CemSpace::build(FINE, &self.kappa, self.space_options(per_cell)?)?;
                let mass = space.coarse_matrix(&vec![0.0; FINE * FINE], 1.0);
                let stiff = space.coarse_matrix(&self.kappa, 0.0);
                let dt = PI / STEPS as f64;
                let step = dense_llt(&(&mass * (1.0 / dt) + &stiff))?;
                let gram = if per_cell == 3 {
                    Some(dense_llt(&space.gram())?)
                } else {
                    None
                };
                Ok(Arc::new(Shared {
                    space,
                    mass,
                    step,
                    gram,
                }))
            })
            .clone()
    }

    /// The output on the common grid from a fine nodal function.
    fn on_grid(&self, u: &[f64]) -> Vec<f64> {
        let axes = &self.spec.output.axes;
        let mut out = Vec::with_capacity(GRID * GRID);
        for &x in &axes[0].values {
            for &y in &axes[1].values {
                out.push(fem::interpolate(FINE, u, x, y));
            }
        }
        out
    }

    fn steady(&self, s: &Sample) -> Result<Solution, SolveError> {
        let clock = CpuClock::start();
        let (kappa, parts) = steady_kappa(FINE, &s.x);
        let f = vec![1.0; FINE * FINE];
        let mut diagnostics = BTreeMap::new();
        let u = if s.level == 3 {
            diagnostics.insert("unknowns".into(), ((FINE - 1) * (FINE - 1)) as f64);
            fem::solve_dirichlet(FINE, &kappa, &fem::load_const(FINE, &f))?
        } else {
            let space =
                CemSpace::build_serial(FINE, &kappa, self.space_options(PER_CELL[s.level])?)?;
            let basis_s = clock.seconds();
            let (u, _) = solve_steady(&space, &kappa, &f)?;
            diagnostics.insert("basis_s".into(), basis_s);
            diagnostics.insert("online_s".into(), clock.seconds() - basis_s);
            diagnostics.insert("coarse_dim".into(), space.dim() as f64);
            diagnostics.insert("lambda_excluded_min".into(), space.lambda_excluded_min());
            u
        };
        let mut extras = BTreeMap::new();
        for (name, part) in ["kappa0_mean", "kappa1_mean", "kappa2_mean"]
            .iter()
            .zip(&parts)
        {
            extras.insert(name.to_string(), cell_means(part));
        }
        extras.insert("u_mean".into(), cell_means(&fem::element_means(FINE, &u)));
        extras.insert("kappa_maxpool".into(), cell_max(&kappa));
        Ok(Solution {
            values: self.on_grid(&u),
            extras,
            cost_s: clock.seconds(),
            diagnostics,
        })
    }

    fn transient(&self, s: &Sample) -> Result<Solution, SolveError> {
        // The shared spaces first, outside the sample's clock: they are the offline stage.
        let full = self.shared(3)?;
        let own = if s.level < 3 {
            Some(self.shared(PER_CELL[s.level])?)
        } else {
            None
        };
        let clock = CpuClock::start();
        let dt = PI / STEPS as f64;
        let sources: Vec<Vec<f64>> = (1..=STEPS)
            .map(|k| source(FINE, k as f64 * dt, &s.x))
            .collect();
        let loads: Vec<Vec<f64>> = sources.iter().map(|f| fem::load_const(FINE, f)).collect();
        // The raw source max-pooled over each coarse cell, per time level.
        let pooled: Vec<f64> = sources.iter().flat_map(|f| cell_max(f)).collect();
        let mut diagnostics = BTreeMap::new();
        let u = match (&own, self.kind) {
            (None, Kind::Heat) => fine_heat(&self.kappa, &loads, dt)?,
            (None, _) => fine_richards(&self.kappa, &loads, dt, &mut diagnostics)?,
            (Some(sh), Kind::Heat) => {
                let mut c = vec![0.0; sh.space.dim()];
                for load in &loads {
                    let mut rhs = matvec(&sh.mass, &c, 1.0 / dt);
                    for (r, p) in rhs.iter_mut().zip(sh.space.project(load)) {
                        *r += p;
                    }
                    c = llt_solve(&sh.step, &rhs);
                }
                sh.space.expand(&c)
            }
            (Some(sh), _) => coarse_richards(sh, &self.kappa, &loads, dt, &mut diagnostics)?,
        };
        // The extras, in the L_i = 3 space: source loads per time level and the coefficients.
        let dim = full.space.dim();
        let mut proj = vec![vec![0.0; STEPS * COARSE * COARSE]; 3];
        for (k, load) in loads.iter().enumerate() {
            let p = full.space.project(load);
            for cell in 0..COARSE * COARSE {
                let (cx, cy) = (cell % COARSE, cell / COARSE);
                for (j, pj) in proj.iter_mut().enumerate() {
                    pj[(k * COARSE + cx) * COARSE + cy] = p[cell * 3 + j];
                }
            }
        }
        let gram = full
            .gram
            .as_ref()
            .expect("the L_i = 3 space keeps its Gram factor");
        let coeffs = llt_solve(gram, &full.space.project(&u));
        let mut coarse = vec![0.0; dim];
        for cell in 0..COARSE * COARSE {
            let (cx, cy) = (cell % COARSE, cell / COARSE);
            for j in 0..3 {
                coarse[(cx * COARSE + cy) * 3 + j] = coeffs[cell * 3 + j];
            }
        }
        let mut extras: BTreeMap<String, Vec<f64>> = proj
            .into_iter()
            .enumerate()
            .map(|(j, p)| (format!("source_proj_{}", j + 1), p))
            .collect();
        extras.insert("coarse_coeffs".into(), coarse);
        extras.insert("source_maxpool".into(), pooled);
        if let Some(sh) = &own {
            diagnostics.insert("coarse_dim".into(), sh.space.dim() as f64);
            diagnostics.insert("lambda_excluded_min".into(), sh.space.lambda_excluded_min());
        }
        Ok(Solution {
            values: self.on_grid(&u),
            extras,
            cost_s: clock.seconds(),
            diagnostics,
        })
    }
}

/// y = scale * A x for a dense matrix.
fn matvec(a: &Mat<f64>, x: &[f64], scale: f64) -> Vec<f64> {
    (0..a.nrows())
        .map(|i| scale * (0..a.ncols()).map(|j| a[(i, j)] * x[j]).sum::<f64>())
        .collect()
}

/// The fine backward-Euler march of the linear heat problem: one factorisation, 31 solves.
fn fine_heat(kappa: &[f64], loads: &[Vec<f64>], dt: f64) -> Result<Vec<f64>, SolveError> {
    let rect = fem::Rect::whole(FINE)?;
    let factor = rect.factor(&rect.matrix(kappa, 1.0 / dt))?;
    let mut u = vec![0.0; (FINE + 1) * (FINE + 1)];
    for load in loads {
        let mu = fem::mass_apply(FINE, &u);
        let rhs: Vec<f64> = mu.iter().zip(load).map(|(m, f)| m / dt + f).collect();
        u = rect.extend(&factor.solve(&rect.restrict(&rhs)));
    }
    Ok(u)
}

/// The conductivity kappa e^{gamma u} per element, u its element mean.
fn richards_coef(kappa: &[f64], u: &[f64]) -> Vec<f64> {
    fem::element_means(FINE, u)
        .iter()
        .zip(kappa)
        .map(|(m, k)| k * (GAMMA * m).exp())
        .collect()
}

fn record_picard(diagnostics: &mut BTreeMap<String, f64>, total: usize, most: usize) {
    diagnostics.insert("picard_iterations".into(), total as f64);
    diagnostics.insert("picard_max_per_step".into(), most as f64);
}

/// One step's fixed point by the lagged iteration both Richards levels use: `iterate` does
/// one update and returns (max |update|, max |iterate|); stop when the first is below
/// PICARD_TOL of the second. Returns the iterations taken; PICARD_MAX without converging is a
/// failure naming the step and the level.
fn converge(
    step: usize,
    level: &str,
    mut iterate: impl FnMut() -> (f64, f64),
) -> Result<usize, SolveError> {
    let mut rel = f64::NAN;
    for it in 1..=PICARD_MAX {
        let (d, scale) = iterate();
        if d <= PICARD_TOL * scale {
            return Ok(it);
        }
        rel = d / scale;
    }
    Err(SolveError::failed(format!(
        "{level} Picard iteration did not converge at step {} after {PICARD_MAX} iterations (relative change {rel:.2e})",
        step + 1
    )))
}

fn max_abs(v: &[f64]) -> f64 {
    v.iter().fold(0.0f64, |a, x| a.max(x.abs()))
}

/// The fine Richards march: per step, the Picard fixed point (M/dt + A(u)) u = M u_old/dt + F,
/// the matrix assembled and factored once per step at the step's first iterate, then
/// u += K_0^-1 (rhs - K(u) u) with exact residuals: the same fixed point as refactoring at every
/// iteration, for one numeric Cholesky per step instead of one per iteration.
fn fine_richards(
    kappa: &[f64],
    loads: &[Vec<f64>],
    dt: f64,
    diagnostics: &mut BTreeMap<String, f64>,
) -> Result<Vec<f64>, SolveError> {
    let rect = fem::Rect::whole(FINE)?;
    let mut u = vec![0.0; (FINE + 1) * (FINE + 1)];
    let (mut total, mut most) = (0, 0);
    for (step, load) in loads.iter().enumerate() {
        let mu = fem::mass_apply(FINE, &u);
        let rhs: Vec<f64> = mu.iter().zip(load).map(|(m, f)| m / dt + f).collect();
        let factor = rect.factor(&rect.matrix(&richards_coef(kappa, &u), 1.0 / dt))?;
        let it = converge(step, "fine", || {
            let applied = fem::operator_apply(FINE, &richards_coef(kappa, &u), 1.0 / dt, &u);
            let residual: Vec<f64> = rhs.iter().zip(&applied).map(|(r, a)| r - a).collect();
            let delta = rect.extend(&factor.solve(&rect.restrict(&residual)));
            u.iter_mut().zip(&delta).for_each(|(ui, di)| *ui += di);
            (max_abs(&delta), max_abs(&u))
        })?;
        total += it;
        most = most.max(it);
    }
    record_picard(diagnostics, total, most);
    Ok(u)
}

/// The CEM Richards march: per step, the Picard fixed point K(R c) c = M_H c_old / dt + F_H
/// with K(u) = R^T (M/dt + A(kappa e^{gamma u})) R. Assembling K costs a pass over every cell's
/// block of R; its action on c costs one fine operator application and a projection. So each
/// step assembles and factors K once, at the step's first iterate, and iterates
/// c += K_0^-1 (rhs - K(R c) c) to the same fixed point (residuals exact, the matrix lagged):
/// 31 assemblies instead of one per Picard iteration.
fn coarse_richards(
    sh: &Shared,
    kappa: &[f64],
    loads: &[Vec<f64>],
    dt: f64,
    diagnostics: &mut BTreeMap<String, f64>,
) -> Result<Vec<f64>, SolveError> {
    let space = &sh.space;
    let mut c = vec![0.0; space.dim()];
    let mut u = vec![0.0; (FINE + 1) * (FINE + 1)];
    let (mut total, mut most) = (0, 0);
    for (step, load) in loads.iter().enumerate() {
        let mut rhs = matvec(&sh.mass, &c, 1.0 / dt);
        for (r, p) in rhs.iter_mut().zip(space.project(load)) {
            *r += p;
        }
        let k0 = dense_llt(&space.coarse_matrix(&richards_coef(kappa, &u), 1.0 / dt))?;
        let it = converge(step, "coarse", || {
            let applied = space.project(&fem::operator_apply(
                FINE,
                &richards_coef(kappa, &u),
                1.0 / dt,
                &u,
            ));
            let residual: Vec<f64> = rhs.iter().zip(&applied).map(|(r, a)| r - a).collect();
            let delta = llt_solve(&k0, &residual);
            c.iter_mut().zip(&delta).for_each(|(ci, di)| *ci += di);
            u = space.expand(&c);
            (max_abs(&delta), max_abs(&c))
        })?;
        total += it;
        most = most.max(it);
    }
    record_picard(diagnostics, total, most);
    Ok(u)
}

impl Simulator for Cem {
    fn spec(&self) -> &ProblemSpec {
        &self.spec
    }

    fn solve(&self, s: &Sample) -> Result<Solution, SolveError> {
        check_sample(&self.spec, s)?;
        self.options()?;
        match self.kind {
            Kind::Steady => self.steady(s),
            Kind::Heat | Kind::Richards => self.transient(s),
        }
    }

    /// The transient problems build each level's shared basis once, before the samples, and
    /// report its CPU time (all threads) as the level's offline cost.
    fn solve_batch(&self, batch: &[Sample]) -> Batch {
        let mut offline = BTreeMap::new();
        if self.kind != Kind::Steady && self.opts.is_ok() {
            let mut levels: Vec<usize> = batch.iter().map(|s| s.level).filter(|&l| l < 4).collect();
            levels.sort_unstable();
            levels.dedup();
            for level in levels {
                let start = process_cpu_seconds();
                let mut built = false;
                for per_cell in [3].into_iter().chain((level < 3).then(|| PER_CELL[level])) {
                    built |= self.shared[per_cell - 1].get().is_none();
                    let _ = self.shared(per_cell);
                }
                if built {
                    offline.insert(level, process_cpu_seconds() - start);
                }
            }
        }
        let mut out = Batch::from_timed(
            batch
                .par_iter()
                .map(|s| crate::timed_solve(self, s))
                .collect(),
        );
        out.offline_cost_s = offline;
        out
    }

    /// The levels are richer spaces (L_i = 1, 2, 3) converging to the fine solution, not mesh
    /// or step refinements: an observed order per level would mean nothing.
    fn levels_refine(&self) -> bool {
        false
    }
}
