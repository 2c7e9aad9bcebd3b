//! DMF, differentiable multi-fidelity fusion (paper Sec. 3), in its four variants:
//!
//! - `dmf-hf`: one searched network (see [`crate::dmf`]) on the high-fidelity data only.
//! - `dmf-copy`: DMF_L searched on the low-fidelity data, then trained further on the
//!   high-fidelity data with learning rates r1 (w_L) and r2 (alpha_L); no new layer.
//! - `dmf-trans`: DMF_L plus one linear layer NN_l on (x, f_L(x)), trained on the
//!   high-fidelity data with three parameter groups and learning rates r1 (w_L), r2 (alpha_L,
//!   every k-th step) and r3 (NN_l). NN_l starts as the identity on f_L(x) and zero on x, so
//!   training starts from DMF_L's prediction.
//! - `dmf-2`: DMF_L frozen; its prediction and x feed a second searched network trained on the
//!   high-fidelity data for `fine_tune_steps` steps. Being new parameters, its weights learn
//!   at r3 and its alpha at r2 (k and the weight decays as for DMF_L).
//!
//! So across the variants r1 is the learning rate of pre-trained weights, r2 of the
//! architecture weights in the high-fidelity phase and r3 of new parameters; these are what
//! a hyperparameter search tunes, with the high-fidelity phase's steps as its budget. A
//! search reuses DMF_L across its configurations through [`crate::Memo`].
//!
//! Inputs are standardised and outputs reduced by PCA exactly as for the other neural models
//! ([`crate::prep`]); the multi-fidelity variants fit both maps on the union of the LF and HF
//! training samples so that DMF_L's outputs are in the high-fidelity model's coordinates.

use super::{vstack, OutputReduction};
use crate::dmf::{self, DmfNet, Schedule, SearchPhase};
use crate::mlp::{cpu_device, from_tensor, to_tensor, train_device};
use crate::prep::{InputMap, OutputMap};
use crate::{
    FitContext, FitReport, FusionError, FusionModel, MfTrainSet, Prediction, Result, Sources,
};
use burn::module::{Module, Param};
use burn::nn::{Linear, LinearConfig};
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Tensor, TensorData};
use ndarray::{Array2, ArrayView2};
use serde::{Deserialize, Serialize};
use std::hash::{Hash, Hasher};

/// Which DMF.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    Hf,
    Copy,
    Trans,
    Two,
}

