//! A plain multilayer perceptron in burn (ndarray backend + autodiff) and its full-batch
//! Adam training loop, shared by the neural baselines.

use crate::{FusionError, Result};
use burn::module::{Module, Param};
use burn::nn::{Linear, LinearConfig};
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{activation, Device, Tensor, TensorData};
use ndarray::{Array2, ArrayView2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// Smooth maps from physical parameters to fields are the common case.
    #[default]
    Tanh,
    Relu,
}

#[derive(Module, Debug)]
pub struct Mlp {
    layers: Vec<Linear>,
    #[module(skip)]
    activation: Activation,
}

impl crate::state::Rebuild for Mlp {
    /// Layer widths, input first, and the activation.
    type Dims = (Vec<usize>, Activation);
    fn dims(&self) -> Self::Dims {
        let mut widths: Vec<usize> = self.layers.iter().map(|l| l.weight.dims()[0]).collect();
        widths.extend(self.layers.last().map(|l| l.weight.dims()[1]));
        (widths, self.activation)
    }
    fn blank((widths, activation): &Self::Dims) -> Self {
        Mlp::new(widths, *activation, 0, &cpu_device())
    }
}
crate::saved_net!(Mlp);

/// The CPU device without autodiff: burn's `flex` backend. The design card named
/// burn-ndarray, which burn 0.22 deprecates in favour of flex; on DMF's small networks flex
/// took a training step from 0.85 to 0.67 ms (BENCHMARKS.md, "DMF training speed").
pub fn cpu_device() -> Device {
    Device::flex()
}

/// The CPU device with gradients enabled, used for all training here.
pub fn train_device() -> Device {
    cpu_device().autodiff()
}

impl Mlp {
    /// Layers `widths[0] -> widths[1] -> ... -> widths[last]`, Xavier-uniform weights and zero
    /// biases drawn from `seed` (not burn's global RNG, so parallel fits stay reproducible).
    pub fn new(widths: &[usize], activation: Activation, seed: u64, device: &Device) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let layers = widths
            .windows(2)
            .map(|w| xavier_linear(w[0], w[1], &mut rng, device))
            .collect();
        Self { layers, activation }
    }

    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let last = self.layers.len() - 1;
        let mut h = x;
        for (k, layer) in self.layers.iter().enumerate() {
            h = layer.forward(h);
            if k < last {
                h = match self.activation {
                    Activation::Tanh => activation::tanh(h),
                    Activation::Relu => activation::relu(h),
                };
            }
        }
        h
    }
}

/// burn's parameter RNG is global (one per process): every module that draws from it is built
/// and [`materialise`]d under this one lock, after seeding it.
pub(crate) static BURN_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// burn initialises parameters lazily, on first use, from its global RNG: a module built under
/// a seeded lock would otherwise draw its weights later, outside the lock, interleaved with
/// whatever other fits draw at the time (fits run in parallel). Touch every float parameter so
/// the draws happen now.
pub(crate) fn materialise<M: Module>(m: &M) {
    struct Touch;
    impl burn::module::ModuleVisitor for Touch {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let _ = param.val();
        }
    }
    m.visit(&mut Touch);
}

/// A linear layer `i -> o` with Xavier-uniform weights from `rng` and zero biases.
pub(crate) fn xavier_linear(i: usize, o: usize, rng: &mut ChaCha8Rng, device: &Device) -> Linear {
    let mut lin = LinearConfig::new(i, o).init(device);
    let shape = lin.weight.dims();
    let bound = (6.0 / (i + o) as f64).sqrt() as f32;
    let data: Vec<f32> = (0..shape[0] * shape[1])
        .map(|_| (rng.random::<f64>() * 2.0 - 1.0) as f32 * bound)
        .collect();
    lin.weight = Param::from_tensor(Tensor::from_data(TensorData::new(data, shape), device));
    lin.bias = Some(Param::from_tensor(Tensor::zeros([o], device)));
    lin
}

/// Convert an f64 matrix to an f32 tensor on `device`.
pub fn to_tensor(a: ArrayView2<f64>, device: &Device) -> Tensor<2> {
    let (n, d) = a.dim();
    let data: Vec<f32> = a.iter().map(|&v| v as f32).collect();
    Tensor::from_data(TensorData::new(data, [n, d]), device)
}

pub fn from_tensor(t: Tensor<2>) -> Array2<f64> {
    let [n, d] = t.dims();
    let data = t.into_data();
    let v: Vec<f64> = data
        .as_slice::<f32>()
        .expect("f32 tensor")
        .iter()
        .map(|&x| x as f64)
        .collect();
    Array2::from_shape_vec((n, d), v).expect("shape matches")
}

/// One training phase: how long, how fast, how much weight decay.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Phase {
    pub epochs: usize,
    pub lr: f64,
    pub weight_decay: f64,
}

/// Full-batch Adam on mean squared error. Returns the trained network and the final loss.
/// A loss that goes non-finite stops training with [`FusionError::Diverged`] rather than
/// propagating NaNs into predictions.
pub fn train(
    model_name: &str,
    mut net: Mlp,
    x: ArrayView2<f64>,
    y: ArrayView2<f64>,
    phase: Phase,
    device: &Device,
) -> Result<(Mlp, f64)> {
    let Phase {
        epochs,
        lr,
        weight_decay,
    } = phase;
    let xt = to_tensor(x, device);
    let yt = to_tensor(y, device);
    let mut cfg = AdamConfig::new().with_epsilon(1e-8);
    if weight_decay > 0.0 {
        cfg = cfg.with_weight_decay(Some(burn::optim::decay::WeightDecayConfig::new(
            weight_decay as f32,
        )));
    }
    let mut optim = cfg.init();
    let mut last = f64::NAN;
    for epoch in 0..epochs {
        let loss = (net.forward(xt.clone()) - yt.clone()).powi_scalar(2).mean();
        // Reading the loss forces a sync; do it sparsely.
        if epoch % 100 == 0 || epoch + 1 == epochs {
            let l = loss.clone().into_scalar::<f32>() as f64;
            if !l.is_finite() {
                return Err(FusionError::Diverged {
                    model: model_name.into(),
                    epoch,
                    loss: l,
                });
            }
            last = l;
        }
        let grads = GradientsParams::from_grads(loss.backward(), &net);
        net = optim.step(lr, net, grads);
    }
    Ok((net, last))
}

/// Inference without recording a graph.
pub fn predict(net: &Mlp, x: ArrayView2<f64>) -> Array2<f64> {
    let inner = net.valid();
    let device = cpu_device();
    from_tensor(inner.forward(to_tensor(x, &device)))
}
