//! The diffusion-generative multi-fidelity model (DGMF, arXiv 2311.05606): a conditional score
//! model s_theta(z, sigma, x, m) of the fields of every fidelity, trained by denoising score
//! matching under the variance-exploding SDE and sampled by integrating the reverse-time
//! dynamics from noise.
//!
//! The pieces, each usable on its own (the tests drive them one at a time):
//! - [`VeSde`]: sigma(tau) = sigma_min (sigma_max / sigma_min)^tau, the forward perturbation
//!   z = y + sigma(tau) eps and the geometric noise ladder the samplers walk down;
//! - [`ScoreNet`]: a U-Net with ResNet blocks; into every block an embedding is added, the sum
//!   of Gaussian random Fourier features of log sigma (through an MLP), an MLP of the PDE
//!   parameters x and an embedding of the fidelity (one-hot for discrete levels, a scalar for a
//!   continuous fidelity). The network sees the noisy field and its coordinates (one channel
//!   per axis). A 1-D field runs through the same network with a unit height axis,
//!   (1, 3) kernels and (1, 2) strides: a 1-D U-Net. The network outputs sigma times the score
//!   (Song et al.'s output scaling), so the sigma^2-weighted loss is ||net(z) + eps||^2;
//! - [`sample`]: the probability-flow ODE (Heun's method in sigma) or the reverse SDE
//!   (Euler-Maruyama), for any score function, ending with one Tweedie denoising step;
//! - [`Grid`]: fields are carried on a power-of-two grid inside the model. The model grid's
//!   piecewise-(bi)linear interpolant is fitted to each field by least squares (the pseudo-inverse
//!   of the interpolation), so a round trip is the best approximation of the field in that space
//!   and a field already in it comes back exactly.

use crate::mlp::{cpu_device, materialise, to_tensor, train_device, xavier_linear, BURN_RNG};
use crate::{FusionError, Result};
use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{GroupNorm, GroupNormConfig, Linear, PaddingConfig2d};
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use burn::tensor::{activation, Device, Tensor, TensorData};
use nalgebra::DMatrix;
use ndarray::{ArrayView2, Axis};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

/// The variance-exploding SDE dz = sqrt(d sigma^2 / d tau) dw on tau in [0, 1].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct VeSde {
    pub sigma_min: f64,
    pub sigma_max: f64,
}

impl VeSde {
    /// sigma(tau) = sigma_min (sigma_max / sigma_min)^tau.
    pub fn sigma(&self, tau: f64) -> f64 {
        self.sigma_min * (self.sigma_max / self.sigma_min).powf(tau)
    }

    /// The forward perturbation of `y` at noise level `tau`, given standard normal `eps`:
    /// z ~ N(y, sigma(tau)^2 I) (the VE SDE has no drift, so the mean stays y).
    pub fn perturb(&self, y: &[f64], tau: f64, eps: &[f64]) -> Vec<f64> {
        let s = self.sigma(tau);
        y.iter().zip(eps).map(|(y, e)| y + s * e).collect()
    }

    /// `steps + 1` noise levels from sigma_max down to sigma_min, geometrically spaced (equal
    /// steps in tau).
    pub fn ladder(&self, steps: usize) -> Vec<f64> {
        (0..=steps)
            .map(|i| self.sigma(1.0 - i as f64 / steps as f64))
            .collect()
    }
}

/// How the reverse-time dynamics are integrated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Sampler {
    /// Probability-flow ODE dz/dsigma = -sigma s(z, sigma), Heun's method (2 score
    /// evaluations per step, and one for the final denoising); K samples differ only by their
    /// starting noise.
    #[default]
    Ode,
    /// Reverse SDE, Euler-Maruyama: z <- z + (s_i^2 - s_{i+1}^2) s + sqrt(s_i^2 - s_{i+1}^2) xi.
    Sde,
}

/// How training draws noise levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum NoiseLevels {
    /// tau ~ U(0, 1): log-uniform over the SDE's whole range, the range the sampler walks.
    #[default]
    UniformTau,
    /// Karras et al.'s ln sigma ~ N(-1.2, 1.2^2), clamped to the SDE's range: most training
    /// where a unit-variance field's content is decided, little at the largest levels.
    LogNormal,
}

