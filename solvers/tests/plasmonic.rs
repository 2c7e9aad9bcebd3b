//! The `plasmonic` coupled-dipole solver against independent references: the single-sphere
//! closed forms, the optical theorem for lossless spheres, the dimer's closed forms for both
//! polarisations, rotation invariance, the full Mie series for one gold sphere, and the
//! iterative path against dense LU.

use faer::c64;
use mfpipe_solvers::plasmonic::{
    gold_permittivity, mie_a1, solve_spiral, vogel_spiral, Array, Options, Path, Polarizability,
    RADIUS,
};
use mfpipe_solvers::{registry, Sample};
use std::f64::consts::PI;

const X: [c64; 3] = [c64::new(1.0, 0.0), c64::new(0.0, 0.0), c64::new(0.0, 0.0)];
const Y: [c64; 3] = [c64::new(0.0, 0.0), c64::new(1.0, 0.0), c64::new(0.0, 0.0)];

fn k_of(lambda: f64) -> f64 {
    2.0 * PI / lambda
}

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-300)
}

#[test]
fn one_sphere_extinguishes_and_scatters_as_the_closed_forms_say() {
    // N = 1: E = E0, so C_ext = 4 pi k Im(alpha) and C_sca = (8 pi / 3) k^4 |alpha|^2.
    let pos = [[0.0, 0.0, 0.0]];
    for lambda in [400.0, 520.0, 700.0] {
        let k = k_of(lambda);
        for pol in Polarizability::ALL {
            let alpha = pol.of(gold_permittivity(lambda), RADIUS, k);
            let a = Array {
                pos: &pos,
                alpha,
                k,
            };
            let f = a.solve_dense(X).unwrap();
            let c = a.cross_sections(&f.e, X);
            assert!(
                rel(c.ext, 4.0 * PI * k * alpha.im) < 1e-13,
                "{pol:?} {lambda}"
            );
            let sca = 8.0 * PI / 3.0 * k.powi(4) * alpha.norm_sqr();
            assert!(
                rel(c.sca, sca) < 1e-12,
                "{pol:?} {lambda}: {} vs {sca}",
                c.sca
            );
        }
    }
}

#[test]
fn lossless_spheres_absorb_nothing_optical_theorem() {
    // With real eps, the radiative, MLWA and Mie-a1 polarizabilities satisfy
    // Im(1/alpha) = -(2/3) k^3, so extinction equals scattering for any array: C_abs = 0 to
    // round-off. The bare quasi-static one does not, which shows the check can fail.
    let pos = vogel_spiral(25, 2.4, 120.0);
    for eps in [-2.5, 4.0] {
        let k = k_of(600.0);
        for pol in Polarizability::ALL {
            let alpha = pol.of(c64::new(eps, 0.0), RADIUS, k);
            let a = Array {
                pos: &pos,
                alpha,
                k,
            };
            let f = a.solve_dense(X).unwrap();
            let c = a.cross_sections(&f.e, X);
            let ratio = c.abs.abs() / c.ext.abs();
            if pol == Polarizability::QuasiStatic {
                assert!(ratio > 1e-6, "quasi-static should violate it: {ratio:e}");
            } else {
                assert!(ratio < 1e-11, "{pol:?}, eps {eps}: C_abs/C_ext = {ratio:e}");
            }
        }
    }
}

#[test]
fn a_dimer_matches_the_closed_forms_for_both_polarisations() {
    // Two spheres at distance d on the x axis, normal incidence: each sees
    // E = E0 / (1 - alpha G), so C_ext = 8 pi k Im[alpha / (1 - alpha G)] with
    // G_L = 2 e^{ikd} (1 - ikd) / d^3 along the axis, G_T = e^{ikd} (k^2 d^2 + ikd - 1) / d^3 across.
    let i = c64::new(0.0, 1.0);
    for lambda in [450.0, 520.0, 650.0] {
        let k = k_of(lambda);
        let alpha = Polarizability::Radiative.of(gold_permittivity(lambda), RADIUS, k);
        for d in [55.0, 80.0, 200.0, 1000.0] {
            let pos = [[0.0, 0.0, 0.0], [d, 0.0, 0.0]];
            let a = Array {
                pos: &pos,
                alpha,
                k,
            };
            let e = (i * k * d).exp();
            let gl = 2.0 * e * (1.0 - i * k * d) / d.powi(3);
            let gt = e * (k * k * d * d + i * k * d - 1.0) / d.powi(3);
            for (e0, g) in [(X, gl), (Y, gt)] {
                let f = a.solve_dense(e0).unwrap();
                let c = a.cross_sections(&f.e, e0);
                let expected = 8.0 * PI * k * (alpha / (1.0 - alpha * g)).im;
                assert!(
                    rel(c.ext, expected) < 1e-12,
                    "lambda {lambda}, d {d}: {} vs {expected}",
                    c.ext
                );
            }
        }
    }
}

