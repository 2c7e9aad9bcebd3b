//! Gaussian radial-basis-function surrogates built from function values (`f`), values and
//! gradients (`fg`, Hermite-type), or gradients only (`g`): the three constructions of the
//! gradient-only multi-fidelity paper (Wilke, arXiv 2404.14456).
//!
//! s(w) = b + sum_j a_j exp(-eps |w - c_j|^2) with fixed centres c_j and shape parameter eps.
//! The coefficients solve a linear least-squares problem (there are fewer basis functions
//! than observations; the paper keeps at least six observations per basis function): one
//! row per value, one row per gradient component. With gradients only, the constant b is not
//! identifiable and is left out: a gradient-only surrogate is defined up to a constant, which
//! does not change its minimiser or its curvature. Least squares by SVD (faer), singular values below
//! 1e-12 of the largest dropped (the minimum-norm solution when a tiny eps makes the basis
//! nearly collinear).

use crate::{FusionError, Result};
use nalgebra::{DMatrix, DVector, SymmetricEigen};
use ndarray::{ArrayView1, ArrayView2};
use serde::{Deserialize, Serialize};

/// Which observations a surrogate is built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Construction {
    /// `rbf-f`: function values only.
    #[serde(rename = "f")]
    Values,
    /// `rbf-fg`: values and gradients.
    #[serde(rename = "fg")]
    ValuesAndGradients,
    /// `rbf-g`: gradients only.
    #[serde(rename = "g")]
    Gradients,
}

impl Construction {
    pub const ALL: [Construction; 3] = [
        Construction::Values,
        Construction::ValuesAndGradients,
        Construction::Gradients,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Construction::Values => "rbf-f",
            Construction::ValuesAndGradients => "rbf-fg",
            Construction::Gradients => "rbf-g",
        }
    }
    pub fn uses_values(self) -> bool {
        self != Construction::Gradients
    }
    pub fn uses_gradients(self) -> bool {
        self != Construction::Values
    }
}

#[derive(Debug, Clone)]
pub struct Rbf {
    centres: DMatrix<f64>,
    eps: f64,
    weights: DVector<f64>,
    constant: f64,
}

impl Rbf {
    /// Fit to observations at `points` [n, d]: `values` [n] and/or `gradients` [n, d] (as
    /// the construction needs), with basis functions at `centres` [k, d].
    pub fn fit(
        kind: Construction,
        centres: ArrayView2<f64>,
        eps: f64,
        points: ArrayView2<f64>,
        values: ArrayView1<f64>,
        gradients: ArrayView2<f64>,
    ) -> Result<Self> {
        let bad = |reason: String| FusionError::BadParams {
            model: kind.name().into(),
            reason,
        };
        if !(eps.is_finite() && eps > 0.0) {
            return Err(bad(format!("shape parameter {eps} must be positive")));
        }
        let (n, d) = points.dim();
        let k = centres.nrows();
        if centres.ncols() != d || values.len() != n || gradients.dim() != (n, d) {
            return Err(bad(
                "points, centres, values and gradients disagree in shape".into(),
            ));
        }
        let with_const = kind.uses_values();
        let rows =
            n * (usize::from(kind.uses_values()) + if kind.uses_gradients() { d } else { 0 });
        let cols = k + usize::from(with_const);
        let c = DMatrix::from_fn(k, d, |i, j| centres[[i, j]]);
        let mut a = DMatrix::<f64>::zeros(rows, cols);
        let mut rhs = DVector::<f64>::zeros(rows);
        let mut row = 0;
        for i in 0..n {
            let w: Vec<f64> = (0..d).map(|j| points[[i, j]]).collect();
            if kind.uses_values() {
                for jc in 0..k {
                    a[(row, jc)] = phi(&w, &c, jc, eps);
                }
                a[(row, k)] = 1.0;
                rhs[row] = values[i];
                row += 1;
            }
            if kind.uses_gradients() {
                for comp in 0..d {
                    for jc in 0..k {
                        a[(row, jc)] =
                            -2.0 * eps * (w[comp] - c[(jc, comp)]) * phi(&w, &c, jc, eps);
                    }
                    rhs[row] = gradients[[i, comp]];
                    row += 1;
                }
            }
        }
        // faer's SVD: nalgebra's iterative one did not converge (looped for minutes) on some
        // large-shape-parameter designs whose columns are nearly all zeros.
        let fa = faer::Mat::<f64>::from_fn(rows, cols, |i, j| a[(i, j)]);
        let svd = fa.thin_svd().map_err(|e| {
            bad(format!(
                "least squares failed: the SVD did not converge ({e:?})"
            ))
        })?;
        let (u, s, v) = (svd.U(), svd.S().column_vector(), svd.V());
        let tol = 1e-12 * s.iter().cloned().fold(0.0, f64::max);
        let mut sol = DVector::<f64>::zeros(cols);
        for k in 0..s.nrows() {
            if s[k] <= tol {
                continue;
            }
            let c = (0..rows).map(|i| u[(i, k)] * rhs[i]).sum::<f64>() / s[k];
            for j in 0..cols {
                sol[j] += c * v[(j, k)];
            }
        }
        let weights = sol.rows(0, k).into_owned();
        let constant = if with_const { sol[k] } else { 0.0 };
        Ok(Self {
            centres: c,
            eps,
            weights,
            constant,
        })
    }