impl NoiseLevels {
    pub fn draw(self, sde: &VeSde, rng: &mut ChaCha8Rng) -> f64 {
        match self {
            NoiseLevels::UniformTau => sde.sigma(rng.random::<f64>()),
            NoiseLevels::LogNormal => {
                let n: f64 = rng.sample(StandardNormal);
                (-1.2 + 1.2 * n).exp().clamp(sde.sigma_min, sde.sigma_max)
            }
        }
    }
}

/// What the network's output F means, and so its training target (both under the same VE
/// SDE; y standardised to unit variance, sigma_data = 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Precond {
    /// Song et al.: F = sigma s(z), input z as it is, loss ||F + eps||^2 (the sigma^2-weighted
    /// score-matching loss of the DGMF paper).
    #[default]
    Score,
    /// Karras et al. (EDM): the denoiser D = c_skip z + c_out F(c_in z), s = (D - z) / sigma^2,
    /// loss ||F - (y - c_skip z) / c_out||^2 = (1/sigma^2 + 1) ||D - y||^2: the sigma^2 weight
    /// plus a unit weight that keeps large noise levels, where the field is decided by the
    /// conditions alone, in the loss.
    Edm,
}

impl Precond {
    /// The scale applied to z before the network.
    pub fn c_in(self, sigma: f64) -> f64 {
        match self {
            Precond::Score => 1.0,
            Precond::Edm => 1.0 / (sigma * sigma + 1.0).sqrt(),
        }
    }
    fn c_skip_out(sigma: f64) -> (f64, f64) {
        let r = sigma * sigma + 1.0;
        (1.0 / r, sigma / r.sqrt())
    }
    /// The network's training target for clean y, noisy z = y + sigma eps.
    pub fn target(self, y: f64, z: f64, eps: f64, sigma: f64) -> f64 {
        match self {
            Precond::Score => -eps,
            Precond::Edm => {
                let (skip, out) = Self::c_skip_out(sigma);
                (y - skip * z) / out
            }
        }
    }
    /// The score from the network's output `f` at `z`.
    pub fn score(self, z: f64, f: f64, sigma: f64) -> f64 {
        match self {
            Precond::Score => f / sigma,
            Precond::Edm => {
                let (skip, out) = Self::c_skip_out(sigma);
                (skip * z + out * f - z) / (sigma * sigma)
            }
        }
    }
}

/// Integrate from z_0 = sigma_max xi down to sigma_min for `n` samples of dimension `dim`,
/// then denoise once (z + sigma_min^2 s, Tweedie). `score(z, sigma)` evaluates the score of a
/// batch [n, dim] (row-major) at one noise level. Noise comes from `rng` in a fixed order, so
/// a seed fixes the samples.
pub fn sample(
    sde: &VeSde,
    sampler: Sampler,
    steps: usize,
    dim: usize,
    rngs: &mut [ChaCha8Rng],
    score: &mut dyn FnMut(&[f64], f64) -> Vec<f64>,
) -> Vec<f64> {
    let ladder = sde.ladder(steps.max(1));
    // Each of the rngs.len() rows draws from its own stream, so a row's sample does not
    // depend on the rows sampled with it.
    let mut z: Vec<f64> = Vec::with_capacity(rngs.len() * dim);
    for rng in rngs.iter_mut() {
        z.extend((0..dim).map(|_| sde.sigma_max * rng.sample::<f64, _>(StandardNormal)));
    }
    for w in ladder.windows(2) {
        let (s0, s1) = (w[0], w[1]);
        let g0 = score(&z, s0);
        match sampler {
            Sampler::Ode => {
                // dz/dsigma = -sigma s; Heun: average the slopes at both ends.
                let h = s1 - s0;
                let d0: Vec<f64> = g0.iter().map(|g| -s0 * g).collect();
                let zp: Vec<f64> = z.iter().zip(&d0).map(|(z, d)| z + h * d).collect();
                let g1 = score(&zp, s1);
                for ((z, d0), g1) in z.iter_mut().zip(&d0).zip(&g1) {
                    *z += 0.5 * h * (d0 - s1 * g1);
                }
            }
            Sampler::Sde => {
                let dv = s0 * s0 - s1 * s1;
                let sd = dv.sqrt();
                for (k, (z, g)) in z.iter_mut().zip(&g0).enumerate() {
                    *z += dv * g + sd * rngs[k / dim].sample::<f64, _>(StandardNormal);
                }
            }
        }
    }
    let s = sde.sigma_min;
    let g = score(&z, s);
    z.iter().zip(&g).map(|(z, g)| z + s * s * g).collect()
}

