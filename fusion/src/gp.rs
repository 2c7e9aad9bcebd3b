//! Gaussian-process regression: the engine under the GP baselines (`gp-hf`, `ar`, `nar`,
//! `gar`).
//!
//! - **Kernel**: a sum of ARD squared-exponential terms, term t over the first `cols[t]` input
//!   columns: k(x, x') = sum_t s_t^2 exp(-1/2 sum_{d < cols[t]} (x_d - x'_d)^2 / l_{t,d}^2), plus
//!   noise s_n^2 on the diagonal. One term is the usual ARD kernel; NARGP's
//!   k_x(x,x') k_f(f,f') + k_d(x,x') is two terms over [x, f] and over x (a product of SE
//!   kernels is one SE kernel over the union of their columns).
//! - **Outputs**: D columns sharing the kernel (PCA coefficients of a field, or one scalar);
//!   the likelihood is the sum over columns.
//! - **Co-kriging** (Kennedy-O'Hagan, fitted jointly): rows of m fidelities, one term for f_1
//!   and one for each delta_t, scaled per row by products of the rhos (see
//!   [`Problem::cokriging`]).
//! - **Mean**: linear in given regressors, its coefficients estimated by generalised least
//!   squares for every kernel and so profiled out of the likelihood. By the envelope theorem
//!   the gradient of the profiled likelihood is the partial gradient at the GLS coefficients.
//! - **Hyperparameters**: maximise the log marginal likelihood with L-BFGS (argmin) from
//!   several starts. Each log-parameter is kept in a box by a smooth map
//!   theta = lo + (hi - lo) sigmoid(u), so the optimiser works unconstrained in u.
//! - **Cholesky** with jitter escalation (1e-10 .. 1e-4 of the signal variance) and a clear
//!   error when even that fails.

use crate::{FusionError, Result};
use argmin::core::{CostFunction, Executor, Gradient, State};
use argmin::solver::linesearch::MoreThuenteLineSearch;
use argmin::solver::quasinewton::LBFGS;
use nalgebra::{Cholesky, DMatrix, DVector, Dyn};
use ndarray::{Array1, Array2, ArrayView2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Settings of the hyperparameter fit, shared by the GP baselines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GpParams {
    /// L-BFGS starts: the first from unit length scales, the others random.
    pub restarts: usize,
    /// L-BFGS iterations per start.
    pub max_iters: usize,
    /// Noise standard deviation in standardised output units; absent = fitted (in
    /// [1e-6, 1]); 0 = noise-free interpolation (only the Cholesky jitter).
    pub noise: Option<f64>,
    /// Reduce field outputs by PCA fitted on the training outputs.
    pub pca: bool,
    pub pca_tol: f64,
    pub max_components: usize,
}

impl Default for GpParams {
    fn default() -> Self {
        Self {
            restarts: 5,
            max_iters: 200,
            noise: None,
            pca: true,
            pca_tol: 1e-6,
            max_components: 32,
        }
    }
}

impl GpParams {
    pub fn check(&self, model: &str) -> Result<()> {
        let bad = |reason: String| {
            Err(FusionError::BadParams {
                model: model.into(),
                reason,
            })
        };
        if self.restarts == 0 || self.max_iters == 0 {
            return bad("restarts and max_iters must be at least 1".into());
        }
        if let Some(n) = self.noise {
            if !(n.is_finite() && (0.0..=1.0).contains(&n)) {
                return bad(format!("noise = {n} must be in [0, 1] (or absent: fitted)"));
            }
        }
        crate::models::OutputReduction::of(self.pca, self.pca_tol, self.max_components).check(model)
    }
}

/// The regressors of a constant mean at n points: a column of ones.
pub fn constant(n: usize) -> Array2<f64> {
    Array2::ones((n, 1))
}

/// No regressors: a zero-mean GP (for outputs already standardised).
pub fn zero_mean(n: usize) -> Array2<f64> {
    Array2::zeros((n, 0))
}

/// A GP with one ARD term over all input columns and a constant mean, hyperparameters as
/// `p` says: `gp-hf`, and the low-fidelity GPs of `nar` and `gar`.
pub fn fit_constant_mean(
    model: &str,
    x: ArrayView2<f64>,
    y: ArrayView2<f64>,
    p: &GpParams,
    max_iters: usize,
    seed: u64,
) -> Result<Gp> {
    let h = constant(x.nrows());
    Problem::new(model, vec![x.ncols()], p.noise, x, y, h.view()).fit(p.restarts, max_iters, seed)
}

/// Layout of the hyperparameter vector: for each term its log length scales then its log
/// signal std; with co-kriging rows of m levels, rho_0..rho_{m-2}; then (if fitted) the log
/// noise std, one per level (one in all without co-kriging).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Layout {
    cols: Vec<usize>,
    fixed_noise: Option<f64>,
    /// Co-kriging (Kennedy-O'Hagan fitted jointly): the level (0 = cheapest) of every training
    /// row. With m levels, f_t = rho_{t-1} f_{t-1} + delta_t, the kernel has m terms (f_1, then
    /// delta_2..delta_m), and term t on a row of level l is scaled by
    /// s_t(l) = rho_t rho_{t+1} ... rho_{l-1} (1 when l = t, 0 when l < t), so that
    /// cov(f_l(x), f_l'(x')) = sum_t s_t(l) s_t(l') k_t(x, x'). Two levels give the usual
    /// cov(f_H, f_H) = rho^2 k_L + k_delta and cov(f_H, f_L) = rho k_L.
    cokriging: Option<Vec<usize>>,
}

