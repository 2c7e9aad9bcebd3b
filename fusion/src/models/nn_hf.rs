//! `nn-hf`: an MLP trained on the high-fidelity data only — the single-fidelity baseline
//! every fusion method has to beat.

use super::{check_phase, check_sources, Fitted, NetParams};
use crate::mlp::{self, Phase};
use crate::prep::{InputMap, OutputMap};
use crate::{
    FitContext, FitReport, FusionError, FusionModel, MfTrainSet, Prediction, Result, Sources,
};
use ndarray::ArrayView2;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NnHfParams {
    /// Network shape and output reduction (`[models.<name>.net]` in a config).
    pub net: NetParams,
    pub epochs: usize,
    pub lr: f64,
    pub weight_decay: f64,
}

impl Default for NnHfParams {
    fn default() -> Self {
        Self {
            net: NetParams::default(),
            epochs: 2000,
            lr: 3e-3,
            weight_decay: 0.0,
        }
    }
}

impl NnHfParams {
    pub fn check(&self) -> Result<()> {
        self.net.check("nn-hf")?;
        check_phase("nn-hf", "training", self.epochs, self.lr, self.weight_decay)
    }
}

pub struct NnHf {
    params: NnHfParams,
    fitted: Option<Fitted>,
}

impl NnHf {
    pub fn new(params: NnHfParams) -> Result<Self> {
        params.check()?;
        Ok(Self {
            params,
            fitted: None,
        })
    }
}

impl FusionModel for NnHf {
    fn name(&self) -> &'static str {
        "nn-hf"
    }

    fn fit(&mut self, train: &MfTrainSet, ctx: &mut FitContext) -> Result<FitReport> {
        check_sources(self.name(), train, Sources::TargetOnly, 2)?;
        let hf = train.target();
        let p = &self.params;
        let [epochs] = ctx.budget.phases([p.epochs]);
        let input_map = InputMap::fit(hf.inputs.view())?;
        let output_map = OutputMap::fit(
            hf.outputs.view(),
            p.net.pca,
            p.net.pca_tol,
            p.net.max_components,
        )?;
        let x = input_map.transform(hf.inputs.view());
        let y = output_map.encode(hf.outputs.view());
        ctx.progress.start("nn-hf", epochs as u64);
        let (net, loss) = if output_map.width() == 0 {
            (None, 0.0)
        } else {
            let device = mlp::train_device();
            let net = p
                .net
                .network(x.ncols(), output_map.width(), ctx.seed, &device);
            let (net, loss) = mlp::train(
                self.name(),
                net,
                x.view(),
                y.view(),
                Phase {
                    epochs,
                    lr: p.lr,
                    weight_decay: p.weight_decay,
                },
                &device,
            )?;
            (Some(net), loss)
        };
        ctx.progress.finish();
        let mut hp = serde_json::to_value(p).expect("serialisable");
        hp["epochs"] = epochs.into();
        hp["pca_components"] = output_map.width().into();
        self.fitted = Some(Fitted {
            input_map,
            output_map,
            net,
        });
        Ok(FitReport {
            epochs,
            final_loss: loss,
            hyperparameters: hp,
        })
    }

    fn predict(&self, x: ArrayView2<f64>) -> Result<Prediction> {
        self.fitted
            .as_ref()
            .ok_or(FusionError::NotFitted {
                model: self.name().into(),
            })?
            .predict(self.name(), x)
            .map(Prediction::point)
    }

    fn save_state(&self) -> Result<Vec<u8>> {
        crate::state::save(self.name(), &self.fitted)
    }

    fn load_state(&mut self, bytes: &[u8]) -> Result<()> {
        self.fitted = Some(crate::state::load(self.name(), bytes)?);
        Ok(())
    }
}
