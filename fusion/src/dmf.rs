//! The differentiable architecture-search network of DMF (paper Sec. 3.1) and its training.
//!
//! A DMF network is a DAG of `cells` nodes h_0 .. h_{n-1}: h_0 is the (standardised) input,
//! h_{n-1} the output, the others intermediate nodes of width `width` (20 in the paper). Every
//! pair i < j is joined by a *mixed operation* (eq. 3): the softmax(alpha)-weighted sum of five
//! candidates,
//!
//! | candidate | layers (hidden width) | activation |
//! |---|---|---|
//! | deep    | 4 (20) | ReLU between layers |
//! | shallow | 2 (20) | ReLU between layers |
//! | wide    | 2 (40) | ReLU between layers |
//! | linear  | 1      | none |
//! | zero    | -      | outputs 0 |
//!
//! and h_j = sum_{i<j} o^(i,j)(h_i) (eq. 4). An operation of L layers maps its edge's input
//! width to the hidden width through L - 1 ReLU layers and ends in a linear layer to the target
//! node's width, so the output node can take any sign and scale (it regresses standardised PCA
//! coefficients). The zero candidate has no weights but keeps its share of the softmax, so the
//! search can switch an edge off.
//!
//! Parameters live in two modules, the weights `w` and the architecture `alpha`, so that each
//! gets its own optimizer and learning rate (r1, r2): Algorithm 1's alternate optimisation steps
//! `w` every iteration and `alpha` every k-th, re-evaluating the loss at the updated `w`
//! (eq. 6); the joint schedule steps both from one gradient. The loss is eq. (5): the mean over
//! samples of the squared error summed over outputs, plus lambda1 ||w||^2 + lambda2 ||alpha||^2.

