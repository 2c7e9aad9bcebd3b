//! The diffusion-generative model piece by piece: the VE SDE's forward marginal, the samplers
//! against a distribution whose score is known exactly, the model grid's round trip, and the
//! trained U-Net: it regenerates the fields it was fitted on, its conditioning selects the field,
//! and a seed fixes its samples.

use mfpipe_data::NoProgress;
use mfpipe_fusion::dgmf::{self, Grid, NetShape, NoiseLevels, Precond, Sampler, VeSde};
use mfpipe_fusion::models::dgmf::{Dgmf, DgmfParams};
use mfpipe_fusion::{Budget, FitContext, FusionError, FusionModel, MfTrainSet, Source};
use ndarray::Array2;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

fn mean_var(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    (
        m,
        v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0),
    )
}

#[test]
fn forward_perturbation_has_mean_y_and_standard_deviation_sigma_of_tau() {
    let sde = VeSde {
        sigma_min: 0.01,
        sigma_max: 50.0,
    };
    assert!((sde.sigma(0.0) - 0.01).abs() < 1e-15);
    assert!((sde.sigma(1.0) - 50.0).abs() < 1e-12);
    // Geometric: sigma(1/2) is the geometric mean of the ends.
    assert!((sde.sigma(0.5) - (0.01f64 * 50.0).sqrt()).abs() < 1e-12);
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let y = [0.7, -1.3];
    for tau in [0.2, 0.6, 0.9] {
        let s = sde.sigma(tau);
        let n = 40_000;
        let mut comp = [Vec::with_capacity(n), Vec::with_capacity(n)];
        for _ in 0..n {
            let eps: Vec<f64> = (0..2).map(|_| StandardNormal.sample(&mut rng)).collect();
            let z = sde.perturb(&y, tau, &eps);
            comp[0].push(z[0]);
            comp[1].push(z[1]);
        }
        for (k, c) in comp.iter().enumerate() {
            let (m, v) = mean_var(c);
            // 5 standard errors of the mean; the sample variance within 3 %.
            assert!(
                (m - y[k]).abs() < 5.0 * s / (n as f64).sqrt(),
                "tau {tau}: mean {m}"
            );
            assert!(
                (v / (s * s) - 1.0).abs() < 0.03,
                "tau {tau}: var {v} vs {}",
                s * s
            );
        }
    }
}

/// A 1-D Gaussian mixture sum_k w_k N(mu_k, s_k^2): under the VE SDE its marginal at noise
/// sigma is sum_k w_k N(mu_k, s_k^2 + sigma^2), whose score is known in closed form.
struct Mixture {
    w: [f64; 2],
    mu: [f64; 2],
    s: [f64; 2],
}

impl Mixture {
    fn score(&self, z: f64, sigma: f64) -> f64 {
        let (mut p, mut dp) = (0.0, 0.0);
        for k in 0..2 {
            let v = self.s[k] * self.s[k] + sigma * sigma;
            let g = self.w[k] * (-(z - self.mu[k]).powi(2) / (2.0 * v)).exp() / v.sqrt();
            p += g;
            dp += -g * (z - self.mu[k]) / v;
        }
        dp / p
    }
    fn moments(&self) -> (f64, f64) {
        let m: f64 = (0..2).map(|k| self.w[k] * self.mu[k]).sum();
        let e2: f64 = (0..2)
            .map(|k| self.w[k] * (self.s[k] * self.s[k] + self.mu[k] * self.mu[k]))
            .sum();
        (m, e2 - m * m)
    }
}

#[test]
fn samplers_recover_a_gaussian_mixture_from_its_exact_score() {
    let mix = Mixture {
        w: [0.3, 0.7],
        mu: [-2.0, 2.0],
        s: [0.4, 0.5],
    };
    let sde = VeSde {
        sigma_min: 0.01,
        sigma_max: 30.0,
    };
    let (m_true, v_true) = mix.moments();
    for (sampler, steps) in [(Sampler::Ode, 60), (Sampler::Sde, 3000)] {
        let n = 6000;
        let mut rngs: Vec<ChaCha8Rng> = (0..n)
            .map(|i| ChaCha8Rng::seed_from_u64(7 + i as u64))
            .collect();
        let z = dgmf::sample(&sde, sampler, steps, 1, &mut rngs, &mut |z, s| {
            z.iter().map(|&z| mix.score(z, s)).collect()
        });
        let (m, v) = mean_var(&z);
        let left = z.iter().filter(|&&z| z < 0.0).count() as f64 / n as f64;
        assert!(
            (m - m_true).abs() < 0.06,
            "{sampler:?}: mean {m} vs {m_true}"
        );
        assert!(
            (v / v_true - 1.0).abs() < 0.05,
            "{sampler:?}: var {v} vs {v_true}"
        );
        // The weights of the two modes (the threshold sits 4 standard deviations from both).
        assert!(
            (left - 0.3).abs() < 0.025,
            "{sampler:?}: left mode weight {left}"
        );
        let (m_left, v_left) =
            mean_var(&z.iter().copied().filter(|&z| z < 0.0).collect::<Vec<_>>());
        assert!(
            (m_left + 2.0).abs() < 0.05,
            "{sampler:?}: left mode at {m_left}"
        );
        assert!(
            (v_left.sqrt() / 0.4 - 1.0).abs() < 0.08,
            "{sampler:?}: left width {}",
            v_left.sqrt()
        );
    }
}

