//! The CEM-GMsFEM cost/accuracy ladder: for each oversampling m and L_i, the basis time (one
//! thread: total and per coarse cell), the online time (coarse assembly + solve + fine
//! reconstruction) and the energy and L2 errors against the fine Q1 solution of
//! -div(kappa grad u) = 1, on `cem-steady`'s field at p = (0, 0, 0) and on the high-contrast
//! field of `cem-heat` / `cem-richards`.
//! `cargo run --release -p mfpipe-solvers --example cem_ladder`

use mfpipe_solvers::cem::basis::{CemSpace, Form, Options};
use mfpipe_solvers::cem::{fem, high_contrast, solve_steady, steady_kappa, CONTRAST, FINE};
use mfpipe_solvers::CpuClock;

fn main() {
    let f = vec![1.0; FINE * FINE];
    let fields = [
        (
            "cem-steady field, p = (0, 0, 0)",
            steady_kappa(FINE, &[0.0, 0.0, 0.0]).0,
        ),
        ("high-contrast field (1e4)", high_contrast(FINE, CONTRAST)),
    ];
    for (label, kappa) in fields {
        let clock = CpuClock::start();
        let fine =
            fem::solve_dirichlet(FINE, &kappa, &fem::load_const(FINE, &f)).expect("fine solve");
        let fine_s = clock.seconds();
        let (ea, el) = (
            fem::energy_norm(FINE, &kappa, &fine),
            fem::l2_norm(FINE, &fine),
        );
        println!(
            "\n{label}: fine Q1 solve ({} unknowns) {fine_s:.4} CPU-s\n",
            (FINE - 1) * (FINE - 1)
        );
        println!(
            "| m | L_i | basis CPU-s | per cell ms | online CPU-s | energy error | L2 error |"
        );
        println!("|---|---|---|---|---|---|---|");
        for m in [1, 2, 3, 4] {
            for l in [1, 2, 3] {
                let opts = Options {
                    coarse: 10,
                    per_cell: l,
                    layers: m,
                    form: Form::Relaxed,
                };
                let clock = CpuClock::start();
                let space = CemSpace::build_serial(FINE, &kappa, opts).expect("basis");
                let basis_s = clock.seconds();
                let clock = CpuClock::start();
                let (u, _) = solve_steady(&space, &kappa, &f).expect("coarse solve");
                let online_s = clock.seconds();
                let e: Vec<f64> = u.iter().zip(&fine).map(|(a, b)| a - b).collect();
                println!(
                    "| {m} | {l} | {basis_s:.3} | {:.1} | {online_s:.4} | {:.3e} | {:.3e} |",
                    basis_s * 10.0,
                    fem::energy_norm(FINE, &kappa, &e) / ea,
                    fem::l2_norm(FINE, &e) / el
                );
            }
        }
    }
}
