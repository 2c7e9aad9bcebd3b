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
//! - **Mean**: linear in given regressors, its coefficients estimated by generalised least
//!   squares for every kernel and so profiled out of the likelihood (Le Gratiet's recursive
//!   co-kriging estimates rho this way). By the envelope theorem the gradient of the profiled
//!   likelihood is the partial gradient at the GLS coefficients.
//! - **Hyperparameters**: maximise the log marginal likelihood with L-BFGS (argmin) from
//!   several starts. Each log-parameter is kept in a box by a smooth map
//!   theta = lo + (hi - lo) sigmoid(u), so the optimiser works unconstrained in u.
//! - **Cholesky** with jitter escalation (1e-10 .. 1e-4 of the signal variance) and a clear
//!   error when even that fails.

use crate::{FusionError, Result};
use argmin::core::{CostFunction, Executor, Gradient, State};
use argmin::solver::linesearch::MoreThuenteLineSearch;
use argmin::solver::quasinewton::LBFGS;
use nalgebra::{Cholesky, DMatrix, Dyn};
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
    /// `nar` only: Monte Carlo samples of the low-fidelity posterior propagated through the
    /// high-fidelity GP at prediction time.
    pub mc_samples: usize,
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
            mc_samples: 100,
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
        if self.restarts == 0 || self.max_iters == 0 || self.mc_samples == 0 {
            return bad("restarts, max_iters and mc_samples must be at least 1".into());
        }
        if let Some(n) = self.noise {
            if !(n.is_finite() && (0.0..=1.0).contains(&n)) {
                return bad(format!("noise = {n} must be in [0, 1] (or absent: fitted)"));
            }
        }
        if !(self.pca_tol.is_finite() && (0.0..1.0).contains(&self.pca_tol)) {
            return bad(format!("pca_tol = {} must be in [0, 1)", self.pca_tol));
        }
        if self.max_components == 0 {
            return bad("max_components must be at least 1".into());
        }
        Ok(())
    }
}

/// The mean function's regressors at the training inputs (and, at prediction, at the new ones).
#[derive(Debug, Clone)]
pub enum Mean {
    /// Y = H B: one coefficient column per output; H [N, p]. A constant mean is H = 1.
    PerColumn(Array2<f64>),
    /// Y = rho M + 1 beta^T: one rho shared by all outputs, M [N, D] (Kennedy-O'Hagan:
    /// M is the low-fidelity prediction; a shared rho on PCA coefficients in one basis is rho
    /// on the field).
    SharedScale(Array2<f64>),
}

/// Fitted mean coefficients.
#[derive(Debug, Clone)]
pub enum MeanFit {
    PerColumn(DMatrix<f64>),
    SharedScale { rho: f64, beta: Vec<f64> },
}

impl MeanFit {
    /// The mean at new points from their regressors (same variant as at fit time).
    pub fn at(&self, regressors: &Mean) -> DMatrix<f64> {
        match (self, regressors) {
            (MeanFit::PerColumn(b), Mean::PerColumn(h)) => to_na(h.view()) * b,
            (MeanFit::SharedScale { rho, beta }, Mean::SharedScale(m)) => {
                let mut out = to_na(m.view()) * *rho;
                for (j, b) in beta.iter().enumerate() {
                    out.column_mut(j).add_scalar_mut(*b);
                }
                out
            }
            _ => panic!("mean regressors of another kind than at fit time"),
        }
    }
}

/// Layout of the hyperparameter vector: for each term its log length scales then its log
/// signal std, then (if fitted) the log noise std.
#[derive(Debug, Clone)]
struct Layout {
    cols: Vec<usize>,
    fixed_noise: Option<f64>,
}

const LOG_LEN: (f64, f64) = (-4.605170185988091, 6.907755278982137); // ln 1e-2, ln 1e3
const LOG_SIG: (f64, f64) = (-9.210340371976182, 4.605170185988092); // ln 1e-4, ln 1e2
const LOG_NOISE: (f64, f64) = (-13.815510557964274, 0.0); // ln 1e-6, ln 1
const JITTERS: [f64; 4] = [1e-10, 1e-8, 1e-6, 1e-4];