#[test]
fn the_model_grid_round_trip_is_exact_on_its_own_space_and_a_projection_otherwise() {
    let g = Grid::new(&[100, 100], 32).unwrap();
    assert_eq!(g.model, [32, 32]);
    // A bilinear function lies in every bilinear space: it comes back to rounding.
    let f: Vec<f64> = (0..100 * 100)
        .map(|k| {
            let (x, y) = ((k / 100) as f64 / 99.0, (k % 100) as f64 / 99.0);
            1.0 + 2.0 * x - 3.0 * y + 0.5 * x * y
        })
        .collect();
    let back = g.prolong(&g.restrict(&f));
    let err = f
        .iter()
        .zip(&back)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(err < 1e-10, "bilinear round trip {err}");
    // A smooth non-polynomial field: the projection error falls ~4x per doubling (O(h^2)).
    let wave: Vec<f64> = (0..100 * 100)
        .map(|k| {
            let (x, y) = ((k / 100) as f64 / 99.0, (k % 100) as f64 / 99.0);
            (3.0 * x).sin() * (2.0 * y).cos()
        })
        .collect();
    let rms = |side: usize| {
        let g = Grid::new(&[100, 100], side).unwrap();
        let b = g.prolong(&g.restrict(&wave));
        (wave
            .iter()
            .zip(&b)
            .map(|(a, b)| (a - b).powi(2))
            .sum::<f64>()
            / 1e4)
            .sqrt()
    };
    let (e8, e16) = (rms(8), rms(16));
    assert!(
        e8 / e16 > 3.0 && e8 / e16 < 5.5,
        "order: {e8:.2e} -> {e16:.2e}"
    );
    // 1-D fields keep one row; scalars are refused.
    assert_eq!(Grid::new(&[50], 16).unwrap().model, [1, 16]);
    assert!(Grid::new(&[1], 16).is_err());
}

/// Four 8x8 fields, each a different pattern, with one scalar condition each.
fn four_fields() -> (Array2<f64>, Array2<f64>) {
    let x = Array2::from_shape_vec((4, 1), vec![0.0, 1.0, 2.0, 3.0]).unwrap();
    let y = Array2::from_shape_fn((4, 64), |(i, k)| {
        let (r, c) = ((k / 8) as f64 / 7.0, (k % 8) as f64 / 7.0);
        match i {
            0 => r,
            1 => 1.0 - c,
            2 => (std::f64::consts::PI * r).sin() * (std::f64::consts::PI * c).sin(),
            _ => (r - 0.5) * (c - 0.5) * 4.0,
        }
    });
    (x, y)
}

fn tiny(seed_steps: usize) -> DgmfParams {
    DgmfParams {
        grid: 8,
        net: NetShape {
            channels: 8,
            mults: vec![1, 2],
            emb: 32,
        },
        precond: Precond::Edm,
        // Four to twelve tiny fields: the log-normal levels converge in a few thousand steps.
        noise: NoiseLevels::LogNormal,
        steps: seed_steps,
        batch: 4,
        lr: 3e-3,
        sample_steps: 16,
        samples: 2,
        ..DgmfParams::default()
    }
}

fn fit(params: DgmfParams, train: &MfTrainSet, seed: u64) -> Dgmf {
    let mut m = Dgmf::new(params).unwrap();
    m.fit(
        train,
        &mut FitContext {
            seed,
            budget: Budget::default(),
            progress: &NoProgress,
            memo: None,
        },
    )
    .unwrap();
    m
}