/// The model grid: `shape` (the problem's grid, 1-D or 2-D, axes uniform on [0, 1]) carried on
/// `side` nodes per axis (a 1-D field keeps one row).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Grid {
    /// The field's shape on the problem's grid.
    pub shape: Vec<usize>,
    /// The model grid [height, width] (height 1 for 1-D fields).
    pub model: [usize; 2],
    /// Per axis (height, width): interpolation from the model grid, [n, side].
    interp: [DMatrix<f64>; 2],
    /// Per axis: its least-squares inverse, [side, n].
    fit: [DMatrix<f64>; 2],
}

/// Linear interpolation from `m` uniform nodes on [0, 1] to `n` uniform nodes: [n, m].
fn interp_matrix(n: usize, m: usize) -> DMatrix<f64> {
    let mut p = DMatrix::zeros(n, m);
    for i in 0..n {
        if m == 1 {
            p[(i, 0)] = 1.0;
            continue;
        }
        let t = if n == 1 {
            0.0
        } else {
            i as f64 / (n - 1) as f64
        };
        let pos = t * (m - 1) as f64;
        let k = (pos.floor() as usize).min(m - 2);
        let a = pos - k as f64;
        p[(i, k)] += 1.0 - a;
        p[(i, k + 1)] += a;
    }
    p
}

impl Grid {
    /// The model grid for a field of `shape` with `side` nodes per axis. Scalar outputs and
    /// more than two axes are refused.
    pub fn new(shape: &[usize], side: usize) -> Result<Self> {
        let bad = |reason: String| {
            Err(FusionError::BadParams {
                model: "dgmf".into(),
                reason,
            })
        };
        let (h, w) = match shape {
            [w] if *w > 1 => (1, *w),
            [h, w] if *h > 1 && *w > 1 => (*h, *w),
            [1] | [] => {
                return Err(FusionError::NotApplicable {
                    model: "dgmf".into(),
                    why: "it is a generative model of fields, and this problem's output is one value per sample".into(),
                })
            }
            _ => return bad(format!("fields of shape {shape:?} are not supported (1-D or 2-D grids only)")),
        };
        let mh = if h == 1 { 1 } else { side };
        let pinv = |p: &DMatrix<f64>| {
            p.clone()
                .pseudo_inverse(1e-12)
                .expect("the pseudo-inverse of a real matrix exists")
        };
        let (ph, pw) = (interp_matrix(h, mh), interp_matrix(w, side));
        let (fh, fw) = (pinv(&ph), pinv(&pw));
        Ok(Self {
            shape: shape.to_vec(),
            model: [mh, side],
            interp: [ph, pw],
            fit: [fh, fw],
        })
    }

    /// Values per field on the model grid.
    pub fn model_len(&self) -> usize {
        self.model[0] * self.model[1]
    }

    fn apply(&self, f: &[f64], left: &DMatrix<f64>, right: &DMatrix<f64>) -> Vec<f64> {
        let a = DMatrix::from_row_slice(left.ncols(), right.ncols(), f);
        let b = left * a * right.transpose();
        // Row-major out.
        let mut out = Vec::with_capacity(b.len());
        for i in 0..b.nrows() {
            for j in 0..b.ncols() {
                out.push(b[(i, j)]);
            }
        }
        out
    }

    /// A field on the problem's grid (row-major) -> its least-squares fit on the model grid.
    pub fn restrict(&self, f: &[f64]) -> Vec<f64> {
        self.apply(f, &self.fit[0], &self.fit[1])
    }

    /// Model-grid values -> the interpolant on the problem's grid.
    pub fn prolong(&self, c: &[f64]) -> Vec<f64> {
        self.apply(c, &self.interp[0], &self.interp[1])
    }
}

/// Network sizes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetShape {
    /// Channels at full resolution.
    pub channels: usize,
    /// Channel multiplier per resolution, finest first (its length = the U-Net's depth).
    pub mults: Vec<usize>,
    /// Width of the noise / parameter / fidelity embeddings.
    pub emb: usize,
}

