//! The GP baselines against what their definitions imply: exact interpolation without noise,
//! the autoregression coefficient of an exactly linear LF/HF pair, the likelihood gradient
//! against finite differences, and the nonlinear LF/HF relation that separates `nar` from `ar`.

use mfpipe_data::NoProgress;
use mfpipe_fusion::gp::{constant, Problem};
use mfpipe_fusion::{registry, Budget, FitContext, FitReport, FusionModel, MfTrainSet, Source};
use ndarray::{Array1, Array2};
use std::f64::consts::PI;

const MODELS: [&str; 4] = ["gp-hf", "ar", "nar", "gar"];

/// Perdikaris et al.'s (2017) pair: f_L = sin(8 pi x), f_H = (x - sqrt 2) f_L^2 — the HF is a
/// nonlinear (quadratic) function of the LF, so no rho can map one onto the other.
fn f_low(x: f64) -> f64 {
    (8.0 * PI * x).sin()
}
fn f_high(x: f64) -> f64 {
    (x - 2f64.sqrt()) * f_low(x).powi(2)
}

fn level(xs: &[f64], f: impl Fn(f64) -> Vec<f64>) -> Source {
    let d = f(0.0).len();
    Source::new(
        Array2::from_shape_vec((xs.len(), 1), xs.to_vec()).unwrap(),
        Array2::from_shape_vec((xs.len(), d), xs.iter().flat_map(|&x| f(x)).collect()).unwrap(),
    )
}

fn grid(n: usize) -> Vec<f64> {
    (0..n).map(|i| i as f64 / (n - 1) as f64).collect()
}

fn fit_with(
    name: &str,
    params: serde_json::Value,
    train: &MfTrainSet,
) -> (Box<dyn FusionModel>, FitReport) {
    let mut m = registry::build(name, &params).unwrap();
    let r = m
        .fit(
            train,
            &mut FitContext {
                seed: 0,
                budget: Budget::default(),
                memo: None,
                progress: &NoProgress,
            },
        )
        .unwrap();
    (m, r)
}

fn rmse(m: &dyn FusionModel, xs: &[f64], f: impl Fn(f64) -> f64) -> f64 {
    let test = level(xs, |x| vec![f(x)]);
    let p = m.predict(test.inputs.view()).unwrap().mean;
    (&p - &test.outputs).mapv(|e| e * e).mean().unwrap().sqrt()
}

/// A field version of the pair (3 grid values, each a different mix), for the PCA path.
fn field_low(x: f64) -> Vec<f64> {
    vec![f_low(x), 0.5 * f_low(x) + x, x * x]
}
fn field_high(x: f64) -> Vec<f64> {
    let l = field_low(x);
    vec![
        1.5 * l[0] + 0.2,
        l[1] - 0.3 * x,
        2.0 * l[2] + (3.0 * x).sin(),
    ]
}

#[test]
fn every_gp_reproduces_its_training_data_without_noise() {
    // Nested designs: the HF inputs are LF inputs, so nar's LF posterior there has no
    // variance to propagate.
    let xl = grid(31);
    let xh: Vec<f64> = xl.iter().step_by(3).copied().collect();
    for (what, low, high) in [
        (
            "scalar",
            level(&xl, |x| vec![f_low(x)]),
            level(&xh, |x| vec![f_high(x)]),
        ),
        ("field", level(&xl, field_low), level(&xh, field_high)),
    ] {
        let train = MfTrainSet::new(vec![low, high.clone()]);
        for name in MODELS {
            // Every noise level at zero (lf_noise is nar's cheapest GP's; only nar has it).
            let params = if name == "nar" {
                serde_json::json!({ "noise": 0.0, "lf_noise": 0.0 })
            } else {
                serde_json::json!({ "noise": 0.0 })
            };
            let (m, r) = fit_with(name, params, &train);
            let p = m.predict(high.inputs.view()).unwrap().mean;
            let scale = high.outputs.iter().fold(0.0f64, |a, v| a.max(v.abs()));
            let err = (&p - &high.outputs)
                .iter()
                .fold(0.0f64, |a, v| a.max(v.abs()));
            // nar samples the LF posterior at its inputs; without noise its spread there is
            // the Cholesky jitter's (1e-10..1e-4 of the signal variance), which the HF GP's
            // length scales in f_L may amplify.
            let tol = if name == "nar" { 1e-3 } else { 1e-5 };
            println!(
                "{name} ({what}): max error {err:.1e} of {scale:.2}; {}",
                r.hyperparameters
            );
            assert!(
                err < tol * scale,
                "{name} ({what}): max error {err:e} at its training points"
            );
            // The predictive variance vanishes there and not away from the data.
            let v = m.predict(high.inputs.view()).unwrap().var.unwrap();
            let mid = Array2::from_shape_vec((1, 1), vec![1.4]).unwrap();
            let v_mid = m.predict(mid.view()).unwrap().var.unwrap();
            let at_data = v.iter().fold(0.0f64, |a, b| a.max(*b));
            let between = v_mid.iter().fold(0.0f64, |a, b| a.max(*b));
            assert!(
                at_data < 1e-6 * scale * scale,
                "{name} ({what}): variance {at_data:e} at data"
            );
            assert!(
                between > 1e3 * at_data.max(1e-300),
                "{name} ({what}): variance {between:e} away from the data"
            );
        }
    }
}