impl Variant {
    pub fn name(self) -> &'static str {
        match self {
            Variant::Hf => "dmf-hf",
            Variant::Copy => "dmf-copy",
            Variant::Trans => "dmf-trans",
            Variant::Two => "dmf-2",
        }
    }

    /// What the variant takes: dmf-hf the target only, the others one cheaper source.
    pub const fn sources(self) -> Sources {
        match self {
            Variant::Hf => Sources::TargetOnly,
            _ => Sources::Two,
        }
    }

    /// The phase a hyperparameter search budgets: the only one of dmf-hf, the HF phase of
    /// the others.
    pub fn tuned_epochs(self, p: &DmfParams) -> usize {
        match self {
            Variant::Hf => p.steps,
            _ => p.fine_tune_steps,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DmfParams {
    /// Nodes of the DAG, input and output included (the paper's "n cells"; 3-7).
    pub cells: usize,
    /// Width of the intermediate nodes.
    pub width: usize,
    pub schedule: Schedule,
    /// alpha is stepped every k-th w step (Algorithm 1).
    pub k: usize,
    /// Search phase (DMF_L, or the single network of dmf-hf): w steps and learning rates.
    pub steps: usize,
    pub lr_w: f64,
    pub lr_alpha: f64,
    /// Weight decays of eq. (5): lambda1 ||w||^2 + lambda2 ||alpha||^2.
    pub lambda1: f64,
    pub lambda2: f64,
    /// High-fidelity phase of dmf-copy, dmf-trans and dmf-2.
    pub fine_tune_steps: usize,
    /// Learning rates of the high-fidelity phase: pre-trained weights w_L (r1), architecture
    /// weights (r2), new parameters: NN_l, or dmf-2's second network (r3).
    pub r1: f64,
    pub r2: f64,
    pub r3: f64,
    /// Samples per training step in every phase: 0 = full batch (the whole training set
    /// each step), otherwise shuffled mini-batches of this size.
    pub batch: usize,
    /// Networks fitted from different initial weights (seeds) whose predictions are
    /// averaged; 1 = a single network.
    pub ensemble: usize,
    /// Output reduction by PCA (`[models.<name>.output]`; `net` is accepted as its old
    /// name, but only the PCA keys: DMF's networks are the searched cells, not `hidden`).
    #[serde(alias = "net")]
    pub output: OutputReduction,
}

impl Default for DmfParams {
    fn default() -> Self {
        Self {
            cells: 3,
            width: 20,
            schedule: Schedule::Alternate,
            k: 5,
            steps: 2000,
            lr_w: 3e-3,
            lr_alpha: 3e-3,
            lambda1: 0.0,
            lambda2: 0.0,
            fine_tune_steps: 1000,
            r1: 1e-4,
            r2: 1e-4,
            r3: 1e-2,
            batch: 0,
            ensemble: 1,
            output: OutputReduction::default(),
        }
    }
}

impl DmfParams {
    pub fn check(&self, model: &str) -> Result<()> {
        let bad = |reason: String| {
            Err(FusionError::BadParams {
                model: model.into(),
                reason,
            })
        };
        if !(2..=12).contains(&self.cells) {
            return bad(format!(
                "cells = {} must be between 2 and 12 (the paper uses 3-7)",
                self.cells
            ));
        }
        if self.width == 0 || self.k == 0 || self.steps == 0 || self.fine_tune_steps == 0 {
            return bad("width, k, steps and fine_tune_steps must be at least 1".into());
        }
        if !(1..=64).contains(&self.ensemble) {
            return bad(format!(
                "ensemble = {} must be between 1 and 64 networks",
                self.ensemble
            ));
        }
        for (name, v) in [
            ("lr_w", self.lr_w),
            ("lr_alpha", self.lr_alpha),
            ("r1", self.r1),
            ("r2", self.r2),
            ("r3", self.r3),
            ("lambda1", self.lambda1),
            ("lambda2", self.lambda2),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(format!("{name} = {v} must be a finite number >= 0"));
            }
        }
        self.output.check(model)
    }

    fn search(&self, steps: usize, seed: u64) -> SearchPhase {
        SearchPhase {
            steps,
            batch: self.batch,
            seed,
            k: self.k,
            lr_w: self.lr_w,
            lr_alpha: self.lr_alpha,
            lambda1: self.lambda1,
            lambda2: self.lambda2,
            schedule: self.schedule,
        }
    }
}

/// DMF_L followed by the linear layer NN_l on (x, f_L(x)).
#[derive(Module, Debug)]
pub struct DmfTrans {
    pub low: DmfNet,
    pub head: Linear,
}

impl DmfTrans {
    /// NN_l starts as [0 | I]: it passes DMF_L's prediction through unchanged.
    pub fn new(low: DmfNet, d_in: usize, d_out: usize, device: &Device) -> Self {
        let mut head = LinearConfig::new(d_in + d_out, d_out).init(device);
        let shape = head.weight.dims();
        let mut data = vec![0f32; shape[0] * shape[1]];
        for k in 0..d_out {
            // Row-major [in, out] or [out, in], whichever burn's layout is.
            let idx = if shape == [d_in + d_out, d_out] {
                (d_in + k) * d_out + k
            } else {
                k * (d_in + d_out) + d_in + k
            };
            data[idx] = 1.0;
        }
        head.weight = Param::from_tensor(Tensor::from_data(TensorData::new(data, shape), device));
        head.bias = Some(Param::from_tensor(Tensor::zeros([d_out], device)));
        Self { low, head }
    }

    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let fl = self.low.forward(x.clone());
        self.head.forward(Tensor::cat(vec![x, fl], 1))
    }
}

