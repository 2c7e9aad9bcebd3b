//! The model table: every name `--model` accepts, with its parameter type, builder and static
//! facts (sources it takes, whether it predicts a variance, the phase a search budgets, its
//! default search space). Adding a model = one module under `models/` + one entry in
//! [`MODELS`]. Nothing is built just to ask a question: the facts read the parameters.

use crate::models::dgmf::{Dgmf, DgmfParams};
use crate::models::dmf::{Dmf, DmfParams, Variant};
use crate::models::mf_transfer::{MfTransfer, MfTransferParams};
use crate::models::nar::{Nar, NarParams};
use crate::models::nn_hf::{NnHf, NnHfParams};
use crate::models::{ar::Ar, gar::Gar, gp_hf::GpHf};
use crate::search::Dim;
use crate::{gp::GpParams, FusionError, FusionModel, Result, Sources};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// One row of the model table.
pub struct ModelInfo {
    pub name: &'static str,
    /// One line for `pipeline models`.
    pub summary: &'static str,
    pub sources: Sources,
    /// Whether predictions carry a variance (records then get NLL and coverage).
    pub variance: bool,
    /// Models only fields (1-D or 2-D outputs); refused before any work on scalar outputs.
    pub fields_only: bool,
    /// The hyperparameters with every default filled in, checked (a bad key or value is an
    /// error naming it).
    pub params: fn(&Value) -> Result<Value>,
    /// Epochs (or optimiser iterations) of the phase a hyperparameter search budgets.
    pub tuned_epochs: fn(&Value) -> Result<usize>,
    /// The space searched when a config names none (empty: not tuned by default).
    pub default_space: fn() -> Vec<Dim>,
    pub build: fn(&Value) -> Result<Box<dyn FusionModel>>,
}

/// A hyperparameter table of type `P`: missing keys take defaults, unknown keys are refused.
fn parse<P: DeserializeOwned>(model: &str, v: &Value) -> Result<P> {
    let v = if v.is_null() {
        serde_json::json!({})
    } else {
        v.clone()
    };
    serde_json::from_value(v).map_err(|e| FusionError::BadParams {
        model: model.into(),
        reason: e.to_string(),
    })
}

fn as_json(p: impl serde::Serialize) -> Result<Value> {
    Ok(serde_json::to_value(p).expect("parameter structs serialise"))
}

/// A learning-rate dimension searched log-uniformly.
fn rate(name: &str, lower: f64, upper: f64) -> Dim {
    Dim {
        name: name.into(),
        lower,
        upper,
        log: true,
        integer: false,
        grid: vec![1e-4, 1e-3, 1e-2],
    }
}

/// DMF's HF-phase learning rates r1 (pre-trained weights), r2 (architecture), r3 (new
/// parameters), as the DMF paper tunes them (Sec. 3.4), and the weight decay lambda1 of
/// eq. (5), which the paper names among the settings that "influence the performance
/// significantly". lambda1 moved validation RMSE more than any rate in the ablations of
/// issue 18 (BENCHMARKS.md); searched, it lowered validation RMSE by 30 % on Borehole, 10 %
/// on Currin and 2 % on Burgers.
fn dmf_space(names: &[&str]) -> Vec<Dim> {
    names
        .iter()
        .map(|&n| match n {
            "r3" => rate(n, 1e-4, 3e-2),
            "lambda1" => Dim {
                grid: vec![1e-5, 1e-4, 1e-3],
                ..rate(n, 1e-6, 1e-2)
            },
            _ => rate(n, 1e-5, 1e-2),
        })
        .collect()
}

fn no_space() -> Vec<Dim> {
    Vec::new()
}

/// One entry per DMF variant: they share `DmfParams` and differ in what they take.
macro_rules! dmf {
    ($name:literal, $variant:expr, $summary:literal, $space:expr) => {
        ModelInfo {
            name: $name,
            summary: $summary,
            sources: $variant.sources(),
            variance: false,
            fields_only: false,
            params: |v| {
                let p: DmfParams = parse($name, v)?;
                p.check($name)?;
                as_json(p)
            },
            tuned_epochs: |v| Ok($variant.tuned_epochs(&parse::<DmfParams>($name, v)?)),
            default_space: $space,
            build: |v| Ok(Box::new(Dmf::new($variant, parse($name, v)?)?)),
        }
    };
}

