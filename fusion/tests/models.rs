//! Behaviour of the neural baselines on problems with known answers.

use mfpipe_data::NoProgress;
use mfpipe_fusion::{registry, Budget, FitContext, FusionModel, MfTrainSet, Source};
use ndarray::Array2;
use std::f64::consts::PI;

/// A smooth parametric field: x in [0, 1] -> 40 grid values.
fn field(x: f64) -> Vec<f64> {
    (0..40)
        .map(|j| {
            let s = j as f64 / 39.0;
            (PI * s * (1.0 + x)).sin() * (-x * s).exp()
        })
        .collect()
}

/// A cheaper, biased version of it (what a coarse solver gives).
fn field_lf(x: f64) -> Vec<f64> {
    field(x)
        .iter()
        .enumerate()
        .map(|(j, v)| 0.8 * v + 0.1 * (j as f64 / 39.0))
        .collect()
}

fn set(xs: &[f64], f: fn(f64) -> Vec<f64>) -> Source {
    let inputs = Array2::from_shape_vec((xs.len(), 1), xs.to_vec()).unwrap();
    let outputs =
        Array2::from_shape_vec((xs.len(), 40), xs.iter().flat_map(|&x| f(x)).collect()).unwrap();
    Source::new(inputs, outputs)
}

fn grid(n: usize, offset: f64) -> Vec<f64> {
    (0..n).map(|i| (i as f64 + offset) / n as f64).collect()
}

fn fit(name: &str, train: &MfTrainSet, seed: u64) -> Box<dyn FusionModel> {
    let mut m = registry::build(name, &serde_json::Value::Null).unwrap();
    m.fit(
        train,
        &mut FitContext {
            seed,
            budget: Budget::default(),
            memo: None,
            progress: &NoProgress,
        },
    )
    .unwrap();
    m
}

fn rmse(m: &dyn FusionModel, xs: &[f64]) -> f64 {
    let test = set(xs, field);
    let p = m.predict(test.inputs.view()).unwrap().mean;
    ((&p - &test.outputs).mapv(|e| e * e).mean().unwrap()).sqrt()
}

#[test]
fn nn_hf_learns_a_smooth_field_from_enough_samples() {
    let train = MfTrainSet::new(vec![set(&grid(24, 0.5), field)]);
    let m = fit("nn-hf", &train, 0);
    let test = grid(37, 0.3);
    let e = rmse(m.as_ref(), &test);
    // The field's spread is about 0.5; a model ignoring x would score ~0.2 here.
    assert!(e < 0.02, "rmse {e}");
    let p = m
        .predict(
            Array2::from_shape_vec((2, 1), vec![0.1, 0.9])
                .unwrap()
                .view(),
        )
        .unwrap()
        .mean;
    assert!(
        (&p.row(0) - &p.row(1)).mapv(f64::abs).sum() > 1.0,
        "predictions must depend on the input"
    );
}

#[test]
fn transfer_from_low_fidelity_beats_high_fidelity_alone_when_hf_is_scarce() {
    let lf = set(&grid(30, 0.5), field_lf);
    let hf = set(&[0.1, 0.4, 0.65, 0.95], field);
    let test = grid(41, 0.25);
    let nn = fit("nn-hf", &MfTrainSet::new(vec![hf.clone()]), 1);
    let tr = fit("mf-transfer", &MfTrainSet::new(vec![lf, hf]), 1);
    let (e_nn, e_tr) = (rmse(nn.as_ref(), &test), rmse(tr.as_ref(), &test));
    assert!(e_tr < 0.7 * e_nn, "mf-transfer {e_tr} vs nn-hf {e_nn}");
}

#[test]
fn fits_are_reproducible_from_the_seed() {
    let train = MfTrainSet::new(vec![set(&grid(8, 0.5), field)]);
    let x = Array2::from_shape_vec((3, 1), vec![0.2, 0.5, 0.8]).unwrap();
    let a = fit("nn-hf", &train, 5).predict(x.view()).unwrap().mean;
    let b = fit("nn-hf", &train, 5).predict(x.view()).unwrap().mean;
    let c = fit("nn-hf", &train, 6).predict(x.view()).unwrap().mean;
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[test]
fn bad_hyperparameters_and_data_are_errors_not_panics() {
    let e = |name: &str, v: serde_json::Value| {
        registry::build(name, &v)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    assert!(e("nn-hf", serde_json::json!({"lr": 0.0})).contains("learning rate 0"));
    assert!(e("nn-hf", serde_json::json!({"net": {"hidden": []}})).contains("hidden"));
    assert!(e("mf-transfer", serde_json::json!({"epochs": 0})).contains("epochs"));
    assert!(e("nn-hf", serde_json::json!({"learning_rate": 0.1})).contains("unknown field"));
    assert!(e("kriging", serde_json::Value::Null).contains("unknown model"));
    let mut m = registry::build("mf-transfer", &serde_json::Value::Null).unwrap();
    let one = MfTrainSet::new(vec![set(&[0.1, 0.2], field)]);
    let r = m.fit(
        &one,
        &mut FitContext {
            seed: 0,
            budget: Budget::capped(5),
            memo: None,
            progress: &NoProgress,
        },
    );
    assert!(r
        .unwrap_err()
        .to_string()
        .contains("takes exactly two sources"));
    assert!(m.predict(Array2::zeros((1, 1)).view()).is_err());
}