#[test]
fn rotating_the_spiral_together_with_the_field_changes_nothing() {
    let lambda = 560.0;
    let k = k_of(lambda);
    let alpha = Polarizability::Radiative.of(gold_permittivity(lambda), RADIUS, k);
    let pos = vogel_spiral(50, 2.4, 90.0);
    let a = Array {
        pos: &pos,
        alpha,
        k,
    };
    let f = a.solve_dense(X).unwrap();
    let c = a.cross_sections(&f.e, X);
    for phi in [0.7, 2.0, -1.1] {
        let (s, co) = f64::sin_cos(phi);
        let rot: Vec<[f64; 3]> = pos
            .iter()
            .map(|p| [co * p[0] - s * p[1], s * p[0] + co * p[1], 0.0])
            .collect();
        let e0 = [c64::new(co, 0.0), c64::new(s, 0.0), c64::new(0.0, 0.0)];
        let b = Array {
            pos: &rot,
            alpha,
            k,
        };
        let g = b.solve_dense(e0).unwrap();
        let cr = b.cross_sections(&g.e, e0);
        assert!(
            rel(cr.ext, c.ext) < 1e-11,
            "phi {phi}: {} vs {}",
            cr.ext,
            c.ext
        );
        assert!(
            rel(cr.sca, c.sca) < 1e-11,
            "phi {phi}: {} vs {}",
            cr.sca,
            c.sca
        );
    }
    // The rotated field is not the same problem unless the array turns with it.
    let e0 = [c64::new(0.0, 0.0), c64::new(1.0, 0.0), c64::new(0.0, 0.0)];
    let g = a.solve_dense(e0).unwrap();
    assert!(rel(a.cross_sections(&g.e, e0).ext, c.ext) > 1e-4);
}

/// The full Mie series (Bohren and Huffman, BHMIE): the logarithmic derivative D_n(mx) by
/// downward recurrence, psi_n and xi_n by upward recurrence. Returns (Q_ext, a_1).
fn mie(m: c64, x: f64) -> (f64, c64) {
    let nmax = (x + 4.0 * x.cbrt() + 2.0).ceil() as usize;
    let mx = m * x;
    let nd = nmax.max((mx.norm()).ceil() as usize) + 15;
    let mut d = vec![c64::new(0.0, 0.0); nd + 1];
    for n in (1..=nd).rev() {
        let nn = c64::new(n as f64, 0.0) / mx;
        d[n - 1] = nn - 1.0 / (d[n] + nn);
    }
    let (mut psi0, mut psi1) = (x.cos(), x.sin());
    let (mut chi0, mut chi1) = (-x.sin(), x.cos());
    let mut xi1 = c64::new(psi1, -chi1);
    let mut q = 0.0;
    let mut a_first = c64::new(0.0, 0.0);
    for (n, dn) in d.iter().enumerate().take(nmax + 1).skip(1) {
        let nf = n as f64;
        let psi = (2.0 * nf - 1.0) * psi1 / x - psi0;
        let chi = (2.0 * nf - 1.0) * chi1 / x - chi0;
        let xi = c64::new(psi, -chi);
        let an = ((dn / m + nf / x) * psi - psi1) / ((dn / m + nf / x) * xi - xi1);
        let bn = ((m * dn + nf / x) * psi - psi1) / ((m * dn + nf / x) * xi - xi1);
        if n == 1 {
            a_first = an;
        }
        q += (2.0 * nf + 1.0) * (an + bn).re;
        psi0 = psi1;
        psi1 = psi;
        chi0 = chi1;
        chi1 = chi;
        xi1 = c64::new(psi1, -chi1);
    }
    (2.0 / (x * x) * q, a_first)
}

#[test]
fn one_gold_sphere_at_520_nm_against_the_mie_series() {
    let lambda = 520.0;
    let k = k_of(lambda);
    let eps = gold_permittivity(lambda);
    let (q_full, a1_series) = mie(eps.sqrt(), k * RADIUS);
    // The closed-form a1 of the solver agrees with the recurrences' a1.
    let a1 = mie_a1(eps.sqrt(), k * RADIUS);
    assert!(
        (a1 - a1_series).norm() / a1.norm() < 1e-10,
        "{a1} vs {a1_series}"
    );
    // DESIGN's reference values: all multipoles 1.090, the dipole term about 1.075.
    assert!((q_full - 1.090).abs() < 0.0015, "full Mie Q_ext = {q_full}");
    let r = solve_spiral(1, lambda, 0.0, 100.0, &mie_options(), None).unwrap();
    let q_dip = r.cross.ext / (PI * RADIUS * RADIUS);
    assert!((q_dip - 1.075).abs() < 0.0015, "mie-a1 Q_ext = {q_dip}");
    assert!(
        q_dip < q_full,
        "the dipole term misses the (positive) quadrupole part"
    );
    // The radiative-corrected quasi-static sphere is close but not equal at this size.
    let alpha = Polarizability::Radiative.of(eps, RADIUS, k);
    let q_rad = 4.0 * PI * k * alpha.im / (PI * RADIUS * RADIUS);
    assert!(
        rel(q_rad, q_dip) < 0.2 && rel(q_rad, q_dip) > 1e-3,
        "{q_rad} vs {q_dip}"
    );
}