use crate::{FusionError, Result};
use burn::module::{Module, Param};
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{activation, Device, Int, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// The candidate operations, in the order of each edge's alpha vector.
pub const CANDIDATES: [&str; 5] = ["deep", "shallow", "wide", "linear", "zero"];
/// Hidden widths of deep, shallow and wide (the linear candidate has no hidden layer).
const DEEP: usize = 20;
const SHALLOW: usize = 20;
const WIDE: usize = 40;
/// Hidden layers of deep after its first (4 layers in all: first, 2 hidden, last).
const DEEP_HIDDEN: usize = 2;
/// Columns of the first layers' hidden part: deep | shallow | wide.
const HIDDEN: usize = DEEP + SHALLOW + WIDE;

/// Xavier-uniform [fan_in, fan_out] values (row-major), drawn from `rng`.
fn xavier(fan_in: usize, fan_out: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let bound = (6.0 / (fan_in + fan_out) as f64).sqrt() as f32;
    (0..fan_in * fan_out)
        .map(|_| (rng.random::<f64>() * 2.0 - 1.0) as f32 * bound)
        .collect()
}

/// Column blocks [rows, w_k] side by side as one [rows, sum w_k] matrix.
fn hcat(rows: usize, blocks: &[(Vec<f32>, usize)]) -> Vec<f32> {
    let mut out = Vec::with_capacity(rows * blocks.iter().map(|b| b.1).sum::<usize>());
    for r in 0..rows {
        for (data, w) in blocks {
            out.extend_from_slice(&data[r * w..(r + 1) * w]);
        }
    }
    out
}

fn param2(data: Vec<f32>, shape: [usize; 2], device: &Device) -> Param<Tensor<2>> {
    Param::from_tensor(Tensor::from_data(TensorData::new(data, shape), device))
}

fn zeros1(n: usize, device: &Device) -> Param<Tensor<1>> {
    Param::from_tensor(Tensor::zeros([n], device))
}

/// The four candidates with weights on one edge, stored so that a mixed operation costs few
/// tensor operations: DMF's networks are tiny (batches of tens of samples, widths of 20-40),
/// so a training step is bound by the per-operation overhead of the autodiff graph, not by
/// arithmetic. The first layers of deep, shallow, wide and linear all read the edge's input
/// and are one [in, 80 + out] matrix; the last layers of deep, shallow and wide are one
/// [80, out] matrix applied to their softmax-scaled hidden features side by side. The
/// function is exactly that of four separate networks ([`Edge::candidate`] evaluates them one
/// by one; a test checks the two agree).
#[derive(Module, Debug)]
pub struct Edge {
    first_w: Param<Tensor<2>>,
    first_b: Param<Tensor<1>>,
    deep_w: Vec<Param<Tensor<2>>>,
    deep_b: Vec<Param<Tensor<1>>>,
    last_w: Param<Tensor<2>>,
    /// Last-layer biases of deep, shallow and wide, one row each: [3, out].
    last_b: Param<Tensor<2>>,
    /// [5, 80 + out]: row c is 1 on the columns of candidate c (row 4, zero, is all 0), so
    /// softmax(alpha) [1, 5] times it is the per-column scale of one mixed operation.
    #[module(skip)]
    spread: TensorData,
    #[module(skip)]
    out: usize,
}

impl Edge {
    fn new(input: usize, out: usize, rng: &mut ChaCha8Rng, device: &Device) -> Self {
        // Drawn in the order deep (all layers), shallow, wide, linear.
        let deep_first = xavier(input, DEEP, rng);
        let deep_hidden: Vec<Vec<f32>> =
            (0..DEEP_HIDDEN).map(|_| xavier(DEEP, DEEP, rng)).collect();
        let deep_last = xavier(DEEP, out, rng);
        let shallow_first = xavier(input, SHALLOW, rng);
        let shallow_last = xavier(SHALLOW, out, rng);
        let wide_first = xavier(input, WIDE, rng);
        let wide_last = xavier(WIDE, out, rng);
        let linear = xavier(input, out, rng);
        let first = hcat(
            input,
            &[
                (deep_first, DEEP),
                (shallow_first, SHALLOW),
                (wide_first, WIDE),
                (linear, out),
            ],
        );
        let mut last = deep_last;
        last.extend(shallow_last);
        last.extend(wide_last);
        let mut spread = vec![0f32; 5 * (HIDDEN + out)];
        let blocks = [
            (0, DEEP),
            (DEEP, SHALLOW),
            (DEEP + SHALLOW, WIDE),
            (HIDDEN, out),
        ];
        for (c, &(start, width)) in blocks.iter().enumerate() {
            for col in start..start + width {
                spread[c * (HIDDEN + out) + col] = 1.0;
            }
        }
        Self {
            first_w: param2(first, [input, HIDDEN + out], device),
            first_b: zeros1(HIDDEN + out, device),
            deep_w: deep_hidden
                .into_iter()
                .map(|w| param2(w, [DEEP, DEEP], device))
                .collect(),
            deep_b: (0..DEEP_HIDDEN).map(|_| zeros1(DEEP, device)).collect(),
            last_w: param2(last, [HIDDEN, out], device),
            last_b: Param::from_tensor(Tensor::zeros([3, out], device)),
            spread: TensorData::new(spread, [5, HIDDEN + out]),
            out,
        }
    }

    /// Deep's hidden layers on its first-layer activations.
    fn deep_tail(&self, mut h: Tensor<2>) -> Tensor<2> {
        for (w, b) in self.deep_w.iter().zip(&self.deep_b) {
            h = activation::relu(h.matmul(w.val()) + b.val().unsqueeze());
        }
        h
    }

    /// The mixed operation (eq. 3) with candidate weights `s` = softmax(alpha), shape [1, 5].
    fn mixed(&self, s: Tensor<2>, x: Tensor<2>) -> Tensor<2> {
        let out = self.out;
        let z = x.matmul(self.first_w.val()) + self.first_b.val().unsqueeze();
        let h = activation::relu(z.clone().narrow(1, 0, HIDDEN));
        let deep = self.deep_tail(h.clone().narrow(1, 0, DEEP));
        let g = Tensor::cat(
            vec![
                deep,
                h.narrow(1, DEEP, SHALLOW + WIDE),
                z.narrow(1, HIDDEN, out),
            ],
            1,
        );
        let spread = Tensor::from_data(self.spread.clone(), &s.device());
        let g = g * s.clone().matmul(spread);
        g.clone().narrow(1, 0, HIDDEN).matmul(self.last_w.val())
            + g.narrow(1, HIDDEN, out)
            + s.narrow(1, 0, 3).matmul(self.last_b.val())
    }

    /// Candidate `c` (0 deep, 1 shallow, 2 wide, 3 linear, 4 zero) on its own.
    pub fn candidate(&self, c: usize, x: Tensor<2>) -> Tensor<2> {
        let out = self.out;
        let z = x.matmul(self.first_w.val()) + self.first_b.val().unsqueeze();
        let (start, width) = match c {
            0 => (0, DEEP),
            1 => (DEEP, SHALLOW),
            2 => (DEEP + SHALLOW, WIDE),
            3 => return z.narrow(1, HIDDEN, out),
            _ => return z.narrow(1, HIDDEN, out).zeros_like(),
        };
        let mut h = activation::relu(z.narrow(1, start, width));
        if c == 0 {
            h = self.deep_tail(h);
        }
        h.matmul(self.last_w.val().narrow(0, start, width)) + self.last_b.val().narrow(0, c, 1)
    }

    fn params2(&self) -> Vec<Tensor<2>> {
        let mut v = vec![self.first_w.val(), self.last_w.val(), self.last_b.val()];
        v.extend(self.deep_w.iter().map(|w| w.val()));
        v
    }

    fn params1(&self) -> Vec<Tensor<1>> {
        let mut v = vec![self.first_b.val()];
        v.extend(self.deep_b.iter().map(|b| b.val()));
        v
    }

    fn sum_sq(&self) -> Tensor<1> {
        let mut it = self
            .params2()
            .into_iter()
            .map(|t| t.powi_scalar(2).sum())
            .chain(self.params1().into_iter().map(|t| t.powi_scalar(2).sum()));
        let first = it.next().expect("an edge has weights");
        it.fold(first, |a, b| a + b)
    }
}

/// The weights of every edge.
#[derive(Module, Debug)]
pub struct Weights {
    pub edges: Vec<Edge>,
}

/// One alpha vector (5 values) per edge.
#[derive(Module, Debug)]
pub struct Alphas {
    pub alpha: Vec<Param<Tensor<1>>>,
}

#[derive(Module, Debug)]
pub struct DmfNet {
    pub w: Weights,
    pub alpha: Alphas,
    #[module(skip)]
    pub(crate) cells: usize,
}

impl crate::state::Rebuild for DmfNet {
    /// (cells, input, width, output).
    type Dims = [usize; 4];
    fn dims(&self) -> [usize; 4] {
        let edges = &self.w.edges;
        let input = edges[0].first_w.dims()[0];
        // Edge (0, 1) ends on a hidden node unless the net has only its input and output.
        let width = if self.cells > 2 { edges[0].out } else { 1 };
        let output = edges[edges.len() - 1].out;
        [self.cells, input, width, output]
    }
    fn blank(&[cells, input, width, output]: &[usize; 4]) -> Self {
        DmfNet::new(cells, input, width, output, 0, &crate::mlp::cpu_device())
    }
}
crate::saved_net!(DmfNet);

/// Edge index of (i, j), i < j, with edges ordered by j then i.
fn edge(i: usize, j: usize) -> usize {
    j * (j - 1) / 2 + i
}

impl DmfNet {
    /// A network with `cells` nodes (>= 2) mapping `input` to `output` values; weights drawn
    /// from `seed`, alpha = 0 (every candidate equally weighted).
    pub fn new(
        cells: usize,
        input: usize,
        width: usize,
        output: usize,
        seed: u64,
        device: &Device,
    ) -> Self {
        assert!(
            cells >= 2,
            "a DMF network needs an input and an output node"
        );
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let node_width = |k: usize| match k {
            0 => input,
            k if k == cells - 1 => output,
            _ => width,
        };
        let mut edges = Vec::new();
        let mut alpha = Vec::new();
        for j in 1..cells {
            for i in 0..j {
                edges.push(Edge::new(node_width(i), node_width(j), &mut rng, device));
                alpha.push(Param::from_tensor(Tensor::zeros(
                    [CANDIDATES.len()],
                    device,
                )));
            }
        }
        Self {
            w: Weights { edges },
            alpha: Alphas { alpha },
            cells,
        }
    }

    pub fn cells(&self) -> usize {
        self.cells
    }

    /// The mixed operation of one edge (eq. 3) on `x`.
    pub fn mixed(&self, e: usize, x: Tensor<2>) -> Tensor<2> {
        let s = activation::softmax(self.alpha.alpha[e].val(), 0).reshape([1, CANDIDATES.len()]);
        self.w.edges[e].mixed(s, x)
    }

    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let mut h = vec![x];
        for j in 1..self.cells {
            let mut acc: Option<Tensor<2>> = None;
            for (i, hi) in h.iter().enumerate().take(j) {
                let t = self.mixed(edge(i, j), hi.clone());
                acc = Some(match acc {
                    Some(a) => a + t,
                    None => t,
                });
            }
            h.push(acc.expect("j >= 1 has an incoming edge"));
        }
        h.pop().expect("at least two nodes")
    }

    /// ||w||^2 over every weight and bias.
    pub fn w_sq(&self) -> Tensor<1> {
        let mut it = self.w.edges.iter().map(Edge::sum_sq);
        let first = it.next().expect("at least one op");
        it.fold(first, |a, b| a + b)
    }

    /// ||alpha||^2 over every edge.
    pub fn alpha_sq(&self) -> Tensor<1> {
        let mut it = self
            .alpha
            .alpha
            .iter()
            .map(|a| a.val().powi_scalar(2).sum());
        let first = it.next().expect("at least one edge");
        it.fold(first, |a, b| a + b)
    }

    /// Every weight, bias and alpha value, flattened (for checks of what training changed).
    pub fn flat_params(&self) -> Vec<f32> {
        let mut v = Vec::new();
        for e in &self.w.edges {
            for t in e.params2() {
                v.extend(t.into_data().iter::<f32>());
            }
            for t in e.params1() {
                v.extend(t.into_data().iter::<f32>());
            }
        }
        for a in &self.alpha.alpha {
            v.extend(a.val().into_data().iter::<f32>());
        }
        v
    }

    /// softmax(alpha) of every edge, for reports: the searched architecture.
    pub fn architecture(&self) -> Vec<Vec<f64>> {
        self.alpha
            .alpha
            .iter()
            .map(|a| {
                activation::softmax(a.val(), 0)
                    .into_data()
                    .iter::<f32>()
                    .map(|v| v as f64)
                    .collect()
            })
            .collect()
    }
}