/// Hyperparameters in natural units.
struct Hyper {
    ls: Vec<Vec<f64>>,
    s2: Vec<f64>,
    /// Noise variance of each level's rows (one entry without co-kriging).
    n2: Vec<f64>,
    /// rho_0..rho_{m-2} (empty without co-kriging).
    rho: Vec<f64>,
}

impl Hyper {
    /// Scale of term t on a row of `level`.
    fn scale(&self, cokriging: bool, t: usize, level: usize) -> f64 {
        if !cokriging {
            return 1.0;
        }
        if level < t {
            return 0.0;
        }
        self.rho[t..level].iter().product()
    }
    /// d scale(t, level) / d rho_j.
    fn dscale(&self, t: usize, level: usize, j: usize) -> f64 {
        if !(t <= j && j < level) {
            return 0.0;
        }
        (t..level)
            .filter(|&i| i != j)
            .map(|i| self.rho[i])
            .product()
    }
}

const RHO: (f64, f64) = (-10.0, 10.0);

const LOG_LEN: (f64, f64) = (-4.605170185988091, 6.907755278982137); // ln 1e-2, ln 1e3
const LOG_SIG: (f64, f64) = (-9.210340371976182, 4.605170185988092); // ln 1e-4, ln 1e2
const LOG_NOISE: (f64, f64) = (-13.815510557964274, 0.0); // ln 1e-6, ln 1
const JITTERS: [f64; 4] = [1e-10, 1e-8, 1e-6, 1e-4];

