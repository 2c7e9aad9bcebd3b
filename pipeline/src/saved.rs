//! Saved models: one directory per fitted model that `train` and `run` keep, read back by
//! `pipeline predict`.
//!
//! ```text
//! models/<model>-nl<N_L>-nh<N_H>-s<seed>/
//!     model.json   what it is: format, model and hyperparameters, seed, the dataset it was
//!                  trained on (problem, inputs with their ranges and units, output grid,
//!                  levels), the sample indices of every training source, its test RMSE
//!     state.cbor   its fitted state (FusionModel::save_state): weights, standardisation,
//!                  PCA, GP factors; exact, so predictions after loading are bit-identical
//! models/index.json  every saved model with its cell and test RMSE
//! models/best        -> the best fit at the largest N_H (lowest test RMSE)
//! ```

use crate::experiment::SavedFit;
use crate::util::write_text;
use anyhow::{bail, Context, Result};
use mfpipe_data::dataset::Dataset;
use mfpipe_data::Axis;
use mfpipe_fusion::{registry, FusionModel};
use ndarray::Array2;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The format tag of `model.json`; loading refuses any other.
pub const FORMAT: &str = "mfpipe-model/1";

/// `model.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Card {
    pub format: String,
    /// The mfpipe that wrote it (version and git revision).
    pub written_by: String,
    /// The model's name in the run (a config may run one registry model under several names).
    pub model: String,
    /// Its registry name.
    pub kind: String,
    /// The hyperparameters it was built with (after any search): with `state.cbor`, all
    /// that is needed to rebuild it.
    pub params: serde_json::Value,
    /// As results.json reports them (with the search's summary, if one chose them).
    pub hyperparameters: serde_json::Value,
    pub seed: u64,
    /// "mean", "mean and variance" or "mean and samples".
    pub predicts: String,
    pub dataset: DatasetCard,
    /// Training sources, cheapest first; the last is the target the model predicts.
    pub training: Vec<SourceCard>,
    pub test: TestCard,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetCard {
    pub problem: String,
    /// The file as given to train or run.
    pub file: String,
    pub created: String,
    pub generator: String,
    pub seed: u64,
    pub design: String,
    /// The inputs in model order, with the range the dataset was drawn from (the range
    /// `predict` accepts without `--extrapolate`).
    pub inputs: Vec<InputCard>,
    pub output: OutputCard,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputCard {
    pub name: String,
    pub unit: String,
    pub lower: f64,
    pub upper: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputCard {
    pub name: String,
    pub unit: String,
    /// The grid the model predicts on (none for a scalar output).
    pub axes: Vec<AxisCard>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AxisCard {
    pub name: String,
    pub unit: String,
    pub values: Vec<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceCard {
    pub level: usize,
    pub name: String,
    /// Sample indices into the level's arrays in the dataset.
    pub indices: Vec<usize>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestCard {
    /// RMSE on the run's held-out test set of the target level (null if not finite).
    pub rmse: Option<f64>,
    pub n: usize,
}

impl Card {
    pub fn target(&self) -> &SourceCard {
        self.training
            .last()
            .expect("a saved model has a target source")
    }
    pub fn axes(&self) -> Vec<Axis> {
        self.dataset
            .output
            .axes
            .iter()
            .map(|a| Axis {
                name: a.name.clone(),
                unit: a.unit.clone(),
                values: a.values.clone(),
            })
            .collect()
    }
    pub fn shape(&self) -> Vec<usize> {
        self.dataset
            .output
            .axes
            .iter()
            .map(|a| a.values.len())
            .collect()
    }
    pub fn input_names(&self) -> Vec<String> {
        self.dataset.inputs.iter().map(|i| i.name.clone()).collect()
    }

    /// Inputs [N, d] outside the dataset's ranges are refused, naming the first such value,
    /// unless `extrapolate`. Returns whether any was outside.
    pub fn check_inputs(&self, x: &Array2<f64>, extrapolate: bool) -> Result<bool> {
        let d = self.dataset.inputs.len();
        if x.ncols() != d {
            bail!(
                "the model takes {d} inputs ({}), got {}",
                self.input_names().join(", "),
                x.ncols()
            );
        }
        let mut outside = false;
        for (r, row) in x.rows().into_iter().enumerate() {
            for (v, i) in row.iter().zip(&self.dataset.inputs) {
                if !v.is_finite() {
                    bail!("row {r}: {} = {v} is not a finite number", i.name);
                }
                if *v < i.lower || *v > i.upper {
                    if !extrapolate {
                        bail!(
                            "row {r}: {} = {v} is outside the range the model was trained on, [{}, {}]{}; pass --extrapolate to predict there anyway",
                            i.name,
                            i.lower,
                            i.upper,
                            unit_suffix(&i.unit)
                        );
                    }
                    outside = true;
                }
            }
        }
        Ok(outside)
    }
}

fn unit_suffix(unit: &str) -> String {
    if unit.is_empty() || unit == "1" {
        String::new()
    } else {
        format!(" {unit}")
    }
}

/// The directory name of a saved fit.
pub fn dir_name(s: &SavedFit) -> String {
    let safe: String = s
        .label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{safe}-nl{}-nh{}-s{}", s.n_lf, s.n_hf, s.seed)
}

fn card(s: &SavedFit, ds: &Dataset, file: &Path) -> Card {
    let m = &ds.meta;
    let training = s
        .levels
        .iter()
        .zip(&s.indices)
        .map(|(&level, idx)| {
            let name = ds.level(level).map(|l| l.name.clone()).unwrap_or_default();
            SourceCard {
                level,
                name,
                indices: idx.clone(),
            }
        })
        .collect();
    Card {
        format: FORMAT.into(),
        written_by: format!(
            "mfpipe {} ({})",
            env!("CARGO_PKG_VERSION"),
            env!("MFPIPE_GIT_REV")
        ),
        model: s.label.clone(),
        kind: s.kind.clone(),
        params: s.params.clone(),
        hyperparameters: s.hyperparameters.clone(),
        seed: s.seed,
        predicts: s.predicts.into(),
        dataset: DatasetCard {
            problem: m.problem.clone(),
            file: file.display().to_string(),
            created: m.created.clone(),
            generator: m.generator.clone(),
            seed: m.seed,
            design: m.design.clone(),
            inputs: (0..m.input_names.len())
                .map(|k| InputCard {
                    name: m.input_names[k].clone(),
                    unit: m.input_units.get(k).cloned().unwrap_or_default(),
                    lower: m.input_lower[k],
                    upper: m.input_upper[k],
                })
                .collect(),
            output: OutputCard {
                name: m.output_name.clone(),
                unit: m.output_unit.clone(),
                axes: m
                    .axes
                    .iter()
                    .map(|a| AxisCard {
                        name: a.name.clone(),
                        unit: a.unit.clone(),
                        values: a.values.clone(),
                    })
                    .collect(),
            },
        },
        training,
        test: TestCard {
            rmse: s.rmse.is_finite().then_some(s.rmse),
            n: s.n_test,
        },
    }
}

/// Write every saved fit under `dir` (replacing what a previous run left there), with
/// `index.json` and the `best` link. Built in a temporary directory renamed into place, so an
/// interrupted write leaves the previous models, not half of the new ones.
pub fn write_all(dir: &Path, saved: &[SavedFit], ds: &Dataset, file: &Path) -> Result<()> {
    if saved.is_empty() {
        return Ok(());
    }
    let tmp = dir.with_extension("tmp");
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)
            .with_context(|| format!("cannot remove {}", tmp.display()))?;
    }
    std::fs::create_dir_all(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let mut index = Vec::new();
    for s in saved {
        let name = dir_name(s);
        let d = tmp.join(&name);
        std::fs::create_dir(&d).with_context(|| format!("cannot create {}", d.display()))?;
        let c = card(s, ds, file);
        write_text(&d.join("model.json"), &serde_json::to_string_pretty(&c)?)?;
        std::fs::write(d.join("state.cbor"), &s.state)
            .with_context(|| format!("cannot write {}", d.join("state.cbor").display()))?;
        index.push(serde_json::json!({
            "dir": name, "model": s.label, "kind": s.kind, "n_lf": s.n_lf, "n_hf": s.n_hf,
            "seed": s.seed, "rmse": c.test.rmse,
        }));
    }
    // The best fit at the largest N_H (any N_L): what a user most likely wants to query.
    let n_hf = saved.iter().map(|s| s.n_hf).max().unwrap_or(0);
    let best = saved
        .iter()
        .filter(|s| s.n_hf == n_hf && s.rmse.is_finite())
        .min_by(|a, b| a.rmse.total_cmp(&b.rmse));
    if let Some(b) = best {
        #[cfg(unix)]
        std::os::unix::fs::symlink(dir_name(b), tmp.join("best"))
            .with_context(|| format!("cannot link {}", tmp.join("best").display()))?;
    }
    write_text(
        &tmp.join("index.json"),
        &serde_json::to_string_pretty(&serde_json::json!({
            "format": FORMAT,
            "best": best.map(dir_name),
            "models": index,
        }))?,
    )?;
    if dir.exists() {
        std::fs::remove_dir_all(dir)
            .with_context(|| format!("cannot replace {}", dir.display()))?;
    }
    std::fs::rename(&tmp, dir).with_context(|| format!("cannot move models into {}", dir.display()))
}

/// A saved model, loaded.
pub struct Loaded {
    pub card: Card,
    pub model: Box<dyn FusionModel>,
    pub dir: PathBuf,
}

/// Load the saved model in `path` (its directory or its model.json).
pub fn load(path: &Path) -> Result<Loaded> {
    let dir = if path.file_name().is_some_and(|n| n == "model.json") {
        path.parent().unwrap_or(Path::new(".")).to_path_buf()
    } else {
        path.to_path_buf()
    };
    let card_path = dir.join("model.json");
    if !dir.exists() {
        bail!("{}: no such saved model", path.display());
    }
    if !card_path.is_file() {
        bail!(
            "{} is not a saved model (no model.json in it); `train` and `run` save models under <out>/models/",
            dir.display()
        );
    }
    let text = std::fs::read_to_string(&card_path)
        .with_context(|| format!("cannot read {}", card_path.display()))?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not valid JSON", card_path.display()))?;
    match v.get("format").and_then(|f| f.as_str()) {
        Some(FORMAT) => {}
        Some(other) => bail!(
            "{} is a saved model of format {other:?}; this mfpipe reads {FORMAT:?}",
            card_path.display()
        ),
        None => bail!(
            "{} has no \"format\": not an mfpipe model",
            card_path.display()
        ),
    }
    let card: Card =
        serde_json::from_value(v).with_context(|| format!("{} is damaged", card_path.display()))?;
    let mut model = registry::build(&card.kind, &card.params)
        .with_context(|| format!("{}: cannot rebuild the model", card_path.display()))?;
    let state_path = dir.join("state.cbor");
    let bytes = std::fs::read(&state_path)
        .with_context(|| format!("cannot read {}", state_path.display()))?;
    model
        .load_state(&bytes)
        .with_context(|| format!("{}", state_path.display()))?;
    Ok(Loaded { card, model, dir })
}
