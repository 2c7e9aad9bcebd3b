//! Physics checks of the Burgers FEM against independent references: an exact closed-form
//! solution, the Cole-Hopf series of the benchmark itself, the energy law of backward Euler,
//! and the first-order convergence of the fidelity ladder.

use mfpipe_solvers::burgers::{
    elements, integrate, integrate_steps, BurgersFem, GRID, NEWTON_TOL, N_LEVELS, T_END,
};
use mfpipe_solvers::Simulator;
use std::f64::consts::PI;

/// u = 2 nu pi e^{-nu pi^2 t} sin(pi x) / (a + e^{-nu pi^2 t} cos(pi x)), a > 1: an exact
/// solution of u_t + u u_x = nu u_xx with u(0, t) = u(1, t) = 0.
fn closed_form(nu: f64, a: f64, t: f64, x: f64) -> f64 {
    let e = (-nu * PI * PI * t).exp();
    2.0 * nu * PI * e * (PI * x).sin() / (a + e * (PI * x).cos())
}

/// Max-norm error at every time level of an FEM run against the closed form.
fn closed_form_error(nu: f64, a: f64, n: usize, t_end: f64) -> f64 {
    let u0: Vec<f64> = (0..=n)
        .map(|i| closed_form(nu, a, 0.0, i as f64 / n as f64))
        .collect();
    let run = integrate(nu, t_end, n, &u0).unwrap();
    let mut err = 0.0f64;
    for (k, u) in run.u.iter().enumerate() {
        for (i, v) in u.iter().enumerate() {
            err = err.max((v - closed_form(nu, a, k as f64 * run.dt, i as f64 / n as f64)).abs());
        }
    }
    err
}

#[test]
fn fem_converges_to_the_closed_form_at_first_order() {
    // Refining h and dt together: error = O(dt) + O(h^2), so first order overall.
    let (nu, a, t_end) = (0.05, 1.5, 1.0);
    let errs: Vec<f64> = [32, 64, 128, 256]
        .iter()
        .map(|&n| closed_form_error(nu, a, n, t_end))
        .collect();
    eprintln!("closed form: max errors {errs:?}");
    for w in errs.windows(2) {
        let order = (w[0] / w[1]).log2();
        assert!(
            (0.85..1.2).contains(&order),
            "observed order {order:.3} from errors {errs:?}"
        );
    }
    // Amplitude is 2 nu pi / (a - 1) = 0.63; a wrong factor or sign would give O(0.1) errors.
    // Measured: 1.2e-3, 6.4e-4, 3.3e-4, 1.7e-4.
    assert!(errs[3] < 2.5e-4, "errors {errs:?}");
}

#[test]
fn time_error_is_first_order_when_space_is_resolved() {
    // Fine mesh, coarse steps: the backward-Euler error alone halves with dt.
    let (nu, a, n) = (0.05, 1.5, 512);
    let u0: Vec<f64> = (0..=n)
        .map(|i| closed_form(nu, a, 0.0, i as f64 / n as f64))
        .collect();
    let err = |steps: usize| {
        let run = integrate_steps(nu, 1.0, n, steps, &u0).unwrap();
        let u = run.u.last().unwrap();
        u.iter()
            .enumerate()
            .map(|(i, v)| (v - closed_form(nu, a, 1.0, i as f64 / n as f64)).abs())
            .fold(0.0, f64::max)
    };
    let (e1, e2) = (err(8), err(16));
    eprintln!("backward Euler alone: errors {e1:.3e} {e2:.3e}");
    let order = (e1 / e2).log2();
    assert!(
        (0.9..1.15).contains(&order),
        "order {order:.3}, errors {e1:.3e} {e2:.3e}"
    );
}

/// The exact solution of the benchmark itself by Cole-Hopf: u = -2 nu phi_x / phi with
/// phi_t = nu phi_xx, phi_x = 0 at both ends, phi_0 = exp(-(1 - cos(pi x / 2)) / (pi nu)).
struct ColeHopf {
    nu: f64,
    coef: Vec<f64>,
}

impl ColeHopf {
    fn new(nu: f64, terms: usize) -> Self {
        // Cosine coefficients by composite Simpson with many panels (phi_0 is smooth).
        let panels = 20_000;
        let phi0 = |x: f64| (-(1.0 - (PI * x / 2.0).cos()) / (PI * nu)).exp();
        let coef = (0..terms)
            .map(|k| {
                let f = |x: f64| phi0(x) * (k as f64 * PI * x).cos();
                let h = 1.0 / panels as f64;
                let mut s = f(0.0) + f(1.0);
                for i in 1..panels {
                    s += f(i as f64 * h) * if i % 2 == 1 { 4.0 } else { 2.0 };
                }
                let integral = s * h / 3.0;
                if k == 0 {
                    integral
                } else {
                    2.0 * integral
                }
            })
            .collect();
        Self { nu, coef }
    }
    fn u(&self, t: f64, x: f64) -> f64 {
        let (mut phi, mut phix) = (0.0, 0.0);
        for (k, c) in self.coef.iter().enumerate() {
            let kp = k as f64 * PI;
            let decay = (-self.nu * kp * kp * t).exp();
            phi += c * decay * (kp * x).cos();
            phix -= c * decay * kp * (kp * x).sin();
        }
        -2.0 * self.nu * phix / phi
    }
}

