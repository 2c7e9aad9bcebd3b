//! Small helpers shared by studies and exporters (a leaf: imports nothing of the crate).

use anyhow::{Context, Result};
use std::path::Path;

/// Mean and (population) standard deviation of the finite values; NaN when there are none
/// (every fit diverged).
pub fn finite_mean_std(v: &[f64]) -> (f64, f64) {
    let v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    let m = v.iter().sum::<f64>() / v.len() as f64;
    let s = (v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / v.len() as f64).sqrt();
    (m, s)
}

/// A searched configuration (`hyperparameters.search.chosen`, or any name -> number map) as
/// `name=value, ...`.
pub fn fmt_config(chosen: &serde_json::Value) -> String {
    chosen
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| format!("{k}={:.3e}", v.as_f64().unwrap_or(f64::NAN)))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_else(|| "-".into())
}

/// Write an output file, naming it in the error.
pub fn write_text(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// Collapse a multi-line message into one line.
pub fn one_line(s: &str) -> String {
    s.split('\n')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}
