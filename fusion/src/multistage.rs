//! The multi-stage network of "A multi-stage deep learning based algorithm for multiscale model
//! reduction" (Secs. 3-5): k stages of identical structure, stage k fed its own reduced input
//! D_k(F_0) and, from stage 2 on, the previous stage's prediction through a combination module
//! C_k. Trained stage by stage with the L1 loss; each stage's test error is recorded.
//!
//! A stage's input is a matrix [T, F] per sample: T time levels of F reduced features (the
//! source's projections onto CEM basis functions, or the pooled source); T = 1 means no time
//! axis. With a time axis the stage is
//!   x -> Linear(F -> d) -> transformer encoder layer (6 heads) -> [T, d]
//!     -> Linear over time (T -> m1) -> Linear over features (d -> r1) -> [m1, r1]   (M_k)
//!     -> Linear(m1 r1 -> l)                                                       (G_k)
//! (the paper's "classical transformer with 6 heads and 1 layer", (m1, r1) its variants; the
//! first linear map makes d divisible by the heads). Without one (the steady problem) the
//! generator is two fully connected layers F -> h -> l, as in the paper's Sec. 5. The
//! combination C_k is two fully connected layers [prev, out] (2l) -> l -> l.
//!
//! Inputs are standardised per feature and targets per component on the training samples; the
//! L1 loss is on standardised targets; errors are reported in the target's own units as the
//! paper's eq. (7), ||u_H - u_learned||_2 / ||u_H||_2 per sample, averaged over the test set.
//! Weights come from burn's RNG seeded per stage (under a lock, so concurrent fits do not
//! interleave draws); mini-batches are drawn from a seeded ChaCha stream.

use crate::mlp::{
    cpu_device, from_tensor, materialise, to_tensor, train_device, xavier_linear, BURN_RNG,
};
use crate::{FusionError, Result};
use burn::module::Module;
use burn::nn::transformer::{
    TransformerEncoder, TransformerEncoderConfig, TransformerEncoderInput,
};
use burn::nn::Linear;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{activation, Device, Tensor, TensorData};
use ndarray::{Array2, Array3, Axis};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Training and network sizes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MultistageParams {
    /// Epochs per stage.
    pub epochs: usize,
    pub lr: f64,
    pub batch: usize,
    /// Width of the attention layer (a multiple of `heads`).
    pub d_model: usize,
    pub heads: usize,
    /// Hidden width of the steady generator and of the combination module (0: the target's
    /// length l).
    pub hidden: usize,
}

impl Default for MultistageParams {
    fn default() -> Self {
        Self {
            epochs: 200,
            lr: 1e-3,
            batch: 32,
            d_model: 48,
            heads: 6,
            hidden: 0,
        }
    }
}

impl MultistageParams {
    pub fn check(&self) -> Result<()> {
        let bad = |reason: String| {
            Err(FusionError::BadParams {
                model: "multistage".into(),
                reason,
            })
        };
        if self.epochs == 0 || self.batch == 0 {
            return bad("epochs and batch must be at least 1".into());
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad(format!("lr = {} must be a positive number", self.lr));
        }
        if self.heads == 0 || self.d_model == 0 || !self.d_model.is_multiple_of(self.heads) {
            return bad(format!(
                "d_model = {} must be a positive multiple of heads = {}",
                self.d_model, self.heads
            ));
        }
        Ok(())
    }
}

#[derive(Module, Debug)]
struct Stage {
    embed: Option<Linear>,
    encoder: Option<TransformerEncoder>,
    time: Option<Linear>,
    feat: Option<Linear>,
    gen: Vec<Linear>,
    comb: Vec<Linear>,
}