#[test]
fn ar_recovers_rho_when_the_high_fidelity_is_an_affine_map_of_the_low() {
    // HF = 1.7 LF - 0.4 exactly; the designs are not nested.
    let lf = |x: f64| (2.0 * PI * x).sin() + 0.5 * x;
    let xl = grid(30);
    let xh: Vec<f64> = (0..8).map(|i| (i as f64 + 0.37) / 8.0).collect();
    let train = MfTrainSet::new(vec![
        level(&xl, |x| vec![lf(x)]),
        level(&xh, |x| vec![1.7 * lf(x) - 0.4]),
    ]);
    let (m, r) = fit_with("ar", serde_json::Value::Null, &train);
    let rho = r.hyperparameters["rho"][0].as_f64().unwrap();
    assert!((rho - 1.7).abs() < 2e-3, "rho = {rho}");
    let test: Vec<f64> = (0..50).map(|i| (i as f64 + 0.5) / 50.0).collect();
    let e = rmse(m.as_ref(), &test, |x| 1.7 * lf(x) - 0.4);
    assert!(e < 1e-3, "ar test RMSE {e:e}");
}

#[test]
fn ar_recovers_both_rhos_of_a_three_level_chain() {
    // f_2 = 1.7 f_1 - 0.4 and f_3 = -0.6 f_2 + 0.2 exactly (deltas constant, absorbed by the
    // per-level means); three non-nested designs, fewest samples at the top.
    let f1 = |x: f64| (2.0 * PI * x).sin() + 0.5 * x;
    let f2 = |x: f64| 1.7 * f1(x) - 0.4;
    let f3 = |x: f64| -0.6 * f2(x) + 0.2;
    let x1 = grid(30);
    let x2: Vec<f64> = (0..14).map(|i| (i as f64 + 0.21) / 14.0).collect();
    let x3: Vec<f64> = (0..6).map(|i| (i as f64 + 0.63) / 6.0).collect();
    let train = MfTrainSet::new(vec![
        level(&x1, |x| vec![f1(x)]),
        level(&x2, |x| vec![f2(x)]),
        level(&x3, |x| vec![f3(x)]),
    ]);
    let (m, r) = fit_with("ar", serde_json::Value::Null, &train);
    let rho: Vec<f64> = r.hyperparameters["rho"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(rho.len(), 2);
    assert!((rho[0] - 1.7).abs() < 1e-2, "rho_1 = {}", rho[0]);
    assert!((rho[1] + 0.6).abs() < 1e-2, "rho_2 = {}", rho[1]);
    let test: Vec<f64> = (0..50).map(|i| (i as f64 + 0.5) / 50.0).collect();
    let e = rmse(m.as_ref(), &test, f3);
    assert!(e < 2e-3, "ar test RMSE {e:e}");
    // Six top-level samples alone cannot resolve one period of the sine: the chain is what
    // carries the shape up.
    let (gp, _) = fit_with("gp-hf", serde_json::Value::Null, &train);
    let e_hf = rmse(gp.as_ref(), &test, f3);
    assert!(e_hf > 10.0 * e, "gp-hf {e_hf:e} vs ar {e:e}");
}

#[test]
fn nar_chains_a_nonlinear_ladder_of_three_levels() {
    // f_2 = f_1^2 and f_3 = sin(3 f_2): each level a nonlinear function of the one below, as
    // NARGP assumes; the chain beats two-level nar, which must learn f_3 = sin(3 f_1^2) with
    // no data at the middle.
    let f1 = |x: f64| (2.0 * PI * x).sin();
    let f2 = |x: f64| f1(x) * f1(x);
    let f3 = |x: f64| (3.0 * f2(x)).sin();
    let x1 = grid(40);
    let x2: Vec<f64> = (0..20).map(|i| (i as f64 + 0.3) / 20.0).collect();
    let x3: Vec<f64> = (0..10).map(|i| (i as f64 + 0.55) / 10.0).collect();
    let three = MfTrainSet::new(vec![
        level(&x1, |x| vec![f1(x)]),
        level(&x2, |x| vec![f2(x)]),
        level(&x3, |x| vec![f3(x)]),
    ]);
    let test: Vec<f64> = (0..60).map(|i| (i as f64 + 0.5) / 60.0).collect();
    let (chain, r) = fit_with("nar", serde_json::Value::Null, &three);
    assert_eq!(r.hyperparameters["levels"], 3);
    let e3 = rmse(chain.as_ref(), &test, f3);
    let two = MfTrainSet::new(vec![three.sources[0].clone(), three.sources[2].clone()]);
    let (pair, _) = fit_with("nar", serde_json::Value::Null, &two);
    let e2 = rmse(pair.as_ref(), &test, f3);
    assert!(e3 < 0.05, "three-level nar RMSE {e3:e}");
    assert!(e3 < 0.5 * e2, "chain {e3:e} vs two levels {e2:e}");
}

#[test]
fn the_likelihood_gradient_matches_finite_differences() {
    let x = Array2::from_shape_fn((12, 2), |(i, j)| ((i * 7 + j * 3) % 12) as f64 / 6.0 - 1.0);
    let y = Array2::from_shape_fn((12, 2), |(i, j)| {
        (x[[i, 0]] * (1.0 + j as f64)).sin() + 0.3 * x[[i, 1]]
    });
    let lf = Array2::from_shape_fn((12, 2), |(i, j)| y[[i, j]] * 0.8 + 0.1 * x[[i, 0]]);
    let xf = ndarray::concatenate(ndarray::Axis(1), &[x.view(), lf.view()]).unwrap();
    let ones = constant(12);
    // Co-kriging: the first 7 rows low-fidelity, the rest high; a constant mean per level.
    let hf: Vec<usize> = (0..12).map(|i| usize::from(i >= 7)).collect();
    let per_level = Array2::from_shape_fn((12, 2), |(i, j)| f64::from(u8::from(hf[i] == j)));
    // A chain of three levels (rows 0-4, 5-8, 9-11): two rhos, whose products scale the terms.
    let three: Vec<usize> = (0..12)
        .map(|i| (i >= 5) as usize + (i >= 9) as usize)
        .collect();
    let per_level3 = Array2::from_shape_fn((12, 3), |(i, j)| f64::from(u8::from(three[i] == j)));
    // (what, problem, number of hyperparameters)
    let cases = [
        (
            "ARD, fitted noise",
            Problem::new("test", vec![2], None, x.view(), y.view(), ones.view()),
            4,
        ),
        (
            "NARGP kernel",
            Problem::new("test", vec![4, 2], None, xf.view(), y.view(), ones.view()),
            9,
        ),
        (
            "co-kriging, fitted noises (rho and two noise levels)",
            Problem::cokriging(
                "test",
                None,
                x.view(),
                y.view(),
                hf.clone(),
                per_level.view(),
            ),
            9,
        ),
        (
            "co-kriging, fixed noise",
            Problem::cokriging("test", Some(1e-3), x.view(), y.view(), hf, per_level.view()),
            7,
        ),
        (
            "co-kriging of three levels (two rhos, three noise levels)",
            Problem::cokriging("test", None, x.view(), y.view(), three, per_level3.view()),
            14,
        ),
    ];
    for (what, p, n_params) in cases {
        let theta: Vec<f64> = (0..n_params)
            .map(|i| -0.4 + 0.23 * i as f64 - 0.05 * (i * i) as f64)
            .collect();
        let (_, g) = p.lml_and_grad(&theta).unwrap();
        assert_eq!(g.len(), n_params);
        for i in 0..n_params {
            let h = 1e-5;
            let (mut tp, mut tm) = (theta.clone(), theta.clone());
            tp[i] += h;
            tm[i] -= h;
            let fd = (p.lml_and_grad(&tp).unwrap().0 - p.lml_and_grad(&tm).unwrap().0) / (2.0 * h);
            assert!(
                (fd - g[i]).abs() <= 1e-5 * (1.0 + fd.abs()),
                "{what}: d lml / d theta_{i}: analytic {} vs finite difference {fd}",
                g[i]
            );
        }
    }
}

#[test]
fn nar_captures_a_nonlinear_relation_that_ar_cannot() {
    let xl = grid(50);
    let xh: Vec<f64> = (0..15).map(|i| (i as f64 + 0.5) / 15.0).collect();
    let train = MfTrainSet::new(vec![
        level(&xl, |x| vec![f_low(x)]),
        level(&xh, |x| vec![f_high(x)]),
    ]);
    let test: Vec<f64> = (0..200).map(|i| (i as f64 + 0.25) / 200.0).collect();
    let errs: Vec<f64> = ["gp-hf", "ar", "nar"]
        .iter()
        .map(|name| {
            rmse(
                fit_with(name, serde_json::Value::Null, &train).0.as_ref(),
                &test,
                f_high,
            )
        })
        .collect();
    let spread = {
        let y: Array1<f64> = test.iter().map(|&x| f_high(x)).collect();
        y.std(0.0)
    };
    println!(
        "RMSE gp-hf {:.3e}, ar {:.3e}, nar {:.3e} (output std {spread:.3})",
        errs[0], errs[1], errs[2]
    );
    // 15 HF points cannot resolve 4 periods of sin^2 alone; AR cannot express f_L^2.
    assert!(errs[2] < 0.05 * spread, "nar RMSE {:.3e}", errs[2]);
    assert!(
        errs[2] < 0.2 * errs[1],
        "nar {:.3e} vs ar {:.3e}",
        errs[2],
        errs[1]
    );
    assert!(
        errs[2] < 0.2 * errs[0],
        "nar {:.3e} vs gp-hf {:.3e}",
        errs[2],
        errs[0]
    );
}

#[test]
fn fits_are_reproducible_and_bad_settings_are_refused() {
    let xl = grid(20);
    let xh: Vec<f64> = (0..6).map(|i| (i as f64 + 0.5) / 6.0).collect();
    let train = MfTrainSet::new(vec![level(&xl, field_low), level(&xh, field_high)]);
    let x = Array2::from_shape_vec((3, 1), vec![0.1, 0.55, 0.9]).unwrap();
    for name in MODELS {
        let a = fit_with(name, serde_json::Value::Null, &train)
            .0
            .predict(x.view())
            .unwrap()
            .mean;
        let b = fit_with(name, serde_json::Value::Null, &train)
            .0
            .predict(x.view())
            .unwrap()
            .mean;
        assert_eq!(a, b, "{name}: same seed, same predictions");
        for bad in [
            serde_json::json!({ "noise": -1.0 }),
            serde_json::json!({ "restarts": 0 }),
            serde_json::json!({ "lengthscale": 1.0 }),
        ] {
            assert!(
                registry::build(name, &bad).is_err(),
                "{name} accepted {bad}"
            );
        }
    }
    // A fusion GP needs a low-fidelity level.
    let hf_only = MfTrainSet::new(vec![level(&xh, field_high)]);
    let mut m = registry::build("ar", &serde_json::Value::Null).unwrap();
    let err = m
        .fit(
            &hf_only,
            &mut FitContext {
                seed: 0,
                budget: Budget::default(),
                memo: None,
                progress: &NoProgress,
            },
        )
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("takes a chain of m >= 2 levels, got 1"),
        "{err}"
    );
}