impl Layout {
    /// Levels of co-kriging rows (1 without co-kriging).
    fn n_levels(&self) -> usize {
        self.cokriging
            .as_ref()
            .map_or(1, |l| l.iter().copied().max().unwrap_or(0) + 1)
    }
    fn bounds(&self) -> Vec<(f64, f64)> {
        let mut b = Vec::new();
        for &c in &self.cols {
            b.extend(std::iter::repeat_n(LOG_LEN, c));
            b.push(LOG_SIG);
        }
        let m = self.n_levels();
        if self.cokriging.is_some() {
            b.extend(std::iter::repeat_n(RHO, m - 1));
        }
        if self.fixed_noise.is_none() {
            b.extend(std::iter::repeat_n(LOG_NOISE, m));
        }
        b
    }
    fn unpack(&self, theta: &[f64]) -> Hyper {
        let mut i = 0;
        let (mut ls, mut s2) = (Vec::new(), Vec::new());
        for &c in &self.cols {
            ls.push(theta[i..i + c].iter().map(|v| v.exp()).collect());
            s2.push((2.0 * theta[i + c]).exp());
            i += c + 1;
        }
        let m = self.n_levels();
        let rho = if self.cokriging.is_some() {
            i += m - 1;
            theta[i - (m - 1)..i].to_vec()
        } else {
            Vec::new()
        };
        let n2 = match self.fixed_noise {
            Some(n) => vec![n * n; m],
            None => theta[i..i + m].iter().map(|t| (2.0 * t).exp()).collect(),
        };
        Hyper { ls, s2, n2, rho }
    }
    /// The level of a training row (0 without co-kriging).
    fn level(&self, row: usize) -> usize {
        self.cokriging.as_ref().map_or(0, |l| l[row])
    }
}

/// A fitted GP.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Gp {
    layout: Layout,
    /// Log hyperparameters (see [`Layout`]).
    pub theta: Vec<f64>,
    /// Training inputs [N, p].
    x: Array2<f64>,
    chol: Cholesky<f64, Dyn>,
    /// K^-1 (Y - mean) [N, D].
    alpha: DMatrix<f64>,
    /// GLS coefficients of the mean [q, D] (one column per output).
    pub beta: DMatrix<f64>,
    /// Log marginal likelihood at `theta`.
    pub lml: f64,
    /// Jitter (relative to the signal variance) the final Cholesky needed.
    pub jitter: f64,
}

fn to_na(a: ArrayView2<f64>) -> DMatrix<f64> {
    DMatrix::from_fn(a.nrows(), a.ncols(), |i, j| a[[i, j]])
}

fn to_nd(a: &DMatrix<f64>) -> Array2<f64> {
    Array2::from_shape_fn((a.nrows(), a.ncols()), |(i, j)| a[(i, j)])
}

/// Training data and everything about it that does not depend on the hyperparameters.
pub struct Problem<'a> {
    model: &'a str,
    layout: Layout,
    x: ArrayView2<'a, f64>,
    y: DMatrix<f64>,
    /// The mean's regressors H [N, p]: Y = H B + GP, B by GLS (one column per output).
    h: DMatrix<f64>,
    /// Squared differences per input column, each [N, N].
    sq: Vec<DMatrix<f64>>,
    /// Starting points a model knows to be plausible, tried after the `restarts` generic ones
    /// (theta vectors, see [`Layout`]).
    hints: Vec<Vec<f64>>,
}

/// The likelihood and what prediction needs, at one theta.
struct Eval {
    lml: f64,
    grad: Vec<f64>,
    chol: Cholesky<f64, Dyn>,
    alpha: DMatrix<f64>,
    beta: DMatrix<f64>,
    jitter: f64,
}

impl<'a> Problem<'a> {
    /// `cols`: the kernel's terms (see the module docs); `x` [N, p] with p >= every cols[t];
    /// `y` [N, D]; `h` the mean's regressors [N, q] ([`constant`] for a constant mean).
    pub fn new(
        model: &'a str,
        cols: Vec<usize>,
        fixed_noise: Option<f64>,
        x: ArrayView2<'a, f64>,
        y: ArrayView2<f64>,
        h: ArrayView2<f64>,
    ) -> Self {
        let n = x.nrows();
        let p = cols.iter().copied().max().unwrap_or(0);
        let sq = (0..p)
            .map(|d| DMatrix::from_fn(n, n, |i, k| (x[[i, d]] - x[[k, d]]).powi(2)))
            .collect();
        Self {
            model,
            layout: Layout {
                cols,
                fixed_noise,
                cokriging: None,
            },
            x,
            y: to_na(y),
            h: to_na(h),
            sq,
            hints: Vec::new(),
        }
    }

