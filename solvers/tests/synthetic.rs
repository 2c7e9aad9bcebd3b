//! Borehole, Currin and Park (DMF paper eqs. 7-13) against reference values computed
//! independently with numpy from the paper's formulas, and against the identities that
//! define their low-fidelity versions.

use mfpipe_solvers::registry;
use mfpipe_solvers::synthetic::{currin_high, park_high};

fn solve(problem: &str, x: &[f64], level: usize) -> f64 {
    let s = registry::by_name(problem)
        .unwrap()
        .solve_at(x, level)
        .unwrap();
    assert_eq!(s.values.len(), 1, "scalar output");
    s.values[0]
}

fn close(a: f64, b: f64) {
    assert!((a - b).abs() <= 1e-12 * b.abs().max(1.0), "{a} vs {b}");
}

#[test]
fn borehole_matches_reference_values() {
    // numpy, eqs. (7) and (8), at the centre of Table 1's box and at a corner-ish point.
    let centre = [0.1, 25050.0, 89335.0, 1050.0, 89.55, 760.0, 1400.0, 10950.0];
    close(solve("borehole", &centre, 1), 70.87291263681897);
    close(solve("borehole", &centre, 0), 56.398719259575394);
    let other = [0.06, 100.0, 70000.0, 1000.0, 70.0, 800.0, 1200.0, 10000.0];
    close(solve("borehole", &other, 1), 18.819608549387986);
    close(solve("borehole", &other, 0), 14.976156753592608);
}

#[test]
fn borehole_flow_is_proportional_to_the_head_difference() {
    // Both fidelities are linear in Hu - Hl (Darcy flow).
    let mut x = [0.1, 25050.0, 89335.0, 1050.0, 89.55, 760.0, 1400.0, 10950.0];
    let base = solve("borehole", &x, 1);
    x[5] = 1050.0 - 2.0 * (1050.0 - 760.0); // outside the range: use the function directly
    let doubled = mfpipe_solvers::synthetic::borehole(&x, false);
    close(doubled, 2.0 * base);
}

#[test]
fn currin_matches_reference_values_and_its_definition() {
    close(solve("currin", &[0.5, 0.5], 1), 7.40512391329881);
    close(solve("currin", &[0.5, 0.5], 0), 7.4424795838711075);
    close(solve("currin", &[0.2, 0.9], 1), 5.869087514461502);
    close(solve("currin", &[0.2, 0.9], 0), 5.740665143903683);
    // Near x2 = 0 the low fidelity clamps the lower points at x2 = 0, where the factor is 1.
    close(solve("currin", &[0.3, 0.02], 0), 13.310874033059381);
    close(solve("currin", &[0.3, 0.0], 1), 13.362844702467344);
    // f_L is the mean of f_H at the four shifted points (eqs. 10-11).
    let (x1, x2) = (0.7, 0.4);
    let mean = (currin_high(x1 + 0.05, x2 + 0.05)
        + currin_high(x1 + 0.05, x2 - 0.05)
        + currin_high(x1 - 0.05, x2 + 0.05)
        + currin_high(x1 - 0.05, x2 - 0.05))
        / 4.0;
    close(solve("currin", &[x1, x2], 0), mean);
}

#[test]
fn park_matches_reference_values_its_definition_and_its_limit() {
    close(solve("park", &[0.5; 4], 1), 8.926130363363933);
    close(solve("park", &[0.5; 4], 0), 9.354071849074643);
    let x = [0.3, 0.8, 0.1, 0.6];
    close(solve("park", &x, 1), 6.537171124532301);
    close(solve("park", &x, 0), 7.280357740702534);
    let hf = park_high(&x);
    close(
        solve("park", &x, 0),
        (1.0 + 0.3f64.sin() / 10.0) * hf - 0.6 + 0.64 + 0.01 + 0.5,
    );
    // x1 = 0 takes the limit of the first term; x1 = 1e-9 is within rounding of it.
    let at0 = solve("park", &[0.0, 0.5, 0.5, 0.5], 1);
    close(
        at0,
        (0.75f64 * 0.5).sqrt() / 2.0 + 1.5 * (1.0 + 0.5f64.sin()).exp(),
    );
    assert!((park_high(&[1e-9, 0.5, 0.5, 0.5]) - at0).abs() < 1e-8);
}

#[test]
fn every_input_in_the_box_gives_a_finite_value_at_both_levels() {
    for name in ["borehole", "currin", "park"] {
        let sim = registry::by_name(name).unwrap();
        let d = sim.spec().inputs.len();
        for k in 0..(1 << d) {
            // Every corner of the box.
            let x: Vec<f64> = sim
                .spec()
                .inputs
                .iter()
                .enumerate()
                .map(|(i, s)| if k >> i & 1 == 1 { s.upper } else { s.lower })
                .collect();
            for level in 0..2 {
                let y = solve(name, &x, level);
                assert!(y.is_finite(), "{name} level {level} at {x:?}: {y}");
            }
        }
        assert!(sim.solve_at(&vec![0.5; d + 1], 0).is_err());
        assert!(sim.solve_at(&vec![f64::NAN; d], 0).is_err());
        assert!(
            sim.solve_at(&x_centre(sim.as_ref()), 2).is_err(),
            "two levels only"
        );
    }
}

fn x_centre(sim: &dyn mfpipe_solvers::Simulator) -> Vec<f64> {
    sim.spec()
        .inputs
        .iter()
        .map(|s| s.default_value())
        .collect()
}