/// One entry per GP model on `GpParams`.
macro_rules! gp {
    ($name:literal, $ty:ident, $sources:expr, $summary:literal) => {
        ModelInfo {
            name: $name,
            summary: $summary,
            sources: $sources,
            variance: true,
            fields_only: false,
            params: |v| {
                let p: GpParams = parse($name, v)?;
                p.check($name)?;
                as_json(p)
            },
            tuned_epochs: |v| Ok(parse::<GpParams>($name, v)?.max_iters),
            default_space: no_space,
            build: |v| Ok(Box::new($ty::new(parse($name, v)?)?)),
        }
    };
}

/// Every model, in report order.
pub static MODELS: &[ModelInfo] = &[
    ModelInfo {
        name: "nn-hf",
        summary: "MLP on the target data only (the single-fidelity baseline)",
        sources: Sources::TargetOnly,
        variance: false,
        fields_only: false,
        params: |v| {
            let p: NnHfParams = parse("nn-hf", v)?;
            p.check()?;
            as_json(p)
        },
        tuned_epochs: |v| Ok(parse::<NnHfParams>("nn-hf", v)?.epochs),
        default_space: no_space,
        build: |v| Ok(Box::new(NnHf::new(parse("nn-hf", v)?)?)),
    },
    ModelInfo {
        name: "mf-transfer",
        summary: "MLP pre-trained on the cheap source, fine-tuned on the target",
        sources: Sources::Two,
        variance: false,
        fields_only: false,
        params: |v| {
            let p: MfTransferParams = parse("mf-transfer", v)?;
            p.check()?;
            as_json(p)
        },
        tuned_epochs: |v| Ok(parse::<MfTransferParams>("mf-transfer", v)?.epochs),
        default_space: no_space,
        build: |v| Ok(Box::new(MfTransfer::new(parse("mf-transfer", v)?)?)),
    },
    dmf!(
        "dmf-trans",
        Variant::Trans,
        "DMF: searched DMF_L + a linear layer, transfer-learned on the target (paper Sec. 3)",
        || dmf_space(&["r1", "r2", "r3", "lambda1"])
    ),
    dmf!(
        "dmf-2",
        Variant::Two,
        "DMF: DMF_L's prediction and x fed into a second searched network",
        || dmf_space(&["r2", "r3", "lambda1"])
    ),
    dmf!(
        "dmf-hf",
        Variant::Hf,
        "DMF's searched network on the target data only",
        no_space
    ),
    dmf!(
        "dmf-copy",
        Variant::Copy,
        "DMF_L copied and fine-tuned on the target",
        no_space
    ),
    gp!(
        "gp-hf",
        GpHf,
        Sources::TargetOnly,
        "GP on the target data only (ARD SE kernel, constant mean, max. likelihood)"
    ),
    gp!(
        "ar",
        Ar,
        Sources::Chain,
        "Kennedy-O'Hagan autoregression over m levels, co-kriging fitted jointly"
    ),
    ModelInfo {
        name: "nar",
        summary: "NARGP (Perdikaris et al.): recursive GPs over [x, f_{t-1}], MC-propagated",
        sources: Sources::Chain,
        variance: true,
        fields_only: false,
        params: |v| {
            let p: NarParams = parse("nar", v)?;
            p.check("nar")?;
            as_json(p)
        },
        tuned_epochs: |v| Ok(parse::<NarParams>("nar", v)?.max_iters),
        default_space: no_space,
        build: |v| Ok(Box::new(Nar::new(parse("nar", v)?)?)),
    },
    gp!(
        "gar",
        Gar,
        Sources::Two,
        "Generalised autoregression: a matrix between the two sources' PCA spaces"
    ),
    ModelInfo {
        name: "dgmf",
        summary: "Diffusion-generative MF: a U-Net score model of all sources' fields, sampled",
        sources: Sources::Any,
        variance: true,
        fields_only: true,
        params: |v| {
            let p: DgmfParams = parse("dgmf", v)?;
            p.check()?;
            as_json(p)
        },
        tuned_epochs: |v| Ok(parse::<DgmfParams>("dgmf", v)?.steps),
        default_space: no_space,
        build: |v| Ok(Box::new(Dgmf::new(parse("dgmf", v)?)?)),
    },
];

/// Every model name, in report order.
pub fn names() -> Vec<&'static str> {
    MODELS.iter().map(|m| m.name).collect()
}

/// The table row of `name`.
pub fn info(name: &str) -> Result<&'static ModelInfo> {
    MODELS
        .iter()
        .find(|m| m.name == name)
        .ok_or_else(|| FusionError::UnknownModel {
            name: name.into(),
            known: names().join(", "),
        })
}

/// Build a model from its name and its hyperparameter table (missing keys take defaults;
/// unknown keys are an error).
pub fn build(name: &str, params: &Value) -> Result<Box<dyn FusionModel>> {
    (info(name)?.build)(params)
}