impl Layout {
    fn bounds(&self) -> Vec<(f64, f64)> {
        let mut b = Vec::new();
        for &c in &self.cols {
            b.extend(std::iter::repeat_n(LOG_LEN, c));
            b.push(LOG_SIG);
        }
        if self.fixed_noise.is_none() {
            b.push(LOG_NOISE);
        }
        b
    }
    /// (length scales per term, signal variance per term, noise variance).
    fn unpack(&self, theta: &[f64]) -> (Vec<Vec<f64>>, Vec<f64>, f64) {
        let mut i = 0;
        let (mut ls, mut s2) = (Vec::new(), Vec::new());
        for &c in &self.cols {
            ls.push(theta[i..i + c].iter().map(|v| v.exp()).collect());
            s2.push((2.0 * theta[i + c]).exp());
            i += c + 1;
        }
        let n2 = match self.fixed_noise {
            Some(n) => n * n,
            None => (2.0 * theta[i]).exp(),
        };
        (ls, s2, n2)
    }
}

/// A fitted GP.
#[derive(Debug, Clone)]
pub struct Gp {
    layout: Layout,
    /// Log hyperparameters (see [`Layout`]).
    pub theta: Vec<f64>,
    /// Training inputs [N, p].
    x: Array2<f64>,
    chol: Cholesky<f64, Dyn>,
    /// K^-1 (Y - mean) [N, D].
    alpha: DMatrix<f64>,
    pub mean: MeanFit,
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
    mean: &'a Mean,
    /// Squared differences per input column, each [N, N].
    sq: Vec<DMatrix<f64>>,
}

/// The likelihood and what prediction needs, at one theta.
struct Eval {
    lml: f64,
    grad: Vec<f64>,
    chol: Cholesky<f64, Dyn>,
    alpha: DMatrix<f64>,
    mean: MeanFit,
    jitter: f64,
}

