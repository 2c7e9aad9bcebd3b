//! Hyperparameter search for one fit (DMF Sec. 3.4): hold out part of the fit's own
//! high-fidelity training samples, score configurations on them with one of the searchers of
//! [`mfpipe_fusion::search`], and hand back the winner. The test set never enters: callers
//! pass only the training set.

use crate::config::{SearchConfig, SearchMethod};
use anyhow::Result;
use mfpipe_data::{metrics, split, NoProgress};
use mfpipe_fusion::search::{self, Config, Space};
use mfpipe_fusion::{registry, Budget, FitContext, FusionError, Memo, MfTrainSet};
use serde::Serialize;
use std::cell::RefCell;
use std::time::Instant;

/// One evaluation, timed: what Fig. 5 plots.
#[derive(Debug, Clone, Serialize)]
pub struct TimedTrial {
    pub config: Config,
    /// Budget in units (1/R of the tuned phase's steps).
    pub units: usize,
    /// Validation RMSE (`None` = the fit diverged: scored worst).
    pub score: Option<f64>,
    /// Wall seconds since the search started, at the end of this evaluation.
    pub t: f64,
}

pub struct Tuned {
    /// The base hyperparameters with the chosen configuration merged in.
    pub params: serde_json::Value,
    /// What goes into results.json under `hyperparameters.search`.
    pub summary: serde_json::Value,
    pub trials: Vec<TimedTrial>,
}

/// `base` with `config`'s values set (integers where the dimension is integer).
pub fn merge(base: &serde_json::Value, config: &Config, space: &Space) -> serde_json::Value {
    let mut p = match base {
        serde_json::Value::Object(_) => base.clone(),
        _ => serde_json::json!({}),
    };
    for d in &space.dims {
        if let Some(v) = config.get(&d.name) {
            p[&d.name] = if d.integer {
                (v.round() as i64).into()
            } else {
                (*v).into()
            };
        }
    }
    p
}

/// Budgets of the rungs of median pruning: R, R/eta, R/eta^2, ... down to 1 unit, ascending.
fn rungs(units: usize, eta: usize) -> Vec<usize> {
    let mut r = vec![units];
    while *r.last().unwrap() / eta >= 1 {
        let next = r.last().unwrap() / eta;
        r.push(next);
    }
    r.reverse();
    r
}

/// Search `kind`'s hyperparameters over `space` with `method`, on a validation split of
/// `train`'s target source. `budget.cap` (smoke runs) caps every phase as in plain fits.
#[allow(clippy::too_many_arguments)]
pub fn tune(
    kind: &str,
    base: &serde_json::Value,
    space: &Space,
    cfg: &SearchConfig,
    method: SearchMethod,
    train: &MfTrainSet,
    seed: u64,
    budget: Budget,
) -> Result<Tuned> {
    let n = train.target().inputs.nrows();
    let n_val = ((cfg.validation * n as f64).round() as usize).max(1);
    if n < n_val + 2 || method == SearchMethod::None {
        let reason = if method == SearchMethod::None {
            "search.method = none"
        } else {
            "too few high-fidelity samples to hold out a validation set; configured values used"
        };
        return Ok(Tuned {
            params: base.clone(),
            summary: serde_json::json!({ "method": "none", "reason": reason }),
            trials: Vec::new(),
        });
    }
    let all: Vec<usize> = (0..n).collect();
    let val = split::choose(&all, n_val, seed ^ 0x5EA2_C4ED)?;
    let fit_idx: Vec<usize> = all.iter().copied().filter(|i| !val.contains(i)).collect();
    let hf = train.target();
    let mut sources = train.sources[..train.sources.len() - 1].to_vec();
    sources.push(hf.select(&fit_idx));
    let sub = MfTrainSet::new(sources).with_shape(train.shape.clone());
    let held = hf.select(&val);

    let full = (registry::info(kind)?.tuned_epochs)(base)?;
    let full = budget.cap.map_or(full, |c| full.min(c));
    let unit = (full / cfg.units).max(1);
    let memo = Memo::default();
    let t0 = Instant::now();
    let failure: RefCell<Option<anyhow::Error>> = RefCell::new(None);
    let timed: RefCell<Vec<TimedTrial>> = RefCell::new(Vec::new());
    let objective = |config: &Config, units: usize| -> f64 {
        if failure.borrow().is_some() {
            return f64::INFINITY;
        }
        let score = (|| -> Result<Option<f64>> {
            let mut model = registry::build(kind, &merge(base, config, space))?;
            let mut ctx = FitContext {
                seed,
                budget: Budget {
                    cap: budget.cap,
                    last: Some(units * unit),
                },
                progress: &NoProgress,
                memo: Some(&memo),
            };
            match model.fit(&sub, &mut ctx) {
                Ok(_) => {}
                Err(FusionError::Diverged { .. }) => return Ok(None),
                Err(e) => return Err(e.into()),
            }
            let pred = model.predict(held.inputs.view())?.mean;
            let s = metrics::rmse(pred.view(), held.outputs.view());
            Ok(s.is_finite().then_some(s))
        })();
        let score = match score {
            Ok(s) => s,
            Err(e) => {
                *failure.borrow_mut() = Some(e);
                None
            }
        };
        timed.borrow_mut().push(TimedTrial {
            config: config.clone(),
            units,
            score,
            t: t0.elapsed().as_secs_f64(),
        });
        score.unwrap_or(f64::INFINITY)
    };
    let s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5EA5;
    let outcome = match method {
        SearchMethod::None => unreachable!("handled above"),
        SearchMethod::Grid => search::grid(space, cfg.units, objective),
        SearchMethod::Random => search::random(space, cfg.trials, cfg.units, s, objective),
        SearchMethod::Median => {
            search::median_pruning(space, cfg.trials, &rungs(cfg.units, cfg.eta), s, objective)
        }
        SearchMethod::Sha => {
            let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(s);
            let configs = (0..cfg.trials).map(|_| space.sample(&mut rng)).collect();
            search::successive_halving(configs, 1, cfg.eta, cfg.units, objective)
        }
        SearchMethod::Hyperband => search::hyperband(space, cfg.units, cfg.eta, s, objective),
    };
    if let Some(e) = failure.into_inner() {
        return Err(e.context(format!("{} search for {kind}", method.name())));
    }
    let trials = timed.into_inner();
    if !outcome.best_score.is_finite() {
        // Nothing to choose from; the final fit with the configured values may diverge too,
        // and is then scored as the worst, like any diverged fit.
        return Ok(Tuned {
            params: base.clone(),
            summary: serde_json::json!({
                "method": method.name(),
                "reason": "every configuration diverged; configured values used",
                "evaluations": trials.len(),
            }),
            trials,
        });
    }
    Ok(Tuned {
        params: merge(base, &outcome.best, space),
        summary: serde_json::json!({
            "method": method.name(),
            "chosen": outcome.best,
            "validation_rmse": outcome.best_score,
            "validation_samples": n_val,
            "evaluations": trials.len(),
            "budget_units": outcome.total_budget(),
            "unit_steps": unit,
            "seconds": t0.elapsed().as_secs_f64(),
        }),
        trials,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_rungs_climb_by_eta_to_r() {
        assert_eq!(rungs(9, 3), vec![1, 3, 9]);
        assert_eq!(rungs(27, 3), vec![1, 3, 9, 27]);
        assert_eq!(rungs(1, 3), vec![1]);
        assert_eq!(rungs(10, 3), vec![1, 3, 10]);
    }
}
