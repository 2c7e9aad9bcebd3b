//! The `poisson` problem (5-point Laplace, DMF Sec. 4.2) against independent references:
//! exactness on harmonic cubics, the discrete maximum principle, second-order convergence to
//! the Fourier-series solution when the centre constraint is dropped, and symmetry.

use mfpipe_solvers::poisson::{cells, solve_benchmark, solve_dirichlet};
use mfpipe_solvers::registry;
use std::f64::consts::PI;

/// A harmonic polynomial of degree 3: u_xx + u_yy = 0 exactly.
fn harmonic(x: f64, y: f64) -> f64 {
    x * x * x - 3.0 * x * y * y + 2.0 * (x * x - y * y) + x * y + 0.3 * x - 0.2 * y + 1.0
}

#[test]
fn the_stencil_is_exact_on_harmonic_cubics() {
    for n in [8, 16, 32] {
        let h = 1.0 / n as f64;
        let b = |i: usize, j: usize| harmonic(i as f64 * h, j as f64 * h);
        let c = (n / 2, n / 2);
        for pinned in [None, Some((c, b(c.0, c.1)))] {
            let s = solve_dirichlet(n, b, pinned).unwrap();
            let err = (0..=n)
                .flat_map(|i| (0..=n).map(move |j| (i, j)))
                .map(|(i, j)| (s.at(i, j) - b(i, j)).abs())
                .fold(0.0, f64::max);
            assert!(err < 1e-12, "n = {n}: max error {err:.2e}");
            assert!(s.residual < 1e-12);
        }
    }
}

/// Exact solution with constant Dirichlet values on each side (no centre constraint), by the
/// classical sine series; sinh ratios are written with exponentials so large k cannot overflow.
fn fourier(left: f64, right: f64, bottom: f64, top: f64, x: f64, y: f64) -> f64 {
    let ratio =
        |a: f64, b: f64| (a - b).exp() * (1.0 - (-2.0 * a).exp()) / (1.0 - (-2.0 * b).exp());
    let mut u = 0.0;
    for k in (1..4000).step_by(2) {
        let kp = k as f64 * PI;
        let c = 4.0 / kp;
        u += c
            * ((left * ratio(kp * (1.0 - x), kp) + right * ratio(kp * x, kp)) * (kp * y).sin()
                + (bottom * ratio(kp * (1.0 - y), kp) + top * ratio(kp * y, kp)) * (kp * x).sin());
    }
    u
}

#[test]
fn second_order_convergence_to_the_fourier_series_without_the_centre_constraint() {
    let (l, r, b, t) = (0.8, 0.2, 0.5, 0.1);
    let points = [(0.5, 0.5), (0.25, 0.75), (0.75, 0.25)];
    let mut errs = Vec::new();
    for n in [8, 16, 32, 64] {
        let side = |i: usize, j: usize| {
            if i == 0 {
                l
            } else if i == n {
                r
            } else if j == 0 {
                b
            } else {
                t
            }
        };
        let s = solve_dirichlet(n, side, None).unwrap();
        let e = points
            .iter()
            .map(|&(x, y)| {
                let (i, j) = ((x * n as f64) as usize, (y * n as f64) as usize);
                (s.at(i, j) - fourier(l, r, b, t, x, y)).abs()
            })
            .fold(0.0, f64::max);
        errs.push(e);
    }
    let orders: Vec<f64> = errs.windows(2).map(|w| (w[0] / w[1]).log2()).collect();
    eprintln!("errors {errs:?}, orders {orders:?}");
    for o in &orders {
        assert!((1.9..2.1).contains(o), "observed order {o:.2}: {orders:?}");
    }
    assert!(errs[3] < 1e-4);
}

#[test]
fn the_benchmark_obeys_the_discrete_maximum_principle_and_pins_the_centre() {
    let sim = registry::by_name("poisson").unwrap();
    let cases = [
        [0.1, 0.9, 0.5, 0.3, 0.7],
        [0.9, 0.9, 0.9, 0.9, 0.1],
        [0.2, 0.4, 0.6, 0.8, 0.5],
    ];
    for x in cases {
        let n = cells(2);
        let s = solve_benchmark(&x, n).unwrap();
        let (lo, hi) = x
            .iter()
            .fold((f64::MAX, f64::MIN), |a, v| (a.0.min(*v), a.1.max(*v)));
        for v in &s.u {
            assert!(
                *v >= lo - 1e-12 && *v <= hi + 1e-12,
                "{v} outside [{lo}, {hi}]"
            );
        }
        assert_eq!(s.at(n / 2, n / 2), x[4]);
        assert_eq!(
            s.at(0, 0),
            0.5 * (x[0] + x[2]),
            "corner = mean of its borders"
        );
        assert_eq!(s.at(n, n), 0.5 * (x[1] + x[3]));
        // The 100 x 100 output interpolates the nodes: its corners are the corner nodes.
        let out = sim.solve_at(&x, 2).unwrap();
        assert_eq!(out.values.len(), 100 * 100);
        assert!((out.values[0] - s.at(0, 0)).abs() < 1e-15);
        assert!(
            (out.values[99 * 100] - s.at(n, 0)).abs() < 1e-15,
            "first axis is x"
        );
        assert!(out.diagnostics["residual"] < 1e-12);
    }
}

#[test]
fn swapping_left_and_right_mirrors_the_solution() {
    let sim = registry::by_name("poisson").unwrap();
    let a = sim.solve_at(&[0.2, 0.7, 0.4, 0.6, 0.5], 1).unwrap().values;
    let b = sim.solve_at(&[0.7, 0.2, 0.4, 0.6, 0.5], 1).unwrap().values;
    for i in 0..100 {
        for j in 0..100 {
            let (u, v) = (a[i * 100 + j], b[(99 - i) * 100 + j]);
            assert!((u - v).abs() < 1e-12, "({i}, {j}): {u} vs {v}");
        }
    }
}

#[test]
fn bad_inputs_and_levels_are_refused() {
    let sim = registry::by_name("poisson").unwrap();
    assert!(sim.solve_at(&[0.5; 4], 0).is_err());
    assert!(sim.solve_at(&[0.5, 0.5, 0.5, 0.5, 0.95], 0).is_err());
    assert!(sim.solve_at(&[0.5, 0.5, f64::NAN, 0.5, 0.5], 0).is_err());
    assert!(sim.solve_at(&[0.5; 5], 5).is_err());
    assert_eq!(sim.fidelity("high").unwrap().level, 2);
}
