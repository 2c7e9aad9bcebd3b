//! `md`: the capped, shifted Lennard-Jones pair force is minus the derivative of its energy,
//! the integrator conserves what Newton's laws conserve, velocity Verlet's energy error is
//! second order, and every level of one input starts from the same state.

use mfpipe_solvers::md::{
    self, atoms, initial_state, temperature, Md, Potential, State, BOX, MASS, R_CAP, R_CUT, SIGMA,
    STEPS_FS,
};
use mfpipe_solvers::{Sample, Simulator, SolveError};

/// -dU/dr by central differences.
fn fd_force(p: &Potential, r: f64, h: f64) -> f64 {
    -(p.energy(r + h) - p.energy(r - h)) / (2.0 * h)
}

#[test]
fn pair_force_is_minus_the_energy_derivative_inside_the_cap_the_lj_range_and_near_the_cutoff() {
    let p = Potential::default();
    // Inside the cap, around the LJ well, and just inside the cutoff.
    for r in [1.0, 2.0, 2.4, 2.6, 3.0, 3.3674, 4.0, 5.5, 7.0, 7.49] {
        let (f, fd) = (p.force(r), fd_force(&p, r, 1e-6));
        assert!(
            (f - fd).abs() <= 1e-7 * f.abs().max(1.0),
            "r = {r}: F = {f}, -dU/dr = {fd}"
        );
    }
    // The LJ minimum is at 2^(1/6) sigma with depth -epsilon (before the shift).
    let r_min = 2f64.powf(1.0 / 6.0) * SIGMA;
    assert!(p.force(r_min).abs() < 1e-12);
    let shift = 4.0 * ((SIGMA / R_CUT).powi(12) - (SIGMA / R_CUT).powi(6));
    assert!((p.energy(r_min) - (-1.0 - shift)).abs() < 1e-12);
}

#[test]
fn the_cap_continues_the_repulsion_as_a_constant_force_with_a_linear_energy() {
    let p = Potential::default();
    // F(r_cap) = 24 eps / r_cap (2 (sigma/r_cap)^12 - (sigma/r_cap)^6) with sigma/r_cap = 1.2.
    let f_cap = 24.0 / R_CAP * (2.0 * 1.2f64.powi(12) - 1.2f64.powi(6));
    for r in [0.1, 1.0, 2.0, 2.49999, R_CAP] {
        assert!(
            (p.force(r) - f_cap).abs() < 1e-9 * f_cap,
            "F({r}) = {}",
            p.force(r)
        );
    }
    // Across r_cap the force is continuous, so the difference quotient straddling it matches.
    assert!((fd_force(&p, R_CAP, 1e-7) - f_cap).abs() < 1e-3);
    let u_cap = p.energy(R_CAP);
    assert!((p.energy(1.5) - (u_cap + f_cap * (R_CAP - 1.5))).abs() < 1e-9);
    assert!((p.energy(R_CAP - 1e-9) - u_cap).abs() < 1e-6);
}

#[test]
fn across_the_cutoff_the_shifted_energy_is_continuous_and_the_force_vanishes() {
    let p = Potential::default();
    assert!(p.energy(R_CUT - 1e-9).abs() < 1e-10);
    assert_eq!(p.energy(R_CUT + 1e-9), 0.0);
    assert_eq!(p.force(R_CUT), 0.0);
    // The force just inside is the small attractive LJ tail (not shifted, as in LAMMPS).
    let tail = 24.0 / R_CUT * (2.0 * 2.5f64.powi(-12) - 2.5f64.powi(-6));
    assert!((p.force(R_CUT - 1e-12) - tail).abs() < 1e-9);
    assert!((fd_force(&p, R_CUT + 1e-3, 1e-4)).abs() < 1e-15);
}

/// A few atoms placed by hand: a capped pair, a pair across the periodic boundary, a pair near
/// the cutoff, others in the LJ range.
fn handmade() -> State {
    let pos = vec![
        [1.0, 1.0, 1.0],
        [3.2, 1.3, 0.9],    // capped with 0 (r ~ 2.2 A)
        [26.5, 1.5, 1.2],   // across x = 0 from 0 (r ~ 1.6... capped) and from 1
        [5.0, 5.0, 5.0],    // LJ range of 1
        [11.9, 5.2, 5.1],   // near the cutoff of 3 (r ~ 6.9 A)
        [13.0, 20.0, 26.0], // across z from 0
        [20.0, 12.0, 14.0],
    ];
    let vel = vec![[0.0; 3]; pos.len()];
    State { pos, vel }
}