    /// One more starting point for [`Problem::fit`], in natural units: per kernel term its
    /// length scales and signal std, and the noise std (ignored when the noise is fixed).
    /// Not for co-kriging (no rho). Values are clamped into the search box.
    pub fn with_start(mut self, ls: &[Vec<f64>], signal: &[f64], noise: f64) -> Self {
        assert!(self.layout.cokriging.is_none(), "hints are for plain GPs");
        let mut t = Vec::new();
        for (l, s) in ls.iter().zip(signal) {
            t.extend(l.iter().map(|v| v.ln()));
            t.push(s.ln());
        }
        if self.layout.fixed_noise.is_none() {
            t.push(noise.ln());
        }
        let bounds = self.layout.bounds();
        assert_eq!(t.len(), bounds.len(), "a start sets every hyperparameter");
        let t = t
            .iter()
            .zip(&bounds)
            .map(|(v, &(lo, hi))| v.clamp(lo, hi))
            .collect();
        self.hints.push(t);
        self
    }

    /// Co-kriging of m fidelities fitted jointly (Kennedy-O'Hagan): `x` and `y` stack the
    /// rows of all levels, `level[i]` is row i's (0 = cheapest, every level 0..m present); the
    /// kernel has an ARD term for f_1 and one for each delta over all `x` columns (see
    /// [`Layout`]). Predictions are of the last level.
    pub fn cokriging(
        model: &'a str,
        fixed_noise: Option<f64>,
        x: ArrayView2<'a, f64>,
        y: ArrayView2<f64>,
        level: Vec<usize>,
        h: ArrayView2<f64>,
    ) -> Self {
        let d = x.ncols();
        let m = level.iter().copied().max().unwrap_or(0) + 1;
        let mut p = Self::new(model, vec![d; m], fixed_noise, x, y, h);
        p.layout.cokriging = Some(level);
        p
    }

    /// The kernel terms at theta, [N, N] each.
    fn terms(&self, ls: &[Vec<f64>], s2: &[f64]) -> Vec<DMatrix<f64>> {
        let n = self.x.nrows();
        ls.iter()
            .zip(s2)
            .map(|(l, s)| {
                let mut e = DMatrix::<f64>::zeros(n, n);
                for (d, ld) in l.iter().enumerate() {
                    e += &self.sq[d] * (-0.5 / (ld * ld));
                }
                e.map(|v| s * v.exp())
            })
            .collect()
    }

