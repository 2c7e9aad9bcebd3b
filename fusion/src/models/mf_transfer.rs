//! `mf-transfer`: an MLP pre-trained on the low-fidelity data, then fine-tuned (all weights)
//! on the high-fidelity data — the plain transfer-learning baseline of the DMF paper.
//!
//! Both phases share one input standardisation and one output PCA basis, fitted on the
//! union of the low- and high-fidelity training samples, so the pre-trained network already
//! speaks the fine-tuning phase's coordinates.

use super::{check_phase, vstack, Fitted, NetParams};
use crate::mlp::{self, Phase};
use crate::prep::{InputMap, OutputMap};
use crate::{
    FitContext, FitReport, FusionError, FusionModel, MfTrainSet, Prediction, Result, Sources,
};
use ndarray::ArrayView2;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MfTransferParams {
    /// Network shape and output reduction (`[models.<name>.net]` in a config).
    pub net: NetParams,
    pub pretrain_epochs: usize,
    pub pretrain_lr: f64,
    /// Fine-tuning epochs on the high-fidelity data.
    pub epochs: usize,
    pub lr: f64,
    pub weight_decay: f64,
}

impl Default for MfTransferParams {
    fn default() -> Self {
        Self {
            net: NetParams::default(),
            pretrain_epochs: 2000,
            pretrain_lr: 3e-3,
            epochs: 1000,
            lr: 1e-3,
            weight_decay: 0.0,
        }
    }
}

impl MfTransferParams {
    pub fn check(&self) -> Result<()> {
        self.net.check("mf-transfer")?;
        check_phase(
            "mf-transfer",
            "pre-training",
            self.pretrain_epochs,
            self.pretrain_lr,
            self.weight_decay,
        )?;
        check_phase(
            "mf-transfer",
            "fine-tuning",
            self.epochs,
            self.lr,
            self.weight_decay,
        )
    }
}

pub struct MfTransfer {
    params: MfTransferParams,
    fitted: Option<Fitted>,
}

impl MfTransfer {
    pub fn new(params: MfTransferParams) -> Result<Self> {
        params.check()?;
        Ok(Self {
            params,
            fitted: None,
        })
    }
}

impl FusionModel for MfTransfer {
    fn name(&self) -> &'static str {
        "mf-transfer"
    }

    fn fit(&mut self, train: &MfTrainSet, ctx: &mut FitContext) -> Result<FitReport> {
        Sources::Two.check(self.name(), train.sources.len())?;
        let (lf, hf) = (&train.sources[0], train.target());
        if hf.inputs.nrows() < 1 || lf.inputs.nrows() < 2 {
            return Err(FusionError::NotEnoughData {
                model: self.name().into(),
                what: "at least 2 low- and 1 high-fidelity samples".into(),
            });
        }
        let p = &self.params;
        let [pre_epochs, epochs] = ctx.budget.phases([p.pretrain_epochs, p.epochs]);
        let all_x = vstack(lf.inputs.view(), hf.inputs.view());
        let all_y = vstack(lf.outputs.view(), hf.outputs.view());
        let input_map = InputMap::fit(all_x.view())?;
        let output_map =
            OutputMap::fit(all_y.view(), p.net.pca, p.net.pca_tol, p.net.max_components)?;
        ctx.progress
            .start("mf-transfer", (pre_epochs + epochs) as u64);
        let (net, loss) = if output_map.width() == 0 {
            (None, 0.0)
        } else {
            let device = mlp::train_device();
            let net = p
                .net
                .network(all_x.ncols(), output_map.width(), ctx.seed, &device);
            let xl = input_map.transform(lf.inputs.view());
            let yl = output_map.encode(lf.outputs.view());
            let (net, _) = mlp::train(
                self.name(),
                net,
                xl.view(),
                yl.view(),
                Phase {
                    epochs: pre_epochs,
                    lr: p.pretrain_lr,
                    weight_decay: p.weight_decay,
                },
                &device,
            )?;
            let xh = input_map.transform(hf.inputs.view());
            let yh = output_map.encode(hf.outputs.view());
            let (net, loss) = mlp::train(
                self.name(),
                net,
                xh.view(),
                yh.view(),
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
        hp["pretrain_epochs"] = pre_epochs.into();
        hp["epochs"] = epochs.into();
        hp["pca_components"] = output_map.width().into();
        self.fitted = Some(Fitted {
            input_map,
            output_map,
            net,
        });
        Ok(FitReport {
            epochs: pre_epochs + epochs,
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
