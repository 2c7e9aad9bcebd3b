//! The `heat` problem (1-D heat equation with Neumann data) against independent references:
//! the exact solution (a quadratic-in-x, linear-in-t part carrying the Neumann data plus the
//! cosine series of the homogeneous problem), exactness on the quadratic part, the exact
//! discrete decay of a cosine mode, conservation of the integral of u up to the boundary
//! flux, and the maximum principle.

use mfpipe_solvers::heat::{initial, intervals, solve_benchmark, solve_from};
use mfpipe_solvers::{registry, Sample};
use std::f64::consts::PI;

/// The part that solves the equation and carries the Neumann data:
/// w = g0 x + (g1 - g0) x^2 / 2 + alpha (g1 - g0) t.
fn linear_part(g0: f64, g1: f64, alpha: f64, t: f64, x: f64) -> f64 {
    g0 * x + 0.5 * (g1 - g0) * x * x + alpha * (g1 - g0) * t
}

/// Exact u = w + v, v the cosine series of the homogeneous Neumann problem with
/// v(x, 0) = indicator(x) - w(x, 0), coefficients integrated by hand:
/// int_0^1 x cos(k pi x) = ((-1)^k - 1) / (k pi)^2, int_0^1 x^2 cos(k pi x) = 2 (-1)^k / (k pi)^2.
fn exact(g0: f64, g1: f64, alpha: f64, t: f64, x: f64) -> f64 {
    let a0 = 0.5 - 0.5 * g0 - (g1 - g0) / 6.0;
    let mut v = a0;
    for k in 1..2000 {
        let kp = k as f64 * PI;
        let decay = (-alpha * kp * kp * t).exp();
        if decay < 1e-300 {
            break;
        }
        let sign = if k % 2 == 0 { 1.0 } else { -1.0 };
        let box_ = ((0.75 * kp).sin() - (0.25 * kp).sin()) / kp;
        let lin = (sign - 1.0) / (kp * kp);
        let quad = 2.0 * sign / (kp * kp);
        let ak = 2.0 * (box_ - g0 * lin - 0.5 * (g1 - g0) * quad);
        v += ak * (kp * x).cos() * decay;
    }
    linear_part(g0, g1, alpha, t, x) + v
}

#[test]
fn the_quadratic_linear_part_is_reproduced_to_round_off() {
    // Central differences and the ghost nodes are exact for quadratics in x, backward Euler
    // for linear functions of t: started from w(x, 0) the scheme must stay on w.
    let (g0, g1, alpha) = (0.7, -0.4, 0.06);
    for n in [16, 64] {
        let u0: Vec<f64> = (0..=n)
            .map(|i| linear_part(g0, g1, alpha, 0.0, i as f64 / n as f64))
            .collect();
        let h = solve_from(&u0, g0, g1, alpha, n).unwrap();
        let mut err = 0.0f64;
        for k in 0..=n {
            for (i, u) in h.level(k).iter().enumerate() {
                let w = linear_part(g0, g1, alpha, k as f64 / n as f64, i as f64 / n as f64);
                err = err.max((u - w).abs());
            }
        }
        assert!(err < 1e-12, "n = {n}: max deviation from w {err:.2e}");
    }
}

#[test]
fn a_cosine_mode_decays_by_the_exact_discrete_factor() {
    // With g0 = g1 = 0 the ghost-node scheme keeps cos(k pi x_i) an eigenvector with
    // eigenvalue -(4 / h^2) sin^2(k pi h / 2), so each backward-Euler step divides it by
    // 1 + 4 r sin^2(k pi h / 2), r = alpha dt / h^2.
    let (alpha, n) = (0.05, 32);
    let h = 1.0 / n as f64;
    for k in [1usize, 3] {
        let kp = k as f64 * PI;
        let u0: Vec<f64> = (0..=n).map(|i| (kp * i as f64 * h).cos()).collect();
        let hist = solve_from(&u0, 0.0, 0.0, alpha, n).unwrap();
        let r = alpha * h / (h * h);
        let factor = 1.0 / (1.0 + 4.0 * r * (0.5 * kp * h).sin().powi(2));
        for step in [1, n / 2, n] {
            let amp = factor.powi(step as i32);
            let err = hist
                .level(step)
                .iter()
                .zip(&u0)
                .map(|(u, c)| (u - amp * c).abs())
                .fold(0.0, f64::max);
            assert!(err < 1e-13, "mode {k}, step {step}: error {err:.2e}");
        }
    }
}

