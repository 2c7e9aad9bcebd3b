//! The README's worked example of adding a model: `lf-offset`, a two-source model that
//! predicts the cheap source by linear interpolation in x (1-D inputs) and adds the mean
//! target-minus-cheap offset seen at the target's training inputs. As
//! `fusion/src/models/lf_offset.rs` plus one entry in `registry::MODELS` it is usable as
//! `--model lf-offset`, listed by `pipeline models`, and covered by the conformance tests.
//! Run: `cargo run -p mfpipe-fusion --example new_model`.

use mfpipe_data::NoProgress;
use mfpipe_fusion::{
    Budget, FitContext, FitReport, FusionError, FusionModel, MfTrainSet, Prediction, Result,
    Source, Sources,
};
use ndarray::{Array1, Array2, ArrayView2};
use serde::{Deserialize, Serialize};

/// Hyperparameters: only what the model uses; unknown keys are refused.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LfOffsetParams {
    /// Shrink the offset towards zero by this factor in [0, 1] (0 = the plain mean).
    pub shrink: f64,
}

impl LfOffsetParams {
    pub fn check(&self) -> Result<()> {
        if !(0.0..=1.0).contains(&self.shrink) {
            return Err(FusionError::BadParams {
                model: "lf-offset".into(),
                reason: format!("shrink = {} must be in [0, 1]", self.shrink),
            });
        }
        Ok(())
    }
}

pub struct LfOffset {
    params: LfOffsetParams,
    fitted: Option<(Source, Array1<f64>)>,
}

impl LfOffset {
    pub fn new(params: LfOffsetParams) -> Result<Self> {
        params.check()?;
        Ok(Self {
            params,
            fitted: None,
        })
    }
}

/// The cheap source at inputs `x` [N, 1], linearly interpolated between its samples.
fn interpolate(cheap: &Source, x: ArrayView2<f64>) -> Array2<f64> {
    let mut order: Vec<usize> = (0..cheap.len()).collect();
    order.sort_by(|&a, &b| cheap.inputs[[a, 0]].total_cmp(&cheap.inputs[[b, 0]]));
    let xs: Vec<f64> = order.iter().map(|&i| cheap.inputs[[i, 0]]).collect();
    let mut out = Array2::zeros((x.nrows(), cheap.outputs.ncols()));
    for (r, &xi) in x.column(0).iter().enumerate() {
        let j = xs.partition_point(|&v| v < xi).clamp(1, xs.len() - 1);
        let w = ((xi - xs[j - 1]) / (xs[j] - xs[j - 1])).clamp(0.0, 1.0);
        let (a, b) = (cheap.outputs.row(order[j - 1]), cheap.outputs.row(order[j]));
        out.row_mut(r).assign(&(&a * (1.0 - w) + &b * w));
    }
    out
}

impl FusionModel for LfOffset {
    fn name(&self) -> &'static str {
        "lf-offset"
    }

    fn fit(&mut self, train: &MfTrainSet, _ctx: &mut FitContext) -> Result<FitReport> {
        Sources::Two.check(self.name(), train.sources.len())?;
        let (cheap, target) = (&train.sources[0], train.target());
        if cheap.len() < 2 || target.inputs.ncols() != 1 {
            return Err(FusionError::NotEnoughData {
                model: self.name().into(),
                what: "1-D inputs and at least 2 cheap samples".into(),
            });
        }
        let at_target = interpolate(cheap, target.inputs.view());
        let offset = (&target.outputs - &at_target)
            .mean_axis(ndarray::Axis(0))
            .expect("at least one target sample")
            * (1.0 - self.params.shrink);
        self.fitted = Some((cheap.clone(), offset));
        Ok(FitReport {
            epochs: 0,
            final_loss: 0.0,
            hyperparameters: serde_json::to_value(&self.params).expect("serialisable"),
        })
    }

    fn predict(&self, x: ArrayView2<f64>) -> Result<Prediction> {
        let (cheap, offset) = self.fitted.as_ref().ok_or(FusionError::NotFitted {
            model: self.name().into(),
        })?;
        if x.ncols() != 1 {
            return Err(FusionError::InputWidth {
                model: self.name().into(),
                got: x.ncols(),
                expected: 1,
            });
        }
        Ok(Prediction::point(interpolate(cheap, x) + offset))
    }

    // What `fit` learned is all a saved model needs (serde data, encoded by `state`).
    fn save_state(&self) -> Result<Vec<u8>> {
        mfpipe_fusion::state::save(self.name(), &self.fitted)
    }

    fn load_state(&mut self, bytes: &[u8]) -> Result<()> {
        self.fitted = Some(mfpipe_fusion::state::load(self.name(), bytes)?);
        Ok(())
    }
}

fn main() {
    // The target is the cheap function plus 0.3: the model recovers it between samples.
    let f = |x: f64, shift: f64| (3.0 * x).sin() + shift;
    let set = |n: usize, shift: f64| {
        let x = Array2::from_shape_fn((n, 1), |(i, _)| i as f64 / (n - 1) as f64);
        let y = x.mapv(|v| f(v, shift));
        Source::new(x, y)
    };
    let train = MfTrainSet::new(vec![set(41, 0.0), set(4, 0.3)]);
    let mut m = LfOffset::new(LfOffsetParams::default()).expect("valid");
    let mut ctx = FitContext {
        seed: 0,
        budget: Budget::default(),
        progress: &NoProgress,
        memo: None,
    };
    m.fit(&train, &mut ctx).expect("fits");
    let x = Array2::from_shape_fn((5, 1), |(i, _)| 0.1 + 0.2 * i as f64);
    let p = m.predict(x.view()).expect("predicts").mean;
    let err = x
        .column(0)
        .iter()
        .zip(p.column(0))
        .map(|(&x, &y)| (y - f(x, 0.3)).abs())
        .fold(0.0f64, f64::max);
    println!("lf-offset: max error {err:.2e} at 5 test points");
    assert!(err < 5e-3);
    assert!(LfOffset::new(LfOffsetParams { shrink: 2.0 }).is_err());
}
