//! `nar`: nonlinear autoregression (Perdikaris et al. 2017, NARGP). The high fidelity is a
//! GP over the inputs augmented with the low-fidelity prediction, f_H(x) = g(x, f_L(x)), with
//! the kernel k_x(x,x') k_f(f,f') + k_d(x,x') (ARD squared-exponential factors). At
//! prediction the low-fidelity posterior's uncertainty is propagated by Monte Carlo: f_L(x)
//! is sampled `mc_samples` times (fixed draws from the fit seed), g is predicted at each
//! sample, and mean and variance are those of the mixture (law of total variance).
//!
//! Two levels: the lowest and the highest in the training set. For fields, f_L enters as its
//! PCA coefficients (one basis fitted on all training outputs).
//!
//! As in Perdikaris et al. and Emukit's NARGP, the high-fidelity GP has zero mean (outputs
//! are standardised) and the low-fidelity GP a fixed small noise (`lf_noise`). With a fitted
//! constant mean and a fitted LF noise instead, `nar` was 11-23 % worse than Emukit's NARGP
//! in the median on Park (BENCHMARKS.md).

use super::{check_levels, check_width, shared_maps};
use crate::gp::{constant, fit_constant_mean, zero_mean, Gp, GpParams, Problem};
use crate::prep::{InputMap, OutputMap};
use crate::{FitContext, FitReport, FusionError, FusionModel, MfTrainSet, Result};
use ndarray::{concatenate, Array2, ArrayView2, Axis};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

pub struct Nar {
    params: GpParams,
    fitted: Option<Fitted>,
}

struct Fitted {
    im: InputMap,
    om: OutputMap,
    lf: Gp,
    hf: Gp,
    seed: u64,
}

impl Nar {
    pub fn new(params: GpParams) -> Result<Self> {
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
        let mut rng = ChaCha8Rng::seed_from_u64(f.seed ^ 0x6e61_7267);
        let (mut sum, mut sum2, mut var) = (
            Array2::<f64>::zeros((n, k)),
            Array2::<f64>::zeros((n, k)),
            Array2::<f64>::zeros((n, k)),
        );
        let sd = vl.mapv(f64::sqrt).insert_axis(Axis(1));
        let zero_h = zero_mean(n);
        for _ in 0..s {
            let eps: Array2<f64> =
                Array2::from_shape_simple_fn((n, k), || StandardNormal.sample(&mut rng));
            let draw = &ml + &(&eps * &sd);
            let z = concatenate(Axis(1), &[xs.view(), draw.view()]).expect("same rows");
            let (m, v) = f.hf.predict(z.view(), zero_h.view());
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

    fn tuned_epochs(&self) -> usize {
        self.params.max_iters
    }

    fn fit(&mut self, train: &MfTrainSet, ctx: &mut FitContext) -> Result<FitReport> {
        check_levels(self.name(), train, 2)?;
        let p = &self.params;
        let [iters] = ctx.budget.phases([p.max_iters]);
        let (im, om) = shared_maps(train, p)?;
        let (lo, hi) = (&train.levels[0], train.highest());
        ctx.progress.start("nar", 2);
        let xl = im.transform(lo.inputs.view());
        let yl = om.encode(lo.outputs.view());
        let lf_params = GpParams {
            noise: Some(p.lf_noise),
            ..p.clone()
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
        let xh = im.transform(hi.inputs.view());
        let yh = om.encode(hi.outputs.view());
        let (fl, _) = lf.predict(xh.view(), constant(xh.nrows()).view());
        let z = concatenate(Axis(1), &[xh.view(), fl.view()]).expect("same rows");
        let zero_h = zero_mean(xh.nrows());
        let d = xh.ncols();
        // k_x k_f over [x, f_L] plus k_d over x.
        let hf = Problem::new(
            self.name(),
            vec![z.ncols(), d],
            p.noise,
            z.view(),
            yh.view(),
            zero_h.view(),
        )
        .fit(p.restarts, iters, ctx.seed.wrapping_add(1))?;
        ctx.progress.finish();
        let report = FitReport {
            epochs: iters,
            final_loss: -hf.lml,
            hyperparameters: serde_json::json!({
                "params": p,
                "low": lf.summary(),
                "high": hf.summary(),
                "components": om.width(),
            }),
        };
        self.fitted = Some(Fitted {
            im,
            om,
            lf,
            hf,
            seed: ctx.seed,
        });
        Ok(report)
    }

    fn predict(&self, x: ArrayView2<f64>) -> Result<Array2<f64>> {
        let (om, m, _) = self.encoded(x)?;
        Ok(om.decode(m.view()))
    }

    fn predict_var(&self, x: ArrayView2<f64>) -> Result<Option<Array2<f64>>> {
        let (om, _, v) = self.encoded(x)?;
        Ok(Some(om.decode_var(v.view())))
    }
}
