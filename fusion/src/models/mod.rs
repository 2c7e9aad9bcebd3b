//! The models. Each file is one model; [`crate::registry`] maps names to them.

pub mod ar;
pub mod dgmf;
pub mod dmf;
pub mod gar;
pub mod gp_hf;
pub mod mf_transfer;
pub mod nar;
pub mod nn_hf;

use crate::mlp::{self, Activation, Mlp};
use crate::prep::{InputMap, OutputMap};
use crate::{FusionError, Result};
use ndarray::{Array2, ArrayView1, ArrayView2};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// The random stream of one prediction row, from the fit's seed, the row's inputs and a
/// stream number. A model that draws random numbers to predict (nar's Monte Carlo, dgmf's
/// sampler) draws each point's numbers from its own stream, so a point's prediction is the
/// same alone, in any batch, in any order, and after the model is saved and loaded.
pub(crate) fn row_rng(seed: u64, row: ArrayView1<f64>, stream: u64) -> ChaCha8Rng {
    // splitmix64's finaliser: every input bit moves every output bit.
    let mix = |mut z: u64| {
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let mut h = mix(seed ^ mix(stream.wrapping_add(0x9E37_79B9_7F4A_7C15)));
    for v in row {
        // +0 and -0 are the same input.
        let bits = if *v == 0.0 { 0 } else { v.to_bits() };
        h = mix(h ^ bits);
    }
    ChaCha8Rng::seed_from_u64(h)
}

/// Network and preprocessing hyperparameters shared by the neural baselines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetParams {
    /// Hidden layer widths.
    pub hidden: Vec<usize>,
    pub activation: Activation,
    /// Reduce field outputs by PCA fitted on the training outputs (recommended for fields).
    pub pca: bool,
    /// Fraction of training variance PCA may leave out.
    pub pca_tol: f64,
    pub max_components: usize,
}

impl Default for NetParams {
    fn default() -> Self {
        Self {
            hidden: vec![64, 64],
            activation: Activation::Tanh,
            pca: true,
            pca_tol: 1e-6,
            max_components: 32,
        }
    }
}

impl NetParams {
    /// A freshly initialised network `d_in -> hidden... -> d_out`, weights drawn from `seed`.
    pub fn network(
        &self,
        d_in: usize,
        d_out: usize,
        seed: u64,
        device: &burn::tensor::Device,
    ) -> Mlp {
        let widths: Vec<usize> = std::iter::once(d_in)
            .chain(self.hidden.iter().copied())
            .chain(std::iter::once(d_out))
            .collect();
        Mlp::new(&widths, self.activation, seed, device)
    }

    pub fn check(&self, model: &str) -> Result<()> {
        let bad = |reason: String| {
            Err(FusionError::BadParams {
                model: model.into(),
                reason,
            })
        };
        if self.hidden.is_empty() || self.hidden.contains(&0) {
            return bad(format!(
                "hidden = {:?}: need at least one layer, all widths > 0",
                self.hidden
            ));
        }
        OutputReduction::of(self.pca, self.pca_tol, self.max_components).check(model)
    }
}

/// Output reduction of a model whose network is not an MLP of `NetParams` (DMF).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutputReduction {
    /// Reduce field outputs by PCA fitted on the training outputs (recommended for fields).
    pub pca: bool,
    /// Fraction of training variance PCA may leave out.
    pub pca_tol: f64,
    pub max_components: usize,
}

impl Default for OutputReduction {
    fn default() -> Self {
        let n = NetParams::default();
        Self {
            pca: n.pca,
            pca_tol: n.pca_tol,
            max_components: n.max_components,
        }
    }
}

impl OutputReduction {
    /// The reduction settings of a parameter struct that keeps them as its own fields.
    pub fn of(pca: bool, pca_tol: f64, max_components: usize) -> Self {
        Self {
            pca,
            pca_tol,
            max_components,
        }
    }

    /// The one check of PCA settings, shared by every model's parameters.
    pub fn check(&self, model: &str) -> Result<()> {
        let bad = |reason: String| {
            Err(FusionError::BadParams {
                model: model.into(),
                reason,
            })
        };
        if !(self.pca_tol.is_finite() && (0.0..1.0).contains(&self.pca_tol)) {
            return bad(format!("pca_tol = {} must be in [0, 1)", self.pca_tol));
        }
        if self.max_components == 0 {
            return bad("max_components must be at least 1".into());
        }
        Ok(())
    }
}