impl crate::state::Rebuild for DmfTrans {
    /// DMF_L's dims, then d_in and d_out of the head.
    type Dims = ([usize; 4], usize, usize);
    fn dims(&self) -> Self::Dims {
        let [i, o] = self.head.weight.dims();
        (self.low.dims(), i - o, o)
    }
    fn blank((low, d_in, d_out): &Self::Dims) -> Self {
        DmfTrans::new(DmfNet::blank(low), *d_in, *d_out, &cpu_device())
    }
}
crate::saved_net!(DmfTrans);

/// The transfer phase of dmf-trans: three parameter groups, three learning rates.
pub fn train_trans(
    model: &str,
    mut net: DmfTrans,
    (x, y): (&Tensor<2>, &Tensor<2>),
    p: &DmfParams,
    steps: usize,
    seed: u64,
) -> Result<(DmfTrans, f64)> {
    let objective = |net: &DmfTrans, x: &Tensor<2>, y: &Tensor<2>| {
        let mut l = dmf::loss(net.forward(x.clone()), y.clone());
        if p.lambda1 > 0.0 {
            l = l + net.low.w_sq().mul_scalar(p.lambda1);
        }
        if p.lambda2 > 0.0 {
            l = l + net.low.alpha_sq().mul_scalar(p.lambda2);
        }
        l
    };
    let (mut opt_w, mut opt_a, mut opt_h) = (
        AdamConfig::new().with_epsilon(1e-8).init(),
        AdamConfig::new().with_epsilon(1e-8).init(),
        AdamConfig::new().with_epsilon(1e-8).init(),
    );
    let mut batches = dmf::Batches::new(x.dims()[0], p.batch, seed);
    let mut last = f64::NAN;
    for step in 1..=steps {
        let (xb, yb) = batches.next(x, y);
        let l = objective(&net, &xb, &yb);
        if step == 1 || step % 100 == 0 || step == steps {
            last = dmf::check_finite(model, step, &l)?;
        }
        let mut grads = l.backward();
        let gw = GradientsParams::from_module(&mut grads, &net.low.w);
        let gh = GradientsParams::from_module(&mut grads, &net.head);
        // A zero learning rate freezes its group (no step at all, so the weights stay bit-identical).
        let DmfTrans { mut low, mut head } = net;
        if p.r1 > 0.0 {
            low = DmfNet {
                w: opt_w.step(p.r1, low.w, gw),
                ..low
            };
        }
        if p.r3 > 0.0 {
            head = opt_h.step(p.r3, head, gh);
        }
        net = DmfTrans { low, head };
        if p.r2 > 0.0 && (p.schedule == Schedule::Joint || step % p.k == 0) {
            let mut grads = objective(&net, &xb, &yb).backward();
            let ga = GradientsParams::from_module(&mut grads, &net.low.alpha);
            let DmfTrans { low, head } = net;
            net = DmfTrans {
                low: DmfNet {
                    alpha: opt_a.step(p.r2, low.alpha, ga),
                    ..low
                },
                head,
            };
        }
    }
    Ok((net, last))
}

#[derive(serde::Serialize, serde::Deserialize)]
enum Fitted {
    Single(DmfNet),
    Trans(DmfTrans),
    Two { low: DmfNet, second: DmfNet },
}

#[derive(serde::Serialize, serde::Deserialize)]
struct State {
    input_map: InputMap,
    output_map: OutputMap,
    net: Option<Fitted>,
    /// The ensemble's other networks (none for a single network); predictions average
    /// `net` and these.
    #[serde(default)]
    members: Vec<Fitted>,
}

pub struct Dmf {
    variant: Variant,
    params: DmfParams,
    state: Option<State>,
}

impl Dmf {
    pub fn new(variant: Variant, params: DmfParams) -> Result<Self> {
        params.check(variant.name())?;
        Ok(Self {
            variant,
            params,
            state: None,
        })
    }

