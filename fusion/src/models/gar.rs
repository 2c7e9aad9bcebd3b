//! `gar`: generalised autoregression for high-dimensional outputs (after Wang, Xing & Xing,
//! "GAR: Generalized Autoregression for Multi-Fidelity Fusion", NeurIPS 2022). Each fidelity
//! gets its own reduced output space: the low-fidelity fields are reduced by a PCA fitted on
//! the low-fidelity outputs, the high-fidelity ones by a PCA fitted on all training outputs.
//! The autoregression then acts between the two spaces with a full matrix instead of a
//! scalar rho: z_H(x) = W z_L(x) + b + delta(x), delta a GP shared by the coefficients.
//! W and b are generalised-least-squares estimates inside delta's marginal likelihood (the
//! minimum-norm-like solution when coefficients outnumber high-fidelity samples).
//!
//! For a scalar output both spaces are one-dimensional and `gar` is `ar` with two levels.
//! Predictive variance: var_L(x) sum_k W_jk^2 + var_delta(x) per coefficient j (the
//! low-fidelity coefficients share one kernel, hence one variance).

use super::{check_sources, check_width, shared_maps};
use crate::gp::{constant, fit_constant_mean, Gp, GpParams, Problem};
use crate::prep::{InputMap, OutputMap};
use crate::{
    FitContext, FitReport, FusionError, FusionModel, MfTrainSet, Prediction, Result, Sources,
};
use ndarray::{concatenate, Array1, Array2, ArrayView2, Axis};

pub struct Gar {
    params: GpParams,
    fitted: Option<Fitted>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Fitted {
    im: InputMap,
    om: OutputMap,
    lf: Gp,
    hf: Gp,
}

impl Gar {
    pub fn new(params: GpParams) -> Result<Self> {
        params.check("gar")?;
        Ok(Self {
            params,
            fitted: None,
        })
    }

    /// Regressors [1, z_L(x)] from the low-fidelity posterior mean, and that posterior's
    /// variance.
    fn regressors(lf: &Gp, xs: ArrayView2<f64>) -> (Array2<f64>, Array1<f64>) {
        let one = constant(xs.nrows());
        let (m, v) = lf.predict(xs, one.view());
        let h = concatenate(Axis(1), &[one.view(), m.view()]).expect("same rows");
        (h, v)
    }

    /// Mean and variance [N, k_H] in high-fidelity coefficients.
    fn encoded(&self, x: ArrayView2<f64>) -> Result<(&OutputMap, Array2<f64>, Array2<f64>)> {
        let f = self.fitted.as_ref().ok_or(FusionError::NotFitted {
            model: "gar".into(),
        })?;
        check_width(self.name(), x, f.im.mean.len())?;
        let xs = f.im.transform(x);
        let (h, vl) = Self::regressors(&f.lf, xs.view());
        let (m, vd) = f.hf.predict(xs.view(), h.view());
        // sum_k W_jk^2 per high-fidelity coefficient j (row 0 of B is the constant).
        let b = &f.hf.beta;
        let w2: Array1<f64> = (0..b.ncols())
            .map(|j| (1..b.nrows()).map(|k| b[(k, j)].powi(2)).sum())
            .collect();
        let var = vl.insert_axis(Axis(1)).dot(&w2.insert_axis(Axis(0))) + vd.insert_axis(Axis(1));
        Ok((&f.om, m, var))
    }
}

impl FusionModel for Gar {
    fn name(&self) -> &'static str {
        "gar"
    }

    fn fit(&mut self, train: &MfTrainSet, ctx: &mut FitContext) -> Result<FitReport> {
        check_sources(self.name(), train, Sources::Two, 2)?;
        let p = &self.params;
        let [iters] = ctx.budget.phases([p.max_iters]);
        let (lo, hi) = (&train.sources[0], train.target());
        let (im, om) = shared_maps(train, p)?;
        let om_low = OutputMap::fit(lo.outputs.view(), p.pca, p.pca_tol, p.max_components)?;
        ctx.progress.start("gar", 2);
        let xl = im.transform(lo.inputs.view());
        let zl = om_low.encode(lo.outputs.view());
        let lf = fit_constant_mean(self.name(), xl.view(), zl.view(), p, iters, ctx.seed)?;
        ctx.progress.advance(1);
        let xh = im.transform(hi.inputs.view());
        let zh = om.encode(hi.outputs.view());
        let (h, _) = Self::regressors(&lf, xh.view());
        let hf = Problem::new(
            self.name(),
            vec![xh.ncols()],
            p.noise,
            xh.view(),
            zh.view(),
            h.view(),
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
                "components": [om_low.width(), om.width()],
            }),
        };
        self.fitted = Some(Fitted { im, om, lf, hf });
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
