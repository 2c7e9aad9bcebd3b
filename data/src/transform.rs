//! Column standardisation and PCA of field outputs, always fitted on training data only.

use crate::DataError;
use ndarray::{Array1, Array2, ArrayView2, Axis};

/// Per-column affine map to zero mean and unit variance. Columns with (near) zero spread keep
/// scale 1 so that constant outputs do not blow up.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Standardizer {
    pub mean: Array1<f64>,
    pub scale: Array1<f64>,
}

impl Standardizer {
    pub fn fit(x: ArrayView2<f64>) -> Result<Self, DataError> {
        if x.nrows() == 0 {
            return Err(DataError::Numeric(
                "cannot standardise an empty training set".into(),
            ));
        }
        let mean = x.mean_axis(Axis(0)).expect("non-empty");
        let var = x.var_axis(Axis(0), 0.0);
        let scale = var.mapv(|v| if v.sqrt() > 1e-12 { v.sqrt() } else { 1.0 });
        Ok(Self { mean, scale })
    }
    pub fn transform(&self, x: ArrayView2<f64>) -> Array2<f64> {
        (&x - &self.mean) / &self.scale
    }
    pub fn inverse(&self, z: ArrayView2<f64>) -> Array2<f64> {
        &z * &self.scale + &self.mean
    }
}

/// Principal components of flattened fields, computed from the N x N Gram matrix of the
/// centred training data (N samples << D grid points, so this is the cheap route to the
/// thin SVD).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Pca {
    pub mean: Array1<f64>,
    /// [D, k], orthonormal columns.
    pub components: Array2<f64>,
    /// Variance captured by each component (descending).
    pub variances: Vec<f64>,
}

impl Pca {
    /// Keep the fewest components that explain `1 - tol` of the training variance, at most
    /// `max_components`, and none whose variance is at round-off level.
    pub fn fit(x: ArrayView2<f64>, tol: f64, max_components: usize) -> Result<Self, DataError> {
        let (n, d) = x.dim();
        if n == 0 || d == 0 {
            return Err(DataError::Numeric(
                "cannot fit PCA to an empty training set".into(),
            ));
        }
        let mean = x.mean_axis(Axis(0)).expect("non-empty");
        let xc = &x - &mean;
        let gram = xc.dot(&xc.t());
        let g = nalgebra::DMatrix::from_fn(n, n, |i, j| gram[[i, j]]);
        let eig = nalgebra::SymmetricEigen::new(g);
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| eig.eigenvalues[b].total_cmp(&eig.eigenvalues[a]));
        let total: f64 = eig.eigenvalues.iter().map(|l| l.max(0.0)).sum();
        let lmax = eig.eigenvalues[order[0]].max(0.0);
        let mut keep = Vec::new();
        let mut captured = 0.0;
        for &k in &order {
            let l = eig.eigenvalues[k];
            if keep.len() >= max_components || l <= 1e-12 * lmax.max(f64::MIN_POSITIVE) {
                break;
            }
            if total > 0.0 && captured >= (1.0 - tol) * total {
                break;
            }
            keep.push(k);
            captured += l;
        }
        let mut components = Array2::<f64>::zeros((d, keep.len()));
        let mut variances = Vec::with_capacity(keep.len());
        for (c, &k) in keep.iter().enumerate() {
            let l = eig.eigenvalues[k];
            let v = Array1::from_iter((0..n).map(|i| eig.eigenvectors[(i, k)]));
            let mut u = xc.t().dot(&v) / l.sqrt();
            // Fix the sign (largest-magnitude entry positive) so the basis is reproducible.
            let imax = u
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
                .map(|(i, _)| i)
                .unwrap_or(0);
            if u[imax] < 0.0 {
                u.mapv_inplace(|x| -x);
            }
            components.column_mut(c).assign(&u);
            variances.push(l / n as f64);
        }
        Ok(Self {
            mean,
            components,
            variances,
        })
    }

    pub fn n_components(&self) -> usize {
        self.components.ncols()
    }
    /// Coefficients [N, k].
    pub fn transform(&self, x: ArrayView2<f64>) -> Array2<f64> {
        (&x - &self.mean).dot(&self.components)
    }
    /// Fields [N, D] from coefficients.
    pub fn inverse(&self, z: ArrayView2<f64>) -> Array2<f64> {
        z.dot(&self.components.t()) + &self.mean
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;
    use ndarray::Array2;

    #[test]
    fn pca_reconstructs_rank_two_data_exactly() {
        // x_i = a_i * f + b_i * g + c with orthogonal-ish patterns: rank 2 after centring.
        let d = 50;
        let f = Array1::from_iter((0..d).map(|j| (j as f64 * 0.3).sin()));
        let g = Array1::from_iter((0..d).map(|j| (j as f64 * 0.1).cos()));
        let mut x = Array2::<f64>::zeros((7, d));
        for i in 0..7 {
            let (a, b) = (i as f64 - 3.0, (i * i) as f64 * 0.2);
            x.row_mut(i).assign(&(&f * a + &g * b + 1.5));
        }
        let pca = Pca::fit(x.view(), 1e-12, 10).unwrap();
        assert_eq!(pca.n_components(), 2);
        let back = pca.inverse(pca.transform(x.view()).view());
        for (u, v) in back.iter().zip(x.iter()) {
            assert_relative_eq!(u, v, epsilon = 1e-10);
        }
        let gram = pca.components.t().dot(&pca.components);
        assert_relative_eq!(gram[[0, 0]], 1.0, epsilon = 1e-12);
        assert_relative_eq!(gram[[0, 1]], 0.0, epsilon = 1e-12);
    }

    #[test]
    fn standardizer_round_trips_and_survives_constant_columns() {
        let x = ndarray::array![[1.0, 5.0], [3.0, 5.0]];
        let s = Standardizer::fit(x.view()).unwrap();
        let z = s.transform(x.view());
        assert_eq!(z, ndarray::array![[-1.0, 0.0], [1.0, 0.0]]);
        assert_eq!(s.inverse(z.view()), x);
    }
}