impl Default for NetShape {
    fn default() -> Self {
        Self {
            channels: 8,
            mults: vec![1, 2, 2],
            emb: 64,
        }
    }
}

impl NetShape {
    pub fn check(&self) -> std::result::Result<(), String> {
        if self.channels == 0 || self.emb < 2 || self.mults.is_empty() || self.mults.contains(&0) {
            return Err(format!(
                "channels = {}, emb = {}, mults = {:?}: need channels >= 1, emb >= 2 and at least one positive multiplier",
                self.channels, self.emb, self.mults
            ));
        }
        if !self.emb.is_multiple_of(2) {
            return Err(format!(
                "emb = {} must be even (sin and cos features)",
                self.emb
            ));
        }
        Ok(())
    }
}

/// How the fidelity enters the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Fidelity {
    /// One-hot over the levels seen in training.
    #[default]
    Discrete,
    /// The level as a scalar (level m has mesh size h0 / 2^m, so the level is -log2 h up to a
    /// constant): the model can be asked for a level it never saw.
    Continuous,
}

fn groups(ch: usize) -> usize {
    [8, 4, 2]
        .into_iter()
        .find(|g| ch.is_multiple_of(*g))
        .unwrap_or(1)
}

#[derive(Module, Debug)]
struct ResBlock {
    norm1: GroupNorm,
    conv1: Conv2d,
    emb: Linear,
    norm2: GroupNorm,
    conv2: Conv2d,
    skip: Option<Conv2d>,
}

impl ResBlock {
    fn forward(&self, x: Tensor<4>, e: Tensor<2>) -> Tensor<4> {
        let h = self
            .conv1
            .forward(activation::silu(self.norm1.forward(x.clone())));
        let [b, c] = [h.dims()[0], h.dims()[1]];
        let h = h + self.emb.forward(e).reshape([b, c, 1, 1]);
        let h = self.conv2.forward(activation::silu(self.norm2.forward(h)));
        let skip = match &self.skip {
            Some(s) => s.forward(x),
            None => x,
        };
        h + skip
    }
}

/// The conditional score network (see the module docs).
#[derive(Module, Debug)]
pub struct ScoreNet {
    noise: Vec<Linear>,
    params: Vec<Linear>,
    fidelity: Vec<Linear>,
    conv_in: Conv2d,
    down: Vec<ResBlock>,
    downsample: Vec<Conv2d>,
    mid: ResBlock,
    up: Vec<ResBlock>,
    upsample: Vec<Conv2d>,
    norm_out: GroupNorm,
    conv_out: Conv2d,
    /// 1-D fields: kernels (1, 3), strides (1, 2).
    #[module(skip)]
    one_d: bool,
    #[module(skip)]
    dims: ScoreDims,
}

/// What fixes a [`ScoreNet`]'s shape: its sizes, the numbers of PDE parameters and fidelity
/// features, and whether fields are 1-D.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScoreDims {
    pub shape: NetShape,
    pub d: usize,
    pub f: usize,
    pub one_d: bool,
}

impl crate::state::Rebuild for ScoreNet {
    type Dims = ScoreDims;
    fn dims(&self) -> ScoreDims {
        self.dims.clone()
    }
    fn blank(d: &ScoreDims) -> Self {
        // Predictions run on the inference form (`valid`), as after training.
        ScoreNet::new(&d.shape, d.d, d.f, d.one_d, 0).valid()
    }
}
crate::saved_net!(ScoreNet);

struct Builder<'a> {
    one_d: bool,
    device: &'a Device,
    rng: ChaCha8Rng,
}