    /// Log marginal likelihood at theta (and its gradient when `grad`).
    fn eval(&self, theta: &[f64], grad: bool) -> Result<Eval> {
        let hp = self.layout.unpack(theta);
        let (ls, s2) = (&hp.ls, &hp.s2);
        let raw = self.terms(ls, s2);
        let n = self.x.nrows();
        let d_out = self.y.ncols() as f64;
        let ck = self.layout.cokriging.is_some();
        // Row scales s_t(i) and the scaled terms (s_t s_t^T) * e_t.
        let scales: Vec<DVector<f64>> = (0..raw.len())
            .map(|t| DVector::from_fn(n, |i, _| hp.scale(ck, t, self.layout.level(i))))
            .collect();
        let outer: Vec<DMatrix<f64>> = scales.iter().map(|s| s * s.transpose()).collect();
        let terms: Vec<DMatrix<f64>> = raw
            .iter()
            .zip(&outer)
            .map(|(e, o)| e.component_mul(o))
            .collect();
        let mut k = DMatrix::<f64>::zeros(n, n);
        for t in &terms {
            k += t;
        }
        let noise = |i: usize| hp.n2[self.layout.level(i)];
        let signal: f64 =
            s2.iter().sum::<f64>() * hp.rho.iter().map(|r| r.powi(2).max(1.0)).product::<f64>();
        let (chol, jitter) = JITTERS
            .iter()
            .find_map(|&j| {
                let mut kj = k.clone();
                for i in 0..n {
                    kj[(i, i)] += noise(i) + j * signal;
                }
                Cholesky::new(kj).map(|c| (c, j))
            })
            .ok_or_else(|| FusionError::Numerical {
                model: self.model.into(),
                what: format!(
                    "the covariance matrix is not positive definite even with jitter {:e} of the signal variance (duplicate inputs with different outputs?)",
                    JITTERS[JITTERS.len() - 1]
                ),
            })?;
        let (resid, beta) = self.gls(&chol);
        let alpha = chol.solve(&resid);
        let logdet: f64 = chol
            .l_dirty()
            .diagonal()
            .iter()
            .map(|v| v.ln())
            .sum::<f64>()
            * 2.0;
        let lml = -0.5 * resid.component_mul(&alpha).sum()
            - 0.5 * d_out * logdet
            - 0.5 * n as f64 * d_out * (2.0 * std::f64::consts::PI).ln();
        let mut g = Vec::new();
        if grad {
            // d lml / d theta_j = 1/2 tr(W dK/dtheta_j), W = alpha alpha^T - D K^-1.
            let w = &alpha * alpha.transpose() - chol.inverse() * d_out;
            for (t, kt) in terms.iter().enumerate() {
                let wk = w.component_mul(kt);
                for (d, ld) in ls[t].iter().enumerate() {
                    g.push(0.5 * wk.component_mul(&self.sq[d]).sum() / (ld * ld));
                }
                g.push(wk.sum());
            }
            // dK/drho_j = sum_{t <= j} e_t * (h_t s_t^T + s_t h_t^T), h_t = d s_t / d rho_j.
            for j in 0..hp.rho.len() {
                let mut gj = 0.0;
                for (t, (e, s)) in raw.iter().zip(&scales).enumerate().take(j + 1) {
                    let h = DVector::from_fn(n, |i, _| hp.dscale(t, self.layout.level(i), j));
                    let ds = &h * s.transpose() + s * h.transpose();
                    gj += 0.5 * w.component_mul(e).component_mul(&ds).sum();
                }
                g.push(gj);
            }
            if self.layout.fixed_noise.is_none() {
                for (l, n2) in hp.n2.iter().enumerate() {
                    let diag: f64 = (0..n)
                        .filter(|&i| self.layout.level(i) == l)
                        .map(|i| w[(i, i)])
                        .sum();
                    g.push(diag * n2);
                }
            }
        }
        if !lml.is_finite() {
            return Err(FusionError::Numerical {
                model: self.model.into(),
                what: "the log marginal likelihood is not finite".into(),
            });
        }
        Ok(Eval {
            lml,
            grad: g,
            chol,
            alpha,
            beta,
            jitter,
        })
    }

    /// GLS coefficients B of the mean for this covariance, and the residuals Y - H B.
    fn gls(&self, chol: &Cholesky<f64, Dyn>) -> (DMatrix<f64>, DMatrix<f64>) {
        let h = &self.h;
        let kih = chol.solve(h);
        let mut a = h.transpose() * &kih;
        // A tiny ridge keeps the normal equations solvable when the regressors outnumber or
        // duplicate each other (the minimum-norm-like solution).
        let ridge = 1e-10 * a.trace().max(1e-300) / a.nrows().max(1) as f64;
        for i in 0..a.nrows() {
            a[(i, i)] += ridge;
        }
        let rhs = kih.transpose() * &self.y;
        let b = a
            .clone()
            .cholesky()
            .map(|c| c.solve(&rhs))
            .or_else(|| a.lu().solve(&rhs))
            .unwrap_or_else(|| DMatrix::zeros(h.ncols(), self.y.ncols()));
        (&self.y - h * &b, b)
    }

