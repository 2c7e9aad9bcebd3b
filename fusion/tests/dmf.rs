//! DMF's search space and training (paper Sec. 3) checked against their definitions.

use burn::module::Param;
use burn::tensor::{Tensor, TensorData};
use mfpipe_data::NoProgress;
use mfpipe_fusion::dmf::{self, DmfNet, Schedule, SearchPhase};
use mfpipe_fusion::mlp::{from_tensor, to_tensor, train_device};
use mfpipe_fusion::models::dmf::{train_trans, DmfParams, DmfTrans};
use mfpipe_fusion::{registry, Budget, FitContext, FusionError, MfTrainSet, Source};
use ndarray::Array2;

/// A fit's context: seed, full budget, no progress display, `memo` within a search.
fn context(seed: u64, memo: Option<&mfpipe_fusion::Memo>) -> FitContext<'_> {
    FitContext {
        seed,
        budget: Budget::default(),
        memo,
        progress: &NoProgress,
    }
}

fn inputs(n: usize, d: usize) -> Array2<f64> {
    Array2::from_shape_fn((n, d), |(i, j)| ((i * 7 + j * 3) as f64 * 0.37).sin())
}

#[test]
fn the_mixed_operation_is_the_softmax_weighted_sum_of_its_candidates() {
    let dev = train_device();
    let mut net = DmfNet::new(2, 3, 20, 4, 7, &dev);
    let alpha = [0.3f32, -1.2, 0.8, 0.1, -0.5];
    net.alpha.alpha[0] = Param::from_tensor(Tensor::from_data(
        TensorData::new(alpha.to_vec(), [5]),
        &dev,
    ));
    let x = to_tensor(inputs(6, 3).view(), &dev);
    let mixed = from_tensor(net.mixed(0, x.clone()));
    let z: f64 = alpha.iter().map(|a| (*a as f64).exp()).sum();
    let mut expect = Array2::<f64>::zeros((6, 4));
    // Each candidate evaluated on its own, as its own network (deep, shallow, wide, linear, zero).
    for (c, a) in alpha.iter().enumerate() {
        let op = from_tensor(net.w.edges[0].candidate(c, x.clone()));
        assert_eq!(op.dim(), (6, 4));
        if c == 4 {
            assert!(op.iter().all(|v| *v == 0.0), "the zero candidate outputs 0");
        }
        expect = expect + op * ((*a as f64).exp() / z);
    }
    for (a, b) in mixed.iter().zip(expect.iter()) {
        assert!((a - b).abs() < 1e-5 * (1.0 + b.abs()), "{a} vs {b}");
    }
    // With two nodes the network is that one edge.
    assert_eq!(from_tensor(net.forward(x)), mixed);
}

#[test]
fn gradients_reach_every_alpha() {
    let dev = train_device();
    let net = DmfNet::new(4, 2, 20, 3, 1, &dev);
    let x = to_tensor(inputs(8, 2).view(), &dev);
    let y = to_tensor(inputs(8, 3).view(), &dev);
    let grads = dmf::loss(net.forward(x), y).backward();
    assert_eq!(net.alpha.alpha.len(), 6, "4 nodes have 6 edges");
    for (e, a) in net.alpha.alpha.iter().enumerate() {
        let g: Vec<f32> = a
            .val()
            .grad(&grads)
            .expect("alpha has a gradient")
            .into_data()
            .iter::<f32>()
            .collect();
        assert!(
            g.iter().any(|v| v.abs() > 1e-7),
            "edge {e}: zero gradient {g:?}"
        );
        // Softmax is shift invariant, so its gradient sums to zero over the candidates.
        assert!(g.iter().sum::<f32>().abs() < 1e-5, "edge {e}: {g:?}");
    }
}

#[test]
fn zero_learning_rates_leave_the_low_fidelity_network_bit_identical() {
    let dev = train_device();
    let low = DmfNet::new(3, 2, 20, 3, 4, &dev);
    let before = low.flat_params();
    let net = DmfTrans::new(low, 2, 3, &dev);
    let head_before: Vec<f32> = net.head.weight.val().into_data().iter::<f32>().collect();
    let x = to_tensor(inputs(10, 2).view(), &dev);
    let y = to_tensor(inputs(10, 3).view(), &dev);
    let p = DmfParams {
        r1: 0.0,
        r2: 0.0,
        r3: 1e-2,
        k: 1,
        ..DmfParams::default()
    };
    let (net, _) = train_trans("dmf-trans", net, (&x, &y), &p, 50, 0).unwrap();
    let after = net.low.flat_params();
    assert!(
        before
            .iter()
            .zip(&after)
            .all(|(a, b)| a.to_bits() == b.to_bits()),
        "w_L or alpha_L changed"
    );
    let head_after: Vec<f32> = net.head.weight.val().into_data().iter::<f32>().collect();
    assert_ne!(head_before, head_after, "NN_l must train");
}