impl Builder<'_> {
    fn conv(&self, i: usize, o: usize, stride: usize) -> Conv2d {
        let (k, s, p) = if self.one_d {
            ([1, 3], [1, stride], [0, 1])
        } else {
            ([3, 3], [stride, stride], [1, 1])
        };
        Conv2dConfig::new([i, o], k)
            .with_stride(s)
            .with_padding(PaddingConfig2d::Explicit(p[0], p[1], p[0], p[1]))
            .init(self.device)
    }
    fn norm(&self, ch: usize) -> GroupNorm {
        GroupNormConfig::new(groups(ch), ch).init(self.device)
    }
    fn block(&mut self, i: usize, o: usize, emb: usize) -> ResBlock {
        ResBlock {
            norm1: self.norm(i),
            conv1: self.conv(i, o, 1),
            emb: xavier_linear(emb, o, &mut self.rng, self.device),
            norm2: self.norm(o),
            conv2: self.conv(o, o, 1),
            skip: (i != o).then(|| {
                Conv2dConfig::new([i, o], [1, 1])
                    .with_bias(false)
                    .init(self.device)
            }),
        }
    }
    fn mlp(&mut self, i: usize, o: usize) -> Vec<Linear> {
        vec![
            xavier_linear(i, o, &mut self.rng, self.device),
            xavier_linear(o, o, &mut self.rng, self.device),
        ]
    }
}

impl ScoreNet {
    /// A freshly initialised network for `d` PDE parameters and `f` fidelity features.
    pub fn new(shape: &NetShape, d: usize, f: usize, one_d: bool, seed: u64) -> Self {
        let device = train_device();
        let _guard = BURN_RNG.lock().unwrap_or_else(|e| e.into_inner());
        device.seed(seed);
        let mut b = Builder {
            one_d,
            device: &device,
            rng: ChaCha8Rng::seed_from_u64(seed),
        };
        let e = shape.emb;
        let ch: Vec<usize> = shape.mults.iter().map(|m| m * shape.channels).collect();
        let c0 = ch[0];
        let noise = b.mlp(e, e);
        let params = b.mlp(d.max(1), e);
        let fidelity = b.mlp(f.max(1), e);
        // The noisy field plus its coordinates (one channel per axis): a convolution alone is
        // translation-equivariant, and the field's shape has to come from the conditions at
        // the noise levels where z carries no information.
        let conv_in = b.conv(1 + if one_d { 1 } else { 2 }, c0, 1);
        let mut down = Vec::new();
        let mut downsample = Vec::new();
        let mut prev = c0;
        for (l, &c) in ch.iter().enumerate() {
            down.push(b.block(prev, c, e));
            prev = c;
            if l + 1 < ch.len() {
                downsample.push(b.conv(c, c, 2));
            }
        }
        let mid = b.block(prev, prev, e);
        let mut up = Vec::new();
        let mut upsample = Vec::new();
        for l in (0..ch.len()).rev() {
            up.push(b.block(prev + ch[l], ch[l], e));
            prev = ch[l];
            if l > 0 {
                upsample.push(b.conv(prev, ch[l - 1], 1));
                prev = ch[l - 1];
            }
        }
        let norm_out = b.norm(c0);
        let mut conv_out = b.conv(c0, 1, 1);
        // Start from a zero score: the first steps learn the data's scale, not undo noise.
        conv_out.weight = Param::from_tensor(Tensor::zeros(conv_out.weight.dims(), &device));
        let net = Self {
            noise,
            params,
            fidelity,
            conv_in,
            down,
            downsample,
            mid,
            up,
            upsample,
            norm_out,
            conv_out,
            one_d,
            dims: ScoreDims {
                shape: shape.clone(),
                d,
                f,
                one_d,
            },
        };
        materialise(&net);
        net
    }

    /// Coordinate channels in [-1, 1] for a batch shaped like `z`: [B, 1 or 2, H, W].
    fn coords(&self, z: &Tensor<4>) -> Tensor<4> {
        let [b, _, h, w] = z.dims();
        let at = |i: usize, n: usize| {
            if n > 1 {
                2.0 * i as f32 / (n - 1) as f32 - 1.0
            } else {
                0.0
            }
        };
        let mut v = Vec::with_capacity(2 * h * w);
        if !self.one_d {
            v.extend((0..h * w).map(|k| at(k / w, h)));
        }
        v.extend((0..h * w).map(|k| at(k % w, w)));
        let c = v.len() / (h * w);
        Tensor::<4>::from_data(TensorData::new(v, [1, c, h, w]), &z.device()).repeat_dim(0, b)
    }

    fn mlp(layers: &[Linear], x: Tensor<2>) -> Tensor<2> {
        layers[1].forward(activation::silu(layers[0].forward(x)))
    }