    /// One network of the ensemble from `seed`: DMF_L on the LF data (unless dmf-hf), then
    /// the variant's HF phase. Returns the network, its final loss and its architecture.
    fn fit_member(
        &self,
        seed: u64,
        (xh, yh): (&Tensor<2>, &Tensor<2>),
        lf: Option<&(Array2<f64>, Array2<f64>)>,
        (steps, ft_steps): (usize, usize),
        ctx: &FitContext,
    ) -> Result<(Fitted, f64, serde_json::Value)> {
        let name = self.name();
        let p = &self.params;
        let dev = xh.device();
        let (d_in, d_out) = (xh.dims()[1], yh.dims()[1]);
        let fresh = |input: usize, salt: u64| {
            DmfNet::new(
                p.cells,
                input,
                p.width,
                d_out,
                seed.wrapping_add(salt),
                &dev,
            )
        };
        let Some((zl, yl)) = lf else {
            let (net, loss) = dmf::train(name, fresh(d_in, 0), xh, yh, p.search(steps, seed))?;
            let arch = serde_json::json!(net.architecture());
            return Ok((Fitted::Single(net), loss, arch));
        };
        // DMF_L depends only on the LF data (in these coordinates), the search settings and
        // the seed: within a hyperparameter search it is trained once.
        let key = {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            for v in zl.iter().chain(yl.iter()) {
                v.to_bits().hash(&mut h);
            }
            (zl.dim(), yl.dim(), seed, steps).hash(&mut h);
            serde_json::to_string(&p.search(steps, seed))
                .expect("serialisable")
                .hash(&mut h);
            (p.cells, p.width).hash(&mut h);
            h.finish()
        };
        let pretrain = || -> Result<DmfNet> {
            let (xl, yl) = (to_tensor(zl.view(), &dev), to_tensor(yl.view(), &dev));
            Ok(dmf::train(name, fresh(d_in, 0), &xl, &yl, p.search(steps, seed))?.0)
        };
        let low = match ctx.memo {
            Some(m) => m.get_or_make(key, pretrain)?,
            None => pretrain()?,
        };
        let arch = serde_json::json!(low.architecture());
        let (fitted, loss) = match self.variant {
            Variant::Copy => {
                let phase = SearchPhase {
                    steps: ft_steps,
                    lr_w: p.r1,
                    lr_alpha: p.r2,
                    ..p.search(ft_steps, seed)
                };
                let (net, loss) = dmf::train(name, low, xh, yh, phase)?;
                (Fitted::Single(net), loss)
            }
            Variant::Trans => {
                let net = DmfTrans::new(low, d_in, d_out, &dev);
                let (net, loss) = train_trans(name, net, (xh, yh), p, ft_steps, seed)?;
                (Fitted::Trans(net), loss)
            }
            Variant::Two => {
                // DMF_L is frozen: its prediction is a fixed input of the second network.
                let fl = low.forward(xh.clone()).detach();
                // The second network is new: it learns at r3 (w) and r2 (alpha).
                let phase = SearchPhase {
                    lr_w: p.r3,
                    lr_alpha: p.r2,
                    ..p.search(ft_steps, seed)
                };
                let (second, loss) = dmf::train(
                    name,
                    fresh(d_in + d_out, 1),
                    &cat(xh.clone(), fl),
                    yh,
                    phase,
                )?;
                (Fitted::Two { low, second }, loss)
            }
            Variant::Hf => unreachable!("dmf-hf takes no LF data"),
        };
        Ok((fitted, loss, arch))
    }
}

fn cat(a: Tensor<2>, b: Tensor<2>) -> Tensor<2> {
    Tensor::cat(vec![a, b], 1)
}