/// Proposition 1: with small learning rates, alternating (k = 1) and joint optimisation follow
/// the same path; with large ones they part.
#[test]
fn alternate_and_joint_training_agree_for_small_learning_rates() {
    let dev = train_device();
    let x = to_tensor(inputs(12, 2).view(), &dev);
    let y = to_tensor(inputs(12, 3).view(), &dev);
    let run = |schedule, lr| {
        let net = DmfNet::new(3, 2, 20, 3, 9, &dev);
        let p = SearchPhase {
            steps: 60,
            k: 1,
            lr_w: lr,
            lr_alpha: lr,
            lambda1: 0.0,
            lambda2: 0.0,
            schedule,
            batch: 0,
            seed: 0,
        };
        let (net, _) = dmf::train("dmf", net, &x, &y, p).unwrap();
        net.flat_params()
    };
    let init = DmfNet::new(3, 2, 20, 3, 9, &dev).flat_params();
    let dist = |a: &[f32], b: &[f32]| {
        a.iter()
            .zip(b)
            .map(|(p, q)| ((p - q) as f64).powi(2))
            .sum::<f64>()
            .sqrt()
    };
    let ratio = |lr| {
        let (alt, joint) = (run(Schedule::Alternate, lr), run(Schedule::Joint, lr));
        dist(&alt, &joint) / dist(&alt, &init)
    };
    let (small, large) = (ratio(1e-5), ratio(3e-2));
    eprintln!(
        "alternate vs joint, relative distance: lr 1e-5 -> {small:.3e}, lr 3e-2 -> {large:.3e}"
    );
    // Measured: 2.8e-4 and 2.8e-1, i.e. the gap grows in proportion to the learning rate.
    assert!(
        small < 2e-3,
        "alternate vs joint differ by {small:.3e} of the distance travelled at lr 1e-5"
    );
    assert!(
        large > 100.0 * small,
        "at lr 3e-2 the schedules should differ more ({large:.3e} vs {small:.3e})"
    );
}

#[test]
fn a_non_finite_loss_stops_training_instead_of_propagating() {
    let dev = train_device();
    let x = to_tensor(inputs(5, 2).view(), &dev);
    let mut yv = inputs(5, 3);
    yv[[2, 1]] = f64::NAN;
    let y = to_tensor(yv.view(), &dev);
    let p = SearchPhase {
        steps: 10,
        k: 2,
        lr_w: 1e-3,
        lr_alpha: 1e-3,
        lambda1: 0.0,
        lambda2: 0.0,
        schedule: Schedule::Alternate,
        batch: 0,
        seed: 0,
    };
    match dmf::train("dmf-hf", DmfNet::new(3, 2, 20, 3, 0, &dev), &x, &y, p) {
        Err(FusionError::Diverged { epoch: 1, .. }) => {}
        other => panic!(
            "expected a divergence error at the first step, got {:?}",
            other.map(|(_, l)| l)
        ),
    }
}

/// HF = an affine map of LF: the transfer variants learn it from 4 HF samples far better
/// than a network that sees only those 4.
#[test]
fn dmf_trans_exploits_correlated_low_fidelity_data() {
    let field = |x: f64, lf: bool| -> Vec<f64> {
        (0..30)
            .map(|j| {
                let s = j as f64 / 29.0;
                let v = (3.0 * s * (1.0 + x)).sin() * (-x * s).exp();
                if lf {
                    0.7 * v + 0.2 * s
                } else {
                    v
                }
            })
            .collect()
    };
    let set = |xs: &[f64], lf: bool| {
        Source::new(
            Array2::from_shape_vec((xs.len(), 1), xs.to_vec()).unwrap(),
            Array2::from_shape_vec(
                (xs.len(), 30),
                xs.iter().flat_map(|&x| field(x, lf)).collect(),
            )
            .unwrap(),
        )
    };
    let lf_x: Vec<f64> = (0..24).map(|i| (i as f64 + 0.5) / 24.0).collect();
    let train = MfTrainSet::new(vec![set(&lf_x, true), set(&[0.05, 0.35, 0.6, 0.9], false)]);
    let test_x: Vec<f64> = (0..31).map(|i| (i as f64 + 0.25) / 31.0).collect();
    let test = set(&test_x, false);
    let rmse = |name: &str, params: serde_json::Value| {
        let mut m = registry::build(name, &params).unwrap();
        m.fit(&train, &mut context(0, None)).unwrap();
        let p = m.predict(test.inputs.view()).unwrap().mean;
        ((&p - &test.outputs).mapv(|e| e * e).mean().unwrap()).sqrt()
    };
    let small = serde_json::json!({"steps": 800, "fine_tune_steps": 400});
    let trans = rmse("dmf-trans", small.clone());
    let hf_only = rmse("dmf-hf", small);
    eprintln!("RMSE with 4 HF samples: dmf-trans {trans:.3e}, dmf-hf {hf_only:.3e}");
    assert!(
        trans < 0.5 * hf_only,
        "dmf-trans {trans:.3e} vs dmf-hf {hf_only:.3e}"
    );
}

