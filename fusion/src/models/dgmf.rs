//! `dgmf`: the diffusion-generative multi-fidelity model (arXiv 2311.05606) behind
//! [`FusionModel`]. One conditional score network is trained on the fields of ALL sources at
//! once, each sample conditioned on its own fidelity; a prediction at the target fidelity is the
//! mean of K samples drawn by integrating the reverse-time dynamics from noise, and their spread
//! is its uncertainty. The machinery is in [`crate::dgmf`].
//!
//! Model space: every field is fitted on the power-of-two model grid (see [`Grid`]), the mean
//! field of all training samples is subtracted and the result divided by one global scale (so
//! a score error costs the same everywhere, as in the field RMSE); inputs are standardised per
//! column.

use crate::dgmf::{
    self, max_pairwise_distance, Batchable, Fidelity, Fourier, Grid, NetShape, NoiseLevels,
    Precond, Sampler, ScoreNet, TrainSettings, VeSde,
};
use crate::prep::InputMap;
use crate::{
    FitContext, FitReport, FusionError, FusionModel, MfTrainSet, Prediction, Result, Sources,
};
use ndarray::{Array1, Array2, Array3, ArrayView2, Axis};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DgmfParams {
    /// Nodes per axis of the model grid (a power of two, divisible by 2^(depth - 1)).
    pub grid: usize,
    /// U-Net sizes (`[models.dgmf.net]` in a config).
    pub net: NetShape,
    /// What the network predicts and so how the loss weighs the noise levels.
    pub precond: Precond,
    /// How training draws noise levels.
    pub noise: NoiseLevels,
    /// Training steps (mini-batches) of denoising score matching.
    pub steps: usize,
    pub batch: usize,
    /// Peak Adam learning rate (cosine decay to 5 % of it).
    pub lr: f64,
    /// Smallest noise level, in standardised field units.
    pub sigma_min: f64,
    /// Largest noise level; 0 = the largest distance between two standardised training fields.
    pub sigma_max: f64,
    pub sampler: Sampler,
    /// Integration steps from sigma_max to sigma_min.
    pub sample_steps: usize,
    /// K: samples per prediction (mean = prediction, spread = uncertainty).
    pub samples: usize,
    pub fidelity: Fidelity,
    /// With a continuous fidelity: predict at this level (it may be one never trained on)
    /// instead of the target source's.
    pub target_level: Option<f64>,
}

impl Default for DgmfParams {
    fn default() -> Self {
        Self {
            grid: 32,
            net: NetShape::default(),
            precond: Precond::Edm,
            noise: NoiseLevels::UniformTau,
            steps: 1000,
            batch: 16,
            lr: 2e-3,
            sigma_min: 2e-3,
            sigma_max: 0.0,
            sampler: Sampler::Ode,
            sample_steps: 10,
            samples: 4,
            fidelity: Fidelity::Discrete,
            target_level: None,
        }
    }
}

impl DgmfParams {
    pub fn check(&self) -> Result<()> {
        let bad = |reason: String| {
            Err(FusionError::BadParams {
                model: "dgmf".into(),
                reason,
            })
        };
        self.net.check().or_else(bad)?;
        let depth = self.net.mults.len() as u32;
        if !self.grid.is_power_of_two() || self.grid < 2usize.pow(depth) {
            return bad(format!(
                "grid = {} must be a power of two of at least 2^depth = {} (depth = {} levels in net.mults)",
                self.grid,
                2usize.pow(depth),
                depth
            ));
        }
        if self.steps == 0 || self.batch == 0 || self.sample_steps == 0 || self.samples == 0 {
            return bad("steps, batch, sample_steps and samples must be at least 1".into());
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad(format!("lr = {} must be a positive number", self.lr));
        }
        if !(self.sigma_min.is_finite() && self.sigma_min > 0.0) {
            return bad(format!("sigma_min = {} must be positive", self.sigma_min));
        }
        if !(self.sigma_max.is_finite()
            && (self.sigma_max == 0.0 || self.sigma_max > self.sigma_min))
        {
            return bad(format!(
                "sigma_max = {} must be 0 (from the data) or larger than sigma_min = {}",
                self.sigma_max, self.sigma_min
            ));
        }
        if let Some(t) = self.target_level {
            if self.fidelity != Fidelity::Continuous || !t.is_finite() {
                return bad(format!(
                    "target_level = {t} needs fidelity = \"continuous\" and a finite level"
                ));
            }
        }
        Ok(())
    }
}

/// How fidelity levels become network features.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
enum FidelityMap {
    /// One-hot over these levels.
    OneHot(Vec<usize>),
    /// (level - mean) / scale.
    Scalar { mean: f64, scale: f64 },
}

