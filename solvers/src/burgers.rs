//! 1-D viscous Burgers equation by P1 finite elements and backward Euler (DMF Sec. 4.2).
//!
//! u_t + u u_x = nu u_xx on x in [0, 1], t in [0, 3], u(x, 0) = sin(pi x / 2),
//! u(0, t) = u(1, t) = 0 for t > 0, nu in [0.001, 0.1].
//!
//! Level m uses n = 16 * 2^m uniform elements and n backward-Euler steps (dt = 3 / n).
//! Galerkin weak form with the consistent mass matrix M and stiffness K. The convection term
//! is integrated exactly: with u_h piecewise linear, (u^2/2)_x tested against a hat function
//! gives, for interior node i,
//!
//!   N_i(U) = (U_{i+1} - U_{i-1}) (U_{i-1} + U_i + U_{i+1}) / 6,
//!
//! which is skew (U^T N(U) = 0 for zero boundary values), so the discrete energy U^T M U never
//! increases under backward Euler. Each step solves
//!
//!   [M (U^{n+1} - U^n)]_i / dt + nu [K U^{n+1}]_i + N_i(U^{n+1}) = 0   (interior rows i)
//!
//! by Newton's method with backtracking to a max-norm residual below 1e-12; the time
//! derivative uses the full nodal vectors, so the first step sees u^0's boundary value 1.
//! The tridiagonal Newton system is solved with partial pivoting ([`crate::tridiag`]).
//!
//! Output: u on the (t, x) grid t_i = 3 i / 99, x_j = j / 99, linear in t between the two
//! bracketing time levels and P1 in x.

use crate::tridiag::Tridiag;
use crate::{
    check_sample, Axis, CpuClock, Fidelity, InputSpec, OutputSpec, ProblemSpec, Sample, Scale,
    Simulator, Solution, SolveError,
};
use std::collections::BTreeMap;

/// Final time of the benchmark.
pub const T_END: f64 = 3.0;
/// Number of points per axis of the common output grid.
pub const GRID: usize = 100;
/// Newton stops when the max-norm residual is below this.
pub const NEWTON_TOL: f64 = 1e-12;
const NEWTON_MAX_ITERS: usize = 50;
/// Levels 0..4 = 16, 32, 64, 128, 256 elements (and as many steps).
pub const N_LEVELS: usize = 5;

/// Elements (= time steps) at a level.
pub fn elements(level: usize) -> usize {
    16 << level
}

/// The `burgers` problem.
pub struct BurgersFem {
    spec: ProblemSpec,
}

impl Default for BurgersFem {
    fn default() -> Self {
        Self::new()
    }
}

impl BurgersFem {
    pub fn new() -> Self {
        let inputs = vec![InputSpec {
            name: "nu",
            unit: "1",
            lower: 0.001,
            upper: 0.1,
            scale: Scale::Linear,
        }];
        let names = ["low", "high", "level2", "level3", "level4"];
        let fidelities = (0..N_LEVELS)
            .map(|level| {
                let n = elements(level);
                Fidelity {
                    level,
                    name: names[level].to_string(),
                    description: format!(
                        "P1 FEM, {n} elements, {n} backward-Euler steps (dt = 3/{n})"
                    ),
                    settings: vec![
                        ("n_elements".into(), n as f64),
                        ("n_steps".into(), n as f64),
                        ("dt".into(), T_END / n as f64),
                        ("h".into(), 1.0 / n as f64),
                    ],
                }
            })
            .collect();
        Self {
            spec: ProblemSpec {
                name: "burgers",
                summary:
                    "1-D viscous Burgers, P1 FEM + backward Euler; output u(t, x) on a 100x100 grid",
                inputs,
                fidelities,
                output: output_spec(),
                extras: vec![],
            },
        }
    }
}

fn output_spec() -> OutputSpec {
    OutputSpec {
        name: "u".into(),
        unit: "1".into(),
        axes: vec![
            Axis::uniform("t", "1", 0.0, T_END, GRID),
            Axis::uniform("x", "1", 0.0, 1.0, GRID),
        ],
    }
}