/// Check one (epochs, learning rate) phase.
pub(crate) fn check_phase(
    model: &str,
    what: &str,
    epochs: usize,
    lr: f64,
    weight_decay: f64,
) -> Result<()> {
    let bad = |reason: String| {
        Err(FusionError::BadParams {
            model: model.into(),
            reason,
        })
    };
    if epochs == 0 {
        return bad(format!("{what} epochs must be at least 1"));
    }
    if !(lr.is_finite() && lr > 0.0) {
        return bad(format!(
            "{what} learning rate {lr} must be a positive number"
        ));
    }
    if !(weight_decay.is_finite() && weight_decay >= 0.0) {
        return bad(format!("weight_decay {weight_decay} must be >= 0"));
    }
    Ok(())
}

/// A fitted network with its input and output maps.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct Fitted {
    pub input_map: InputMap,
    pub output_map: OutputMap,
    /// None when the training outputs have no variance to learn (prediction = their mean).
    pub net: Option<Mlp>,
}

impl Fitted {
    pub fn predict(&self, model: &str, x: ArrayView2<f64>) -> Result<Array2<f64>> {
        let expected = self.input_map.mean.len();
        if x.ncols() != expected {
            return Err(FusionError::InputWidth {
                model: model.into(),
                got: x.ncols(),
                expected,
            });
        }
        let z = match &self.net {
            Some(net) => mlp::predict(net, self.input_map.transform(x).view()),
            None => Array2::zeros((x.nrows(), 0)),
        };
        Ok(self.output_map.decode(z.view()))
    }
}

/// Stack two matrices vertically.
pub(crate) fn vstack(a: ArrayView2<f64>, b: ArrayView2<f64>) -> Array2<f64> {
    ndarray::concatenate(ndarray::Axis(0), &[a, b]).expect("same number of columns")
}

/// Inputs must have the width the model was fitted on.
pub(crate) fn check_width(model: &str, x: ArrayView2<f64>, expected: usize) -> Result<()> {
    if x.ncols() != expected {
        return Err(FusionError::InputWidth {
            model: model.into(),
            got: x.ncols(),
            expected,
        });
    }
    Ok(())
}

/// The input and output maps of the fusion GPs, fitted on the training data of every level
/// stacked, so that all levels share one standardisation and one coefficient space.
pub(crate) fn shared_maps(
    train: &crate::MfTrainSet,
    p: &crate::gp::GpParams,
) -> Result<(crate::prep::InputMap, OutputMap)> {
    let xs: Vec<_> = train.sources.iter().map(|l| l.inputs.view()).collect();
    let ys: Vec<_> = train.sources.iter().map(|l| l.outputs.view()).collect();
    let x = ndarray::concatenate(ndarray::Axis(0), &xs).expect("same input width");
    let y = ndarray::concatenate(ndarray::Axis(0), &ys).expect("same output width");
    Ok((
        crate::prep::InputMap::fit(x.view())?,
        OutputMap::fit(y.view(), p.pca, p.pca_tol, p.max_components)?,
    ))
}

/// The number of sources must suit the model (`takes`), and every source it reads needs
/// at least `min` samples.
pub(crate) fn check_sources(
    model: &str,
    train: &crate::MfTrainSet,
    takes: crate::Sources,
    min: usize,
) -> Result<()> {
    takes.check(model, train.sources.len())?;
    let used = if takes.uses_cheaper() {
        &train.sources[..]
    } else {
        &train.sources[train.sources.len() - 1..]
    };
    if used.iter().any(|l| l.inputs.nrows() < min) {
        return Err(FusionError::NotEnoughData {
            model: model.into(),
            what: format!("at least {min} samples from every source it uses"),
        });
    }
    Ok(())
}

/// Field variances [N, D] from one latent variance per point [N] shared by all coefficients.
pub(crate) fn field_var(om: &OutputMap, v: ndarray::Array1<f64>) -> Array2<f64> {
    let n = v.len();
    let per = v
        .insert_axis(ndarray::Axis(1))
        .broadcast((n, om.width()))
        .expect("one variance per point")
        .to_owned();
    om.decode_var(per.view())
}
