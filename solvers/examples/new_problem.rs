//! The README's worked example of adding a problem: radioactive decay u' = -k u, u(0) = 1,
//! on t in [0, 1], by explicit Euler with 4 * 2^m steps at level m, reported at 11 times. It
//! is complete: as `solvers/src/decay.rs` plus `Box::new(crate::decay::Decay::new()),` in
//! `registry::all` (and `pub mod decay;` in lib.rs), `pipeline list/solve/generate/run decay`
//! work and the conformance tests cover it. Run: `cargo run -p mfpipe-solvers --example
//! new_problem`.

use mfpipe_solvers::{
    check_sample, Axis, CpuClock, Fidelity, InputSpec, OutputSpec, ProblemSpec, Sample, Scale,
    Simulator, Solution, SolveError,
};
use std::collections::BTreeMap;

pub struct Decay {
    spec: ProblemSpec,
}

impl Decay {
    pub fn new() -> Self {
        let times: Vec<f64> = (0..=10).map(|i| i as f64 / 10.0).collect();
        Self {
            spec: ProblemSpec {
                name: "decay",
                summary: "u' = -k u by explicit Euler; output u(t) at 11 times",
                inputs: vec![InputSpec {
                    name: "k",
                    unit: "1/s",
                    lower: 0.5,
                    upper: 3.0,
                    scale: Scale::Linear,
                }],
                fidelities: (0..4)
                    .map(|level| Fidelity {
                        level,
                        name: format!("steps{}", 4 << level),
                        description: format!("explicit Euler, {} steps", 4 << level),
                        settings: vec![("n_steps".into(), (4 << level) as f64)],
                    })
                    .collect(),
                output: OutputSpec {
                    name: "u".into(),
                    unit: "1".into(),
                    axes: vec![Axis {
                        name: "t".into(),
                        unit: "s".into(),
                        values: times,
                    }],
                },
                extras: vec![],
            },
        }
    }
}

impl Default for Decay {
    fn default() -> Self {
        Self::new()
    }
}

impl Simulator for Decay {
    fn spec(&self) -> &ProblemSpec {
        &self.spec
    }

    fn solve(&self, s: &Sample) -> Result<Solution, SolveError> {
        check_sample(&self.spec, s)?;
        let clock = CpuClock::start();
        let (k, n) = (s.x[0], 4usize << s.level);
        let dt = 1.0 / n as f64;
        let u: Vec<f64> = (0..=n)
            .scan(1.0, |u, i| {
                let now = *u;
                *u *= 1.0 - k * dt;
                Some((i, now))
            })
            .map(|(_, u)| u)
            .collect();
        if u.iter().any(|v| !v.is_finite()) {
            return Err(SolveError::failed("explicit Euler blew up"));
        }
        // Linear interpolation onto the output times.
        let values = self.spec.output.axes[0]
            .values
            .iter()
            .map(|&t| {
                let p = t / dt;
                let i = (p.floor() as usize).min(n - 1);
                let w = p - i as f64;
                (1.0 - w) * u[i] + w * u[i + 1]
            })
            .collect();
        Ok(Solution {
            values,
            extras: BTreeMap::new(),
            cost_s: clock.seconds(),
            diagnostics: BTreeMap::from([("n_steps".into(), n as f64)]),
        })
    }
}

fn main() {
    // Verified physics: the error at t = 1 against exp(-k) halves per level (first order).
    let sim = Decay::new();
    let k = 2.0;
    let errors: Vec<f64> = (0..4)
        .map(|level| {
            let s = sim.solve_at(&[k], level).expect("in range");
            (s.values[10] - (-k).exp()).abs()
        })
        .collect();
    for (level, w) in errors.windows(2).enumerate() {
        let order = (w[0] / w[1]).log2();
        println!("level {level} -> {}: observed order {order:.3}", level + 1);
        assert!((order - 1.0).abs() < 0.25, "explicit Euler is first order");
    }
    assert!(
        sim.solve_at(&[9.0], 0).is_err(),
        "k out of range is refused"
    );
}