impl Simulator for BurgersFem {
    fn spec(&self) -> &ProblemSpec {
        &self.spec
    }
    fn solve(&self, s: &Sample) -> Result<Solution, SolveError> {
        check_sample(&self.spec, s)?;
        let clock = CpuClock::start();
        let n = elements(s.level);
        let u0: Vec<f64> = (0..=n)
            .map(|i| (std::f64::consts::PI * i as f64 / n as f64 / 2.0).sin())
            .collect();
        let run = integrate(s.x[0], T_END, n, &u0)?;
        let out = &self.spec.output;
        let values = run.sample(&out.axes[0].values, &out.axes[1].values);
        Ok(Solution {
            values,
            cost_s: clock.seconds(),
            diagnostics: run.diagnostics(),
            extras: BTreeMap::new(),
        })
    }
}

/// A computed trajectory: every time level's full nodal vector.
#[derive(Debug, Clone)]
pub struct Trajectory {
    pub n_elements: usize,
    pub dt: f64,
    /// u[k] = nodal values (n + 1 of them, boundaries included) at t = k dt, k = 0..=n_steps.
    pub u: Vec<Vec<f64>>,
    /// Discrete energy U^T M U at every time level.
    pub energy: Vec<f64>,
    pub newton_iterations: usize,
    pub newton_max_iterations: usize,
    pub max_final_residual: f64,
    pub backtracks: usize,
}

impl Trajectory {
    /// u_h at (t, x) for each t in `ts` and x in `xs`, row-major (t slowest).
    pub fn sample(&self, ts: &[f64], xs: &[f64]) -> Vec<f64> {
        let n = self.n_elements;
        let steps = self.u.len() - 1;
        let h = 1.0 / n as f64;
        // Precompute the x interpolation (element index and weight) once per grid.
        let xw: Vec<(usize, f64)> = xs
            .iter()
            .map(|&x| {
                let e = ((x / h).floor() as usize).min(n - 1);
                (e, x / h - e as f64)
            })
            .collect();
        let mut out = Vec::with_capacity(ts.len() * xs.len());
        for &t in ts {
            let s = t / self.dt;
            let k = (s.floor() as usize).min(steps - 1);
            let theta = s - k as f64;
            let (a, b) = (&self.u[k], &self.u[k + 1]);
            for &(e, w) in &xw {
                let ua = a[e] * (1.0 - w) + a[e + 1] * w;
                let ub = b[e] * (1.0 - w) + b[e + 1] * w;
                out.push(ua * (1.0 - theta) + ub * theta);
            }
        }
        out
    }

    pub fn diagnostics(&self) -> BTreeMap<String, f64> {
        let max_increase = self
            .energy
            .windows(2)
            .map(|w| w[1] - w[0])
            .fold(f64::NEG_INFINITY, f64::max);
        BTreeMap::from([
            ("n_elements".into(), self.n_elements as f64),
            ("n_steps".into(), (self.u.len() - 1) as f64),
            ("newton_iterations".into(), self.newton_iterations as f64),
            (
                "newton_max_iterations_per_step".into(),
                self.newton_max_iterations as f64,
            ),
            ("newton_max_final_residual".into(), self.max_final_residual),
            ("newton_backtracks".into(), self.backtracks as f64),
            ("energy_initial".into(), self.energy[0]),
            ("energy_final".into(), *self.energy.last().unwrap()),
            ("energy_max_step_increase".into(), max_increase),
        ])
    }
}

/// Discrete energy U^T M U of a full nodal vector on a uniform mesh.
pub fn energy(u: &[f64], h: f64) -> f64 {
    // Element-wise: (h/3)(a^2 + a b + b^2).
    u.windows(2)
        .map(|w| h / 3.0 * (w[0] * w[0] + w[0] * w[1] + w[1] * w[1]))
        .sum()
}