#[test]
fn a_search_reuses_the_pretrained_low_fidelity_network_exactly() {
    // Within a search every configuration shares DMF_L through the memo: a fit that reuses it
    // must predict exactly what a fit that trains it afresh predicts, and a configuration
    // with other transfer rates must still differ.
    let x = inputs(12, 2);
    let y = Array2::from_shape_fn((12, 6), |(i, j)| (x[[i, 0]] * (j as f64 + 1.0)).sin());
    let train = MfTrainSet::new(vec![
        Source::new(x.clone(), y.mapv(|v| 0.9 * v)),
        Source::new(
            x.slice(ndarray::s![..5, ..]).to_owned(),
            y.slice(ndarray::s![..5, ..]).to_owned(),
        ),
    ]);
    let memo = mfpipe_fusion::Memo::default();
    let fit = |r3: f64, memo: Option<&mfpipe_fusion::Memo>| {
        let mut m = registry::build(
            "dmf-trans",
            &serde_json::json!({"steps": 60, "fine_tune_steps": 30, "r3": r3}),
        )
        .unwrap();
        m.fit(&train, &mut context(3, memo)).unwrap();
        m.predict(x.view()).unwrap().mean
    };
    let fresh = fit(1e-2, None);
    let first = fit(1e-3, Some(&memo));
    let reused = fit(1e-2, Some(&memo));
    assert_eq!(reused, fresh);
    assert_ne!(first, fresh);
}

#[test]
fn an_ensemble_predicts_the_mean_of_its_members_and_keeps_them_when_saved() {
    // Member 0 of an ensemble is the single network of `ensemble = 1`; the others start from
    // weights of their own. The ensemble's prediction is the members' mean, so it lies
    // between the smallest and largest member prediction and differs from member 0's; saving
    // and loading keeps every member.
    let x = inputs(14, 2);
    let y = Array2::from_shape_fn((14, 5), |(i, j)| (x[[i, 0]] * (j as f64 + 1.0)).sin());
    let train = MfTrainSet::new(vec![
        Source::new(x.clone(), y.mapv(|v| 0.8 * v + 0.1)),
        Source::new(
            x.slice(ndarray::s![..6, ..]).to_owned(),
            y.slice(ndarray::s![..6, ..]).to_owned(),
        ),
    ]);
    let fit = |ensemble: usize| {
        let mut m = registry::build(
            "dmf-trans",
            &serde_json::json!({"steps": 80, "fine_tune_steps": 40, "ensemble": ensemble}),
        )
        .unwrap();
        m.fit(&train, &mut context(2, None)).unwrap();
        m
    };
    let single = fit(1).predict(x.view()).unwrap().mean;
    let three = fit(3);
    let mean = three.predict(x.view()).unwrap().mean;
    assert_ne!(mean, single, "the other members must change the prediction");
    let mut loaded = registry::build("dmf-trans", &serde_json::json!({"ensemble": 3})).unwrap();
    loaded.load_state(&three.save_state().unwrap()).unwrap();
    assert_eq!(loaded.predict(x.view()).unwrap().mean, mean);
    // A one-network model saved by an older mfpipe (no `members`) still loads.
    let one = fit(1);
    let mut reloaded = registry::build("dmf-trans", &serde_json::json!({})).unwrap();
    reloaded.load_state(&one.save_state().unwrap()).unwrap();
    assert_eq!(reloaded.predict(x.view()).unwrap().mean, single);
    // Out of range: refused with the reason.
    let err = registry::build("dmf-trans", &serde_json::json!({"ensemble": 0}))
        .err()
        .expect("ensemble = 0 is refused")
        .to_string();
    assert!(err.contains("ensemble = 0"), "{err}");
}

#[test]
fn mini_batches_visit_every_sample_once_per_pass() {
    // With a batch of 4 out of 12 samples, three consecutive steps form one pass that covers
    // each row exactly once; a batch as large as the data is full-batch training.
    let dev = train_device();
    let x = to_tensor(
        Array2::from_shape_fn((12, 1), |(i, _)| i as f64).view(),
        &dev,
    );
    let y = x.clone();
    let mut b = dmf::Batches::new(12, 4, 7);
    for _pass in 0..3 {
        let mut seen: Vec<f64> = (0..3)
            .flat_map(|_| {
                from_tensor(b.next(&x, &y).0)
                    .into_iter()
                    .collect::<Vec<_>>()
            })
            .collect();
        seen.sort_by(f64::total_cmp);
        assert_eq!(seen, (0..12).map(|i| i as f64).collect::<Vec<_>>());
    }
    let mut full = dmf::Batches::new(12, 12, 7);
    assert_eq!(from_tensor(full.next(&x, &y).1).len(), 12);
}