#[test]
fn benchmark_solution_matches_cole_hopf_and_converges() {
    let nu = 0.05;
    let exact = ColeHopf::new(nu, 120);
    let sim = BurgersFem::new();
    let out = sim.spec().output.clone();
    let (ts, xs) = (&out.axes[0].values, &out.axes[1].values);
    // Compare away from t = 0, where the initial data jump at x = 1 (u0(1) = 1 but u = 0
    // for t > 0) is still resolving; this also keeps the series well converged.
    let errs: Vec<f64> = (1..N_LEVELS)
        .map(|level| {
            let s = sim.solve_at(&[nu], level).unwrap();
            let mut e = 0.0f64;
            for (i, &t) in ts.iter().enumerate().filter(|(_, &t)| t >= 0.25) {
                for (j, &x) in xs.iter().enumerate() {
                    e = e.max((s.values[i * GRID + j] - exact.u(t, x)).abs());
                }
            }
            e
        })
        .collect();
    eprintln!("Cole-Hopf: max errors at levels 1..4 {errs:?}");
    for w in errs.windows(2) {
        let order = (w[0] / w[1]).log2();
        assert!(
            (0.8..1.3).contains(&order),
            "observed order {order:.3}; errors {errs:?}"
        );
    }
    assert!(errs[3] < 4e-3, "level-4 error {:.3e}", errs[3]);
}

#[test]
fn newton_converges_across_the_viscosity_range_at_every_level() {
    let sim = BurgersFem::new();
    for level in 0..N_LEVELS {
        for nu in [0.001, 0.002, 0.005, 0.01, 0.03, 0.1] {
            let s = sim
                .solve_at(&[nu], level)
                .unwrap_or_else(|e| panic!("level {level}, nu {nu}: {e}"));
            assert!(s.diagnostics["newton_max_final_residual"] < NEWTON_TOL);
            assert!(s.values.iter().all(|v| v.is_finite()));
            assert_eq!(s.diagnostics["n_steps"], elements(level) as f64);
        }
    }
}

#[test]
fn discrete_energy_never_increases() {
    for nu in [0.001, 0.01, 0.1] {
        for level in [0, 2, 4] {
            let n = elements(level);
            let u0: Vec<f64> = (0..=n)
                .map(|i| (PI * i as f64 / n as f64 / 2.0).sin())
                .collect();
            let run = integrate(nu, T_END, n, &u0).unwrap();
            for (k, w) in run.energy.windows(2).enumerate() {
                // Round-off allowance only: the energy law holds exactly for the discrete scheme.
                assert!(
                    w[1] <= w[0] * (1.0 + 1e-13),
                    "nu {nu}, level {level}, step {k}: {} -> {}",
                    w[0],
                    w[1]
                );
            }
            // Viscosity dissipates: the energy must actually drop, by more at larger nu.
            assert!(run.energy.last().unwrap() < &(0.9 * run.energy[0]));
        }
    }
}

#[test]
fn the_ladder_converges_at_first_order() {
    // Compare rows t >= 0.5. Before that the output grid's fixed times sample the initial
    // layer at x = 1 (u0(1) = 1, u = 0 for t > 0), which each level resolves over its own
    // first step, so early rows do not shrink geometrically (a property of the benchmark).
    let sim = BurgersFem::new();
    let first_row = 17; // t_17 = 3 * 17 / 99 = 0.515
    for nu in [0.05, 0.01] {
        let sols: Vec<Vec<f64>> = (0..N_LEVELS)
            .map(|l| sim.solve_at(&[nu], l).unwrap().values[first_row * GRID..].to_vec())
            .collect();
        let rms = |a: &[f64], b: &[f64]| {
            (a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f64>() / a.len() as f64).sqrt()
        };
        let diffs: Vec<f64> = sols.windows(2).map(|w| rms(&w[0], &w[1])).collect();
        // Successive differences halve per level (errors O(dt + h^2) with dt ~ h).
        for w in diffs[1..].windows(2) {
            let ratio = w[0] / w[1];
            assert!(
                (1.75..2.3).contains(&ratio),
                "nu {nu}: difference ratios from {diffs:?}"
            );
        }
    }
}

#[test]
fn output_grid_and_initial_row_follow_the_contract() {
    let sim = BurgersFem::new();
    let s = sim.solve_at(&[0.01], 1).unwrap();
    assert_eq!(s.values.len(), GRID * GRID);
    // Row t = 0 is the nodal interpolant of sin(pi x / 2), P1-interpolated to x_j.
    let n = elements(1);
    for j in 0..GRID {
        let x = j as f64 / (GRID - 1) as f64;
        let e = ((x * n as f64).floor() as usize).min(n - 1);
        let w = x * n as f64 - e as f64;
        let nodal = |i: usize| (PI * i as f64 / n as f64 / 2.0).sin();
        let expect = nodal(e) * (1.0 - w) + nodal(e + 1) * w;
        assert!((s.values[j] - expect).abs() < 1e-14);
    }
    assert!(
        (s.values[GRID - 1] - 1.0).abs() < 1e-14,
        "u0's last node is 1"
    );
    // Dirichlet zeros for t > 0 on both ends of the final row.
    let last = &s.values[(GRID - 1) * GRID..];
    assert_eq!(last[0], 0.0);
    assert_eq!(last[GRID - 1], 0.0);
}

#[test]
fn bad_inputs_are_rejected_with_named_errors() {
    let sim = BurgersFem::new();
    let msg = |x: &[f64], l: usize| sim.solve_at(x, l).unwrap_err().to_string();
    assert!(msg(&[0.5], 0).contains("nu = 0.5 is outside its range"));
    assert!(msg(&[f64::NAN], 0).contains("not a finite number"));
    assert!(msg(&[0.01, 0.02], 0).contains("expects 1 inputs"));
    assert!(msg(&[0.01], 9).contains("no fidelity"));
}