/// Integrate from the nodal vector `u0` (n + 1 values; its boundary values are used only in
/// the first step's mass term) with n elements and `steps` backward-Euler steps to `t_end`,
/// zero Dirichlet values from the first step on. Exposed for verification against exact
/// solutions with other initial data.
pub fn integrate_steps(
    nu: f64,
    t_end: f64,
    n: usize,
    steps: usize,
    u0: &[f64],
) -> Result<Trajectory, SolveError> {
    assert_eq!(u0.len(), n + 1, "u0 must hold n + 1 nodal values");
    assert!(n >= 2 && steps >= 1);
    let h = 1.0 / n as f64;
    let dt = t_end / steps as f64;
    let m = n - 1; // interior unknowns
    let (m_diag, m_off) = (2.0 * h / 3.0, h / 6.0);
    let (k_diag, k_off) = (2.0 * nu / h, -nu / h);

    let mut traj = Trajectory {
        n_elements: n,
        dt,
        u: Vec::with_capacity(steps + 1),
        energy: Vec::with_capacity(steps + 1),
        newton_iterations: 0,
        newton_max_iterations: 0,
        max_final_residual: 0.0,
        backtracks: 0,
    };
    traj.u.push(u0.to_vec());
    traj.energy.push(energy(u0, h));

    let mut jac = Tridiag::new(m);
    let mut res = vec![0.0; m];
    let mut trial_res = vec![0.0; m];
    let mut delta = vec![0.0; m];
    let mut u = vec![0.0; n + 1];
    let mut trial = vec![0.0; n + 1];
    // Mass term of the previous level, [M U^n]_i for interior i, full vector (boundaries included).
    let mut m_old = vec![0.0; m];

    for step in 1..=steps {
        let old = traj.u.last().unwrap();
        for i in 1..n {
            m_old[i - 1] = m_off * old[i - 1] + m_diag * old[i] + m_off * old[i + 1];
        }
        // Initial guess: the previous level with the Dirichlet zeros imposed.
        u.copy_from_slice(old);
        u[0] = 0.0;
        u[n] = 0.0;

        let residual = |u: &[f64], r: &mut [f64]| -> f64 {
            let mut rmax = 0.0f64;
            for i in 1..n {
                let (a, b, c) = (u[i - 1], u[i], u[i + 1]);
                let mass = (m_off * a + m_diag * b + m_off * c - m_old[i - 1]) / dt;
                let diff = k_off * a + k_diag * b + k_off * c;
                let conv = (c - a) * (a + b + c) / 6.0;
                let v = mass + diff + conv;
                r[i - 1] = v;
                rmax = rmax.max(v.abs());
            }
            if rmax.is_nan() {
                f64::INFINITY
            } else {
                rmax
            }
        };

        let mut rnorm = residual(&u, &mut res);
        let mut iters = 0;
        while rnorm >= NEWTON_TOL {
            if iters == NEWTON_MAX_ITERS || !rnorm.is_finite() {
                return Err(SolveError::Failed {
                    reason: format!("Newton did not converge at time step {step} after {iters} iterations (max-norm residual {rnorm:.3e})"),
                    diagnostics: BTreeMap::from([
                        ("failed_step".to_string(), step as f64),
                        ("newton_iterations".to_string(), iters as f64),
                        ("newton_residual".to_string(), rnorm),
                    ]),
                });
            }
            iters += 1;
            for i in 1..n {
                let (a, b, c) = (u[i - 1], u[i], u[i + 1]);
                jac.diag[i - 1] = m_diag / dt + k_diag + (c - a) / 6.0;
                if i > 1 {
                    jac.lower[i - 2] = m_off / dt + k_off - (2.0 * a + b) / 6.0;
                }
                if i < n - 1 {
                    jac.upper[i - 1] = m_off / dt + k_off + (2.0 * c + b) / 6.0;
                }
            }
            for (d, r) in delta.iter_mut().zip(&res) {
                *d = -r;
            }
            jac.solve(&mut delta)?;
            // Backtracking on the max-norm residual (Armijo-type sufficient decrease).
            let mut lambda = 1.0;
            loop {
                trial.copy_from_slice(&u);
                for i in 1..n {
                    trial[i] += lambda * delta[i - 1];
                }
                let tn = residual(&trial, &mut trial_res);
                if tn <= (1.0 - 1e-4 * lambda) * rnorm || tn < NEWTON_TOL || lambda < 1.0 / 1024.0 {
                    std::mem::swap(&mut u, &mut trial);
                    std::mem::swap(&mut res, &mut trial_res);
                    rnorm = tn;
                    break;
                }
                lambda *= 0.5;
                traj.backtracks += 1;
            }
        }
        traj.newton_iterations += iters;
        traj.newton_max_iterations = traj.newton_max_iterations.max(iters);
        traj.max_final_residual = traj.max_final_residual.max(rnorm);
        traj.energy.push(energy(&u, h));
        traj.u.push(u.clone());
    }
    Ok(traj)
}

/// Integrate with as many time steps as elements (the benchmark's ladder).
pub fn integrate(nu: f64, t_end: f64, n: usize, u0: &[f64]) -> Result<Trajectory, SolveError> {
    integrate_steps(nu, t_end, n, n, u0)
}
