//! Fuzzing of the two text parsers users feed directly: experiment configs (TOML) and
//! `--set NAME=VALUE`. Random mutations of the real configs and random `--set` strings must
//! give `Ok` or a one-line error, never a panic.
//!
//! `cargo test` runs MFPIPE_FUZZ_CASES cases (default 2000) per target; `scripts/fuzz` runs
//! millions. Case k always mutates the same way, so a failure names a reproducible case.

use crate::config::RunConfig;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const CONFIGS: &[&str] = &[
    include_str!("../../configs/burgers.toml"),
    include_str!("../../configs/currin.toml"),
    include_str!("../../configs/poisson.toml"),
    include_str!("../../configs/burgers-fig3.toml"),
    include_str!("../../configs/burgers-fig4.toml"),
    include_str!("../../configs/burgers-fig5.toml"),
];

/// Fragments that steer mutations towards the parser's and `check()`'s edge cases.
const TOKENS: &[&str] = &[
    "=",
    "[",
    "]",
    "[[",
    "]]",
    "\"",
    "'",
    "{",
    "}",
    ",",
    ".",
    "\n",
    "#",
    " ",
    "0",
    "-1",
    "1e308",
    "-1e308",
    "nan",
    "inf",
    "-inf",
    "1e-320",
    "18446744073709551616",
    "true",
    "\"\"",
    "[]",
    "[models.x]",
    "model = \"dmf-trans\"",
    "model = 3",
    "cells = 0",
    "cells = 99",
    "[study]",
    "kind = \"sensitivity\"",
    "kind = \"searchers\"",
    "grid = []",
    "[[study.grid]]",
    "name = \"r1\"",
    "values = [0.0]",
    "[[search.space.dmf-2]]",
    "lower = -1",
    "log = true",
    "method = \"grid\"",
    "scope = \"fit\"",
    "units = 0",
    "eta = 1",
    "validation = 1.0",
    "n = []",
    "levels = [1, 0]",
    "n_hf = [0]",
    "seeds = []",
    "hf_shares = [1.5]",
    "budgets_s = [0]",
    "\u{0}",
    "é",
    "\u{feff}",
];

pub fn mutate_config(k: u64) -> String {
    let mut rng = ChaCha8Rng::seed_from_u64(k);
    let mut s: Vec<char> = CONFIGS[rng.random_range(0..CONFIGS.len())]
        .chars()
        .collect();
    for _ in 0..rng.random_range(1..=5) {
        let n = s.len().max(1);
        let at = rng.random_range(0..n).min(s.len());
        match rng.random_range(0..4) {
            0 => {
                let t = TOKENS[rng.random_range(0..TOKENS.len())];
                s.splice(at..at, t.chars());
            }
            1 => {
                let end = (at + rng.random_range(1..40)).min(s.len());
                s.drain(at..end);
            }
            2 => {
                let end = (at + rng.random_range(1..80)).min(s.len());
                let block: Vec<char> = s[at..end].to_vec();
                let to = rng.random_range(0..=s.len());
                s.splice(to..to, block);
            }
            _ => {
                if at < s.len() {
                    s[at] = char::from_u32(rng.random_range(0..0x250)).unwrap_or('?');
                }
            }
        }
    }
    s.into_iter().collect()
}

pub fn random_sets(k: u64, names: &[&str]) -> Vec<String> {
    const PARTS: &[&str] = &[
        "=", "==", " ", "0.05", "1e-3", "-0", "nan", "NaN", "inf", "1e309", "0x10", "1_0", "+.5",
        ".", "e", "", "\u{0}", "ν", "=1", "0.1=0.2",
    ];
    let mut rng = ChaCha8Rng::seed_from_u64(k);
    (0..rng.random_range(0..4))
        .map(|_| {
            let mut s = String::new();
            for _ in 0..rng.random_range(1..5) {
                if rng.random_bool(0.4) && !names.is_empty() {
                    s.push_str(names[rng.random_range(0..names.len())]);
                } else {
                    s.push_str(PARTS[rng.random_range(0..PARTS.len())]);
                }
            }
            s
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use mfpipe_solvers::registry;

    fn cases() -> u64 {
        std::env::var("MFPIPE_FUZZ_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(2000)
    }

    #[test]
    fn mutated_configs_never_panic() {
        let (mut ok, mut err, mut panics) = (0u64, 0u64, Vec::new());
        let n = cases();
        for k in 0..n {
            let text = mutate_config(k);
            match std::panic::catch_unwind(|| RunConfig::parse(&text, "fuzz")) {
                Ok(Ok(_)) => ok += 1,
                Ok(Err(e)) => {
                    let msg = format!("{e:#}");
                    assert!(!msg.contains('\n'), "case {k}: multi-line error {msg}");
                    err += 1;
                }
                Err(_) => panics.push(k),
            }
        }
        println!(
            "config parser: {n} cases: {ok} accepted, {err} errors, {} panics",
            panics.len()
        );
        assert!(panics.is_empty(), "cases that panicked: {panics:?}");
    }

    #[test]
    fn random_set_arguments_never_panic() {
        let sims = registry::all();
        let (mut ok, mut err, mut panics) = (0u64, 0u64, Vec::new());
        let n = cases();
        for k in 0..n {
            let sim = &sims[(k as usize) % sims.len()];
            let names: Vec<&str> = sim.spec().inputs.iter().map(|i| i.name).collect();
            let sets = random_sets(k, &names);
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                crate::commands::parse_sets(sim.as_ref(), &sets).and_then(|x| {
                    mfpipe_solvers::check_inputs(sim.name(), &sim.spec().inputs, &x)
                        .map_err(anyhow::Error::from)
                })
            }));
            match r {
                Ok(Ok(())) => ok += 1,
                Ok(Err(e)) => {
                    assert!(!format!("{e:#}").contains('\n'), "case {k}: {e:#}");
                    err += 1;
                }
                Err(_) => panics.push(k),
            }
        }
        println!(
            "--set parser: {n} cases: {ok} accepted, {err} errors, {} panics",
            panics.len()
        );
        assert!(panics.is_empty(), "cases that panicked: {panics:?}");
    }
}