impl FusionModel for Dmf {
    fn name(&self) -> &'static str {
        self.variant.name()
    }

    fn fit(&mut self, train: &MfTrainSet, ctx: &mut FitContext) -> Result<FitReport> {
        let name = self.name();
        let p = &self.params;
        self.variant.sources().check(name, train.sources.len())?;
        let hf = train.target();
        let lf = (self.variant != Variant::Hf).then(|| &train.sources[0]);
        if hf.inputs.nrows() < 2 {
            return Err(FusionError::NotEnoughData {
                model: name.into(),
                what: "at least 2 high-fidelity samples".into(),
            });
        }
        let (steps, ft_steps) = if self.variant == Variant::Hf {
            let [s] = ctx.budget.phases([p.steps]);
            (s, 0)
        } else {
            let [s, f] = ctx.budget.phases([p.steps, p.fine_tune_steps]);
            (s, f)
        };
        let (all_x, all_y) = match lf {
            Some(lf) => (
                vstack(lf.inputs.view(), hf.inputs.view()),
                vstack(lf.outputs.view(), hf.outputs.view()),
            ),
            None => (hf.inputs.clone(), hf.outputs.clone()),
        };
        let input_map = InputMap::fit(all_x.view())?;
        let output_map = OutputMap::fit(
            all_y.view(),
            p.output.pca,
            p.output.pca_tol,
            p.output.max_components,
        )?;
        let d_out = output_map.width();
        let dev = train_device();
        let tens = |x: ArrayView2<f64>, y: ArrayView2<f64>| {
            (
                to_tensor(input_map.transform(x).view(), &dev),
                to_tensor(output_map.encode(y).view(), &dev),
            )
        };
        let (xh, yh) = tens(hf.inputs.view(), hf.outputs.view());
        ctx.progress
            .start(name, ((steps + ft_steps) * p.ensemble) as u64);
        let mut arch = serde_json::Value::Null;
        let mut fits = Vec::with_capacity(p.ensemble);
        let mut loss = 0.0;
        if d_out > 0 {
            let lf_data = lf.map(|lf| {
                (
                    input_map.transform(lf.inputs.view()),
                    output_map.encode(lf.outputs.view()),
                )
            });
            for member in 0..p.ensemble as u64 {
                // Member 0 is the single network of `ensemble = 1`, bit for bit; the others
                // draw their weights (and batch orders) from seeds of their own.
                let seed = ctx
                    .seed
                    .wrapping_mul(31)
                    .wrapping_add(member.wrapping_mul(1_000_003));
                let (fitted, l, a) =
                    self.fit_member(seed, (&xh, &yh), lf_data.as_ref(), (steps, ft_steps), ctx)?;
                if member == 0 {
                    arch = a;
                }
                loss += l / p.ensemble as f64;
                fits.push(fitted);
            }
        }
        ctx.progress.finish();
        let mut hp = serde_json::to_value(p).expect("serialisable");
        hp["steps"] = steps.into();
        hp["fine_tune_steps"] = ft_steps.into();
        hp["pca_components"] = d_out.into();
        hp["architecture"] = arch;
        let mut fits = fits.into_iter();
        self.state = Some(State {
            input_map,
            output_map,
            net: fits.next(),
            members: fits.collect(),
        });
        let epochs = steps + ft_steps;
        Ok(FitReport {
            epochs,
            final_loss: loss,
            hyperparameters: hp,
        })
    }

    fn predict(&self, x: ArrayView2<f64>) -> Result<Prediction> {
        let s = self.state.as_ref().ok_or(FusionError::NotFitted {
            model: self.name().into(),
        })?;
        let expected = s.input_map.mean.len();
        if x.ncols() != expected {
            return Err(FusionError::InputWidth {
                model: self.name().into(),
                got: x.ncols(),
                expected,
            });
        }
        let dev = cpu_device();
        let xt = to_tensor(s.input_map.transform(x).view(), &dev);
        let one = |f: &Fitted| match f {
            Fitted::Single(net) => from_tensor(net.valid().forward(xt.clone())),
            Fitted::Trans(net) => from_tensor(net.valid().forward(xt.clone())),
            Fitted::Two { low, second } => {
                let fl = low.valid().forward(xt.clone());
                from_tensor(second.valid().forward(cat(xt.clone(), fl)))
            }
        };
        let z = match &s.net {
            None => Array2::zeros((x.nrows(), 0)),
            Some(first) => {
                // The ensemble's mean (a single network when there are no other members).
                let mut z = one(first);
                for m in &s.members {
                    z += &one(m);
                }
                z / (1 + s.members.len()) as f64
            }
        };
        Ok(Prediction::point(s.output_map.decode(z.view())))
    }

    fn save_state(&self) -> Result<Vec<u8>> {
        crate::state::save(self.name(), &self.state)
    }

    fn load_state(&mut self, bytes: &[u8]) -> Result<()> {
        self.state = Some(crate::state::load(self.name(), bytes)?);
        Ok(())
    }
}
