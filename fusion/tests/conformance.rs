//! Conformance of every model in the table to the FusionModel contract (DESIGN sec. 2): it
//! fits and predicts the declared shape on a tiny set, depends on its inputs, is reproducible
//! from its seed, refuses a source count it does not take and bad hyperparameters, and
//! predicts a variance exactly when the table says so. A model added to the table is covered
//! here without a new test.

use mfpipe_data::NoProgress;
use mfpipe_fusion::registry::{self, ModelInfo};
use mfpipe_fusion::{Budget, FitContext, FusionError, MfTrainSet, Prediction, Source, Sources};
use ndarray::Array2;

/// A 3-value field over one input, cheapest source first: level t is a slightly different
/// (shifted, scaled) version of the target, as fidelity ladders are.
fn source(level: usize, n: usize, offset: f64) -> Source {
    let x = Array2::from_shape_fn((n, 1), |(i, _)| (i as f64 + offset) / n as f64);
    let shift = 0.1 * (2 - level.min(2)) as f64;
    let y = Array2::from_shape_fn((n, 3), |(i, j)| {
        let u = x[[i, 0]];
        (1.0 - shift) * (3.0 * u + j as f64).sin() + shift * u
    });
    Source::new(x, y).at(level, format!("level{level}"))
}

/// Sources for a model: three for chains and any-count models (to exercise m > 2), two for
/// two-source models, and three for single-fidelity ones (which must ignore the cheaper two).
fn train_for(m: &ModelInfo) -> MfTrainSet {
    let three = vec![source(0, 16, 0.5), source(1, 10, 0.25), source(2, 7, 0.4)];
    match m.sources {
        Sources::Two => MfTrainSet::new(vec![source(0, 16, 0.5), source(2, 7, 0.4)]),
        _ => MfTrainSet::new(three),
    }
}

fn fit(
    m: &ModelInfo,
    train: &MfTrainSet,
    seed: u64,
) -> Result<Box<dyn mfpipe_fusion::FusionModel>, FusionError> {
    let mut model = (m.build)(&serde_json::Value::Null)?;
    model.fit(
        train,
        &mut FitContext {
            seed,
            budget: Budget::capped(25),
            progress: &NoProgress,
            memo: None,
        },
    )?;
    Ok(model)
}

fn test_x() -> Array2<f64> {
    Array2::from_shape_fn((5, 1), |(i, _)| 0.1 + 0.2 * i as f64)
}

fn bits(p: &Prediction) -> Vec<u64> {
    p.mean.iter().map(|v| v.to_bits()).collect()
}

#[test]
fn every_model_fits_predicts_its_shape_and_depends_on_its_inputs() {
    for m in registry::MODELS {
        let train = train_for(m);
        let model = fit(m, &train, 0).unwrap_or_else(|e| panic!("{}: {e}", m.name));
        let p = model.predict(test_x().view()).unwrap();
        assert_eq!(p.mean.dim(), (5, 3), "{}: [N, D] predictions", m.name);
        assert!(p.mean.iter().all(|v| v.is_finite()), "{}", m.name);
        let first = p.mean.row(0).to_owned();
        assert!(
            p.mean.rows().into_iter().any(|r| r != first),
            "{}: a prediction that ignores x",
            m.name
        );
        match (&p.variance(), m.variance) {
            (Some(v), true) => {
                assert_eq!(v.dim(), (5, 3), "{}", m.name);
                assert!(v.iter().all(|v| v.is_finite() && *v >= 0.0), "{}", m.name);
            }
            (None, false) => {}
            (v, declared) => panic!(
                "{}: table says variance = {declared}, prediction has one: {}",
                m.name,
                v.is_some()
            ),
        }
        assert!(
            model.predict(Array2::zeros((2, 3)).view()).is_err(),
            "{}: inputs of the wrong width are refused",
            m.name
        );
    }
}

#[test]
fn every_model_is_reproducible_from_its_seed() {
    for m in registry::MODELS {
        let train = train_for(m);
        let x = test_x();
        let a = fit(m, &train, 3).unwrap().predict(x.view()).unwrap();
        let b = fit(m, &train, 3).unwrap().predict(x.view()).unwrap();
        assert_eq!(bits(&a), bits(&b), "{}: same seed, same bits", m.name);
    }
}

/// Every number a prediction carries: mean, variance and samples.
fn all_bits(p: &Prediction) -> Vec<u64> {
    let var = p.var.iter().flat_map(|v| v.iter());
    let samples = p.samples.iter().flat_map(|s| s.iter());
    p.mean
        .iter()
        .chain(var)
        .chain(samples)
        .map(|v| v.to_bits())
        .collect()
}

