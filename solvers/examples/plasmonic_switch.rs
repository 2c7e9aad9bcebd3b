//! Where should `plasmonic` switch from dense LU to COCG? Solves the same spirals both ways
//! for N = 10..1000 and prints the CPU seconds of each (process CPU: COCG is parallel inside).
//!
//!     cargo run --release -p mfpipe-solvers --example plasmonic_switch
use mfpipe_solvers::plasmonic::{solve_spiral, Options};
use mfpipe_solvers::process_cpu_seconds;

fn main() {
    // Strong coupling on resonance, weaker off it (a_vs: 60 nm = nearly touching spheres).
    let inputs = [
        (520.0, 2.39996, 60.0),
        (600.0, 1.0, 150.0),
        (450.0, 3.7, 600.0),
    ];
    println!("| N | dense LU CPU s | COCG CPU s | COCG iterations | LU / COCG |");
    println!("|---|---|---|---|---|");
    for n in [10, 25, 50, 75, 100, 150, 200, 300, 500, 1000] {
        let (mut lu, mut cg, mut it) = (0.0, 0.0, 0);
        let reps = (20_000 / (n * n / 10 + 1)).clamp(1, 200);
        for &(l, a, s) in &inputs {
            for (max, t) in [(usize::MAX, &mut lu), (0, &mut cg)] {
                let opts = Options {
                    dense_max_n: max,
                    ..Options::default()
                };
                let t0 = process_cpu_seconds();
                for _ in 0..reps {
                    let r = solve_spiral(n, l, a, s, &opts, None).expect("solve");
                    if max == 0 {
                        it = it.max(r.fields.iterations);
                    }
                }
                *t += (process_cpu_seconds() - t0) / reps as f64;
            }
        }
        let k = inputs.len() as f64;
        println!(
            "| {n} | {:.2e} | {:.2e} | {it} | {:.1} |",
            lu / k,
            cg / k,
            lu / cg
        );
    }
}