#[test]
fn forces_on_atoms_are_minus_the_gradient_of_the_total_energy_with_periodic_images() {
    let s = handmade();
    let md0 = Md::benchmark(s.clone());
    let h = 1e-6;
    for i in 0..s.pos.len() {
        for c in 0..3 {
            let mut plus = s.clone();
            plus.pos[i][c] += h;
            let mut minus = s.clone();
            minus.pos[i][c] -= h;
            let fd = -(Md::benchmark(plus).potential - Md::benchmark(minus).potential) / (2.0 * h);
            let f = md0.forces()[i][c];
            assert!(
                (f - fd).abs() < 1e-6 * f.abs().max(1.0),
                "atom {i} axis {c}: F = {f}, -dE/dx = {fd}"
            );
        }
    }
    // Newton's third law: the forces sum to zero.
    for c in 0..3 {
        let total: f64 = md0.forces().iter().map(|f| f[c]).sum();
        assert!(total.abs() < 1e-12, "net force {total}");
    }
}

#[test]
fn a_head_on_collision_turns_where_the_energy_says_even_inside_the_cap() {
    // Two atoms approaching along x with relative kinetic energy E: the closest approach r*
    // solves U(r*) = U(r0) + E. With E above U(r_cap) the pair enters the linear region,
    // where r* = r_cap - (E + U(r0) - U(r_cap)) / F(r_cap).
    let p = Potential::default();
    for e_rel in [5.0, 60.0] {
        let r0 = 7.0;
        let mu = MASS / 2.0;
        let v_rel = (2.0 * e_rel / (mu * md::MVV2E)).sqrt();
        let s = State {
            pos: vec![[10.0, 13.0, 13.0], [10.0 + r0, 13.0, 13.0]],
            vel: vec![[0.5 * v_rel, 0.0, 0.0], [-0.5 * v_rel, 0.0, 0.0]],
        };
        let mut m = Md::new(s, BOX, p);
        let mut r_min = f64::INFINITY;
        for _ in 0..200_000 {
            m.step(0.01, false);
            let r = m.state.pos[1][0] - m.state.pos[0][0];
            r_min = r_min.min(r);
            if r > r0 {
                break;
            }
        }
        let target = e_rel + p.energy(r0);
        // Bisection for U(r*) = target on (0.5, r0): U is decreasing there.
        let (mut a, mut b) = (0.5, 3.36);
        for _ in 0..200 {
            let m = 0.5 * (a + b);
            if p.energy(m) > target {
                a = m
            } else {
                b = m
            }
        }
        assert!(
            (r_min - a).abs() < 1e-5,
            "E = {e_rel}: closest approach {r_min} A, energy says {a} A"
        );
        if e_rel > 30.0 {
            assert!(a < R_CAP, "the fast pair enters the capped region");
        }
    }
}

#[test]
fn the_start_is_a_lattice_at_exactly_t0_with_zero_momentum() {
    assert_eq!(atoms(0.05), 37);
    assert_eq!(atoms(0.95), 696);
    let s = initial_state(700.0, 0.95, 42);
    assert_eq!(s.pos.len(), 696);
    // n_c = ceil(696^(1/3)) = 9 sites per side at (i + 1/2) L / 9, i slowest.
    let a = BOX / 9.0;
    assert_eq!(s.pos[0], [0.5 * a, 0.5 * a, 0.5 * a]);
    assert_eq!(s.pos[1], [0.5 * a, 0.5 * a, 1.5 * a]);
    assert_eq!(s.pos[9], [0.5 * a, 1.5 * a, 0.5 * a]);
    assert_eq!(s.pos[81], [1.5 * a, 0.5 * a, 0.5 * a]);
    assert!((temperature(&s.vel) - 700.0).abs() < 1e-9);
    let p: [f64; 3] = (0..3)
        .map(|c| s.vel.iter().map(|v| v[c]).sum::<f64>())
        .collect::<Vec<_>>()
        .try_into()
        .unwrap();
    assert!(p.iter().all(|x| x.abs() < 1e-15), "momentum {p:?}");
    // A different seed is a different draw; the same seed the same bits.
    assert_ne!(initial_state(700.0, 0.95, 43).vel, s.vel);
    assert_eq!(initial_state(700.0, 0.95, 42), s);
}

#[test]
fn every_level_of_one_input_starts_from_the_same_state() {
    let x = vec![850.0, 0.4];
    let seeds: Vec<u64> = (0..STEPS_FS.len())
        .map(|l| Sample::new(x.clone(), l, 7).seed)
        .collect();
    assert!(seeds.windows(2).all(|w| w[0] == w[1]));
    let s0 = initial_state(x[0], x[1], seeds[0]);
    for &seed in &seeds {
        assert_eq!(initial_state(x[0], x[1], seed), s0);
    }
    // And the first output of every stable level sits on the common start's trajectory: the
    // temperatures at 20 fs agree within a percent across dt = 5, 2, 1 fs.
    let sim = md::MolecularDynamics::new();
    let t20: Vec<f64> = (2..STEPS_FS.len())
        .map(|l| sim.solve(&Sample::new(x.clone(), l, 7)).unwrap().values[0])
        .collect();
    for t in &t20 {
        assert!(
            (t - t20[2]).abs() < 0.01 * t20[2],
            "T(20 fs) by level: {t20:?}"
        );
    }
}

