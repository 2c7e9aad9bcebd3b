//! The RBF surrogates against exact answers: a gradient-only fit of a quadratic recovers its
//! Hessian, a value fit with one basis function per point interpolates, and the analytic
//! derivatives match finite differences.

use mfpipe_fusion::rbf::{Construction, Rbf};
use ndarray::{Array1, Array2};

/// Points on a regular n x n grid over [-2, 2]^2.
fn grid(n: usize) -> Array2<f64> {
    let t = |i: usize| -2.0 + 4.0 * i as f64 / (n - 1) as f64;
    Array2::from_shape_fn(
        (n * n, 2),
        |(i, j)| if j == 0 { t(i / n) } else { t(i % n) },
    )
}

/// q(w) = 1/2 w^T A w + b^T w with A = [[3, 1], [1, 2]] (positive definite).
fn quadratic(p: &Array2<f64>) -> (Array1<f64>, Array2<f64>) {
    let a = [[3.0, 1.0], [1.0, 2.0]];
    let b = [0.5, -1.0];
    let v = Array1::from_shape_fn(p.nrows(), |i| {
        let w = [p[[i, 0]], p[[i, 1]]];
        0.5 * (a[0][0] * w[0] * w[0] + 2.0 * a[0][1] * w[0] * w[1] + a[1][1] * w[1] * w[1])
            + b[0] * w[0]
            + b[1] * w[1]
    });
    let g = Array2::from_shape_fn((p.nrows(), 2), |(i, k)| {
        a[k][0] * p[[i, 0]] + a[k][1] * p[[i, 1]] + b[k]
    });
    (v, g)
}

#[test]
fn every_construction_recovers_the_hessian_of_a_quadratic() {
    let pts = grid(25);
    let (v, g) = quadratic(&pts);
    let centres = grid(10);
    for kind in Construction::ALL {
        let s = Rbf::fit(kind, centres.view(), 0.1, pts.view(), v.view(), g.view()).unwrap();
        for w in [[0.0, 0.0], [0.7, -0.4], [-1.0, 1.2]] {
            let h = s.hessian(&w);
            for (a, b, want) in [(0, 0, 3.0), (0, 1, 1.0), (1, 1, 2.0)] {
                assert!(
                    (h[(a, b)] - want).abs() < 1e-2,
                    "{}: H[{a}{b}] at {w:?} = {} (want {want})",
                    kind.name(),
                    h[(a, b)]
                );
            }
            assert!(s.min_curvature(&w) > 1.3, "{}", kind.name());
        }
        // Gradient-only surrogates are defined up to a constant: compare differences.
        let (p, q) = ([0.3, 0.2], [-0.5, 0.9]);
        let exact = |w: [f64; 2]| {
            0.5 * (3.0 * w[0] * w[0] + 2.0 * w[0] * w[1] + 2.0 * w[1] * w[1]) + 0.5 * w[0] - w[1]
        };
        let d = s.value(&p) - s.value(&q) - (exact(p) - exact(q));
        assert!(
            d.abs() < 1e-3,
            "{}: value difference off by {d:e}",
            kind.name()
        );
    }
}

#[test]
fn a_value_fit_with_a_centre_at_every_point_interpolates() {
    let pts = grid(6);
    let v = Array1::from_shape_fn(pts.nrows(), |i| {
        (pts[[i, 0]] * 1.3).sin() + pts[[i, 1]].powi(3)
    });
    let g = Array2::zeros((pts.nrows(), 2));
    let s = Rbf::fit(
        Construction::Values,
        pts.view(),
        1.0,
        pts.view(),
        v.view(),
        g.view(),
    )
    .unwrap();
    for i in 0..pts.nrows() {
        let w = [pts[[i, 0]], pts[[i, 1]]];
        assert!((s.value(&w) - v[i]).abs() < 1e-8, "point {i}");
    }
}

#[test]
fn analytic_derivatives_match_finite_differences() {
    let pts = grid(8);
    let v = Array1::from_shape_fn(pts.nrows(), |i| (pts[[i, 0]] - pts[[i, 1]]).cos());
    let g = Array2::from_shape_fn((pts.nrows(), 2), |(i, k)| {
        let s = -(pts[[i, 0]] - pts[[i, 1]]).sin();
        if k == 0 {
            s
        } else {
            -s
        }
    });
    let s = Rbf::fit(
        Construction::ValuesAndGradients,
        grid(5).view(),
        0.7,
        pts.view(),
        v.view(),
        g.view(),
    )
    .unwrap();
    let w = [0.31, -0.47];
    let h = 1e-5;
    for a in 0..2 {
        let (mut p, mut m) = (w, w);
        p[a] += h;
        m[a] -= h;
        let fd = (s.value(&p) - s.value(&m)) / (2.0 * h);
        assert!((fd - s.gradient(&w)[a]).abs() < 1e-6, "gradient {a}");
        let (gp, gm) = (s.gradient(&p), s.gradient(&m));
        for b in 0..2 {
            let fd = (gp[b] - gm[b]) / (2.0 * h);
            assert!((fd - s.hessian(&w)[(a, b)]).abs() < 1e-5, "hessian {a}{b}");
        }
    }
    assert!(Rbf::fit(
        Construction::Values,
        grid(5).view(),
        -1.0,
        pts.view(),
        v.view(),
        g.view()
    )
    .is_err());
}
