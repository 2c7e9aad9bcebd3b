//! `nar`: nonlinear autoregression (Perdikaris et al. 2017, NARGP) over a chain of m >= 2
//! levels. Level 1 is a GP over the inputs; each level t >= 2 is a GP over the inputs
//! augmented with level t-1's prediction, f_t(x) = g_t(x, f_{t-1}(x)), with the kernel
//! k_x(x,x') k_f(f,f') + k_d(x,x') (ARD squared-exponential factors). Level t is trained on
//! its own inputs augmented with the posterior mean of level t-1 there (computed recursively
//! through the mean of each cheaper level, as Emukit's NARGP does). At prediction the
//! uncertainty is propagated by Monte Carlo: per sample, f_1(x) is drawn from level 1's
//! posterior, each intermediate level's posterior at (x, the draw below) is drawn in turn, and
//! the last level is predicted at (x, the draw below); mean and variance are those of the
//! mixture (law of total variance). The draws are fixed from the fit seed.
//!
//! For fields, each f_t enters as its PCA coefficients (one basis fitted on all training
//! outputs).
//!
//! As in Perdikaris et al. and Emukit's NARGP, the GPs above level 1 have zero mean (outputs
//! are standardised) and level 1's GP a fixed small noise (`lf_noise`). With a fitted
//! constant mean and a fitted LF noise instead, `nar` was 11-23 % worse than Emukit's NARGP
//! in the median on Park (BENCHMARKS.md).

use super::{check_sources, check_width, shared_maps};
use crate::gp::{constant, fit_constant_mean, zero_mean, Gp, GpParams, Problem};
use crate::prep::{InputMap, OutputMap};
use crate::{
    FitContext, FitReport, FusionError, FusionModel, MfTrainSet, Prediction, Result, Sources,
};
use ndarray::{concatenate, Array2, ArrayView2, Axis};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

/// `nar`'s hyperparameters: the GP settings plus the Monte Carlo propagation and the fixed
/// noise of the cheapest level's GP.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NarParams {
    pub restarts: usize,
    pub max_iters: usize,
    /// Noise std of the GPs above level 1 (absent = fitted; see `GpParams::noise`).
    pub noise: Option<f64>,
    pub pca: bool,
    pub pca_tol: f64,
    pub max_components: usize,
    /// Monte Carlo samples propagated through the chain at prediction time.
    pub mc_samples: usize,
    /// Level 1's GP noise std in standardised output units, fixed rather than fitted. A small
    /// nugget, as in Perdikaris et al. and Emukit: the cheap data are deterministic, and a
    /// fitted noise lets that GP smooth away structure the next level reads from it.
    pub lf_noise: f64,
    /// Start each level above the first also from two points where the cheaper level
    /// explains the target (see `fit`), besides the `restarts` generic starts.
    pub guided_starts: bool,
}

impl Default for NarParams {
    fn default() -> Self {
        let g = GpParams::default();
        Self {
            // With 5-10 target samples the likelihood of the levels above the first has many
            // optima; 5 starts missed the best one often enough to make `nar` 1.1-1.2x
            // Emukit's NARGP in geometric mean at N_H = 5, 10 (BENCHMARKS.md).
            restarts: 20,
            max_iters: g.max_iters,
            noise: g.noise,
            pca: g.pca,
            pca_tol: g.pca_tol,
            max_components: g.max_components,
            mc_samples: 100,
            lf_noise: 1e-2,
            guided_starts: true,
        }
    }
}

impl NarParams {
    /// The GP settings of the levels above the first.
    pub fn gp(&self) -> GpParams {
        GpParams {
            restarts: self.restarts,
            max_iters: self.max_iters,
            noise: self.noise,
            pca: self.pca,
            pca_tol: self.pca_tol,
            max_components: self.max_components,
        }
    }