    pub fn value(&self, w: &[f64]) -> f64 {
        self.constant
            + (0..self.weights.len())
                .map(|j| self.weights[j] * phi(w, &self.centres, j, self.eps))
                .sum::<f64>()
    }

    pub fn gradient(&self, w: &[f64]) -> Vec<f64> {
        let d = w.len();
        let mut g = vec![0.0; d];
        for j in 0..self.weights.len() {
            let s = self.weights[j] * phi(w, &self.centres, j, self.eps);
            for (a, ga) in g.iter_mut().enumerate() {
                *ga += -2.0 * self.eps * (w[a] - self.centres[(j, a)]) * s;
            }
        }
        g
    }

    /// d^2 s / dw_a dw_b = sum_j a_j phi_j (4 eps^2 r_a r_b - 2 eps delta_ab), r = w - c_j.
    pub fn hessian(&self, w: &[f64]) -> DMatrix<f64> {
        let d = w.len();
        let mut h = DMatrix::<f64>::zeros(d, d);
        let e = self.eps;
        for j in 0..self.weights.len() {
            let s = self.weights[j] * phi(w, &self.centres, j, e);
            let r: Vec<f64> = (0..d).map(|a| w[a] - self.centres[(j, a)]).collect();
            for a in 0..d {
                for b in 0..d {
                    let delta = if a == b { 1.0 } else { 0.0 };
                    h[(a, b)] += s * (4.0 * e * e * r[a] * r[b] - 2.0 * e * delta);
                }
            }
        }
        h
    }

    /// Smallest eigenvalue of the Hessian at w (> 0: locally positive definite).
    pub fn min_curvature(&self, w: &[f64]) -> f64 {
        SymmetricEigen::new(self.hessian(w))
            .eigenvalues
            .iter()
            .cloned()
            .fold(f64::INFINITY, f64::min)
    }
}

fn phi(w: &[f64], c: &DMatrix<f64>, j: usize, eps: f64) -> f64 {
    let r2: f64 = w
        .iter()
        .enumerate()
        .map(|(a, v)| (v - c[(j, a)]).powi(2))
        .sum();
    let e = eps * r2;
    // Below exp(-700) the value is a subnormal or zero: flush it to exactly zero. Subnormals
    // cost ~100x per operation and stall the SVD's iterations for wide-shape-parameter fits.
    if e > 700.0 {
        0.0
    } else {
        (-e).exp()
    }
}