    /// Log marginal likelihood and its gradient at theta (for tests and diagnostics).
    pub fn lml_and_grad(&self, theta: &[f64]) -> Result<(f64, Vec<f64>)> {
        let e = self.eval(theta, true)?;
        Ok((e.lml, e.grad))
    }

    /// Hyperparameters by maximum marginal likelihood: L-BFGS from `restarts` starts (the
    /// first deterministic, the rest drawn from `seed`) and then from every hint
    /// ([`Problem::with_start`]), the best start kept.
    pub fn fit(&self, restarts: usize, max_iters: usize, seed: u64) -> Result<Gp> {
        let bounds = self.layout.bounds();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut best: Option<(Vec<f64>, Eval)> = None;
        let mut last_err = None;
        for r in 0..restarts + self.hints.len() {
            let theta0: Vec<f64> = match r.checked_sub(restarts) {
                None => self.start(r, &mut rng),
                Some(h) => self.hints[h].clone(),
            };
            let u0: Vec<f64> = theta0
                .iter()
                .zip(&bounds)
                .map(|(t, &(lo, hi))| {
                    let s = ((t - lo) / (hi - lo)).clamp(1e-6, 1.0 - 1e-6);
                    (s / (1.0 - s)).ln()
                })
                .collect();
            let obj = Objective {
                problem: self,
                bounds: &bounds,
            };
            let solver = LBFGS::new(MoreThuenteLineSearch::new(), 7);
            let run = Executor::new(obj, solver)
                .configure(|s| s.param(u0.clone()).max_iters(max_iters as u64))
                .run();
            // A start whose line search met a non-positive-definite matrix keeps what it had.
            let u = match run {
                Ok(res) => res
                    .state()
                    .get_best_param()
                    .cloned()
                    .unwrap_or_else(|| u0.clone()),
                Err(_) => u0.clone(),
            };
            let theta = to_theta(&u, &bounds);
            match self.eval(&theta, false) {
                Ok(e) if best.as_ref().is_none_or(|(_, b)| e.lml > b.lml) => {
                    best = Some((theta, e))
                }
                Ok(_) => {}
                Err(e) => last_err = Some(e),
            }
        }
        let (theta, e) = best.ok_or_else(|| {
            last_err.unwrap_or_else(|| FusionError::Numerical {
                model: self.model.into(),
                what: "no hyperparameter start could be evaluated".into(),
            })
        })?;
        Ok(Gp {
            layout: self.layout.clone(),
            theta,
            x: self.x.to_owned(),
            chol: e.chol,
            alpha: e.alpha,
            beta: e.beta,
            lml: e.lml,
            jitter: e.jitter,
        })
    }

    /// Start r. Start 0: one common length scale, the best of a scan from 0.03 to 3
    /// (standardised inputs), signal std split over the terms, noise 1e-2. A poor first guess
    /// matters: with little noise a far too long length scale makes K near-singular, the
    /// likelihood -1e9 and its gradient 1e10, and the first step lands on a bound where the
    /// box map's gradient vanishes. Random starts draw log length scales in [ln 0.1, ln 10],
    /// signal std in [0.3, 3] and noise in [1e-4, 1e-1].
    fn start(&self, r: usize, rng: &mut ChaCha8Rng) -> Vec<f64> {
        let n_terms = self.layout.cols.len() as f64;
        let rho0 = self.rho_guess();
        let fill = |log_len: f64, rng: &mut Option<&mut ChaCha8Rng>| {
            let mut t = Vec::new();
            for &c in &self.layout.cols {
                for _ in 0..c {
                    t.push(match rng {
                        None => log_len,
                        Some(r) => r.random_range(-2.3..2.3),
                    });
                }
                t.push(match rng {
                    None => -0.5 * n_terms.ln(),
                    Some(r) => r.random_range(-1.2..1.1),
                });
            }
            let noises = self.layout.n_levels();
            if self.layout.cokriging.is_some() {
                for g in &rho0 {
                    t.push(match rng {
                        None => *g,
                        Some(r) => r.random_range(-1.0..2.0),
                    });
                }
            }
            if self.layout.fixed_noise.is_none() {
                for _ in 0..noises {
                    t.push(match rng {
                        None => (1e-2f64).ln(),
                        Some(r) => r.random_range(-9.2..-2.3),
                    });
                }
            }
            t
        };
        if r > 0 {
            return fill(0.0, &mut Some(rng));
        }
        (0..9)
            .map(|i| fill((0.03f64).ln() + i as f64 * (100f64).ln() / 8.0, &mut None))
            .map(|t| (self.eval(&t, false).map_or(f64::NEG_INFINITY, |e| e.lml), t))
            .fold(None, |best: Option<(f64, Vec<f64>)>, (l, t)| match best {
                Some((bl, _)) if bl >= l => best,
                _ => Some((l, t)),
            })
            .map(|(_, t)| t)
            .expect("nine candidates")
    }
}