impl FidelityMap {
    fn width(&self) -> usize {
        match self {
            FidelityMap::OneHot(l) => l.len(),
            FidelityMap::Scalar { .. } => 1,
        }
    }
    fn features(&self, level: f64) -> Vec<f64> {
        match self {
            FidelityMap::OneHot(levels) => levels
                .iter()
                .map(|&l| if l as f64 == level { 1.0 } else { 0.0 })
                .collect(),
            FidelityMap::Scalar { mean, scale } => vec![(level - mean) / scale],
        }
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Fitted {
    grid: Grid,
    input_map: InputMap,
    fid: FidelityMap,
    /// The level predicted.
    target: f64,
    mean_field: Array1<f64>,
    scale: f64,
    sde: VeSde,
    fourier: Fourier,
    net: ScoreNet,
    seed: u64,
}

pub struct Dgmf {
    params: DgmfParams,
    fitted: Option<Fitted>,
}

impl Dgmf {
    pub fn new(params: DgmfParams) -> Result<Self> {
        params.check()?;
        Ok(Self {
            params,
            fitted: None,
        })
    }

    /// Draw later predictions with another sampler, number of steps or of samples (the
    /// trained network is kept): the accuracy-vs-steps study samples one fit many ways.
    pub fn set_sampling(&mut self, sampler: Sampler, steps: usize, samples: usize) -> Result<()> {
        let mut p = self.params.clone();
        (p.sampler, p.sample_steps, p.samples) = (sampler, steps, samples);
        p.check()?;
        self.params = p;
        Ok(())
    }
}

/// Predictions are drawn for at most this many (point, sample) rows at a time, which bounds
/// the memory of one network evaluation.
const ROWS_PER_CHUNK: usize = 256;

impl FusionModel for Dgmf {
    fn name(&self) -> &'static str {
        "dgmf"
    }

    fn fit(&mut self, train: &MfTrainSet, ctx: &mut FitContext) -> Result<FitReport> {
        let p = &self.params;
        Sources::Any.check(self.name(), train.sources.len())?;
        // An empty target is the zero-shot case: a continuous fidelity asked for a level it
        // has no data of. A one-hot fidelity has no slot for such a level.
        let empty = train.sources.iter().filter(|s| s.is_empty()).count();
        let target_empty = train.target().is_empty();
        if empty > usize::from(target_empty) || empty == train.sources.len() {
            return Err(FusionError::NotEnoughData {
                model: self.name().into(),
                what: "at least 1 sample from every cheaper source".into(),
            });
        }
        if target_empty && p.fidelity == Fidelity::Discrete {
            return Err(FusionError::NotEnoughData {
                model: self.name().into(),
                what: format!(
                    "target samples (level {}), or fidelity = \"continuous\" to predict a level without training data",
                    train.target().level
                ),
            });
        }
        let grid = Grid::new(&train.shape, p.grid)?;
        let d_out: usize = train.shape.iter().product();
        if train.sources.iter().any(|s| s.outputs.ncols() != d_out) {
            return Err(FusionError::BadParams {
                model: self.name().into(),
                reason: format!(
                    "outputs have {} values per sample but the grid {:?} has {d_out}",
                    train.target().outputs.ncols(),
                    train.shape
                ),
            });
        }
        // Every sample of every source, in model space.
        let n: usize = train.sources.iter().map(|s| s.len()).sum();
        let m = grid.model_len();
        let mut fields = Array2::zeros((n, m));
        let mut levels = Vec::with_capacity(n);
        let mut row = 0;
        for s in &train.sources {
            for y in s.outputs.rows() {
                let y: Vec<f64> = y.iter().copied().collect();
                fields.row_mut(row).assign(&Array1::from(grid.restrict(&y)));
                levels.push(s.level);
                row += 1;
            }
        }
        let mean_field = fields.mean_axis(Axis(0)).expect("at least one sample");
        fields -= &mean_field;
        let sd = (fields.iter().map(|v| v * v).sum::<f64>() / fields.len() as f64).sqrt();
        let scale = if sd > 1e-300 { sd } else { 1.0 };
        fields /= scale;

        let xs: Vec<_> = train.sources.iter().map(|s| s.inputs.view()).collect();
        let x_all = ndarray::concatenate(Axis(0), &xs).expect("same input width");
        let input_map = InputMap::fit(x_all.view())?;
        let x = input_map.transform(x_all.view());

        let mut distinct = levels.clone();
        distinct.sort_unstable();
        distinct.dedup();
        let fid = match p.fidelity {
            Fidelity::Discrete => FidelityMap::OneHot(distinct.clone()),
            Fidelity::Continuous => {
                let l: Vec<f64> = distinct.iter().map(|&l| l as f64).collect();
                let mean = l.iter().sum::<f64>() / l.len() as f64;
                let var = l.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / l.len() as f64;
                FidelityMap::Scalar {
                    mean,
                    scale: if var > 0.0 { var.sqrt() } else { 1.0 },
                }
            }
        };
        let mut fid_rows = Array2::zeros((n, fid.width()));
        for (i, &l) in levels.iter().enumerate() {
            fid_rows
                .row_mut(i)
                .assign(&Array1::from(fid.features(l as f64)));
        }

        let sigma_max = if p.sigma_max > 0.0 {
            p.sigma_max
        } else {
            max_pairwise_distance(fields.view()).max(2.0 * p.sigma_min)
        };
        let sde = VeSde {
            sigma_min: p.sigma_min,
            sigma_max,
        };
        let fourier = Fourier::new(p.net.emb, ctx.seed);
        let net = ScoreNet::new(&p.net, x.ncols(), fid.width(), grid.model[0] == 1, ctx.seed);
        let [steps] = ctx.budget.phases([p.steps]);
        ctx.progress.start("dgmf", steps as u64);
        let data = Batchable {
            fields: fields.view(),
            x: x.view(),
            fid: fid_rows.view(),
            hw: grid.model,
        };
        let settings = TrainSettings {
            precond: p.precond,
            noise: p.noise,
            steps,
            batch: p.batch,
            lr: p.lr,
            seed: ctx.seed,
        };
        let progress = ctx.progress;
        let (net, loss) = dgmf::train(net, &data, &sde, &fourier, &settings, &mut |_, _| {
            progress.advance(1)
        })?;
        ctx.progress.finish();

        let target = p.target_level.unwrap_or(train.target().level as f64);
        let mut hp = serde_json::to_value(p).expect("serialisable");
        hp["steps"] = steps.into();
        hp["sigma_max"] = sigma_max.into();
        hp["sources"] = distinct.len().into();
        hp["training_fields"] = n.into();
        self.fitted = Some(Fitted {
            grid,
            input_map,
            fid,
            target,
            mean_field,
            scale,
            sde,
            fourier,
            net,
            seed: ctx.seed,
        });
        Ok(FitReport {
            epochs: steps,
            final_loss: loss,
            hyperparameters: hp,
        })
    }

    fn predict(&self, x: ArrayView2<f64>) -> Result<Prediction> {
        let f = self.fitted.as_ref().ok_or(FusionError::NotFitted {
            model: self.name().into(),
        })?;
        super::check_width(self.name(), x, f.input_map.mean.len())?;
        let p = &self.params;
        let k = p.samples;
        let n = x.nrows();
        let d: usize = f.grid.shape.iter().product();
        let m = f.grid.model_len();
        let xs = f.input_map.transform(x);
        let fid_row = Array1::from(f.fid.features(f.target));
        let mut samples = Array3::zeros((k, n, d));
        let per_chunk = (ROWS_PER_CHUNK / k).max(1);
        for start in (0..n).step_by(per_chunk) {
            let end = (start + per_chunk).min(n);
            // Rows (point i, sample j) at i * k + j.
            let rows = (end - start) * k;
            let mut xc = Array2::zeros((rows, xs.ncols()));
            let mut fc = Array2::zeros((rows, fid_row.len()));
            for i in 0..end - start {
                for j in 0..k {
                    xc.row_mut(i * k + j).assign(&xs.row(start + i));
                    fc.row_mut(i * k + j).assign(&fid_row);
                }
            }
            // Sample j of point i draws from its own stream (see row_rng).
            let mut rngs: Vec<ChaCha8Rng> = (start..end)
                .flat_map(|i| (0..k).map(move |j| (i, j)))
                .map(|(i, j)| super::row_rng(f.seed ^ 0x5A3F_1E00, x.row(i), j as u64))
                .collect();
            let z = dgmf::sample(
                &f.sde,
                p.sampler,
                p.sample_steps,
                m,
                &mut rngs,
                &mut |z, sigma| {
                    dgmf::score_batch(
                        &f.net,
                        p.precond,
                        &f.fourier,
                        f.grid.model,
                        z,
                        sigma,
                        xc.view(),
                        fc.view(),
                    )
                },
            );
            for i in 0..end - start {
                for j in 0..k {
                    let r = i * k + j;
                    let c: Vec<f64> = z[r * m..(r + 1) * m]
                        .iter()
                        .zip(&f.mean_field)
                        .map(|(v, mu)| v * f.scale + mu)
                        .collect();
                    let y = f.grid.prolong(&c);
                    samples
                        .index_axis_mut(Axis(0), j)
                        .row_mut(start + i)
                        .assign(&Array1::from(y));
                }
            }
        }
        let mean = samples.mean_axis(Axis(0)).expect("K >= 1");
        Ok(Prediction {
            mean,
            var: None,
            samples: Some(samples),
        })
    }

    fn save_state(&self) -> Result<Vec<u8>> {
        crate::state::save(self.name(), &self.fitted)
    }

    fn load_state(&mut self, bytes: &[u8]) -> Result<()> {
        self.fitted = Some(crate::state::load(self.name(), bytes)?);
        Ok(())
    }
}
