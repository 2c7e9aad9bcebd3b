//! Tridiagonal solve with partial pivoting (the LAPACK `gtsv` algorithm).
//!
//! The Burgers Newton matrix is tridiagonal but, for small viscosity, not diagonally
//! dominant (convection couples neighbours more strongly than mass + diffusion hold the
//! diagonal), so the pivot-free Thomas algorithm can be unstable. No maintained crate offers
//! a banded pivoted LU; this is the textbook O(n) version.

use crate::SolveError;

/// Workspace-owning solver so Newton iterations allocate nothing.
#[derive(Debug, Clone)]
pub struct Tridiag {
    /// Sub-, main and super-diagonal; `lower[i]` is A[i+1][i], `upper[i]` is A[i][i+1].
    pub lower: Vec<f64>,
    pub diag: Vec<f64>,
    pub upper: Vec<f64>,
    dl: Vec<f64>,
    d: Vec<f64>,
    du: Vec<f64>,
    du2: Vec<f64>,
}

impl Tridiag {
    pub fn new(n: usize) -> Self {
        let m = n.saturating_sub(1);
        Self {
            lower: vec![0.0; m],
            diag: vec![0.0; n],
            upper: vec![0.0; m],
            dl: vec![0.0; m],
            d: vec![0.0; n],
            du: vec![0.0; m],
            du2: vec![0.0; n.saturating_sub(2)],
        }
    }

    /// Solve A x = b in place (b becomes x). A is left untouched.
    pub fn solve(&mut self, b: &mut [f64]) -> Result<(), SolveError> {
        let n = self.diag.len();
        assert_eq!(b.len(), n);
        if n == 0 {
            return Ok(());
        }
        self.dl.copy_from_slice(&self.lower);
        self.d.copy_from_slice(&self.diag);
        self.du.copy_from_slice(&self.upper);
        let (dl, d, du, du2) = (&mut self.dl, &mut self.d, &mut self.du, &mut self.du2);
        for i in 0..n - 1 {
            if d[i].abs() >= dl[i].abs() {
                // No row interchange.
                if d[i] == 0.0 {
                    return Err(SolveError::failed(format!(
                        "singular tridiagonal system at row {i}"
                    )));
                }
                let f = dl[i] / d[i];
                d[i + 1] -= f * du[i];
                b[i + 1] -= f * b[i];
                dl[i] = f;
                if i < n - 2 {
                    du2[i] = 0.0;
                }
            } else {
                // Interchange rows i and i+1.
                let f = d[i] / dl[i];
                d[i] = dl[i];
                dl[i] = f;
                let t = d[i + 1];
                d[i + 1] = du[i] - f * t;
                du[i] = t;
                if i < n - 2 {
                    du2[i] = du[i + 1];
                    du[i + 1] = -f * du2[i];
                }
                b.swap(i, i + 1);
                b[i + 1] -= f * b[i];
            }
        }
        if d[n - 1] == 0.0 {
            return Err(SolveError::failed(format!(
                "singular tridiagonal system at row {}",
                n - 1
            )));
        }
        // Back substitution with the (up to) two super-diagonals of U.
        b[n - 1] /= d[n - 1];
        if n > 1 {
            b[n - 2] = (b[n - 2] - du[n - 2] * b[n - 1]) / d[n - 2];
        }
        for i in (0..n.saturating_sub(2)).rev() {
            b[i] = (b[i] - du[i] * b[i + 1] - du2[i] * b[i + 2]) / d[i];
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;

    #[test]
    fn solves_a_system_that_needs_pivoting() {
        // Zero on the first diagonal entry: Thomas would divide by zero.
        let n = 6;
        let mut t = Tridiag::new(n);
        for i in 0..n {
            t.diag[i] = if i == 0 { 0.0 } else { 0.1 * i as f64 };
        }
        for i in 0..n - 1 {
            t.lower[i] = 1.0 + i as f64;
            t.upper[i] = -2.0 + 0.5 * i as f64;
        }
        let x: Vec<f64> = (0..n).map(|i| (i as f64 * 0.7).sin() + 0.3).collect();
        let mut b = vec![0.0; n];
        for i in 0..n {
            b[i] = t.diag[i] * x[i];
            if i > 0 {
                b[i] += t.lower[i - 1] * x[i - 1];
            }
            if i + 1 < n {
                b[i] += t.upper[i] * x[i + 1];
            }
        }
        t.solve(&mut b).unwrap();
        for i in 0..n {
            assert_relative_eq!(b[i], x[i], epsilon = 1e-12);
        }
    }
}
