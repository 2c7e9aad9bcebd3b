//! Model names used by `--model`. Adding a model = one module + one arm here.

use crate::models::dmf::{Dmf, Variant};
use crate::models::{ar::Ar, gar::Gar, gp_hf::GpHf, nar::Nar};
use crate::models::{mf_transfer::MfTransfer, nn_hf::NnHf};
use crate::{FusionError, FusionModel, Result};

/// Every model name, in report order.
pub const NAMES: &[&str] = &[
    "nn-hf",
    "mf-transfer",
    "dmf-trans",
    "dmf-2",
    "dmf-hf",
    "dmf-copy",
    "gp-hf",
    "ar",
    "nar",
    "gar",
];

/// Build a model from its name and its hyperparameter table (missing keys take defaults;
/// unknown keys are an error).
pub fn build(name: &str, params: &serde_json::Value) -> Result<Box<dyn FusionModel>> {
    let bad = |e: serde_json::Error| FusionError::BadParams {
        model: name.into(),
        reason: e.to_string(),
    };
    let params = if params.is_null() {
        serde_json::json!({})
    } else {
        params.clone()
    };
    Ok(match name {
        "nn-hf" => Box::new(NnHf::new(serde_json::from_value(params).map_err(bad)?)?),
        "mf-transfer" => Box::new(MfTransfer::new(
            serde_json::from_value(params).map_err(bad)?,
        )?),
        "dmf-trans" => Box::new(Dmf::new(
            Variant::Trans,
            serde_json::from_value(params).map_err(bad)?,
        )?),
        "dmf-2" => Box::new(Dmf::new(
            Variant::Two,
            serde_json::from_value(params).map_err(bad)?,
        )?),
        "dmf-hf" => Box::new(Dmf::new(
            Variant::Hf,
            serde_json::from_value(params).map_err(bad)?,
        )?),
        "dmf-copy" => Box::new(Dmf::new(
            Variant::Copy,
            serde_json::from_value(params).map_err(bad)?,
        )?),
        "gp-hf" => Box::new(GpHf::new(serde_json::from_value(params).map_err(bad)?)?),
        "ar" => Box::new(Ar::new(serde_json::from_value(params).map_err(bad)?)?),
        "nar" => Box::new(Nar::new(serde_json::from_value(params).map_err(bad)?)?),
        "gar" => Box::new(Gar::new(serde_json::from_value(params).map_err(bad)?)?),
        other => {
            return Err(FusionError::UnknownModel {
                name: other.into(),
                known: NAMES.join(", "),
            })
        }
    })
}
