//! Conformance of every registered problem to the Simulator contract (DESIGN sec. 2): what it
//! declares is what it returns, same seed gives the same bits, bad input is refused with an
//! error that names it. A problem added to the registry is covered here without a new test.

use mfpipe_solvers::{registry, sample_seed, Sample, Simulator, SolveError};

/// The centre of every input's range, and a second point inside it (three quarters up).
fn points(sim: &dyn Simulator) -> [Vec<f64>; 2] {
    let at = |u: f64| {
        sim.spec()
            .inputs
            .iter()
            .map(|s| s.from_unit(u))
            .collect::<Vec<_>>()
    };
    [at(0.5), at(0.75)]
}

#[test]
fn every_problem_declares_a_consistent_spec() {
    let sims = registry::all();
    let mut names: Vec<&str> = sims.iter().map(|s| s.name()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), sims.len(), "problem names are unique");
    for sim in &sims {
        let spec = sim.spec();
        assert!(!spec.summary.is_empty(), "{}: a summary", spec.name);
        assert!(!spec.inputs.is_empty(), "{}: inputs", spec.name);
        for i in &spec.inputs {
            assert!(
                i.lower.is_finite() && i.upper.is_finite() && i.lower < i.upper,
                "{}: input {} has a proper range",
                spec.name,
                i.name
            );
        }
        assert!(!spec.fidelities.is_empty(), "{}: fidelities", spec.name);
        for (k, f) in spec.fidelities.iter().enumerate() {
            assert_eq!(f.level, k, "{}: levels are numbered 0..", spec.name);
            assert_eq!(sim.fidelity(&f.name).unwrap().level, k, "{}", spec.name);
        }
        let out = &spec.output;
        assert!(!out.axes.is_empty() && !out.is_empty(), "{}", spec.name);
        for a in &out.axes {
            assert!(
                a.values.windows(2).all(|w| w[0] < w[1]),
                "{}: axis {} is increasing",
                spec.name,
                a.name
            );
        }
        for e in &spec.extras {
            assert!(
                !e.is_empty(),
                "{}: extra {} is not empty",
                spec.name,
                e.name
            );
        }
    }
}

/// Every level below the problem's heavy ones (`Simulator::heavy_from`: a minute a sample).
/// A cheap level may fail on part of the input box (md's 20 fs step blows up): that must be a
/// recorded failure with a reason, and the problem's top level must solve.
#[test]
fn every_problem_returns_what_it_declares_at_every_level() {
    for sim in registry::all() {
        let spec = sim.spec();
        let [x, _] = points(sim.as_ref());
        let top = spec.fidelities.len() - 1;
        for f in &spec.fidelities[..sim.heavy_from()] {
            let s = match sim.solve(&Sample::new(x.clone(), f.level, 7)) {
                Ok(s) => s,
                Err(SolveError::Failed { reason, .. }) if f.level < top && !reason.is_empty() => {
                    continue
                }
                Err(e) => panic!("{} level {}: {e}", spec.name, f.level),
            };
            assert_eq!(s.values.len(), spec.output.len(), "{}", spec.name);
            assert!(
                s.values.iter().all(|v| v.is_finite()),
                "{} level {}: finite output",
                spec.name,
                f.level
            );
            assert!(s.cost_s >= 0.0 && s.cost_s.is_finite(), "{}", spec.name);
            assert!(s.diagnostics.values().all(|v| !v.is_nan()), "{}", spec.name);
            let mut declared: Vec<&str> = spec.extras.iter().map(|e| e.name.as_str()).collect();
            let mut got: Vec<&str> = s.extras.keys().map(String::as_str).collect();
            declared.sort();
            got.sort();
            assert_eq!(got, declared, "{}: exactly the declared extras", spec.name);
            for e in &spec.extras {
                assert_eq!(
                    s.extras[&e.name].len(),
                    e.len(),
                    "{}: {}",
                    spec.name,
                    e.name
                );
            }
        }
    }
}

#[test]
fn same_seed_same_bits_and_batches_match_single_solves() {
    for sim in registry::all() {
        let spec = sim.spec();
        let [a, b] = points(sim.as_ref());
        let batch: Vec<Sample> = [&a, &b, &a]
            .iter()
            .map(|x| Sample::new(x.to_vec(), 0, 11))
            .collect();
        let out = sim.solve_batch(&batch);
        assert_eq!(out.results.len(), 3, "{}", spec.name);
        assert_eq!(out.cost_s.len(), 3, "{}", spec.name);
        let bits = |s: &mfpipe_solvers::Solution| -> Vec<u64> {
            s.values.iter().map(|v| v.to_bits()).collect()
        };
        // A level may fail on part of the box; a failure must then be the same failure.
        let same = |a: &Result<_, SolveError>, b: &Result<_, SolveError>| match (a, b) {
            (Ok(a), Ok(b)) => bits(a) == bits(b) && a.diagnostics.len() == b.diagnostics.len(),
            (Err(a), Err(b)) => a == b,
            _ => false,
        };
        let r = &out.results;
        assert!(same(&r[0], &r[2]), "{}: same sample, same bits", spec.name);
        let single = sim.solve(&batch[1]);
        assert!(same(&r[1], &single), "{}: batch = solve", spec.name);
    }
}

#[test]
fn a_sample_seed_is_the_same_at_every_level_and_depends_on_input_and_run() {
    let x = vec![0.25, 0.5];
    let seeds: Vec<u64> = (0..4).map(|l| Sample::new(x.clone(), l, 3).seed).collect();
    assert!(seeds.iter().all(|&s| s == seeds[0]));
    assert_eq!(seeds[0], sample_seed(3, &x));
    assert_ne!(sample_seed(3, &x), sample_seed(4, &x), "run seed matters");
    assert_ne!(
        sample_seed(3, &x),
        sample_seed(3, &[0.25, 0.5000001]),
        "input matters"
    );
    assert_ne!(
        sample_seed(3, &[0.0]),
        sample_seed(3, &[-0.0]),
        "input bits matter"
    );
}

#[test]
fn every_problem_refuses_bad_input_naming_it() {
    for sim in registry::all() {
        let spec = sim.spec();
        let [x, _] = points(sim.as_ref());
        let d = x.len();
        let refuse = |x: Vec<f64>, level: usize| {
            sim.solve(&Sample::new(x, level, 0))
                .expect_err("bad input must be refused")
        };
        assert!(matches!(
            refuse(vec![x[0]; d + 1], 0),
            SolveError::InputCount { .. }
        ));
        let mut nan = x.clone();
        nan[d - 1] = f64::NAN;
        let e = refuse(nan, 0);
        assert!(matches!(e, SolveError::NotFinite { .. }), "{}", spec.name);
        assert!(e.to_string().contains(spec.inputs[d - 1].name));
        let mut high = x.clone();
        high[0] = spec.inputs[0].upper + (spec.inputs[0].upper - spec.inputs[0].lower);
        let e = refuse(high, 0);
        assert!(matches!(e, SolveError::OutOfRange { .. }), "{}", spec.name);
        assert!(e.to_string().contains(spec.inputs[0].name));
        let e = refuse(x.clone(), spec.fidelities.len());
        assert!(
            matches!(e, SolveError::UnknownFidelity { .. }),
            "{}",
            spec.name
        );
    }
    assert!(registry::by_name("no-such-problem").is_err());
}