impl<'a> Problem<'a> {
    /// `cols`: the kernel's terms (see the module docs); `x` [N, p] with p >= every cols[t];
    /// `y` [N, D].
    pub fn new(
        model: &'a str,
        cols: Vec<usize>,
        fixed_noise: Option<f64>,
        x: ArrayView2<'a, f64>,
        y: ArrayView2<f64>,
        mean: &'a Mean,
    ) -> Self {
        let n = x.nrows();
        let p = cols.iter().copied().max().unwrap_or(0);
        let sq = (0..p)
            .map(|d| DMatrix::from_fn(n, n, |i, k| (x[[i, d]] - x[[k, d]]).powi(2)))
            .collect();
        Self {
            model,
            layout: Layout { cols, fixed_noise },
            x,
            y: to_na(y),
            mean,
            sq,
        }
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
        let (ls, s2, n2) = self.layout.unpack(theta);
        let terms = self.terms(&ls, &s2);
        let n = self.x.nrows();
        let d_out = self.y.ncols() as f64;
        let mut k = DMatrix::<f64>::zeros(n, n);
        for t in &terms {
            k += t;
        }
        let signal: f64 = s2.iter().sum();
        let (chol, jitter) = JITTERS
            .iter()
            .find_map(|&j| {
                let mut kj = k.clone();
                for i in 0..n {
                    kj[(i, i)] += n2 + j * signal;
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
        let (resid, mean) = self.gls(&chol);
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
            if self.layout.fixed_noise.is_none() {
                g.push(w.trace() * n2);
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
            mean,
            jitter,
        })
    }

    /// GLS coefficients of the mean for this covariance, and the residuals Y - mean.
    fn gls(&self, chol: &Cholesky<f64, Dyn>) -> (DMatrix<f64>, MeanFit) {
        match self.mean {
            Mean::PerColumn(h) => {
                let h = to_na(h.view());
                let kih = chol.solve(&h);
                let mut a = h.transpose() * &kih;
                // A tiny ridge keeps the normal equations solvable when the regressors
                // outnumber or duplicate each other (the minimum-norm-like solution).
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
                (&self.y - &h * &b, MeanFit::PerColumn(b))
            }
            Mean::SharedScale(m) => {
                let m = to_na(m.view());
                let n = self.y.nrows();
                let ones = DMatrix::from_element(n, 1, 1.0);
                let ki1 = chol.solve(&ones);
                let s11 = ki1.sum();
                let kim = chol.solve(&m);
                let kiy = chol.solve(&self.y);
                // m^T P y with P = K^-1 - K^-1 1 1^T K^-1 / (1^T K^-1 1), summed over columns.
                let (mut num, mut den) = (0.0, 0.0);
                for c in 0..self.y.ncols() {
                    let (mc, yc) = (m.column(c), self.y.column(c));
                    let (one_m, one_y) = (ki1.column(0).dot(&mc), ki1.column(0).dot(&yc));
                    num += mc.dot(&kiy.column(c)) - one_m * one_y / s11;
                    den += mc.dot(&kim.column(c)) - one_m * one_m / s11;
                }
                let rho = if den > 1e-300 { num / den } else { 0.0 };
                let beta: Vec<f64> = (0..self.y.ncols())
                    .map(|c| ki1.column(0).dot(&(self.y.column(c) - m.column(c) * rho)) / s11)
                    .collect();
                let mut resid = &self.y - &m * rho;
                for (c, b) in beta.iter().enumerate() {
                    resid.column_mut(c).add_scalar_mut(-b);
                }
                (resid, MeanFit::SharedScale { rho, beta })
            }
        }
    }

    /// Log marginal likelihood and its gradient at theta (for tests and diagnostics).
    pub fn lml_and_grad(&self, theta: &[f64]) -> Result<(f64, Vec<f64>)> {
        let e = self.eval(theta, true)?;
        Ok((e.lml, e.grad))
    }

    /// Hyperparameters by maximum marginal likelihood: L-BFGS from `restarts` starts (the
    /// first deterministic, the rest drawn from `seed`), the best start kept.
    pub fn fit(&self, restarts: usize, max_iters: usize, seed: u64) -> Result<Gp> {
        let bounds = self.layout.bounds();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut best: Option<(Vec<f64>, Eval)> = None;
        let mut last_err = None;
        for r in 0..restarts {
            let theta0: Vec<f64> = self.start(r, &mut rng);
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
            mean: e.mean,
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
            if self.layout.fixed_noise.is_none() {
                t.push(match rng {
                    None => (1e-2f64).ln(),
                    Some(r) => r.random_range(-9.2..-2.3),
                });
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
    /// inputs `xs` [N*, p], given the mean's regressors there.
    pub fn predict(&self, xs: ArrayView2<f64>, regressors: &Mean) -> (Array2<f64>, Array1<f64>) {
        let (ls, s2, _) = self.layout.unpack(&self.theta);
        let (n, m) = (self.x.nrows(), xs.nrows());
        let mut ks = DMatrix::<f64>::zeros(n, m);
        for (l, s) in ls.iter().zip(&s2) {
            for i in 0..n {
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
        let mean = self.mean.at(regressors) + ks.transpose() * &self.alpha;
        let v = self
            .chol
            .l_dirty()
            .lower_triangle()
            .solve_lower_triangular(&ks)
            .expect("Cholesky factor has a positive diagonal");
        let prior: f64 = s2.iter().sum();
        let var = Array1::from_shape_fn(m, |j| (prior - v.column(j).norm_squared()).max(0.0));
        (to_nd(&mean), var)
    }

    /// Hyperparameters for results.json: length scales per term, signal std per term, noise
    /// std, log marginal likelihood, jitter, and the mean coefficients' summary.
    pub fn summary(&self) -> serde_json::Value {
        let (ls, s2, n2) = self.layout.unpack(&self.theta);
        let mean = match &self.mean {
            MeanFit::SharedScale { rho, .. } => serde_json::json!({ "rho": rho }),
            MeanFit::PerColumn(b) => serde_json::json!({ "regressors": b.nrows() }),
        };
        serde_json::json!({
            "length_scales": ls,
            "signal_std": s2.iter().map(|v| v.sqrt()).collect::<Vec<_>>(),
            "noise_std": n2.sqrt(),
            "log_marginal_likelihood": self.lml,
            "jitter": self.jitter,
            "mean": mean,
        })
    }
}
