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

use crate::mlp::xavier_linear;
use crate::{FusionError, Result};
use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{activation, Device, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// The candidate operations, in the order of each edge's alpha vector.
pub const CANDIDATES: [&str; 5] = ["deep", "shallow", "wide", "linear", "zero"];
/// (layers, hidden width) of the four candidates that have weights.
const SHAPES: [(usize, usize); 4] = [(4, 20), (2, 20), (2, 40), (1, 0)];

/// One candidate with weights: Linear layers with ReLU between them (not after the last).
#[derive(Module, Debug)]
pub struct Op {
    layers: Vec<Linear>,
}

impl Op {
    fn new(
        input: usize,
        output: usize,
        layers: usize,
        hidden: usize,
        rng: &mut ChaCha8Rng,
        device: &Device,
    ) -> Self {
        let mut widths = vec![input];
        widths.extend(std::iter::repeat_n(hidden, layers - 1));
        widths.push(output);
        Self {
            layers: widths
                .windows(2)
                .map(|w| xavier_linear(w[0], w[1], rng, device))
                .collect(),
        }
    }

    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let last = self.layers.len() - 1;
        let mut h = x;
        for (k, l) in self.layers.iter().enumerate() {
            h = l.forward(h);
            if k < last {
                h = activation::relu(h);
            }
        }
        h
    }

    fn sum_sq(&self) -> Tensor<1> {
        let mut s: Option<Tensor<1>> = None;
        for l in &self.layers {
            let mut t = l.weight.val().powi_scalar(2).sum();
            if let Some(b) = &l.bias {
                t = t + b.val().powi_scalar(2).sum();
            }
            s = Some(match s {
                Some(a) => a + t,
                None => t,
            });
        }
        s.expect("an op has at least one layer")
    }
}

/// The weights of every candidate on every edge.
#[derive(Module, Debug)]
pub struct Weights {
    /// edges[e][c]: candidate c (deep, shallow, wide, linear) of edge e.
    pub edges: Vec<Vec<Op>>,
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
                edges.push(
                    SHAPES
                        .iter()
                        .map(|&(layers, hidden)| {
                            Op::new(
                                node_width(i),
                                node_width(j),
                                layers,
                                hidden,
                                &mut rng,
                                device,
                            )
                        })
                        .collect(),
                );
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
        let weights = activation::softmax(self.alpha.alpha[e].val(), 0);
        let mut acc: Option<Tensor<2>> = None;
        for (c, op) in self.w.edges[e].iter().enumerate() {
            let wc = weights.clone().narrow(0, c, 1).reshape([1, 1]);
            let term = op.forward(x.clone()) * wc;
            acc = Some(match acc {
                Some(a) => a + term,
                None => term,
            });
        }
        // The zero candidate adds nothing; it only takes its share of the softmax.
        acc.expect("four candidates with weights")
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
        let mut it = self.w.edges.iter().flatten().map(Op::sum_sq);
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
        for op in self.w.edges.iter().flatten() {
            for l in &op.layers {
                v.extend(l.weight.val().into_data().iter::<f32>());
                if let Some(b) = &l.bias {
                    v.extend(b.val().into_data().iter::<f32>());
                }
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
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SearchPhase {
    /// Total `w` steps (Algorithm 1: N iterations x W epochs).
    pub steps: usize,
    pub k: usize,
    pub lr_w: f64,
    pub lr_alpha: f64,
    pub lambda1: f64,
    pub lambda2: f64,
    pub schedule: Schedule,
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
    let objective = |net: &DmfNet| {
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
    let mut last = f64::NAN;
    for step in 1..=p.steps {
        let l = objective(&net);
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
                    let mut grads = objective(&net).backward();
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
