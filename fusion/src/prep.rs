//! Input/output maps shared by the neural models: standardised inputs, and outputs reduced
//! by PCA (fitted on training data only) and scaled by one common factor.
//!
//! One common factor rather than per-component standardisation keeps the loss in coefficient
//! space proportional to the field MSE (the PCA basis is orthonormal), so training does not
//! spend its effort on components that carry a negligible share of the variance.

use crate::Result;
use mfpipe_data::transform::{Pca, Standardizer};
use ndarray::{Array2, ArrayView2};

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct OutputMap {
    pca: Option<Pca>,
    mean: ndarray::Array1<f64>,
    scale: f64,
}

impl OutputMap {
    /// Fit on training outputs [N, D]. With `pca`, keep components explaining `1 - tol` of
    /// the variance (at most `max_components`); otherwise work on the full field.
    pub fn fit(y: ArrayView2<f64>, pca: bool, tol: f64, max_components: usize) -> Result<Self> {
        if pca && y.ncols() > 1 {
            let p = Pca::fit(y, tol, max_components)?;
            // Identical training fields have no principal directions: model the mean only.
            if p.n_components() == 0 {
                return Ok(Self {
                    pca: Some(p),
                    mean: ndarray::Array1::zeros(0),
                    scale: 1.0,
                });
            }
            let scale = p
                .variances
                .first()
                .map(|v| v.sqrt())
                .filter(|s| *s > 0.0)
                .unwrap_or(1.0);
            let k = p.n_components();
            Ok(Self {
                pca: Some(p),
                mean: ndarray::Array1::zeros(k),
                scale,
            })
        } else {
            let st = Standardizer::fit(y)?;
            let scale = st.scale.iter().cloned().fold(0.0, f64::max).max(1e-300);
            Ok(Self {
                pca: None,
                mean: st.mean,
                scale,
            })
        }
    }
    pub fn width(&self) -> usize {
        self.pca
            .as_ref()
            .map(|p| p.n_components())
            .unwrap_or(self.mean.len())
    }
    pub fn encode(&self, y: ArrayView2<f64>) -> Array2<f64> {
        match &self.pca {
            Some(p) => p.transform(y) / self.scale,
            None => (&y - &self.mean) / self.scale,
        }
    }
    pub fn decode(&self, z: ArrayView2<f64>) -> Array2<f64> {
        match &self.pca {
            Some(p) => p.inverse((&z * self.scale).view()),
            None => &z * self.scale + &self.mean,
        }
    }
    /// Variances of the decoded outputs [N, D] from independent coefficient variances [N, k].
    pub fn decode_var(&self, v: ArrayView2<f64>) -> Array2<f64> {
        let s2 = self.scale * self.scale;
        match &self.pca {
            Some(p) => v.dot(&p.components.t().mapv(|c| c * c)) * s2,
            None => &v * s2,
        }
    }
}

/// Inputs are standardised column-wise.
pub type InputMap = Standardizer;
