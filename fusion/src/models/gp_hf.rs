//! `gp-hf`: a Gaussian process on the high-fidelity data only (ARD squared-exponential
//! kernel, constant mean, hyperparameters by maximum marginal likelihood) — the classic
//! single-fidelity surrogate.

use super::{check_sources, check_width, field_var};
use crate::gp::{constant, fit_constant_mean, Gp, GpParams};
use crate::prep::{InputMap, OutputMap};
use crate::{
    FitContext, FitReport, FusionError, FusionModel, MfTrainSet, Prediction, Result, Sources,
};
use ndarray::{Array1, Array2, ArrayView2};

pub struct GpHf {
    params: GpParams,
    fitted: Option<(InputMap, OutputMap, Gp)>,
}

impl GpHf {
    pub fn new(params: GpParams) -> Result<Self> {
        params.check("gp-hf")?;
        Ok(Self {
            params,
            fitted: None,
        })
    }

    /// Posterior mean and variance in encoded coordinates.
    fn encoded(&self, x: ArrayView2<f64>) -> Result<(&OutputMap, Array2<f64>, Array1<f64>)> {
        let (im, om, gp) = self.fitted.as_ref().ok_or(FusionError::NotFitted {
            model: "gp-hf".into(),
        })?;
        check_width(self.name(), x, im.mean.len())?;
        let (m, v) = gp.predict(im.transform(x).view(), constant(x.nrows()).view());
        Ok((om, m, v))
    }
}

impl FusionModel for GpHf {
    fn name(&self) -> &'static str {
        "gp-hf"
    }

    fn fit(&mut self, train: &MfTrainSet, ctx: &mut FitContext) -> Result<FitReport> {
        check_sources(self.name(), train, Sources::TargetOnly, 2)?;
        let hf = train.target();
        let p = &self.params;
        let [iters] = ctx.budget.phases([p.max_iters]);
        let input_map = InputMap::fit(hf.inputs.view())?;
        let output_map = OutputMap::fit(hf.outputs.view(), p.pca, p.pca_tol, p.max_components)?;
        let x = input_map.transform(hf.inputs.view());
        let y = output_map.encode(hf.outputs.view());
        ctx.progress.start("gp-hf", 1);
        let gp = fit_constant_mean(self.name(), x.view(), y.view(), p, iters, ctx.seed)?;
        ctx.progress.finish();
        let report = FitReport {
            epochs: iters,
            final_loss: -gp.lml,
            hyperparameters: serde_json::json!({
                "params": p,
                "gp": gp.summary(),
                "components": output_map.width(),
            }),
        };
        self.fitted = Some((input_map, output_map, gp));
        Ok(report)
    }

    fn predict(&self, x: ArrayView2<f64>) -> Result<Prediction> {
        let (om, m, v) = self.encoded(x)?;
        Ok(Prediction::gaussian(om.decode(m.view()), field_var(om, v)))
    }

    fn save_state(&self) -> Result<Vec<u8>> {
        crate::state::save(self.name(), &self.fitted)
    }

    fn load_state(&mut self, bytes: &[u8]) -> Result<()> {
        self.fitted = Some(crate::state::load(self.name(), bytes)?);
        Ok(())
    }
}
