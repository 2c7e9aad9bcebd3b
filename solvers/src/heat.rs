//! `heat`: the 1-D heat equation u_t = alpha u_xx on x in [0, 1], t in [0, 1] with Neumann
//! data u_x(0, t) = g0, u_x(1, t) = g1 and u(x, 0) = 1 on [0.25, 0.75], 0 elsewhere (the
//! benchmark of the DMFAL, IFC and DGMF papers, on an exact, convergent discretisation).
//!
//! Inputs, in the papers' order: g0 in [0, 1], g1 in [-1, 0], alpha in [0.01, 0.1]. Level m
//! has n = 16 * 2^m intervals in x (nodes x_i = i/n) and n backward-Euler steps (dt = 1/n).
//! Second-order central differences; the Neumann data enter through ghost nodes
//! u_{-1} = u_1 - 2 h g0 and u_{n+1} = u_{n-1} + 2 h g1, so every step is one tridiagonal
//! solve. The initial values are the nodal values of the indicator (closed interval).
//!
//! Output: u on the (t, x) grid t_i = i/99, x_j = j/99, linear in t between the two
//! bracketing time levels (row t = 0 is u^0) and piecewise linear in x.
//!
//! Why trust it: with trapezoid weights the scheme conserves exactly what the PDE does,
//! d/dt of the integral of u = alpha (g1 - g0) (the boundary rows are the half-cells of the
//! finite-volume form), and its matrix is an M-matrix, so with g0 = g1 = 0 the solution stays
//! between the initial minimum and maximum. Both are reported as diagnostics and tested; the
//! tests also compare with the exact cosine-series solution.

use crate::tridiag::Tridiag;
use crate::{
    check_sample, Axis, CpuClock, Fidelity, InputSpec, OutputSpec, ProblemSpec, Sample, Scale,
    Simulator, Solution, SolveError,
};
use std::collections::BTreeMap;

const N_LEVELS: usize = 4;
const GRID: usize = 100;

/// Intervals in x (and backward-Euler steps in t) at `level`.
pub fn intervals(level: usize) -> usize {
    16 << level
}

/// The nodal solution at every time level: `u[k * (n + 1) + i]` at (t = k/n, x = i/n).
#[derive(Debug, Clone)]
pub struct History {
    pub n: usize,
    pub u: Vec<f64>,
    /// Largest |M^{k+1} - M^k - dt alpha (g1 - g0)| over the steps, M the trapezoid integral.
    pub mass_defect: f64,
}

impl History {
    /// The nodal values at time level `k`.
    pub fn level(&self, k: usize) -> &[f64] {
        let m = self.n + 1;
        &self.u[k * m..(k + 1) * m]
    }

    /// The trapezoid-rule integral of u over [0, 1] at time level `k`.
    pub fn mass(&self, k: usize) -> f64 {
        trapezoid(self.level(k))
    }

    /// The interval of the grid of `n` intervals that holds s in [0, 1], and s's fraction in it.
    fn bracket(&self, s: f64) -> (usize, f64) {
        let n = self.n as f64;
        let f = (s * n).clamp(0.0, n);
        let i = (f.floor() as usize).min(self.n - 1);
        (i, f - i as f64)
    }

    fn lerp(&self, (k, a): (usize, f64), (i, b): (usize, f64)) -> f64 {
        let at = |k: usize| {
            let row = self.level(k);
            (1.0 - b) * row[i] + b * row[i + 1]
        };
        (1.0 - a) * at(k) + a * at(k + 1)
    }

    /// u at (t, x) in [0, 1]^2: linear in t between time levels, piecewise linear in x.
    pub fn interpolate(&self, t: f64, x: f64) -> f64 {
        self.lerp(self.bracket(t), self.bracket(x))
    }

    /// u on the grid `ts` x `xs`, row-major in t: [`History::interpolate`] at every point,
    /// with each axis bracketed once.
    pub fn on_grid(&self, ts: &[f64], xs: &[f64]) -> Vec<f64> {
        let bx: Vec<_> = xs.iter().map(|&x| self.bracket(x)).collect();
        let mut out = Vec::with_capacity(ts.len() * xs.len());
        for &t in ts {
            let bt = self.bracket(t);
            out.extend(bx.iter().map(|&b| self.lerp(bt, b)));
        }
        out
    }
}

fn trapezoid(u: &[f64]) -> f64 {
    let n = u.len() - 1;
    let h = 1.0 / n as f64;
    h * (u[1..n].iter().sum::<f64>() + 0.5 * (u[0] + u[n]))
}

/// The initial condition: 1 on the closed interval [0.25, 0.75], 0 elsewhere.
pub fn initial(x: f64) -> f64 {
    if (0.25..=0.75).contains(&x) {
        1.0
    } else {
        0.0
    }
}