#[test]
fn a_run_that_blows_up_is_a_failure_that_names_the_time() {
    // 20 fs is too long a step for this liquid: the temperature runs away (LAMMPS's plain
    // lj/cut loses atoms from the same start within 80 fs; the cap only delays it).
    let sim = md::MolecularDynamics::new();
    match sim.solve(&Sample::new(vec![850.0, 0.4], 0, 7)) {
        Err(SolveError::Failed {
            reason,
            diagnostics,
        }) => {
            let at = diagnostics["failed_at_fs"];
            assert!(
                at > 0.0 && at <= 2000.0 && at % 20.0 == 0.0,
                "{diagnostics:?}"
            );
            assert!(reason.contains(&format!("at t = {at} fs")), "{reason}");
            assert!(diagnostics["temperature_at_failure_k"] > 50.0 * 850.0);
        }
        other => panic!("expected a recorded failure, got {other:?}"),
    }
}

#[test]
fn total_momentum_is_conserved_to_round_off() {
    let s = initial_state(900.0, 0.8, 3);
    let mut m = Md::benchmark(s);
    let v_scale = (md::K_B * 900.0 / (MASS * md::MVV2E)).sqrt() * MASS * m.len() as f64;
    for _ in 0..1000 {
        m.step(2.0, false);
    }
    let p = m.momentum();
    assert!(
        m.counters.rebuilds > 5,
        "the list was rebuilt along the way"
    );
    assert!(
        p.iter().all(|x| x.abs() < 1e-12 * v_scale),
        "momentum {p:?} vs scale {v_scale}"
    );
}

/// RMS deviation of the total energy from its start over `t_end` fs, sampled every 4 fs.
fn energy_fluctuation(dt: f64, t_end: f64) -> f64 {
    let mut m = Md::benchmark(initial_state(600.0, 0.5, 11));
    let e0 = m.total_energy();
    let per = (4.0 / dt).round() as usize;
    let mut sum = 0.0;
    let mut k = 0;
    for _ in 0..(t_end / 4.0) as usize {
        for s in 1..=per {
            m.step(dt, s == per);
        }
        sum += (m.total_energy() - e0).powi(2);
        k += 1;
    }
    (sum / k as f64).sqrt()
}

#[test]
fn velocity_verlet_energy_error_is_second_order_in_the_time_step() {
    let f: Vec<f64> = [4.0, 2.0, 1.0]
        .iter()
        .map(|&dt| energy_fluctuation(dt, 400.0))
        .collect();
    eprintln!("energy fluctuation at dt = 4, 2, 1 fs: {f:?} kcal/mol");
    for w in f.windows(2) {
        let order = (w[0] / w[1]).log2();
        assert!(
            (1.8..2.2).contains(&order),
            "observed order {order:.3} (fluctuations {f:?} kcal/mol)"
        );
    }
}

#[test]
fn same_seed_same_trajectory_at_one_and_two_threads() {
    let sim = md::MolecularDynamics::new();
    let batch: Vec<Sample> = [[600.0, 0.3], [950.0, 0.9], [720.0, 0.6]]
        .iter()
        .map(|x| Sample::new(x.to_vec(), 2, 5))
        .collect();
    let at = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| sim.solve_batch(&batch))
            .results
            .into_iter()
            .map(|r| r.unwrap().values)
            .collect::<Vec<_>>()
    };
    let (one, two) = (at(1), at(2));
    for (a, b) in one.iter().zip(&two) {
        assert!(a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits()));
    }
}

#[test]
fn the_solver_reports_temperatures_and_diagnostics_on_its_grid() {
    let sim = md::MolecularDynamics::new();
    let s = sim.solve_at(&[700.0, 0.5], 3).unwrap();
    assert_eq!(s.values.len(), 100);
    assert!(s.values.iter().all(|t| t.is_finite() && *t > 0.0));
    // Equipartition with a cohesive liquid: the lattice start converts kinetic into
    // potential energy or back, but the temperature stays within a factor of two of T0.
    assert!(s.values.iter().all(|t| (350.0..1400.0).contains(t)));
    assert_eq!(s.diagnostics["atoms"], 367.0);
    assert!(s.diagnostics["pairs_per_step"] > 0.0);
    assert!(
        s.diagnostics["energy_drift"].abs() < 0.05,
        "{:?}",
        s.diagnostics
    );
    // Inputs outside the paper's box are refused by name.
    match sim.solve_at(&[1200.0, 0.5], 0) {
        Err(SolveError::OutOfRange { name, .. }) => assert_eq!(name, "T0"),
        other => panic!("expected an out-of-range error, got {other:?}"),
    }
}