    /// sigma times the score at `z` [B, 1, H, W], given the random Fourier features of the
    /// noise level [B, emb], the standardised parameters [B, d] and the fidelity features [B, f].
    pub fn forward(
        &self,
        z: Tensor<4>,
        noise: Tensor<2>,
        x: Tensor<2>,
        fid: Tensor<2>,
    ) -> Tensor<4> {
        let e = activation::silu(
            Self::mlp(&self.noise, noise)
                + Self::mlp(&self.params, x)
                + Self::mlp(&self.fidelity, fid),
        );
        let mut h = self
            .conv_in
            .forward(Tensor::cat(vec![z.clone(), self.coords(&z)], 1));
        let mut skips = Vec::with_capacity(self.down.len());
        for (l, block) in self.down.iter().enumerate() {
            h = block.forward(h, e.clone());
            skips.push(h.clone());
            if let Some(ds) = self.downsample.get(l) {
                h = ds.forward(h);
            }
        }
        h = self.mid.forward(h, e.clone());
        let scale = if self.one_d { [1.0, 2.0] } else { [2.0, 2.0] };
        for (k, block) in self.up.iter().enumerate() {
            let skip = skips.pop().expect("one skip per level");
            h = block.forward(Tensor::cat(vec![h, skip], 1), e.clone());
            if let Some(us) = self.upsample.get(k) {
                let opts =
                    InterpolateOptions::new(InterpolateMode::Nearest).with_scale_factor(scale);
                h = us.forward(interpolate(h, opts));
            }
        }
        self.conv_out
            .forward(activation::silu(self.norm_out.forward(h)))
    }
}

/// Gaussian random Fourier features of log sigma: [sin(2 pi w log s), cos(2 pi w log s)] with
/// fixed w ~ N(0, 16^2) (Song et al.'s scale), `emb` features per row.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Fourier {
    w: Vec<f64>,
}

impl Fourier {
    pub fn new(emb: usize, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xF0_0F1E);
        Self {
            w: (0..emb / 2)
                .map(|_| 16.0 * rng.sample::<f64, _>(StandardNormal))
                .collect(),
        }
    }
    pub fn features(&self, sigma: f64) -> Vec<f32> {
        let t = sigma.ln();
        let arg = |w: &f64| 2.0 * std::f64::consts::PI * w * t;
        let sin = self.w.iter().map(|w| arg(w).sin() as f32);
        let cos = self.w.iter().map(|w| arg(w).cos() as f32);
        sin.chain(cos).collect()
    }
}

/// Training settings of [`train`].
#[derive(Debug, Clone, PartialEq)]
pub struct TrainSettings {
    pub precond: Precond,
    pub noise: NoiseLevels,
    pub steps: usize,
    pub batch: usize,
    pub lr: f64,
    pub seed: u64,
}

/// Training data in model space: fields [N, H*W] (standardised), parameters [N, d]
/// (standardised), fidelity features [N, f].
pub struct Batchable<'a> {
    pub fields: ArrayView2<'a, f64>,
    pub x: ArrayView2<'a, f64>,
    pub fid: ArrayView2<'a, f64>,
    pub hw: [usize; 2],
}

/// Per-row conditions [B, width] as a tensor; a condition with no columns (a problem without
/// inputs, a single fidelity) becomes one zero column, the width the network was built for.
fn conditions(a: ArrayView2<f64>, device: &Device) -> Tensor<2> {
    if a.ncols() == 0 {
        Tensor::zeros([a.nrows(), 1], device)
    } else {
        to_tensor(a, device)
    }
}