#[test]
fn a_tiny_unet_regenerates_the_fields_it_was_fitted_on_and_its_condition_selects_them() {
    let (x, y) = four_fields();
    let train = MfTrainSet::new(vec![Source::new(x.clone(), y.clone())]).with_shape(vec![8, 8]);
    let m = fit(tiny(5000), &train, 0);
    let p = m.predict(x.view()).unwrap();
    let dist = |a: ndarray::ArrayView1<f64>, b: ndarray::ArrayView1<f64>| {
        ((&a - &b).mapv(|v| v * v).sum() / 64.0).sqrt()
    };
    let scale = (y.mapv(|v| v * v).sum() / y.len() as f64).sqrt();
    for i in 0..4 {
        let own = dist(p.mean.row(i), y.row(i));
        // Regenerated: within 15 % of the fields' RMS size (they differ from each other by
        // 90-140 %)...
        assert!(
            own < 0.15 * scale,
            "field {i}: RMS error {own:.3} (fields' RMS {scale:.3})"
        );
        // ...and each condition yields its own field, far from the other three.
        for j in (0..4).filter(|&j| j != i) {
            let other = dist(p.mean.row(i), y.row(j));
            assert!(
                other > 3.0 * own,
                "condition {i}: {other:.3} from field {j}, {own:.3} from its own"
            );
        }
    }
    let s = p.samples.as_ref().unwrap();
    assert_eq!(s.dim(), (2, 4, 64));
}

#[test]
fn the_same_seed_gives_the_same_samples_and_another_seed_other_samples() {
    let (x, y) = four_fields();
    let train = MfTrainSet::new(vec![Source::new(x.clone(), y)]).with_shape(vec![8, 8]);
    let bits = |m: &Dgmf| -> Vec<u64> {
        let p = m.predict(x.view()).unwrap();
        p.samples.unwrap().iter().map(|v| v.to_bits()).collect()
    };
    let a = bits(&fit(tiny(40), &train, 5));
    assert_eq!(a, bits(&fit(tiny(40), &train, 5)));
    assert_ne!(a, bits(&fit(tiny(40), &train, 6)));
}

#[test]
fn fidelity_conditions_the_field_and_a_continuous_fidelity_interpolates_between_levels() {
    // Levels 0 and 2 of a 1-D field: the same inputs, a level-dependent offset of 0.5 per
    // level.
    let x = Array2::from_shape_fn((6, 1), |(i, _)| i as f64 / 5.0);
    let field = |lvl: f64| {
        Array2::from_shape_fn((6, 16), |(i, k)| (k as f64 / 15.0) * x[[i, 0]] + 0.5 * lvl)
    };
    let train = MfTrainSet::new(vec![
        Source::new(x.clone(), field(0.0)).at(0, "low"),
        Source::new(x.clone(), field(2.0)).at(2, "high"),
    ])
    .with_shape(vec![16]);
    let mut p = tiny(3000);
    p.grid = 16;
    let hi = fit(p.clone(), &train, 0).predict(x.view()).unwrap().mean;
    let err = (&hi - &field(2.0)).mapv(f64::abs).mean().unwrap();
    let other = (&hi - &field(0.0)).mapv(f64::abs).mean().unwrap();
    // The target level's fields, not the other level's (offset 1 apart).
    assert!(
        err < 0.1 && other > 0.8,
        "mean abs error {err:.3} from the target level, {other:.3} from the other"
    );
    // The continuous form asked for level 1, which it never saw: its fields lie between the
    // two levels' (offsets 0 and 1), not on either.
    p.fidelity = dgmf::Fidelity::Continuous;
    p.target_level = Some(1.0);
    let mid = fit(p, &train, 0).predict(x.view()).unwrap().mean;
    let offset = (&mid - &field(0.0)).mean().unwrap();
    assert!(
        offset > 0.2 && offset < 0.8,
        "level 1 offset {offset:.3} (levels 0, 2: 0, 1)"
    );
}

#[test]
fn scalar_outputs_and_bad_settings_are_refused_with_the_reason() {
    let x = Array2::from_shape_fn((4, 1), |(i, _)| i as f64);
    let train = MfTrainSet::new(vec![Source::new(x.clone(), x.clone())]);
    let mut m = Dgmf::new(DgmfParams::default()).unwrap();
    let e = m
        .fit(
            &train,
            &mut FitContext {
                seed: 0,
                budget: Budget::default(),
                progress: &NoProgress,
                memo: None,
            },
        )
        .err()
        .unwrap();
    assert!(
        matches!(e, FusionError::NotApplicable { .. })
            && e.to_string().contains("one value per sample"),
        "{e}"
    );
    let bad = DgmfParams {
        grid: 24,
        ..DgmfParams::default()
    };
    assert!(Dgmf::new(bad)
        .err()
        .unwrap()
        .to_string()
        .contains("power of two"));
    let bad = DgmfParams {
        target_level: Some(3.0),
        ..DgmfParams::default()
    };
    assert!(Dgmf::new(bad)
        .err()
        .unwrap()
        .to_string()
        .contains("continuous"));
}
