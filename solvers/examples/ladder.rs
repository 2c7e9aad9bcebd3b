//! Prints the Burgers fidelity ladder: successive-level differences and per-level solve time.
//! `cargo run --release -p mfpipe-solvers --example ladder [nu]`
use mfpipe_solvers::burgers::{BurgersFem, N_LEVELS};
use mfpipe_solvers::Simulator;

fn main() {
    let nu: f64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0.05);
    let sim = BurgersFem::new();
    let sols: Vec<_> = (0..N_LEVELS)
        .map(|l| sim.solve_at(&[nu], l).expect("solve"))
        .collect();
    // Rows with t >= 0.5: past the initial layer at x = 1 (u0(1) = 1 but u = 0 for t > 0).
    let late = |v: &[f64]| v[17 * 100..].to_vec();
    let rms = |a: &[f64], b: &[f64]| {
        (a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f64>() / a.len() as f64).sqrt()
    };
    println!("nu = {nu}");
    for l in 0..N_LEVELS {
        let d = if l + 1 < N_LEVELS {
            format!(
                "{:.3e} (t >= 0.5: {:.3e})",
                rms(&sols[l].values, &sols[l + 1].values),
                rms(&late(&sols[l].values), &late(&sols[l + 1].values))
            )
        } else {
            "-".into()
        };
        println!(
            "level {l}: cost {:.3e} s, newton {} iters, rms diff to next level {d}",
            sols[l].cost_s, sols[l].diagnostics["newton_iterations"]
        );
    }
}
