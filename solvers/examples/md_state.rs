//! The `md` benchmark's start and trajectory for a side-by-side run with LAMMPS.
//!
//! `md_state T0 RHO SEED STEPS DT DIR` writes `DIR/init.data` (LAMMPS data file: the lattice +
//! Maxwell-Boltzmann start that `pipeline solve md` would use for a sample seeded SEED),
//! `DIR/ours.txt` (step, temperature, total energy at every one of STEPS steps of DT fs) and
//! then times STEPS steps from the same start, printing the time per atom-step.
//! bench/md/compare.sh drives it next to `lmp`.

use mfpipe_solvers::md::{initial_state, Md, Potential, BOX, EPSILON, MASS, R_CAP, R_CUT, SIGMA};
use mfpipe_solvers::CpuClock;
use std::fmt::Write as _;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !(6..=7).contains(&args.len()) {
        eprintln!("usage: md_state T0 RHO_STAR SEED STEPS DT DIR [R_CAP_A]  (R_CAP_A = 0: no cap, plain lj/cut)");
        std::process::exit(2);
    }
    let parse = |i: usize| -> f64 {
        args[i].parse().unwrap_or_else(|_| {
            eprintln!("argument {} = {:?} is not a number", i + 1, args[i]);
            std::process::exit(2)
        })
    };
    let (t0, rho, seed, steps) = (parse(0), parse(1), parse(2) as u64, parse(3) as usize);
    let dt = parse(4);
    let dir = std::path::Path::new(&args[5]);
    let r_cap = if args.len() == 7 { parse(6) } else { R_CAP };
    let pot = Potential::new(EPSILON, SIGMA, R_CUT, r_cap);
    let state = initial_state(t0, rho, seed);
    let n = state.pos.len();

    let mut data = format!(
        "mfpipe md start: T0 = {t0} K, rho* = {rho}, seed {seed}\n\n{n} atoms\n1 atom types\n\n\
         0 {BOX} xlo xhi\n0 {BOX} ylo yhi\n0 {BOX} zlo zhi\n\nMasses\n\n1 {MASS}\n\nAtoms # atomic\n\n"
    );
    for (i, p) in state.pos.iter().enumerate() {
        let _ = writeln!(
            data,
            "{} 1 {:.17e} {:.17e} {:.17e}",
            i + 1,
            p[0],
            p[1],
            p[2]
        );
    }
    data.push_str("\nVelocities\n\n");
    for (i, v) in state.vel.iter().enumerate() {
        let _ = writeln!(data, "{} {:.17e} {:.17e} {:.17e}", i + 1, v[0], v[1], v[2]);
    }
    let write = |name: &str, text: &str| {
        std::fs::write(dir.join(name), text).unwrap_or_else(|e| {
            eprintln!("cannot write {}: {e}", dir.join(name).display());
            std::process::exit(1)
        })
    };
    write("init.data", &data);

    let mut md = Md::new(state.clone(), BOX, pot);
    let mut trace = String::from("# step temperature_K total_energy_kcal_mol\n");
    let _ = writeln!(
        trace,
        "0 {:.17e} {:.17e}",
        md.temperature(),
        md.total_energy()
    );
    for s in 1..=steps {
        md.step(dt, true);
        let _ = writeln!(
            trace,
            "{s} {:.17e} {:.17e}",
            md.temperature(),
            md.total_energy()
        );
    }
    write("ours.txt", &trace);

    let mut md = Md::new(state, BOX, pot);
    let (clock, wall) = (CpuClock::start(), Instant::now());
    for s in 1..=steps {
        md.step(dt, s % 1000 == 0);
    }
    let (cpu, wall) = (clock.seconds(), wall.elapsed().as_secs_f64());
    let c = md.counters;
    println!(
        "mfpipe: {steps} steps, {n} atoms: {cpu:.3} s CPU ({wall:.3} s wall), {:.4e} s per atom-step, {} rebuilds, {:.1} pairs/step, {} capped, final T {:.6} K",
        cpu / (steps * n) as f64,
        c.rebuilds,
        c.pairs as f64 / c.energy_evals.max(1) as f64,
        c.capped,
        md.temperature()
    );
}