    pub fn check(&self, model: &str) -> Result<()> {
        self.gp().check(model)?;
        let bad = |reason: String| {
            Err(FusionError::BadParams {
                model: model.into(),
                reason,
            })
        };
        if self.mc_samples == 0 {
            return bad("mc_samples must be at least 1".into());
        }
        if !(self.lf_noise.is_finite() && (0.0..=1.0).contains(&self.lf_noise)) {
            return bad(format!("lf_noise = {} must be in [0, 1]", self.lf_noise));
        }
        Ok(())
    }
}

pub struct Nar {
    params: NarParams,
    fitted: Option<Fitted>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Fitted {
    im: InputMap,
    om: OutputMap,
    /// Level 1's GP (constant mean).
    lf: Gp,
    /// The GPs of levels 2..m over [x, f_{t-1}] (zero mean), cheapest first.
    up: Vec<Gp>,
    seed: u64,
}

/// [x, f] side by side.
fn augment(x: ArrayView2<f64>, f: ArrayView2<f64>) -> Array2<f64> {
    concatenate(Axis(1), &[x, f]).expect("same rows")
}

impl Fitted {
    /// Posterior mean of the first `upto` levels' chain at standardised inputs `xs`,
    /// propagating means only (the training-time augmentation).
    fn mean_chain(&self, xs: ArrayView2<f64>, upto: usize) -> Array2<f64> {
        let n = xs.nrows();
        let (mut f, _) = self.lf.predict(xs, constant(n).view());
        for gp in &self.up[..upto - 1] {
            f = gp
                .predict(augment(xs, f.view()).view(), zero_mean(n).view())
                .0;
        }
        f
    }
}

impl Nar {
    pub fn new(params: NarParams) -> Result<Self> {
        params.check("nar")?;
        Ok(Self {
            params,
            fitted: None,
        })
    }

    /// Mixture mean and variance [N, k] in encoded coordinates.
    fn encoded(&self, x: ArrayView2<f64>) -> Result<(&OutputMap, Array2<f64>, Array2<f64>)> {
        let f = self.fitted.as_ref().ok_or(FusionError::NotFitted {
            model: "nar".into(),
        })?;
        check_width(self.name(), x, f.im.mean.len())?;
        let xs = f.im.transform(x);
        let n = xs.nrows();
        let (ml, vl) = f.lf.predict(xs.view(), constant(n).view());
        let k = ml.ncols();
        let s = self.params.mc_samples;
        // One stream per point (see row_rng): draws do not depend on the other rows.
        let mut rngs: Vec<ChaCha8Rng> = x
            .rows()
            .into_iter()
            .map(|r| super::row_rng(f.seed ^ 0x6e61_7267, r, 0))
            .collect();
        let mut normals = |k: usize| {
            let mut eps = Array2::<f64>::zeros((n, k));
            for (mut row, rng) in eps.rows_mut().into_iter().zip(rngs.iter_mut()) {
                row.iter_mut()
                    .for_each(|e| *e = StandardNormal.sample(&mut *rng));
            }
            eps
        };
        let (mut sum, mut sum2, mut var) = (
            Array2::<f64>::zeros((n, k)),
            Array2::<f64>::zeros((n, k)),
            Array2::<f64>::zeros((n, k)),
        );
        let sd = vl.mapv(f64::sqrt).insert_axis(Axis(1));
        let zero_h = zero_mean(n);
        let (top, middle) = f.up.split_last().expect("a chain has at least two levels");
        for _ in 0..s {
            let eps = normals(k);
            let mut draw = &ml + &(&eps * &sd);
            for gp in middle {
                let (m, v) = gp.predict(augment(xs.view(), draw.view()).view(), zero_h.view());
                let eps = normals(k);
                draw = &m + &(&eps * &v.mapv(f64::sqrt).insert_axis(Axis(1)));
            }
            let (m, v) = top.predict(augment(xs.view(), draw.view()).view(), zero_h.view());
            sum += &m;
            sum2 += &(&m * &m);
            var += &v.insert_axis(Axis(1));
        }
        let s = s as f64;
        let mean = &sum / s;
        let spread = (&sum2 / s - &mean * &mean).mapv(|v| v.max(0.0));
        Ok((&f.om, mean, &var / s + spread))
    }
}

impl FusionModel for Nar {
    fn name(&self) -> &'static str {
        "nar"
    }

