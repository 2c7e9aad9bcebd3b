//! `ar`: Kennedy-O'Hagan linear autoregression, f_l(x) = rho_l f_{l-1}(x) + delta_l(x), with
//! independent GP priors on f_0 and every delta_l, fitted recursively level by level as in
//! Le Gratiet (2013): f_{l-1}'s posterior mean at level l's inputs is the regressor, and
//! rho_l with a constant is estimated by generalised least squares inside delta_l's marginal
//! likelihood. High-fidelity inputs need not be nested in low-fidelity ones (that is why the
//! posterior mean, not the observed value, is the regressor).
//!
//! Outputs of all levels are encoded in one space (inputs standardised on all training
//! inputs; fields reduced by a PCA fitted on all training outputs), so a rho shared by the
//! coefficients is rho on the field. Predictive variance: rho^2 var_{l-1} + var_delta.

use super::{check_levels, check_width, field_var, ones, stacked};
use crate::gp::{Gp, GpParams, Mean, MeanFit, Problem};
use crate::prep::{InputMap, OutputMap};
use crate::{FitContext, FitReport, FusionError, FusionModel, MfTrainSet, Result};
use ndarray::{Array1, Array2, ArrayView2};

pub struct Ar {
    params: GpParams,
    fitted: Option<(InputMap, OutputMap, Vec<Gp>)>,
}

impl Ar {
    pub fn new(params: GpParams) -> Result<Self> {
        params.check("ar")?;
        Ok(Self {
            params,
            fitted: None,
        })
    }

    /// Mean and variance of every level's posterior up to the last GP in `gps`, in encoded
    /// coordinates.
    fn chain(gps: &[Gp], xs: ArrayView2<f64>) -> (Array2<f64>, Array1<f64>) {
        let (mut m, mut v) = gps[0].predict(xs, &Mean::PerColumn(ones(xs.nrows())));
        for gp in &gps[1..] {
            let (ml, vd) = gp.predict(xs, &Mean::SharedScale(m));
            v = v * rho(gp).powi(2) + vd;
            m = ml;
        }
        (m, v)
    }

    fn fitted(&self) -> Result<&(InputMap, OutputMap, Vec<Gp>)> {
        self.fitted
            .as_ref()
            .ok_or(FusionError::NotFitted { model: "ar".into() })
    }

    fn encoded(&self, x: ArrayView2<f64>) -> Result<(&OutputMap, Array2<f64>, Array1<f64>)> {
        let (im, om, gps) = self.fitted()?;
        check_width(self.name(), x, im.mean.len())?;
        let (m, v) = Self::chain(gps, im.transform(x).view());
        Ok((om, m, v))
    }
}

fn rho(gp: &Gp) -> f64 {
    match gp.mean {
        MeanFit::SharedScale { rho, .. } => rho,
        MeanFit::PerColumn(_) => 1.0,
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
        let (all_x, all_y) = stacked(train);
        let im = InputMap::fit(all_x.view())?;
        let om = OutputMap::fit(all_y.view(), p.pca, p.pca_tol, p.max_components)?;
        ctx.progress.start("ar", train.levels.len() as u64);
        let mut gps: Vec<Gp> = Vec::new();
        for (l, level) in train.levels.iter().enumerate() {
            let x = im.transform(level.inputs.view());
            let y = om.encode(level.outputs.view());
            let mean = if l == 0 {
                Mean::PerColumn(ones(x.nrows()))
            } else {
                Mean::SharedScale(Self::chain(&gps, x.view()).0)
            };
            let problem = Problem::new(
                self.name(),
                vec![x.ncols()],
                p.noise,
                x.view(),
                y.view(),
                &mean,
            );
            gps.push(problem.fit(p.restarts, iters, ctx.seed.wrapping_add(l as u64))?);
            ctx.progress.advance(1);
        }
        ctx.progress.finish();
        let report = FitReport {
            epochs: iters,
            final_loss: -gps.last().expect("two levels").lml,
            hyperparameters: serde_json::json!({
                "params": p,
                "rho": gps[1..].iter().map(rho).collect::<Vec<_>>(),
                "levels": gps.iter().map(Gp::summary).collect::<Vec<_>>(),
                "components": om.width(),
            }),
        };
        self.fitted = Some((im, om, gps));
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