/// Denoising score matching: for a batch of fields y, a noise level sigma per example (see
/// [`NoiseLevels`]), z = y + sigma eps,
/// minimise the mean squared distance of the network's output to the target of `precond`
/// (the sigma^2-weighted loss ||net(z) + eps||^2 for [`Precond::Score`]). Adam; the learning
/// rate decays by a cosine to 5 % of `lr` over the steps. Calls `each(step, loss)` after every
/// step. Returns the trained network (without autodiff) and the last loss.
pub fn train(
    mut net: ScoreNet,
    data: &Batchable,
    sde: &VeSde,
    fourier: &Fourier,
    s: &TrainSettings,
    each: &mut dyn FnMut(usize, f64),
) -> Result<(ScoreNet, f64)> {
    let device = train_device();
    let n = data.fields.nrows();
    let [h, w] = data.hw;
    let dim = h * w;
    let mut rng = ChaCha8Rng::seed_from_u64(s.seed ^ 0xD1FF_0510);
    let mut opt = AdamConfig::new().init();
    let batch = s.batch.min(n).max(1);
    let mut last = f64::NAN;
    for step in 0..s.steps {
        let rows: Vec<usize> = (0..batch).map(|_| rng.random_range(0..n)).collect();
        let mut zs = Vec::with_capacity(batch * dim);
        let mut targets = Vec::with_capacity(batch * dim);
        let mut feats = Vec::with_capacity(batch * fourier.w.len() * 2);
        for &r in &rows {
            let sigma = s.noise.draw(sde, &mut rng);
            feats.extend(fourier.features(sigma));
            let c_in = s.precond.c_in(sigma);
            for &y in data.fields.row(r) {
                let e: f64 = rng.sample(StandardNormal);
                let z = y + sigma * e;
                zs.push((c_in * z) as f32);
                targets.push(s.precond.target(y, z, e, sigma) as f32);
            }
        }
        let z = Tensor::<4>::from_data(TensorData::new(zs, [batch, 1, h, w]), &device);
        let target = Tensor::<4>::from_data(TensorData::new(targets, [batch, 1, h, w]), &device);
        let emb = feats.len() / batch;
        let noise = Tensor::<2>::from_data(TensorData::new(feats, [batch, emb]), &device);
        let x = conditions(data.x.select(Axis(0), &rows).view(), &device);
        let fid = conditions(data.fid.select(Axis(0), &rows).view(), &device);
        let out = net.forward(z, noise, x, fid);
        let loss = (out - target).powi_scalar(2).mean();
        let value = loss.clone().into_scalar::<f32>() as f64;
        if !value.is_finite() {
            return Err(FusionError::Diverged {
                model: "dgmf".into(),
                epoch: step,
                loss: value,
            });
        }
        last = value;
        let grads = GradientsParams::from_grads(loss.backward(), &net);
        let progress = step as f64 / s.steps.max(1) as f64;
        let lr = s.lr * (0.05 + 0.95 * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()));
        net = opt.step(lr, net, grads);
        each(step, value);
    }
    Ok((net.valid(), last))
}

/// Evaluate the network (without autodiff) on a batch at one noise level: the score for
/// fields `z` [B, H*W] with per-row conditions.
#[allow(clippy::too_many_arguments)]
pub fn score_batch(
    net: &ScoreNet,
    precond: Precond,
    fourier: &Fourier,
    hw: [usize; 2],
    z: &[f64],
    sigma: f64,
    x: ArrayView2<f64>,
    fid: ArrayView2<f64>,
) -> Vec<f64> {
    let device = cpu_device();
    let [h, w] = hw;
    let b = x.nrows();
    let feats: Vec<f32> = (0..b).flat_map(|_| fourier.features(sigma)).collect();
    let emb = feats.len() / b;
    let c_in = precond.c_in(sigma);
    let zt = Tensor::<4>::from_data(
        TensorData::new(
            z.iter().map(|&v| (c_in * v) as f32).collect::<Vec<_>>(),
            [b, 1, h, w],
        ),
        &device,
    );
    let out = net.forward(
        zt,
        Tensor::from_data(TensorData::new(feats, [b, emb]), &device),
        conditions(x, &device),
        conditions(fid, &device),
    );
    let data = out.into_data();
    data.as_slice::<f32>()
        .expect("f32 tensor")
        .iter()
        .zip(z)
        .map(|(&f, &z)| precond.score(z, f as f64, sigma))
        .collect()
}

/// Largest Euclidean distance between two rows of `y` (sigma_max's scale, Song & Ermon's
/// technique 1); 1 when there is a single row.
pub fn max_pairwise_distance(y: ArrayView2<f64>) -> f64 {
    let n = y.nrows();
    let mut best: f64 = 0.0;
    for i in 0..n {
        for j in i + 1..n {
            let d2: f64 = y
                .row(i)
                .iter()
                .zip(y.row(j))
                .map(|(a, b)| (a - b) * (a - b))
                .sum();
            best = best.max(d2);
        }
    }
    if best > 0.0 {
        best.sqrt()
    } else {
        1.0
    }
}