/// March the scheme with `n` intervals and `n` steps from nodal values `u0` (length n + 1).
/// This general entry point is what the tests drive with other initial data.
pub fn solve_from(
    u0: &[f64],
    g0: f64,
    g1: f64,
    alpha: f64,
    n: usize,
) -> Result<History, SolveError> {
    if n < 2 || u0.len() != n + 1 {
        return Err(SolveError::failed(format!(
            "heat needs n >= 2 intervals and n + 1 initial values (n = {n}, {} values)",
            u0.len()
        )));
    }
    let m = n + 1;
    let (h, dt) = (1.0 / n as f64, 1.0 / n as f64);
    let r = alpha * dt / (h * h);
    // (1 + 2r) U_i' - r (U_{i-1}' + U_{i+1}') = U_i inside; at the ends the ghost node doubles
    // the neighbour and moves the flux to the right-hand side.
    let mut a = Tridiag::new(m);
    a.diag.fill(1.0 + 2.0 * r);
    a.lower.fill(-r);
    a.upper.fill(-r);
    a.upper[0] = -2.0 * r;
    a.lower[n - 1] = -2.0 * r;
    let mut u = Vec::with_capacity(m * m);
    u.extend_from_slice(u0);
    let flux = dt * alpha * (g1 - g0);
    let mut mass = trapezoid(u0);
    let mut mass_defect = 0.0f64;
    let mut next = vec![0.0; m];
    for k in 0..n {
        next.copy_from_slice(&u[k * m..(k + 1) * m]);
        next[0] -= 2.0 * r * h * g0;
        next[n] += 2.0 * r * h * g1;
        a.solve(&mut next)?;
        if let Some(bad) = next.iter().position(|v| !v.is_finite()) {
            return Err(SolveError::failed(format!(
                "non-finite value at node {bad} after step {}",
                k + 1
            )));
        }
        let m_next = trapezoid(&next);
        mass_defect = mass_defect.max((m_next - mass - flux).abs());
        mass = m_next;
        u.extend_from_slice(&next);
    }
    Ok(History { n, u, mass_defect })
}

/// The benchmark's history for inputs [g0, g1, alpha] with `n` intervals.
pub fn solve_benchmark(x: &[f64], n: usize) -> Result<History, SolveError> {
    let u0: Vec<f64> = (0..=n).map(|i| initial(i as f64 / n as f64)).collect();
    solve_from(&u0, x[0], x[1], x[2], n)
}

pub struct Heat {
    spec: ProblemSpec,
}

impl Default for Heat {
    fn default() -> Self {
        Self::new()
    }
}

impl Heat {
    pub fn new() -> Self {
        let input = |name, lower, upper| InputSpec {
            name,
            unit: "1",
            lower,
            upper,
            scale: Scale::Linear,
        };
        let names = ["low", "high", "level2", "level3"];
        let fidelities = (0..N_LEVELS)
            .map(|level| {
                let n = intervals(level);
                Fidelity {
                    level,
                    name: names[level].to_string(),
                    description: format!(
                        "central differences + backward Euler, {n} intervals x {n} steps"
                    ),
                    settings: vec![
                        ("n_intervals".into(), n as f64),
                        ("h".into(), 1.0 / n as f64),
                        ("dt".into(), 1.0 / n as f64),
                    ],
                }
            })
            .collect();
        Self {
            spec: ProblemSpec {
                name: "heat",
                summary: "1-D heat equation with Neumann data g0, g1 and diffusivity alpha, backward Euler + central differences; output u(t, x) on a 100x100 grid",
                inputs: vec![
                    input("g0", 0.0, 1.0),
                    input("g1", -1.0, 0.0),
                    input("alpha", 0.01, 0.1),
                ],
                fidelities,
                output: OutputSpec {
                    name: "u".into(),
                    unit: "1".into(),
                    axes: vec![
                        Axis::uniform("t", "1", 0.0, 1.0, GRID),
                        Axis::uniform("x", "1", 0.0, 1.0, GRID),
                    ],
                },
                extras: vec![],
            },
        }
    }
}

impl Simulator for Heat {
    fn spec(&self) -> &ProblemSpec {
        &self.spec
    }

    fn solve(&self, s: &Sample) -> Result<Solution, SolveError> {
        check_sample(&self.spec, s)?;
        let clock = CpuClock::start();
        let hist = solve_benchmark(&s.x, intervals(s.level))?;
        let axes = &self.spec.output.axes;
        let values = hist.on_grid(&axes[0].values, &axes[1].values);
        let cost_s = clock.seconds();
        let (lo, hi) = hist
            .u
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
                (a.min(v), b.max(v))
            });
        let diagnostics = BTreeMap::from([
            ("mass_defect".to_string(), hist.mass_defect),
            ("u_min".to_string(), lo),
            ("u_max".to_string(), hi),
        ]);
        Ok(Solution {
            values,
            cost_s,
            diagnostics,
            extras: BTreeMap::new(),
        })
    }
}