    fn fit(&mut self, train: &MfTrainSet, ctx: &mut FitContext) -> Result<FitReport> {
        check_sources(self.name(), train, Sources::Chain, 2)?;
        let p = &self.params;
        let gp = p.gp();
        let [iters] = ctx.budget.phases([p.max_iters]);
        let (im, om) = shared_maps(train, &gp)?;
        let m = train.sources.len();
        ctx.progress.start("nar", m as u64);
        let lo = &train.sources[0];
        let xl = im.transform(lo.inputs.view());
        let yl = om.encode(lo.outputs.view());
        let lf_params = GpParams {
            noise: Some(p.lf_noise),
            ..gp.clone()
        };
        let lf = fit_constant_mean(
            self.name(),
            xl.view(),
            yl.view(),
            &lf_params,
            iters,
            ctx.seed,
        )?;
        ctx.progress.advance(1);
        let mut fitted = Fitted {
            im,
            om,
            lf,
            up: Vec::with_capacity(m - 1),
            seed: ctx.seed,
        };
        for (t, src) in train.sources.iter().enumerate().skip(1) {
            let xh = fitted.im.transform(src.inputs.view());
            let yh = fitted.om.encode(src.outputs.view());
            let fl = fitted.mean_chain(xh.view(), t);
            let z = augment(xh.view(), fl.view());
            let zero_h = zero_mean(xh.nrows());
            let d = xh.ncols();
            // k_x k_f over [x, f_{t-1}] plus k_d over x. Besides the generic starts, two
            // where the cheaper level explains the target: f_t a smooth function of f_{t-1}
            // (length scale 3, or 10 with a larger signal: nearly linear) that varies slowly
            // in x (10), and a small discrepancy term. With 5-10 target samples in 9-10
            // hyperparameter dimensions the likelihood has many optima, and random starts
            // find this basin only now and then although its optimum is often the best
            // (BENCHMARKS.md, "nar at small N_H").
            let k = fl.ncols();
            let lead = |lf: f64| {
                let mut l = vec![10.0; d];
                l.extend(std::iter::repeat_n(lf, k));
                l
            };
            let mut problem = Problem::new(
                self.name(),
                vec![z.ncols(), d],
                gp.noise,
                z.view(),
                yh.view(),
                zero_h.view(),
            );
            if p.guided_starts {
                problem = problem
                    .with_start(&[lead(3.0), vec![1.0; d]], &[1.0, 0.1], 1e-2)
                    .with_start(&[lead(10.0), vec![1.0; d]], &[3.0, 0.1], 1e-2);
            }
            let g = problem.fit(gp.restarts, iters, ctx.seed.wrapping_add(t as u64))?;
            fitted.up.push(g);
            ctx.progress.advance(1);
        }
        ctx.progress.finish();
        let top = fitted.up.last().expect("m >= 2");
        let mut hyper = serde_json::json!({
            "params": p,
            "low": fitted.lf.summary(),
            "high": top.summary(),
            "components": fitted.om.width(),
        });
        if m > 2 {
            hyper["levels"] = m.into();
            hyper["middle"] = fitted.up[..m - 2].iter().map(Gp::summary).collect();
        }
        let report = FitReport {
            epochs: iters,
            final_loss: -top.lml,
            hyperparameters: hyper,
        };
        self.fitted = Some(fitted);
        Ok(report)
    }

    fn predict(&self, x: ArrayView2<f64>) -> Result<Prediction> {
        let (om, m, v) = self.encoded(x)?;
        Ok(Prediction::gaussian(
            om.decode(m.view()),
            om.decode_var(v.view()),
        ))
    }

    fn save_state(&self) -> Result<Vec<u8>> {
        crate::state::save(self.name(), &self.fitted)
    }

    fn load_state(&mut self, bytes: &[u8]) -> Result<()> {
        self.fitted = Some(crate::state::load(self.name(), bytes)?);
        Ok(())
    }
}