#[test]
fn the_integral_changes_exactly_by_the_boundary_flux() {
    // d/dt int u = alpha (u_x(1) - u_x(0)) = alpha (g1 - g0); the scheme keeps the trapezoid
    // integral to it step by step.
    for (g0, g1, alpha) in [(0.0, -1.0, 0.1), (1.0, 0.0, 0.01), (0.3, -0.8, 0.045)] {
        for level in 0..4 {
            let n = intervals(level);
            let h = solve_benchmark(&[g0, g1, alpha], n).unwrap();
            assert!(
                h.mass_defect < 1e-13,
                "per-step defect {:.2e}",
                h.mass_defect
            );
            let change = h.mass(n) - h.mass(0);
            let expected = alpha * (g1 - g0);
            assert!(
                (change - expected).abs() < 1e-12,
                "level {level}: change {change} vs alpha (g1 - g0) = {expected}"
            );
        }
    }
}

#[test]
fn insulated_ends_keep_the_mean_and_the_maximum_principle() {
    for alpha in [0.01, 0.1] {
        let n = intervals(2);
        let h = solve_benchmark(&[0.0, 0.0, alpha], n).unwrap();
        // The nodal indicator's trapezoid integral: nodes n/4..=3n/4 carry 1, so 0.5 + h.
        let m0 = 0.5 + 1.0 / n as f64;
        for k in 0..=n {
            assert!((h.mass(k) - m0).abs() < 1e-13, "mass at step {k}");
            for &u in h.level(k) {
                assert!((-1e-15..=1.0 + 1e-15).contains(&u), "u = {u} at step {k}");
            }
        }
        // Diffusion flattens: the final profile is strictly inside (0, 1) and smoother.
        let last = h.level(n);
        let spread = last.iter().cloned().fold(f64::NEG_INFINITY, f64::max)
            - last.iter().cloned().fold(f64::INFINITY, f64::min);
        assert!(spread > 0.0 && spread < 1.0);
    }
}

#[test]
fn the_ladder_converges_at_first_order_to_the_exact_solution() {
    let sim = registry::by_name("heat").unwrap();
    let spec = sim.spec();
    let (ts, xs) = (&spec.output.axes[0].values, &spec.output.axes[1].values);
    for x in [[0.5, -0.5, 0.05], [1.0, 0.0, 0.1], [0.2, -0.9, 0.01]] {
        let mut errs = Vec::new();
        for level in 0..4 {
            let sol = sim.solve(&Sample::new(x.to_vec(), level, 0)).unwrap();
            let mut e = 0.0f64;
            for (i, &t) in ts.iter().enumerate() {
                if t < 0.1 {
                    continue; // the jump in u^0 slows convergence at early times
                }
                for (j, &xx) in xs.iter().enumerate() {
                    let v = sol.values[i * xs.len() + j];
                    e = e.max((v - exact(x[0], x[1], x[2], t, xx)).abs());
                }
            }
            errs.push(e);
        }
        let orders: Vec<f64> = errs.windows(2).map(|w| (w[0] / w[1]).log2()).collect();
        eprintln!("inputs {x:?}: errors {errs:?}, orders {orders:?}");
        for o in &orders[1..] {
            assert!((0.85..1.2).contains(o), "observed order {o:.2}: {orders:?}");
        }
        assert!(errs[3] < errs[0] / 6.0);
    }
}

#[test]
fn the_output_starts_from_the_indicator_and_reads_t_then_x() {
    let sim = registry::by_name("heat").unwrap();
    let sol = sim
        .solve(&Sample::new(vec![0.5, -0.5, 0.05], 1, 0))
        .unwrap();
    let xs = &sim.spec().output.axes[1].values;
    // Row t = 0 is u^0 interpolated: 1 well inside [0.25, 0.75], 0 well outside.
    for (j, &x) in xs.iter().enumerate() {
        if (0.3..0.7).contains(&x) || !(0.2..0.8).contains(&x) {
            assert_eq!(sol.values[j], initial(x), "x = {x}");
        }
    }
    // The last row has diffused: its maximum is below 1.
    let last = &sol.values[99 * xs.len()..];
    assert!(last.iter().cloned().fold(0.0, f64::max) < 0.99);
    assert!(sol.diagnostics["mass_defect"] < 1e-13);
}

#[test]
fn inputs_outside_the_papers_ranges_are_refused() {
    let sim = registry::by_name("heat").unwrap();
    for bad in [[1.5, -0.5, 0.05], [0.5, 0.5, 0.05], [0.5, -0.5, 0.0]] {
        let e = sim.solve(&Sample::new(bad.to_vec(), 0, 0)).unwrap_err();
        assert!(e.to_string().contains("outside its range"), "{e}");
    }
}