impl Problem<'_> {
    /// The first start's rhos. Two levels: 1 (as always; the published two-level results
    /// depend on it). Three or more: each rho_t from the least-squares slope of level t+1's
    /// outputs on those of its nearest level-t neighbour in x, centred per level. With m
    /// levels the rhos multiply, and starting them all at 1 leaves the optimiser in poor local
    /// optima (a three-level chain with rho = (1.7, -0.6): from all-ones starts the best of
    /// 5 found rho_2 = -6.1 at a log likelihood 66 below the true one).
    fn rho_guess(&self) -> Vec<f64> {
        let Some(level) = &self.layout.cokriging else {
            return Vec::new();
        };
        let m = self.layout.n_levels();
        if m < 3 {
            return vec![1.0; m.saturating_sub(1)];
        }
        let rows = |l: usize| (0..level.len()).filter(move |&i| level[i] == l);
        let dist = |i: usize, j: usize| -> f64 {
            (0..self.x.ncols())
                .map(|d| (self.x[[i, d]] - self.x[[j, d]]).powi(2))
                .sum()
        };
        (0..m - 1)
            .map(|t| {
                let pairs: Vec<(usize, usize)> = rows(t + 1)
                    .filter_map(|i| {
                        rows(t)
                            .min_by(|&a, &b| dist(i, a).total_cmp(&dist(i, b)))
                            .map(|j| (i, j))
                    })
                    .collect();
                let k = self.y.ncols();
                let mean = |pick: &dyn Fn(&(usize, usize)) -> usize, c: usize| {
                    pairs.iter().map(|p| self.y[(pick(p), c)]).sum::<f64>() / pairs.len() as f64
                };
                let (mut sxy, mut sxx) = (0.0, 0.0);
                for c in 0..k {
                    let (mh, ml) = (mean(&|p| p.0, c), mean(&|p| p.1, c));
                    for &(i, j) in &pairs {
                        let (a, b) = (self.y[(i, c)] - mh, self.y[(j, c)] - ml);
                        sxy += a * b;
                        sxx += b * b;
                    }
                }
                let slope = if sxx > 0.0 { sxy / sxx } else { 1.0 };
                slope.clamp(RHO.0 * 0.9, RHO.1 * 0.9)
            })
            .collect()
    }
}

fn sigmoid(u: f64) -> f64 {
    1.0 / (1.0 + (-u).exp())
}

fn to_theta(u: &[f64], bounds: &[(f64, f64)]) -> Vec<f64> {
    u.iter()
        .zip(bounds)
        .map(|(u, &(lo, hi))| lo + (hi - lo) * sigmoid(*u))
        .collect()
}

/// Negative log marginal likelihood in the unconstrained coordinates u.
struct Objective<'p, 'a> {
    problem: &'p Problem<'a>,
    bounds: &'p [(f64, f64)],
}