impl Stage {
    fn forward(&self, x: Tensor<3>, prev: Option<Tensor<2>>) -> Tensor<2> {
        let [b, t, f] = x.dims();
        let mut h = match (&self.embed, &self.encoder, &self.time, &self.feat) {
            (Some(embed), Some(encoder), Some(time), Some(feat)) => {
                let e = encoder.forward(TransformerEncoderInput::new(embed.forward(x)));
                let e = time.forward(e.swap_dims(1, 2)).swap_dims(1, 2);
                let e = feat.forward(e);
                let [_, m1, r1] = e.dims();
                e.reshape([b, m1 * r1])
            }
            _ => x.reshape([b, t * f]),
        };
        let last = self.gen.len() - 1;
        for (k, g) in self.gen.iter().enumerate() {
            h = g.forward(h);
            if k < last {
                h = activation::relu(h);
            }
        }
        match prev {
            Some(p) if self.comb.len() == 2 => {
                let c = self.comb[0].forward(Tensor::cat(vec![p, h], 1));
                self.comb[1].forward(activation::relu(c))
            }
            _ => h,
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn build_stage(
    (t, f, l): (usize, usize, usize),
    attention: Option<(usize, usize)>,
    combine: bool,
    p: &MultistageParams,
    seed: u64,
    device: &Device,
) -> Stage {
    let _guard = BURN_RNG.lock().unwrap_or_else(|e| e.into_inner());
    device.seed(seed);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let hidden = if p.hidden == 0 { l } else { p.hidden };
    let (embed, encoder, time, feat, gen) = match attention {
        Some((m1, r1)) if t > 1 => (
            Some(xavier_linear(f, p.d_model, &mut rng, device)),
            Some(
                TransformerEncoderConfig::new(p.d_model, 2 * p.d_model, p.heads, 1)
                    .with_dropout(0.0)
                    .init(device),
            ),
            Some(xavier_linear(t, m1, &mut rng, device)),
            Some(xavier_linear(p.d_model, r1, &mut rng, device)),
            vec![xavier_linear(m1 * r1, l, &mut rng, device)],
        ),
        _ => (
            None,
            None,
            None,
            None,
            vec![
                xavier_linear(t * f, hidden, &mut rng, device),
                xavier_linear(hidden, l, &mut rng, device),
            ],
        ),
    };
    let comb = if combine {
        vec![
            xavier_linear(2 * l, hidden, &mut rng, device),
            xavier_linear(hidden, l, &mut rng, device),
        ]
    } else {
        Vec::new()
    };
    let stage = Stage {
        embed,
        encoder,
        time,
        feat,
        gen,
        comb,
    };
    materialise(&stage);
    stage
}

/// Per-feature standardisation of [N, T, F] inputs over samples and time (training stats).
fn standardise3(train: &Array3<f64>, other: &Array3<f64>) -> (Array3<f64>, Array3<f64>) {
    let f = train.dim().2;
    let flat = train
        .view()
        .into_shape_with_order((train.len() / f, f))
        .expect("contiguous");
    let mean = flat.mean_axis(Axis(0)).expect("non-empty");
    let std = flat
        .std_axis(Axis(0), 0.0)
        .mapv(|s| if s > 1e-300 { s } else { 1.0 });
    let apply = |a: &Array3<f64>| (a - &mean) / &std;
    (apply(train), apply(other))
}

fn tensor3(a: &Array3<f64>, idx: &[usize], device: &Device) -> Tensor<3> {
    let (_, t, f) = a.dim();
    let mut data = Vec::with_capacity(idx.len() * t * f);
    for &i in idx {
        data.extend(a.index_axis(Axis(0), i).iter().map(|&v| v as f32));
    }
    Tensor::from_data(TensorData::new(data, [idx.len(), t, f]), device)
}

/// Rows `idx` of `a` as a tensor.
fn tensor2(a: &Array2<f64>, idx: &[usize], device: &Device) -> Tensor<2> {
    to_tensor(a.select(Axis(0), idx).view(), device)
}

/// The paper's eq. (7) averaged over samples: mean of ||y - p||_2 / ||y||_2.
pub fn mean_relative_l2(y: &Array2<f64>, p: &Array2<f64>) -> f64 {
    let errs: Vec<f64> = y
        .rows()
        .into_iter()
        .zip(p.rows())
        .map(|(a, b)| {
            let num: f64 = a.iter().zip(b).map(|(x, z)| (x - z).powi(2)).sum();
            let den: f64 = a.iter().map(|x| x * x).sum();
            (num / den.max(1e-300)).sqrt()
        })
        .collect();
    errs.iter().sum::<f64>() / errs.len().max(1) as f64
}

/// One stage's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct StageResult {
    /// Mean relative l2 error (eq. 7) on the test samples, and on the training samples.
    pub test_error: f64,
    pub train_error: f64,
    /// Final epoch's mean L1 loss (standardised targets).
    pub loss: f64,
    pub parameters: usize,
    pub seconds: f64,
}

/// Train the stages one after another: stage k on `train_inputs[k]` (and stage k-1's
/// prediction), all towards `train_target` [N, l]; each stage's errors on the test samples.
pub fn train_stages(
    train_inputs: &[Array3<f64>],
    train_target: &Array2<f64>,
    test_inputs: &[Array3<f64>],
    test_target: &Array2<f64>,
    attention: Option<(usize, usize)>,
    p: &MultistageParams,
    seed: u64,
) -> Result<Vec<StageResult>> {
    p.check()?;
    let numerical = |what: String| FusionError::Numerical {
        model: "multistage".into(),
        what,
    };
    if train_inputs.is_empty() || train_inputs.len() != test_inputs.len() {
        return Err(numerical(
            "needs the same number (>= 1) of train and test stage inputs".into(),
        ));
    }
    let n = train_target.nrows();
    let l = train_target.ncols();
    let (tmean, tstd) = {
        let m = train_target.mean_axis(Axis(0)).expect("non-empty");
        let s = train_target
            .std_axis(Axis(0), 0.0)
            .mapv(|s| if s > 1e-300 { s } else { 1.0 });
        (m, s)
    };
    let y_train = (train_target - &tmean) / &tstd;
    let unstd = |a: Array2<f64>| a * &tstd + &tmean;
    let (device, plain) = (train_device(), cpu_device());
    let all_train: Vec<usize> = (0..n).collect();
    let all_test: Vec<usize> = (0..test_target.nrows()).collect();
    let mut prev_train: Option<Array2<f64>> = None;
    let mut prev_test: Option<Array2<f64>> = None;
    let mut out = Vec::new();
    for (k, (xtr, xte)) in train_inputs.iter().zip(test_inputs).enumerate() {
        let start = std::time::Instant::now();
        if xtr.dim().0 != n
            || xte.dim().0 != test_target.nrows()
            || xtr.dim().1 != xte.dim().1
            || xtr.dim().2 != xte.dim().2
        {
            return Err(numerical(format!(
                "stage {} input shapes do not match the targets",
                k + 1
            )));
        }
        let (xtr, xte) = standardise3(xtr, xte);
        let (_, t, f) = xtr.dim();
        let stage_seed = seed.wrapping_mul(1000).wrapping_add(k as u64);
        let mut net = build_stage((t, f, l), attention, k > 0, p, stage_seed, &device);
        let parameters = net.num_params();
        let mut optim = AdamConfig::new().with_epsilon(1e-8).init();
        let mut rng = ChaCha8Rng::seed_from_u64(stage_seed ^ 0x5eed);
        let mut order = all_train.clone();
        let mut loss_value = f64::NAN;
        for epoch in 0..p.epochs {
            order.shuffle(&mut rng);
            let mut sum = 0.0;
            for batch in order.chunks(p.batch) {
                let x = tensor3(&xtr, batch, &device);
                let y = tensor2(&y_train, batch, &device);
                let prev = prev_train.as_ref().map(|a| tensor2(a, batch, &device));
                let loss = (net.forward(x, prev) - y).abs().mean();
                if epoch + 1 == p.epochs || epoch % 50 == 0 {
                    let v = f64::from(loss.clone().into_scalar::<f32>());
                    if !v.is_finite() {
                        return Err(FusionError::Diverged {
                            model: "multistage".into(),
                            epoch,
                            loss: v,
                        });
                    }
                    sum += v * batch.len() as f64;
                }
                let grads = GradientsParams::from_grads(loss.backward(), &net);
                net = optim.step(p.lr, net, grads);
            }
            loss_value = sum / n as f64;
        }
        let inner = net.valid();
        let predict = |x: &Array3<f64>, prev: &Option<Array2<f64>>, idx: &[usize]| {
            let mut rows = Vec::new();
            for chunk in idx.chunks(256) {
                let xp = tensor3(x, chunk, &plain);
                let pp = prev.as_ref().map(|a| tensor2(a, chunk, &plain));
                rows.push(from_tensor(inner.forward(xp, pp)));
            }
            let views: Vec<_> = rows.iter().map(|r| r.view()).collect();
            ndarray::concatenate(Axis(0), &views).expect("same widths")
        };
        let ptr = predict(&xtr, &prev_train, &all_train);
        let pte = predict(&xte, &prev_test, &all_test);
        out.push(StageResult {
            test_error: mean_relative_l2(test_target, &unstd(pte.clone())),
            train_error: mean_relative_l2(train_target, &unstd(ptr.clone())),
            loss: loss_value,
            parameters,
            seconds: start.elapsed().as_secs_f64(),
        });
        prev_train = Some(ptr);
        prev_test = Some(pte);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{s, Array};

    /// Targets that are a fixed linear map of the inputs: stage 1 must learn them far below the
    /// training mean's error. Stage 2 gets pure noise as its own input, so it can only do as
    /// well through the combination module, from stage 1's prediction.
    #[test]
    fn stage_one_learns_a_linear_map_and_stage_two_builds_on_its_prediction() {
        use rand::Rng;
        let (n, t, f, l) = (400, 4, 3, 5);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let x = Array::from_shape_fn((n + 32, t, f), |_| rng.random::<f64>() - 0.5);
        let noise = Array::from_shape_fn((n + 32, t, f), |_| rng.random::<f64>() - 0.5);
        let w = Array::from_shape_fn((t * f, l), |_| rng.random::<f64>() - 0.5);
        let flat = x
            .view()
            .into_shape_with_order((n + 32, t * f))
            .unwrap()
            .to_owned();
        let y = flat.dot(&w);
        let split3 = |a: &Array3<f64>| {
            (
                a.slice(s![..n, .., ..]).to_owned(),
                a.slice(s![n.., .., ..]).to_owned(),
            )
        };
        let ((xtr, xte), (ntr, nte)) = (split3(&x), split3(&noise));
        let (ytr, yte) = (
            y.slice(s![..n, ..]).to_owned(),
            y.slice(s![n.., ..]).to_owned(),
        );
        let mean = ytr.mean_axis(Axis(0)).unwrap();
        let baseline = mean_relative_l2(&yte, &Array2::from_shape_fn(yte.dim(), |(_, j)| mean[j]));
        let p = MultistageParams {
            epochs: 100,
            batch: 32,
            lr: 3e-3,
            d_model: 12,
            hidden: 32,
            ..Default::default()
        };
        for attention in [None, Some((4, 6))] {
            let r = train_stages(
                &[xtr.clone(), ntr.clone()],
                &ytr,
                &[xte.clone(), nte.clone()],
                &yte,
                attention,
                &p,
                0,
            )
            .unwrap();
            assert!(
                r[0].test_error < 0.1 * baseline,
                "{attention:?}: stage 1 {r:?} vs mean {baseline:.3e}"
            );
            assert!(
                r[1].test_error < 0.15 * baseline,
                "{attention:?}: stage 2 on noise {r:?}"
            );
            let alone = train_stages(
                std::slice::from_ref(&ntr),
                &ytr,
                std::slice::from_ref(&nte),
                &yte,
                attention,
                &p,
                0,
            )
            .unwrap();
            assert!(
                alone[0].test_error > 0.5 * baseline,
                "{attention:?}: noise alone {alone:?}"
            );
            let again = train_stages(
                std::slice::from_ref(&xtr),
                &ytr,
                std::slice::from_ref(&xte),
                &yte,
                attention,
                &p,
                0,
            )
            .unwrap();
            assert_eq!(
                again[0].test_error.to_bits(),
                r[0].test_error.to_bits(),
                "same seed, same result"
            );
        }
    }
}