#[test]
fn every_model_predicts_the_same_bits_after_its_state_is_saved_and_loaded() {
    for m in registry::MODELS {
        let train = train_for(m);
        let x = test_x();
        let fitted = fit(m, &train, 5).unwrap();
        let before = fitted.predict(x.view()).unwrap();
        let bytes = fitted.save_state().unwrap();
        let mut restored = (m.build)(&serde_json::Value::Null).unwrap();
        restored.load_state(&bytes).unwrap();
        let after = restored.predict(x.view()).unwrap();
        assert!(!all_bits(&before).is_empty());
        assert_eq!(
            all_bits(&before),
            all_bits(&after),
            "{}: a restored model predicts the same bits",
            m.name
        );
        // Another model's state (gp-hf's, or nn-hf's for gp-hf) is refused, not half-read.
        let other = if m.name == "gp-hf" { "nn-hf" } else { "gp-hf" };
        let other = fit(
            registry::info(other).unwrap(),
            &train_for(registry::info(other).unwrap()),
            5,
        )
        .unwrap();
        let mut wrong = (m.build)(&serde_json::Value::Null).unwrap();
        assert!(
            wrong.load_state(&other.save_state().unwrap()).is_err(),
            "{}: loads {}'s state",
            m.name,
            other.name()
        );
        assert!(
            wrong.load_state(&bytes[..bytes.len() / 2]).is_err(),
            "{}: loads half a state",
            m.name
        );
    }
}

#[test]
fn a_point_is_predicted_the_same_alone_or_in_a_batch() {
    for m in registry::MODELS {
        let train = train_for(m);
        let x = test_x();
        let model = fit(m, &train, 5).unwrap();
        let all = model.predict(x.view()).unwrap();
        for i in [0, 3] {
            let one = model.predict(x.slice(ndarray::s![i..i + 1, ..])).unwrap();
            let row = Prediction {
                mean: all.mean.slice(ndarray::s![i..i + 1, ..]).to_owned(),
                var: all
                    .var
                    .as_ref()
                    .map(|v| v.slice(ndarray::s![i..i + 1, ..]).to_owned()),
                samples: all
                    .samples
                    .as_ref()
                    .map(|s| s.slice(ndarray::s![.., i..i + 1, ..]).to_owned()),
            };
            assert_eq!(all_bits(&one), all_bits(&row), "{}: row {i}", m.name);
        }
    }
}

#[test]
fn a_model_that_was_never_fitted_has_no_state_to_save() {
    for m in registry::MODELS {
        let model = (m.build)(&serde_json::Value::Null).unwrap();
        assert!(
            matches!(model.save_state(), Err(FusionError::NotFitted { .. })),
            "{}",
            m.name
        );
    }
}

#[test]
fn every_model_refuses_a_source_count_it_does_not_take() {
    let one = MfTrainSet::new(vec![source(2, 7, 0.4)]);
    let three = MfTrainSet::new(vec![
        source(0, 16, 0.5),
        source(1, 10, 0.25),
        source(2, 7, 0.4),
    ]);
    for m in registry::MODELS {
        let wrong = match m.sources {
            Sources::Two => Some(three.clone()),
            Sources::Chain => Some(one.clone()),
            Sources::TargetOnly | Sources::Any => None,
        };
        if let Some(train) = wrong {
            let e = fit(m, &train, 0)
                .err()
                .unwrap_or_else(|| panic!("{} accepted {} sources", m.name, train.sources.len()));
            assert!(
                matches!(e, FusionError::SourceCount { .. }),
                "{}: {e}",
                m.name
            );
            let msg = e.to_string();
            assert!(
                msg.contains(m.name) && msg.contains(m.sources.describe()),
                "{msg}"
            );
        }
    }
}

#[test]
fn every_model_refuses_bad_hyperparameters_before_fitting() {
    let unknown = serde_json::json!({ "no_such_key": 1 });
    for m in registry::MODELS {
        let e = (m.params)(&unknown).expect_err(m.name);
        assert!(e.to_string().contains("no_such_key"), "{}: {e}", m.name);
        assert!((m.build)(&unknown).is_err(), "{}", m.name);
        assert!((m.tuned_epochs)(&unknown).is_err(), "{}", m.name);
        // The defaults are valid, and a search's budget comes from them.
        let defaults = (m.params)(&serde_json::Value::Null).unwrap();
        assert!((m.tuned_epochs)(&defaults).unwrap() > 0, "{}", m.name);
        for d in (m.default_space)() {
            assert!(
                defaults.get(&d.name).is_some(),
                "{}: searched {} exists",
                m.name,
                d.name
            );
        }
    }
    assert!(registry::info("kriging").is_err());
}
