//! `ar`: Kennedy-O'Hagan linear autoregression over a chain of m >= 2 levels,
//! f_t(x) = rho_{t-1} f_{t-1}(x) + delta_t(x), with independent GP priors (ARD
//! squared-exponential) on f_1 and every delta_t, fitted jointly as one co-kriging GP on the
//! data of all levels: the rhos, all kernels, a noise level and a constant mean per level
//! maximise one marginal likelihood. Unlike the recursive fit (Le Gratiet), which is exact
//! only when each level's inputs are among the cheaper level's, the joint fit lets every level
//! inform the others; mfpipe's designs draw each level's pool independently, so the joint form
//! is the one to use.
//!
//! The rhos multiply along a chain, and the likelihood of m >= 3 levels has more poor local
//! optima than a pair's: a chain gets `restarts` x (m - 1) L-BFGS starts, the first with
//! data-driven rhos (see `gp::Problem::cokriging`); two levels keep `restarts` and rho = 1.
//!
//! Outputs of all levels are encoded in one space (inputs standardised on all training inputs;
//! fields reduced by a PCA fitted on all training outputs), so a rho shared by the
//! coefficients is rho on the field. Predictive variance: the co-kriging posterior's at the
//! last level.

use super::{check_sources, check_width, field_var, shared_maps};
use crate::gp::{Gp, GpParams, Problem};
use crate::prep::{InputMap, OutputMap};
use crate::{
    FitContext, FitReport, FusionError, FusionModel, MfTrainSet, Prediction, Result, Sources,
};
use ndarray::{concatenate, Array1, Array2, ArrayView2, Axis};

pub struct Ar {
    params: GpParams,
    fitted: Option<Fitted>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Fitted {
    im: InputMap,
    om: OutputMap,
    gp: Gp,
    levels: usize,
}

impl Ar {
    pub fn new(params: GpParams) -> Result<Self> {
        params.check("ar")?;
        Ok(Self {
            params,
            fitted: None,
        })
    }

    /// Regressors of the per-level constant means: one-hot of each row's level.
    fn level_means(level: &[usize], m: usize) -> Array2<f64> {
        Array2::from_shape_fn((level.len(), m), |(i, j)| {
            f64::from(u8::from(level[i] == j))
        })
    }

    fn encoded(&self, x: ArrayView2<f64>) -> Result<(&OutputMap, Array2<f64>, Array1<f64>)> {
        let f = self
            .fitted
            .as_ref()
            .ok_or(FusionError::NotFitted { model: "ar".into() })?;
        check_width(self.name(), x, f.im.mean.len())?;
        let regressors = Self::level_means(&vec![f.levels - 1; x.nrows()], f.levels);
        let (m, v) = f.gp.predict(f.im.transform(x).view(), regressors.view());
        Ok((&f.om, m, v))
    }
}

impl FusionModel for Ar {
    fn name(&self) -> &'static str {
        "ar"
    }

    fn fit(&mut self, train: &MfTrainSet, ctx: &mut FitContext) -> Result<FitReport> {
        check_sources(self.name(), train, Sources::Chain, 2)?;
        let p = &self.params;
        let [iters] = ctx.budget.phases([p.max_iters]);
        let (im, om) = shared_maps(train, p)?;
        let m = train.sources.len();
        let xs: Vec<Array2<f64>> = train
            .sources
            .iter()
            .map(|s| im.transform(s.inputs.view()))
            .collect();
        let ys: Vec<Array2<f64>> = train
            .sources
            .iter()
            .map(|s| om.encode(s.outputs.view()))
            .collect();
        let x = concatenate(Axis(0), &xs.iter().map(|a| a.view()).collect::<Vec<_>>())
            .expect("same input width");
        let y = concatenate(Axis(0), &ys.iter().map(|a| a.view()).collect::<Vec<_>>())
            .expect("same output width");
        let level: Vec<usize> = train
            .sources
            .iter()
            .enumerate()
            .flat_map(|(l, s)| std::iter::repeat_n(l, s.len()))
            .collect();
        let means = Self::level_means(&level, m);
        ctx.progress.start("ar", 1);
        let gp = Problem::cokriging(
            self.name(),
            p.noise,
            x.view(),
            y.view(),
            level,
            means.view(),
        )
        .fit(p.restarts * (m - 1), iters, ctx.seed)?;
        ctx.progress.finish();
        let summary = gp.summary();
        let report = FitReport {
            epochs: iters,
            final_loss: -gp.lml,
            hyperparameters: serde_json::json!({
                "params": p,
                "levels": m,
                "rho": summary["cokriging"]["rho"],
                "gp": summary,
                "components": om.width(),
            }),
        };
        self.fitted = Some(Fitted {
            im,
            om,
            gp,
            levels: m,
        });
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
