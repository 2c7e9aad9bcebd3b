//! Hyperparameter search with training epochs as the budget: grid, random, median pruning,
//! successive halving (SHA) and Hyperband (Li et al., JMLR 2018), as in DMF Sec. 3.4.
//!
//! The searchers only schedule: an objective trains a configuration for a number of epochs
//! and returns its validation score (lower is better). Selecting on a validation split of
//! the *training* data is the caller's job; nothing here sees a test set. A score that is
//! not finite (a diverged fit) ranks worst and is never selected while a finite one exists.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A configuration: hyperparameter name -> value.
pub type Config = BTreeMap<String, f64>;

/// One searched hyperparameter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dim {
    pub name: String,
    pub lower: f64,
    pub upper: f64,
    /// Sample log-uniformly (learning rates, weight decays).
    #[serde(default)]
    pub log: bool,
    /// Round to an integer (k).
    #[serde(default)]
    pub integer: bool,
    /// Values for grid search; empty = `lower` and `upper`.
    #[serde(default)]
    pub grid: Vec<f64>,
}

impl Dim {
    fn sample(&self, rng: &mut ChaCha8Rng) -> f64 {
        let u: f64 = rng.random();
        let v = if self.log {
            (self.lower.ln() + u * (self.upper.ln() - self.lower.ln())).exp()
        } else {
            self.lower + u * (self.upper - self.lower)
        };
        if self.integer {
            v.round().clamp(self.lower, self.upper)
        } else {
            v
        }
    }
}

/// The search space: the product of its dimensions.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Space {
    pub dims: Vec<Dim>,
}

impl Space {
    pub fn check(&self) -> Result<(), String> {
        for d in &self.dims {
            if !(d.lower.is_finite() && d.upper.is_finite() && d.lower <= d.upper) {
                return Err(format!(
                    "{}: bounds [{}, {}] must be finite and ordered",
                    d.name, d.lower, d.upper
                ));
            }
            if d.log && d.lower <= 0.0 {
                return Err(format!(
                    "{}: a log-scaled dimension needs lower > 0",
                    d.name
                ));
            }
        }
        Ok(())
    }

    pub fn sample(&self, rng: &mut ChaCha8Rng) -> Config {
        self.dims
            .iter()
            .map(|d| (d.name.clone(), d.sample(rng)))
            .collect()
    }

    /// Every combination of the dimensions' grid values (last dimension fastest).
    pub fn grid(&self) -> Vec<Config> {
        let mut out = vec![Config::new()];
        for d in &self.dims {
            let values = if d.grid.is_empty() {
                vec![d.lower, d.upper]
            } else {
                d.grid.clone()
            };
            out = out
                .into_iter()
                .flat_map(|c| {
                    values.iter().map(move |v| {
                        let mut c = c.clone();
                        c.insert(d.name.clone(), *v);
                        c
                    })
                })
                .collect();
        }
        out
    }
}

/// One evaluation: a configuration trained for `budget` epochs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trial {
    pub config: Config,
    pub budget: usize,
    pub score: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub best: Config,
    /// Score of `best` at the largest budget it was trained with.
    pub best_score: f64,
    /// Every evaluation, in the order made.
    pub trials: Vec<Trial>,
}

impl Outcome {
    /// Total epochs spent, the cost measure the methods are compared by.
    pub fn total_budget(&self) -> usize {
        self.trials.iter().map(|t| t.budget).sum()
    }
}

/// Ranking key: non-finite scores (diverged fits) rank after every finite one.
fn key(score: f64) -> f64 {
    if score.is_finite() {
        score
    } else {
        f64::INFINITY
    }
}

/// Evaluate, record, return the score.
fn eval(
    f: &mut impl FnMut(&Config, usize) -> f64,
    trials: &mut Vec<Trial>,
    config: &Config,
    budget: usize,
) -> f64 {
    let score = f(config, budget);
    trials.push(Trial {
        config: config.clone(),
        budget,
        score,
    });
    score
}

/// Best trial among those at the largest budget any configuration reached (ties: earliest).
fn finish(trials: Vec<Trial>) -> Outcome {
    let top = trials.iter().map(|t| t.budget).max().unwrap_or(0);
    let best = trials
        .iter()
        .filter(|t| t.budget == top)
        .min_by(|a, b| key(a.score).total_cmp(&key(b.score)))
        .cloned()
        .unwrap_or(Trial {
            config: Config::new(),
            budget: 0,
            score: f64::INFINITY,
        });
    Outcome {
        best: best.config,
        best_score: best.score,
        trials,
    }
}