fn mie_options() -> Options {
    Options {
        polarizability: Polarizability::MieA1,
        ..Options::default()
    }
}

fn compare_paths(n: usize, lambda: f64, alpha_vs: f64, a_vs: f64) {
    let dense = Options {
        dense_max_n: usize::MAX,
        ..Options::default()
    };
    let krylov = Options {
        dense_max_n: 0,
        ..Options::default()
    };
    let d = solve_spiral(n, lambda, alpha_vs, a_vs, &dense, None).unwrap();
    let c = solve_spiral(n, lambda, alpha_vs, a_vs, &krylov, None).unwrap();
    assert_eq!((d.fields.path, c.fields.path), (Path::DenseLu, Path::Cocg));
    assert!(
        c.fields.residual <= 1e-10,
        "COCG residual {:e}",
        c.fields.residual
    );
    let diff: f64 = d
        .fields
        .e
        .iter()
        .zip(&c.fields.e)
        .map(|(a, b)| (a - b).norm_sqr())
        .sum::<f64>()
        .sqrt();
    let size: f64 = d.fields.e.iter().map(|a| a.norm_sqr()).sum::<f64>().sqrt();
    eprintln!(
        "N = {n}, lambda {lambda}: {} COCG iterations, |E_cocg - E_lu| / |E_lu| = {:.2e}",
        c.fields.iterations,
        diff / size
    );
    assert!(diff / size <= 1e-8, "fields differ by {:e}", diff / size);
    assert!(rel(c.cross.ext, d.cross.ext) <= 1e-8);
    assert!(rel(c.cross.sca, d.cross.sca) <= 1e-8);
}

#[test]
fn the_iterative_path_equals_dense_lu_at_500_spheres() {
    // On resonance with close spacing (strong coupling) and off resonance.
    compare_paths(500, 520.0, 2.39996, 60.0);
    compare_paths(500, 700.0, 1.0, 400.0);
}

/// N = 2000: a 6000 x 6000 complex LU (0.6 GB, about 12 s).
#[test]
fn the_iterative_path_equals_dense_lu_at_2000_spheres() {
    compare_paths(2000, 520.0, 2.39996, 60.0);
}

#[test]
fn a_planar_array_under_normal_incidence_has_no_normal_field() {
    // r^ has no z part, so A couples z only to z; with E0 in the plane E_z stays zero.
    let r = solve_spiral(50, 520.0, 2.4, 70.0, &Options::default(), None).unwrap();
    assert!(r.fields.e.chunks(3).all(|e| e[2].norm() == 0.0));
}

#[test]
fn the_iterative_path_is_bit_identical_at_one_and_two_threads() {
    let opts = Options {
        dense_max_n: 0,
        ..Options::default()
    };
    let run = |threads| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| solve_spiral(300, 540.0, 2.4, 80.0, &opts, None).unwrap())
    };
    let (a, b) = (run(1), run(2));
    assert_eq!(a.fields.iterations, b.fields.iterations);
    assert!(a.fields.e.iter().zip(&b.fields.e).all(|(x, y)| x == y));
    assert_eq!(a.cross.ext.to_bits(), b.cross.ext.to_bits());
}

#[test]
fn the_problem_reports_q_and_its_solver_record() {
    let sim = registry::by_name("plasmonic").unwrap();
    let sol = sim
        .solve(&Sample::new(vec![520.0, 2.4, 300.0], 2, 0))
        .unwrap();
    assert_eq!(sol.values.len(), 2);
    let (q_ext, q_sca) = (sol.values[0], sol.values[1]);
    assert!(q_ext > q_sca && q_sca > 0.0, "{q_ext} {q_sca}");
    assert!(sol.diagnostics["residual"] <= 1e-10);
    // Absorption = extinction - scattering, and gold absorbs at 520 nm.
    assert!(rel(sol.diagnostics["q_abs"], q_ext - q_sca) < 1e-10);
    // Overlapping spheres (a_vs < 50 nm) and wavelengths outside the data are refused.
    for bad in [[520.0, 2.4, 10.0], [900.0, 2.4, 300.0]] {
        let e = sim.solve(&Sample::new(bad.to_vec(), 0, 0)).unwrap_err();
        assert!(e.to_string().contains("outside its range"), "{e}");
    }
}