impl CostFunction for Objective<'_, '_> {
    type Param = Vec<f64>;
    type Output = f64;
    fn cost(&self, u: &Vec<f64>) -> std::result::Result<f64, argmin::core::Error> {
        let theta = to_theta(u, self.bounds);
        self.problem
            .eval(&theta, false)
            .map(|e| -e.lml)
            .map_err(|e| argmin::core::Error::msg(e.to_string()))
    }
}

impl Gradient for Objective<'_, '_> {
    type Param = Vec<f64>;
    type Gradient = Vec<f64>;
    fn gradient(&self, u: &Vec<f64>) -> std::result::Result<Vec<f64>, argmin::core::Error> {
        let theta = to_theta(u, self.bounds);
        let e = self
            .problem
            .eval(&theta, true)
            .map_err(|e| argmin::core::Error::msg(e.to_string()))?;
        Ok(e.grad
            .iter()
            .zip(u.iter().zip(self.bounds))
            .map(|(g, (u, &(lo, hi)))| {
                let s = sigmoid(*u);
                -g * (hi - lo) * s * (1.0 - s)
            })
            .collect())
    }
}

impl Gp {
    /// Posterior mean [N*, D] and latent variance [N*] (shared by the output columns) at
    /// inputs `xs` [N*, p], given the mean's regressors there. With co-kriging, of the last
    /// level.
    pub fn predict(&self, xs: ArrayView2<f64>, h: ArrayView2<f64>) -> (Array2<f64>, Array1<f64>) {
        let hp = self.layout.unpack(&self.theta);
        let ck = self.layout.cokriging.is_some();
        let top = self.layout.n_levels() - 1;
        let (n, m) = (self.x.nrows(), xs.nrows());
        let mut ks = DMatrix::<f64>::zeros(n, m);
        let mut prior = 0.0;
        for (t, (l, s2)) in hp.ls.iter().zip(&hp.s2).enumerate() {
            let s_new = hp.scale(ck, t, top);
            prior += s_new * s_new * s2;
            for i in 0..n {
                let s = s2 * s_new * hp.scale(ck, t, self.layout.level(i));
                for j in 0..m {
                    let r2: f64 = l
                        .iter()
                        .enumerate()
                        .map(|(d, ld)| ((self.x[[i, d]] - xs[[j, d]]) / ld).powi(2))
                        .sum();
                    ks[(i, j)] += s * (-0.5 * r2).exp();
                }
            }
        }
        let mean = to_na(h) * &self.beta + ks.transpose() * &self.alpha;
        let v = self
            .chol
            .l_dirty()
            .lower_triangle()
            .solve_lower_triangular(&ks)
            .expect("Cholesky factor has a positive diagonal");
        let var = Array1::from_shape_fn(m, |j| (prior - v.column(j).norm_squared()).max(0.0));
        (to_nd(&mean), var)
    }

    /// Hyperparameters for results.json: length scales per term, signal std per term, noise
    /// std, log marginal likelihood, jitter, and the mean coefficients' summary.
    pub fn summary(&self) -> serde_json::Value {
        let hp = self.layout.unpack(&self.theta);
        let (ls, s2) = (&hp.ls, &hp.s2);
        let mean = serde_json::json!({ "regressors": self.beta.nrows() });
        serde_json::json!({
            "length_scales": ls,
            "signal_std": s2.iter().map(|v| v.sqrt()).collect::<Vec<_>>(),
            "noise_std": hp.n2[0].sqrt(),
            "log_marginal_likelihood": self.lml,
            "jitter": self.jitter,
            "mean": mean,
            "cokriging": self.layout.cokriging.as_ref().map(|_| serde_json::json!({
                "rho": hp.rho,
                "noise_std_levels": hp.n2.iter().map(|v| v.sqrt()).collect::<Vec<_>>(),
            })),
        })
    }
}