/// Every grid point at the full budget.
pub fn grid(space: &Space, budget: usize, mut f: impl FnMut(&Config, usize) -> f64) -> Outcome {
    let mut trials = Vec::new();
    for c in space.grid() {
        eval(&mut f, &mut trials, &c, budget);
    }
    finish(trials)
}

/// `n` random configurations at the full budget.
pub fn random(
    space: &Space,
    n: usize,
    budget: usize,
    seed: u64,
    mut f: impl FnMut(&Config, usize) -> f64,
) -> Outcome {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut trials = Vec::new();
    for _ in 0..n {
        let c = space.sample(&mut rng);
        eval(&mut f, &mut trials, &c, budget);
    }
    finish(trials)
}

/// Successive halving: train all `configs` with `r` epochs, keep the best 1/eta, multiply the
/// budget by eta, until one is left or the budget reaches `max_budget`.
pub fn successive_halving(
    configs: Vec<Config>,
    r: usize,
    eta: usize,
    max_budget: usize,
    mut f: impl FnMut(&Config, usize) -> f64,
) -> Outcome {
    let mut trials = Vec::new();
    sha_rounds(configs, r, eta, max_budget, usize::MAX, &mut f, &mut trials);
    finish(trials)
}

/// The rounds of one SHA run; `rounds` caps them (Hyperband runs s + 1 per bracket).
fn sha_rounds(
    mut configs: Vec<Config>,
    r: usize,
    eta: usize,
    max_budget: usize,
    rounds: usize,
    f: &mut impl FnMut(&Config, usize) -> f64,
    trials: &mut Vec<Trial>,
) {
    let mut budget = r.max(1);
    for round in 0..rounds {
        let mut scored: Vec<(f64, Config)> = configs
            .iter()
            .map(|c| (eval(f, trials, c, budget), c.clone()))
            .collect();
        if configs.len() <= 1 || budget >= max_budget || round + 1 == rounds {
            break;
        }
        scored.sort_by(|a, b| key(a.0).total_cmp(&key(b.0)));
        let keep = (configs.len() / eta).max(1);
        configs = scored.into_iter().take(keep).map(|(_, c)| c).collect();
        budget = (budget * eta).min(max_budget);
    }
}

/// Median pruning (the median stopping rule): `n` random configurations are trained through
/// increasing budgets (`rungs`); at each rung a configuration whose score is worse than the
/// median of all scores seen at that rung stops.
pub fn median_pruning(
    space: &Space,
    n: usize,
    rungs: &[usize],
    seed: u64,
    mut f: impl FnMut(&Config, usize) -> f64,
) -> Outcome {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut trials = Vec::new();
    let mut at_rung: Vec<Vec<f64>> = vec![Vec::new(); rungs.len()];
    for _ in 0..n {
        let c = space.sample(&mut rng);
        for (k, &b) in rungs.iter().enumerate() {
            let s = key(eval(&mut f, &mut trials, &c, b));
            at_rung[k].push(s);
            let mut seen = at_rung[k].clone();
            seen.sort_by(f64::total_cmp);
            let median = seen[(seen.len() - 1) / 2];
            if s > median {
                break;
            }
        }
    }
    finish(trials)
}

/// Hyperband's brackets for maximum budget `r_max` and elimination rate `eta`: for each
/// bracket s = s_max..0, the rounds (n_i configurations, r_i epochs each) of its SHA run.
/// For r_max = 81, eta = 3 this is Table 1 of Li et al. (2018).
pub fn hyperband_schedule(r_max: usize, eta: usize) -> Vec<Vec<(usize, usize)>> {
    assert!(eta >= 2 && r_max >= 1);
    // s_max = floor(log_eta(R)), computed in integers to avoid 81 -> 3.9999.
    let mut s_max = 0;
    while eta.pow(s_max + 1) <= r_max {
        s_max += 1;
    }
    let b = (s_max as usize + 1) * r_max;
    (0..=s_max)
        .rev()
        .map(|s| {
            let pow = eta.pow(s);
            let n = (b * pow).div_ceil(r_max * (s as usize + 1));
            (0..=s)
                .map(|i| (n / eta.pow(i), r_max * eta.pow(i) / pow))
                .collect()
        })
        .collect()
}

