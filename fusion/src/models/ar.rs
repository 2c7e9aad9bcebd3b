//! `ar`: Kennedy-O'Hagan linear autoregression, f_H(x) = rho f_L(x) + delta(x), with
//! independent GP priors (ARD squared-exponential) on f_L and delta, fitted jointly as one
//! co-kriging GP on the low- and high-fidelity data: rho, both kernels, a noise level per
//! fidelity and a constant mean per fidelity maximise one marginal likelihood. Unlike the
//! recursive fit (Le Gratiet), which is exact only when the high-fidelity inputs are among the
//! low-fidelity ones, the joint fit lets the high-fidelity data inform f_L too; mfpipe's
//! designs draw the two pools independently, so the joint form is the one to use.
//!
//! Two levels: the lowest and the highest in the training set. Outputs of both are encoded
//! in one space (inputs standardised on all training inputs; fields reduced by a PCA fitted
//! on all training outputs), so a rho shared by the coefficients is rho on the field.
//! Predictive variance: the co-kriging posterior's at the high fidelity.

use super::{check_levels, check_width, field_var, shared_maps, vstack};
use crate::gp::{Gp, GpParams, Problem};
use crate::prep::{InputMap, OutputMap};
use crate::{FitContext, FitReport, FusionError, FusionModel, MfTrainSet, Result};
use ndarray::{Array1, Array2, ArrayView2};

pub struct Ar {
    params: GpParams,
    fitted: Option<(InputMap, OutputMap, Gp)>,
}

impl Ar {
    pub fn new(params: GpParams) -> Result<Self> {
        params.check("ar")?;
        Ok(Self {
            params,
            fitted: None,
        })
    }

    /// Regressors of the per-fidelity constant means: [is low, is high].
    fn level_means(hf: &[bool]) -> Array2<f64> {
        Array2::from_shape_fn((hf.len(), 2), |(i, j)| {
            f64::from(u8::from(hf[i] == (j == 1)))
        })
    }

    fn encoded(&self, x: ArrayView2<f64>) -> Result<(&OutputMap, Array2<f64>, Array1<f64>)> {
        let (im, om, gp) = self
            .fitted
            .as_ref()
            .ok_or(FusionError::NotFitted { model: "ar".into() })?;
        check_width(self.name(), x, im.mean.len())?;
        let regressors = Self::level_means(&vec![true; x.nrows()]);
        let (m, v) = gp.predict(im.transform(x).view(), regressors.view());
        Ok((om, m, v))
    }
}

impl FusionModel for Ar {
    fn name(&self) -> &'static str {
        "ar"
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
        let x = vstack(
            im.transform(lo.inputs.view()).view(),
            im.transform(hi.inputs.view()).view(),
        );
        let y = vstack(
            om.encode(lo.outputs.view()).view(),
            om.encode(hi.outputs.view()).view(),
        );
        let hf: Vec<bool> = (0..x.nrows()).map(|i| i >= lo.inputs.nrows()).collect();
        let means = Self::level_means(&hf);
        ctx.progress.start("ar", 1);
        let gp = Problem::cokriging(self.name(), p.noise, x.view(), y.view(), hf, means.view())
            .fit(p.restarts, iters, ctx.seed)?;
        ctx.progress.finish();
        let summary = gp.summary();
        let report = FitReport {
            epochs: iters,
            final_loss: -gp.lml,
            hyperparameters: serde_json::json!({
                "params": p,
                "rho": [summary["cokriging"]["rho"]],
                "gp": summary,
                "components": om.width(),
            }),
        };
        self.fitted = Some((im, om, gp));
        Ok(report)
    }

    fn predict(&self, x: ArrayView2<f64>) -> Result<Array2<f64>> {
        let (om, m, _) = self.encoded(x)?;
        Ok(om.decode(m.view()))
    }

    fn predict_var(&self, x: ArrayView2<f64>) -> Result<Option<Array2<f64>>> {
        let (om, _, v) = self.encoded(x)?;
        Ok(Some(field_var(om, v)))
    }
}
