//! The CEM cost/accuracy ladder of `cem-steady` at one input: for each oversampling m and
//! L_i, the basis time, the online time and the energy and L2 errors against the fine Q1
//! solution. `cargo run --release -p mfpipe-solvers --example cem_ladder [p0 p1 p2]`.

use mfpipe_solvers::cem::basis::{CemSpace, Form, Options};
use mfpipe_solvers::cem::{fem, solve_steady, steady_kappa, FINE};
use std::time::Instant;

fn main() {
    let args: Vec<f64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let p = if args.len() == 3 {
        args
    } else {
        vec![0.0, 0.0, 0.0]
    };
    let (kappa, _) = steady_kappa(FINE, &p);
    let f = vec![1.0; FINE * FINE];
    let t = Instant::now();
    let fine = fem::solve_dirichlet(FINE, &kappa, &fem::load_const(FINE, &f)).expect("fine solve");
    let fine_s = t.elapsed().as_secs_f64();
    let (ea, el) = (
        fem::energy_norm(FINE, &kappa, &fine),
        fem::l2_norm(FINE, &fine),
    );
    println!("p = {p:?}: fine Q1 solve {fine_s:.3} s (wall)");
    println!(
        "{:>2} {:>3} {:>9} {:>9} {:>11} {:>11}",
        "m", "L_i", "basis_s", "online_s", "energy_err", "l2_err"
    );
    for m in [1, 2, 3, 4] {
        for l in [1, 2, 3] {
            let opts = Options {
                coarse: 10,
                per_cell: l,
                layers: m,
                form: Form::Relaxed,
            };
            let t = Instant::now();
            let space = CemSpace::build(FINE, &kappa, opts).expect("basis");
            let basis_s = t.elapsed().as_secs_f64();
            let t = Instant::now();
            let (u, _) = solve_steady(&space, &kappa, &f).expect("coarse solve");
            let online_s = t.elapsed().as_secs_f64();
            let e: Vec<f64> = u.iter().zip(&fine).map(|(a, b)| a - b).collect();
            println!(
                "{m:>2} {l:>3} {basis_s:>9.3} {online_s:>9.3} {:>11.3e} {:>11.3e}",
                fem::energy_norm(FINE, &kappa, &e) / ea,
                fem::l2_norm(FINE, &e) / el
            );
        }
    }
}