/// Hyperband: SHA brackets from aggressive (many configurations, few epochs) to
/// conservative (few configurations, full budget). The result is the best configuration
/// trained with the full budget `r_max`.
pub fn hyperband(
    space: &Space,
    r_max: usize,
    eta: usize,
    seed: u64,
    mut f: impl FnMut(&Config, usize) -> f64,
) -> Outcome {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut trials = Vec::new();
    for bracket in hyperband_schedule(r_max, eta) {
        let (n, r) = bracket[0];
        let configs = (0..n).map(|_| space.sample(&mut rng)).collect();
        sha_rounds(configs, r, eta, r_max, bracket.len(), &mut f, &mut trials);
    }
    finish(trials)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn space() -> Space {
        Space {
            dims: vec![
                Dim {
                    name: "lr".into(),
                    lower: 1e-4,
                    upper: 1e-1,
                    log: true,
                    integer: false,
                    grid: vec![1e-4, 1e-3, 1e-2, 1e-1],
                },
                Dim {
                    name: "k".into(),
                    lower: 1.0,
                    upper: 10.0,
                    log: false,
                    integer: true,
                    grid: vec![1.0, 5.0, 10.0],
                },
            ],
        }
    }

    /// A stand-in for training: the error falls with the budget towards a floor set by how
    /// far the learning rate is from 1e-2.
    fn objective(c: &Config, budget: usize) -> f64 {
        let d = (c["lr"].log10() + 2.0).abs();
        d * d + 1.0 / budget as f64
    }

    #[test]
    fn hyperband_brackets_match_li_et_al_table_1() {
        let expect = vec![
            vec![(81, 1), (27, 3), (9, 9), (3, 27), (1, 81)],
            vec![(34, 3), (11, 9), (3, 27), (1, 81)],
            vec![(15, 9), (5, 27), (1, 81)],
            vec![(8, 27), (2, 81)],
            vec![(5, 81)],
        ];
        assert_eq!(hyperband_schedule(81, 3), expect);
    }

    #[test]
    fn hyperband_runs_its_schedule_and_finds_a_good_configuration() {
        let out = hyperband(&space(), 81, 3, 0, objective);
        // Evaluations per (bracket round) = the table's n_i: 81+27+9+3+1 + 34+11+3+1 + 15+5+1 + 8+2 + 5.
        assert_eq!(out.trials.len(), 206);
        let best = out
            .trials
            .iter()
            .filter(|t| t.budget == 81)
            .map(|t| t.score)
            .fold(f64::INFINITY, f64::min);
        assert_eq!(out.best_score, best);
        // The floor is (log10 lr + 2)^2; 143 random configurations land near lr = 1e-2.
        assert!((out.best["lr"].log10() + 2.0).abs() < 0.1, "{:?}", out.best);
        // Far cheaper than training every configuration Hyperband looked at to the end.
        assert!(out.total_budget() < 143 * 81 / 5);
    }

    #[test]
    fn successive_halving_keeps_the_best_third_each_round() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let configs: Vec<Config> = (0..27).map(|_| space().sample(&mut rng)).collect();
        let out = successive_halving(configs.clone(), 1, 3, 27, objective);
        let per_budget = |b| out.trials.iter().filter(|t| t.budget == b).count();
        assert_eq!(
            (per_budget(1), per_budget(3), per_budget(9), per_budget(27)),
            (27, 9, 3, 1)
        );
        let best_first = configs
            .iter()
            .min_by(|a, b| objective(a, 1).total_cmp(&objective(b, 1)))
            .unwrap();
        assert_eq!(
            &out.best, best_first,
            "with a rank-preserving objective SHA keeps the true best"
        );
    }

    #[test]
    fn grid_and_random_cover_their_sets() {
        let g = grid(&space(), 10, objective);
        assert_eq!(g.trials.len(), 12);
        assert_eq!(g.best["lr"], 1e-2);
        let r = random(&space(), 20, 10, 3, objective);
        assert_eq!(r.trials.len(), 20);
        assert!(r
            .trials
            .iter()
            .all(|t| (1e-4..=1e-1).contains(&t.config["lr"]) && t.config["k"].fract() == 0.0));
        assert_eq!(
            r.trials,
            random(&space(), 20, 10, 3, objective).trials,
            "same seed, same search"
        );
    }

    #[test]
    fn median_pruning_stops_below_median_runs_early() {
        let out = median_pruning(&space(), 20, &[1, 3, 9, 27], 5, objective);
        let finished = out.trials.iter().filter(|t| t.budget == 27).count();
        assert!(
            (1..20).contains(&finished),
            "{finished} of 20 reached the last rung"
        );
        assert!(out.total_budget() < 20 * (1 + 3 + 9 + 27));
    }

    #[test]
    fn diverged_fits_rank_worst_and_are_never_chosen() {
        // Every configuration with lr > 1e-2 "diverges".
        let f = |c: &Config, b: usize| {
            if c["lr"] > 1e-2 {
                f64::NAN
            } else {
                objective(c, b)
            }
        };
        for out in [
            hyperband(&space(), 27, 3, 2, f),
            grid(&space(), 5, f),
            random(&space(), 30, 5, 1, f),
        ] {
            assert!(
                out.best_score.is_finite() && out.best["lr"] <= 1e-2,
                "{:?}",
                out.best
            );
        }
    }
}