/// How `w` and `alpha` are optimised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// Algorithm 1: `w` every step, `alpha` every k-th step at the updated `w`.
    #[default]
    Alternate,
    /// Both from the same gradient every step.
    Joint,
}

/// One search-and-train phase of a DMF network.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SearchPhase {
    /// Total `w` steps (Algorithm 1: N iterations x W epochs).
    pub steps: usize,
    pub k: usize,
    pub lr_w: f64,
    pub lr_alpha: f64,
    pub lambda1: f64,
    pub lambda2: f64,
    pub schedule: Schedule,
    /// Samples per step: 0 (or at least the data's size) is full-batch gradient descent,
    /// otherwise each step sees the next `batch` rows of a shuffled pass over the data.
    pub batch: usize,
    /// Seed of the mini-batch order (unused in full batch).
    pub seed: u64,
}

/// The rows each training step sees: every row (full batch), or consecutive slices of a
/// permutation drawn afresh for every pass over the data, from a seeded generator so a fit
/// repeats bit for bit.
pub struct Batches {
    n: usize,
    batch: usize,
    perm: Vec<i64>,
    pos: usize,
    rng: ChaCha8Rng,
}

impl Batches {
    pub fn new(n: usize, batch: usize, seed: u64) -> Self {
        Self {
            n,
            batch: if batch == 0 || batch >= n { 0 } else { batch },
            perm: (0..n as i64).collect(),
            pos: n,
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x6261_7463_6865_7321),
        }
    }

    /// The next step's rows of (x, y): the whole tensors in full batch.
    pub fn next(&mut self, x: &Tensor<2>, y: &Tensor<2>) -> (Tensor<2>, Tensor<2>) {
        if self.batch == 0 {
            return (x.clone(), y.clone());
        }
        if self.pos + self.batch > self.n {
            // Fisher-Yates; a new pass starts, the tail of the last one is dropped.
            for i in (1..self.n).rev() {
                let j = self.rng.random_range(0..=i);
                self.perm.swap(i, j);
            }
            self.pos = 0;
        }
        let rows = self.perm[self.pos..self.pos + self.batch].to_vec();
        self.pos += self.batch;
        let idx = Tensor::<1, Int>::from_data(TensorData::new(rows, [self.batch]), &x.device());
        (x.clone().select(0, idx.clone()), y.clone().select(0, idx))
    }
}