#[test]
fn a_guided_start_is_tried_besides_the_generic_ones() {
    // `nar` adds starts where the cheaper level explains the target. A start placed at a
    // known optimum must be where the fit ends up even when the optimiser may take only one
    // step, and the generic starts alone cannot get there in one step.
    let x = Array2::from_shape_fn((10, 2), |(i, j)| ((i * 7 + j * 3) % 10) as f64 / 5.0 - 1.0);
    let y = Array2::from_shape_fn((10, 1), |(i, _)| (2.0 * x[[i, 0]]).sin() + 0.5 * x[[i, 1]]);
    let lf = y.mapv(|v| 0.9 * v + 0.05);
    let z = ndarray::concatenate(ndarray::Axis(1), &[x.view(), lf.view()]).unwrap();
    let zero = Array2::<f64>::zeros((10, 0));
    let problem = || Problem::new("test", vec![3, 2], None, z.view(), y.view(), zero.view());
    let best = problem().fit(20, 200, 1).unwrap();
    let s = best.summary();
    let ls: Vec<Vec<f64>> = serde_json::from_value(s["length_scales"].clone()).unwrap();
    let sig: Vec<f64> = serde_json::from_value(s["signal_std"].clone()).unwrap();
    let noise = s["noise_std"].as_f64().unwrap();
    let one_step = problem().fit(2, 1, 1).unwrap();
    let guided = problem().with_start(&ls, &sig, noise).fit(2, 1, 1).unwrap();
    assert!(
        one_step.lml < best.lml - 1.0,
        "one step from the generic starts already reaches the optimum ({} vs {}): the test \
         cannot tell",
        one_step.lml,
        best.lml
    );
    assert!(
        guided.lml >= best.lml - 1e-4,
        "guided {} vs optimum {}",
        guided.lml,
        best.lml
    );
}
