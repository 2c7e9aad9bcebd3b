//! The classic two-fidelity test functions of the DMF paper (Sec. 4.1, eqs. 7-13): Borehole,
//! Currin and Park. Level 0 "low" is the cheap approximation, level 1 "high" the function
//! itself; the output is one scalar (shape [1]).
//!
//! Formulas exactly as the paper prints them:
//! - Borehole (eqs. 7-8): water flow through a borehole, 8 inputs (Table 1).
//! - Currin (eqs. 9-11): f_L averages f_H at the four points (x1 ± 0.05, x2 + 0.05 or
//!   max(0, x2 - 0.05)), so it evaluates f_H slightly outside [0, 1] in x1, where the formula
//!   is still defined. At x2 = 0, 1 - exp(-1/(2 x2)) is taken as its limit 1.
//! - Park (eqs. 12-13): at x1 = 0 the first term takes its limit sqrt((x2 + x3^2) x4) / 2.

use crate::SolveError;
use crate::{
    check_sample, Axis, CpuClock, Fidelity, InputSpec, OutputSpec, ProblemSpec, Sample, Scale,
    Simulator, Solution,
};
use std::collections::BTreeMap;
use std::f64::consts::PI;

/// Which test function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    Borehole,
    Currin,
    Park,
}

/// A two-level test function as a [`Simulator`].
pub struct Synthetic {
    function: Function,
    spec: ProblemSpec,
}

fn unit_inputs(names: &[&'static str]) -> Vec<InputSpec> {
    names
        .iter()
        .map(|&name| InputSpec {
            name,
            unit: "1",
            lower: 0.0,
            upper: 1.0,
            scale: Scale::Linear,
        })
        .collect()
}

impl Synthetic {
    pub fn new(function: Function) -> Self {
        let inputs = match function {
            Function::Borehole => [
                ("rw", "m", 0.05, 0.15),
                ("r", "m", 100.0, 50000.0),
                ("Tu", "m^2/yr", 63070.0, 115600.0),
                ("Hu", "m", 990.0, 1110.0),
                ("Tl", "m^2/yr", 63.1, 116.0),
                ("Hl", "m", 700.0, 820.0),
                ("L", "m", 1120.0, 1680.0),
                ("Kw", "m/yr", 9855.0, 12045.0),
            ]
            .into_iter()
            .map(|(name, unit, lower, upper)| InputSpec {
                name,
                unit,
                lower,
                upper,
                scale: Scale::Linear,
            })
            .collect(),
            Function::Currin => unit_inputs(&["x1", "x2"]),
            Function::Park => unit_inputs(&["x1", "x2", "x3", "x4"]),
        };
        let (low, high) = match function {
            Function::Borehole => ("eq. (8): 5 Tu ... with 1.5 in the denominator", "eq. (7)"),
            Function::Currin => ("eqs. (10)-(11): mean of f_H at 4 shifted points", "eq. (9)"),
            Function::Park => (
                "eq. (13): (1 + sin(x1)/10) f_H - 2 x1 + x2^2 + x3^2 + 0.5",
                "eq. (12)",
            ),
        };
        let fidelities = [("low", low), ("high", high)]
            .into_iter()
            .enumerate()
            .map(|(level, (name, description))| Fidelity {
                level,
                name: name.into(),
                description: format!("DMF paper {description}"),
                settings: vec![],
            })
            .collect();
        let (name, summary) = match function {
            Function::Borehole => (
                "borehole",
                "Borehole water flow (8 inputs), two fidelities; scalar output",
            ),
            Function::Currin => (
                "currin",
                "Currin exponential function (2 inputs), two fidelities; scalar output",
            ),
            Function::Park => (
                "park",
                "Park function (4 inputs), two fidelities; scalar output",
            ),
        };
        let (oname, unit) = match function {
            Function::Borehole => ("flow", "m^3/yr"),
            _ => ("y", "1"),
        };
        let output = OutputSpec {
            name: oname.into(),
            unit: unit.into(),
            // One scalar: a single axis of length 1, so every output has shape [1].
            axes: vec![Axis {
                name: "component".into(),
                unit: "1".into(),
                values: vec![0.0],
            }],
        };
        Self {
            function,
            spec: ProblemSpec {
                name,
                summary,
                inputs,
                fidelities,
                output,
                extras: vec![],
            },
        }
    }
}

/// Borehole flow rate (m^3/yr); `low` selects eq. (8).
pub fn borehole(x: &[f64], low: bool) -> f64 {
    let [rw, r, tu, hu, tl, hl, l, kw] = [x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7]];
    let lg = (r / rw).ln();
    let (a, b) = if low { (5.0, 1.5) } else { (2.0 * PI, 1.0) };
    a * tu * (hu - hl) / (lg * (b + 2.0 * l * tu / (lg * rw * rw * kw) + tu / tl))
}

/// Currin's high-fidelity function, eq. (9).
pub fn currin_high(x1: f64, x2: f64) -> f64 {
    // exp(-1/(2 x2)) -> 0 as x2 -> 0+, so the factor is 1 there.
    let factor = if x2 > 0.0 {
        1.0 - (-1.0 / (2.0 * x2)).exp()
    } else {
        1.0
    };
    let p = ((2300.0 * x1 + 1900.0) * x1 + 2092.0) * x1 + 60.0;
    let q = ((100.0 * x1 + 500.0) * x1 + 4.0) * x1 + 20.0;
    factor * p / q
}

/// Currin's low-fidelity function, eqs. (10)-(11).
pub fn currin_low(x1: f64, x2: f64) -> f64 {
    let (up, down) = (x2 + 0.05, (x2 - 0.05).max(0.0));
    0.25 * (currin_high(x1 + 0.05, up) + currin_high(x1 + 0.05, down))
        + 0.25 * (currin_high(x1 - 0.05, up) + currin_high(x1 - 0.05, down))
}

/// Park's high-fidelity function, eq. (12).
pub fn park_high(x: &[f64]) -> f64 {
    let [x1, x2, x3, x4] = [x[0], x[1], x[2], x[3]];
    let a = (x2 + x3 * x3) * x4;
    let first = if x1 > 0.0 {
        x1 / 2.0 * ((1.0 + a / (x1 * x1)).sqrt() - 1.0)
    } else {
        a.sqrt() / 2.0
    };
    first + (x1 + 3.0 * x4) * (1.0 + x3.sin()).exp()
}

/// Park's low-fidelity function, eq. (13).
pub fn park_low(x: &[f64]) -> f64 {
    let [x1, x2, x3] = [x[0], x[1], x[2]];
    (1.0 + x1.sin() / 10.0) * park_high(x) - 2.0 * x1 + x2 * x2 + x3 * x3 + 0.5
}

impl Simulator for Synthetic {
    fn spec(&self) -> &ProblemSpec {
        &self.spec
    }
    fn solve(&self, s: &Sample) -> Result<Solution, SolveError> {
        check_sample(&self.spec, s)?;
        let clock = CpuClock::start();
        let x = &s.x[..];
        let low = s.level == 0;
        let y = match self.function {
            Function::Borehole => borehole(x, low),
            Function::Currin if low => currin_low(x[0], x[1]),
            Function::Currin => currin_high(x[0], x[1]),
            Function::Park if low => park_low(x),
            Function::Park => park_high(x),
        };
        Ok(Solution {
            values: vec![y],
            cost_s: clock.seconds(),
            diagnostics: BTreeMap::new(),
            extras: BTreeMap::new(),
        })
    }
}