/// Eq. (5): mean over samples of the squared error summed over outputs, plus the penalties.
pub fn loss(pred: Tensor<2>, y: Tensor<2>) -> Tensor<1> {
    (pred - y).powi_scalar(2).sum_dim(1).mean()
}

pub(crate) fn check_finite(model: &str, epoch: usize, l: &Tensor<1>) -> Result<f64> {
    let v = l.clone().into_scalar::<f32>() as f64;
    if v.is_finite() {
        Ok(v)
    } else {
        Err(FusionError::Diverged {
            model: model.into(),
            epoch,
            loss: v,
        })
    }
}

/// Train `net` on (x, y) (tensors on an autodiff device). Returns the net and the final loss.
pub fn train(
    model: &str,
    mut net: DmfNet,
    x: &Tensor<2>,
    y: &Tensor<2>,
    p: SearchPhase,
) -> Result<(DmfNet, f64)> {
    let objective = |net: &DmfNet, x: &Tensor<2>, y: &Tensor<2>| {
        let mut l = loss(net.forward(x.clone()), y.clone());
        if p.lambda1 > 0.0 {
            l = l + net.w_sq().mul_scalar(p.lambda1);
        }
        if p.lambda2 > 0.0 {
            l = l + net.alpha_sq().mul_scalar(p.lambda2);
        }
        l
    };
    let mut opt_w = AdamConfig::new().with_epsilon(1e-8).init();
    let mut opt_a = AdamConfig::new().with_epsilon(1e-8).init();
    let mut batches = Batches::new(x.dims()[0], p.batch, p.seed);
    let mut last = f64::NAN;
    for step in 1..=p.steps {
        let (xb, yb) = batches.next(x, y);
        let l = objective(&net, &xb, &yb);
        if step == 1 || step % 100 == 0 || step == p.steps {
            last = check_finite(model, step, &l)?;
        }
        let mut grads = l.backward();
        let gw = GradientsParams::from_module(&mut grads, &net.w);
        let ga = GradientsParams::from_module(&mut grads, &net.alpha);
        // A zero learning rate freezes a group: skip its step entirely.
        if p.lr_w > 0.0 {
            net = DmfNet {
                w: opt_w.step(p.lr_w, net.w, gw),
                ..net
            };
        }
        if p.lr_alpha > 0.0 {
            match p.schedule {
                Schedule::Joint => {
                    net = DmfNet {
                        alpha: opt_a.step(p.lr_alpha, net.alpha, ga),
                        ..net
                    }
                }
                Schedule::Alternate if step % p.k == 0 => {
                    // Eq. (6): alpha's gradient at the updated w.
                    let mut grads = objective(&net, &xb, &yb).backward();
                    let ga = GradientsParams::from_module(&mut grads, &net.alpha);
                    net = DmfNet {
                        alpha: opt_a.step(p.lr_alpha, net.alpha, ga),
                        ..net
                    };
                }
                Schedule::Alternate => {}
            }
        }
    }
    Ok((net, last))
}
