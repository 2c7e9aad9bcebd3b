//! The CEM-GMsFEM multiscale space (Chung, Efendiev, Leung 2018) on the fine Q1 grid.
//!
//! 1. Auxiliary space: on every coarse cell K_i the Neumann spectral problem
//!    a_i(phi, v) = lambda s_i(phi, v), s_i(u, v) = int_{K_i} kappa~ u v with
//!    kappa~ = kappa sum_j |grad chi_j|^2 (chi_j the bilinear coarse hats), solved densely:
//!    Cholesky S = L L^T, `self_adjoint_eigen` of L^-1 A L^-T, phi = L^-T v. The L_i
//!    eigenfunctions of the smallest eigenvalues, s-orthonormal, span the cell's auxiliary
//!    space; each is a function on K_i alone (discontinuous across cells).
//! 2. Basis: psi_j^(i) minimises the energy on the oversampled region K_i^+ (m coarse layers
//!    around K_i, clipped to the domain, zero on its border) subject to s(psi, p_k) = delta_jk
//!    for every auxiliary function p_k of the region. With B the matrix whose columns are the
//!    functionals u -> s(u, p_k) on the region's unknowns and A its stiffness matrix:
//!    relaxed form (A + B B^T) psi = B e_j; constrained form [A B; B^T 0] [psi; mu] = [0; e_j].
//!    Both go through W = A^-1 B and G = B^T W (k x k, k = L times the region's cells): by
//!    Woodbury the relaxed solution is psi = W (I + G)^-1 e_j, the constrained one
//!    psi = W G^-1 e_j. One sparse Cholesky of A per region, k solves, one small dense solve.
//!    Regions are independent: built in parallel (rayon), in a fixed order of results.
//! 3. Galerkin: coarse matrices R^T A(coef) R are summed cell by cell from the cell's block of
//!    R (the basis functions whose region holds the cell), so a new coefficient (a Picard
//!    iterate of the nonlinear problem) costs one pass over the fine elements and small GEMMs,
//!    never a fine-grid solve.

use super::fem::{element_matrix, Rect, CORNERS, MASS, STIFFNESS};
use crate::SolveError;
use faer::linalg::matmul::matmul;
use faer::linalg::solvers::Solve;
use faer::linalg::triangular_solve::{
    solve_lower_triangular_in_place, solve_upper_triangular_in_place,
};
use faer::{Accum, Mat, MatRef, Par, Side};
use rayon::prelude::*;

/// How each basis function is computed on its oversampled region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Form {
    /// (A + B B^T) psi = B e_j (the form the error analysis of the relaxed CEM method uses).
    #[default]
    Relaxed,
    /// The saddle-point form with the constraints s(psi, p_k) = delta_jk imposed exactly.
    Constrained,
}

/// The coarse grid and basis parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Options {
    /// Coarse cells per side (must divide the fine elements per side).
    pub coarse: usize,
    /// L_i: auxiliary (and basis) functions per coarse cell.
    pub per_cell: usize,
    /// m: oversampling layers of coarse cells around each cell.
    pub layers: usize,
    pub form: Form,
}

/// The local spectral problem of one coarse cell, on its (r + 1)^2 nodes (x fastest).
#[derive(Debug, Clone)]
pub struct Spectral {
    /// Neumann stiffness a_i and the weighted mass s_i, dense.
    pub a: Mat<f64>,
    pub s: Mat<f64>,
    /// The `count` eigenvectors of the smallest eigenvalues (columns), s-orthonormal.
    pub phi: Mat<f64>,
    /// The `count + 1` smallest eigenvalues: the last one, lambda_{L_i + 1}, is the first
    /// left out (the CEM error bound scales like 1 / sqrt of its minimum over the cells).
    pub lambda: Vec<f64>,
}

/// sum_j |grad chi_j|^2 at (X, Y) in a coarse cell of size H, local coordinates in [0, 1]:
/// the four bilinear hats of the cell give (2 / H^2) ((1 - X)^2 + X^2 + (1 - Y)^2 + Y^2).
pub fn hat_gradient_sum(h_coarse: f64, x: f64, y: f64) -> f64 {
    2.0 / (h_coarse * h_coarse) * ((1.0 - x).powi(2) + x * x + (1.0 - y).powi(2) + y * y)
}

/// Solve the spectral problem of coarse cell (cx, cy); kappa is per fine element of the n x n
/// grid and kappa~ is evaluated at each fine element's centre.
pub fn spectral(
    n: usize,
    coarse: usize,
    kappa: &[f64],
    (cx, cy): (usize, usize),
    count: usize,
) -> Result<Spectral, SolveError> {
    let r = n / coarse;
    let nl = (r + 1) * (r + 1);
    let h2 = (1.0 / n as f64).powi(2);
    let mut a = Mat::<f64>::zeros(nl, nl);
    let mut s = Mat::<f64>::zeros(nl, nl);
    for ey in 0..r {
        for ex in 0..r {
            let k = kappa[(cy * r + ey) * n + cx * r + ex];
            let kt = k * hat_gradient_sum(
                1.0 / coarse as f64,
                (ex as f64 + 0.5) / r as f64,
                (ey as f64 + 0.5) / r as f64,
            );
            let l = CORNERS.map(|(dx, dy)| (ey + dy) * (r + 1) + ex + dx);
            for p in 0..4 {
                for q in 0..4 {
                    a[(l[p], l[q])] += k * STIFFNESS[p][q];
                    s[(l[p], l[q])] += kt * h2 * MASS[p][q];
                }
            }
        }
    }
    let llt = s.llt(Side::Lower).map_err(|e| {
        SolveError::failed(format!(
            "cell ({cx}, {cy}): s_i is not positive definite: {e:?}"
        ))
    })?;
    let l = llt.L();
    // C = L^-1 A L^-T, symmetric: two triangular solves.
    let mut c = a.clone();
    solve_lower_triangular_in_place(l, c.as_mut(), Par::Seq);
    let mut c = c.transpose().to_owned();
    solve_lower_triangular_in_place(l, c.as_mut(), Par::Seq);
    let eig = c
        .self_adjoint_eigen(Side::Lower)
        .map_err(|e| SolveError::failed(format!("cell ({cx}, {cy}): eigensolver failed: {e:?}")))?;
    let all: Vec<f64> = (0..nl).map(|j| eig.S()[j]).collect();
    let mut v = eig.U().subcols(0, count).to_owned();
    // A cluster of equal eigenvalues cut by the L_i-th (a symmetric cell: a centred inclusion,
    // a constant kappa) leaves the kept functions any rotation inside the cluster, which the
    // eigensolver picks by rounding. Pick them by a fixed rule instead: the cluster's
    // components of fixed probe functions, in order, orthonormalised.
    let last = all[count - 1];
    let members: Vec<usize> = (0..nl)
        .filter(|&j| (all[j] - last).abs() <= 1e-8 * last.abs().max(1.0))
        .collect();
    if members.iter().any(|&j| j >= count) {
        let first = members[0];
        let u = eig.U();
        let vc = Mat::<f64>::from_fn(nl, members.len(), |row, c| u[(row, members[c])]);
        // s(phi_c, g) = v_c^T L^T g for phi_c = L^-T v_c.
        let probe = |k: usize, ln: usize| {
            let (x, y) = (
                (ln % (r + 1)) as f64 / r as f64 - 0.5,
                (ln / (r + 1)) as f64 / r as f64 - 0.5,
            );
            [x, y, x * y, x * x, y * y, 1.0][k]
        };
        let mut frame: Vec<Vec<f64>> = Vec::new();
        for k in 0..6 {
            if frame.len() == count - first {
                break;
            }
            let g = Mat::<f64>::from_fn(nl, 1, |ln, _| probe(k, ln));
            let lg = l.transpose() * &g;
            let mut c: Vec<f64> = (0..members.len())
                .map(|m| (0..nl).map(|row| vc[(row, m)] * lg[(row, 0)]).sum())
                .collect();
            let before = c.iter().map(|x| x * x).sum::<f64>().sqrt();
            for q in &frame {
                let d: f64 = c.iter().zip(q).map(|(a, b)| a * b).sum();
                c.iter_mut().zip(q).for_each(|(a, b)| *a -= d * b);
            }
            let after = c.iter().map(|x| x * x).sum::<f64>().sqrt();
            if after > 1e-6 * before.max(1e-300) && after > 0.0 {
                frame.push(c.into_iter().map(|x| x / after).collect());
            }
        }
        if frame.len() == count - first {
            for (k, q) in frame.iter().enumerate() {
                for row in 0..nl {
                    v[(row, first + k)] = (0..members.len()).map(|m| vc[(row, m)] * q[m]).sum();
                }
            }
        }
    }
    let lambda: Vec<f64> = all[..(count + 1).min(nl)].to_vec();
    let mut phi = v;
    solve_upper_triangular_in_place(l.transpose(), phi.as_mut(), Par::Seq);
    Ok(Spectral { a, s, phi, lambda })
}

/// A multiscale space: the basis functions as global nodal vectors and, per coarse cell, the
/// block of R that the Galerkin sums need.
#[derive(Debug, Clone)]
pub struct CemSpace {
    pub n: usize,
    pub opts: Options,
    /// The L_i + 1 smallest eigenvalues per cell (row-major in (cy, cx)); see [`Spectral`].
    pub lambda: Vec<Vec<f64>>,
    /// R, column-major: column `cell * L + j` is psi_j of that cell on the (n + 1)^2 nodes.
    basis: Vec<f64>,
    /// Per cell: the basis columns nonzero on it, and their values on the cell's nodes,
    /// node-major (`values[node * cols.len() + a]`).
    blocks: Vec<(Vec<usize>, Vec<f64>)>,
}

impl CemSpace {
    /// Build the space for conductivity `kappa` (per fine element of the n x n grid), the
    /// cells and regions in parallel.
    pub fn build(n: usize, kappa: &[f64], opts: Options) -> Result<Self, SolveError> {
        Self::build_on(n, kappa, opts, true)
    }

    /// Build the space on the calling thread alone (a sample's own basis, inside a parallel
    /// batch: its CPU time is then the thread's).
    pub fn build_serial(n: usize, kappa: &[f64], opts: Options) -> Result<Self, SolveError> {
        Self::build_on(n, kappa, opts, false)
    }

    fn build_on(
        n: usize,
        kappa: &[f64],
        opts: Options,
        parallel: bool,
    ) -> Result<Self, SolveError> {
        let nc = opts.coarse;
        let l = opts.per_cell;
        if nc == 0 || !n.is_multiple_of(nc) || n / nc < 2 || l == 0 || l > (n / nc + 1).pow(2) {
            return Err(SolveError::failed(format!(
                "CEM needs a coarse grid that divides the fine one into cells of >= 2 elements and 1 <= L_i <= nodes per cell (fine {n}, coarse {nc}, L_i {l})"
            )));
        }
        if kappa.len() != n * n || kappa.iter().any(|k| !(k.is_finite() && *k > 0.0)) {
            return Err(SolveError::failed(
                "CEM needs a positive, finite conductivity on every fine element",
            ));
        }
        let r = n / nc;
        let cells: Vec<(usize, usize)> = (0..nc * nc).map(|c| (c % nc, c / nc)).collect();
        let each = |&c: &(usize, usize)| spectral(n, nc, kappa, c, l);
        let aux: Vec<Spectral> = if parallel {
            cells.par_iter().map(each).collect::<Result<_, _>>()?
        } else {
            cells.iter().map(each).collect::<Result<_, _>>()?
        };
        // The functionals b = S phi on each cell's nodes: s(u, phi) = u_cell^T b.
        let functionals: Vec<Mat<f64>> = aux.iter().map(|sp| &sp.s * &sp.phi).collect();
        let cell_node = |(cx, cy): (usize, usize), ln: usize| {
            (cy * r + ln / (r + 1)) * (n + 1) + cx * r + ln % (r + 1)
        };
        let m = opts.layers;
        let region = |&(cx, cy): &(usize, usize)| {
            let (x0, x1) = (cx.saturating_sub(m), (cx + m).min(nc - 1));
            let (y0, y1) = (cy.saturating_sub(m), (cy + m).min(nc - 1));
            let rect = Rect::new(n, x0 * r, y0 * r, (x1 - x0 + 1) * r, (y1 - y0 + 1) * r)?;
            let nu = rect.unknowns();
            let k = (x1 - x0 + 1) * (y1 - y0 + 1) * l;
            let mut b = Mat::<f64>::zeros(nu, k);
            let mut own = 0;
            let mut col = 0;
            for qy in y0..=y1 {
                for qx in x0..=x1 {
                    if (qx, qy) == (cx, cy) {
                        own = col;
                    }
                    let f = &functionals[qy * nc + qx];
                    for j in 0..l {
                        for ln in 0..(r + 1) * (r + 1) {
                            if let Some(u) = rect.unknown(cell_node((qx, qy), ln)) {
                                b[(u, col + j)] = f[(ln, j)];
                            }
                        }
                    }
                    col += l;
                }
            }
            let factor = rect.factor(&rect.matrix(kappa, 0.0))?;
            let mut w = b.clone();
            factor.solve_mat(&mut w);
            let mut g = b.transpose() * &w;
            if opts.form == Form::Relaxed {
                for d in 0..k {
                    g[(d, d)] += 1.0;
                }
            }
            let rhs = Mat::<f64>::from_fn(k, l, |row, j| f64::from(row == own + j));
            let y = g
                .llt(Side::Lower)
                .map_err(|e| {
                    SolveError::failed(format!(
                        "cell ({cx}, {cy}): the constraint system is singular: {e:?}"
                    ))
                })?
                .solve(&rhs);
            Ok((rect, &w * &y))
        };
        let psis: Vec<(Rect, Mat<f64>)> = if parallel {
            cells
                .par_iter()
                .map(region)
                .collect::<Result<_, SolveError>>()?
        } else {
            cells
                .iter()
                .map(region)
                .collect::<Result<_, SolveError>>()?
        };
        let nn = (n + 1) * (n + 1);
        let dim = nc * nc * l;
        let mut basis = vec![0.0; nn * dim];
        for (c, (rect, psi)) in psis.iter().enumerate() {
            for j in 0..l {
                let column = &mut basis[(c * l + j) * nn..(c * l + j + 1) * nn];
                for u in 0..rect.unknowns() {
                    column[rect.node(u)] = psi[(u, j)];
                }
            }
        }
        let blocks = cells
            .iter()
            .map(|&(cx, cy)| {
                let mut cols = Vec::new();
                for qy in cy.saturating_sub(m)..=(cy + m).min(nc - 1) {
                    for qx in cx.saturating_sub(m)..=(cx + m).min(nc - 1) {
                        cols.extend((0..l).map(|j| (qy * nc + qx) * l + j));
                    }
                }
                let nl = (r + 1) * (r + 1);
                let mut values = vec![0.0; nl * cols.len()];
                for ln in 0..nl {
                    let g = cell_node((cx, cy), ln);
                    for (a, &col) in cols.iter().enumerate() {
                        values[ln * cols.len() + a] = basis[col * nn + g];
                    }
                }
                (cols, values)
            })
            .collect();
        Ok(Self {
            n,
            opts,
            lambda: aux.into_iter().map(|a| a.lambda).collect(),
            basis,
            blocks,
        })
    }

    /// Number of basis functions (coarse cells x L_i).
    pub fn dim(&self) -> usize {
        self.opts.coarse * self.opts.coarse * self.opts.per_cell
    }

    fn nodes(&self) -> usize {
        (self.n + 1) * (self.n + 1)
    }

    /// Basis function `k` as a global nodal vector.
    pub fn function(&self, k: usize) -> &[f64] {
        &self.basis[k * self.nodes()..(k + 1) * self.nodes()]
    }

    /// R^T v for a global nodal vector v (e.g. a load vector: the coarse right-hand side).
    pub fn project(&self, v: &[f64]) -> Vec<f64> {
        (0..self.dim())
            .map(|k| self.function(k).iter().zip(v).map(|(a, b)| a * b).sum())
            .collect()
    }

    /// R c: the fine nodal function with coarse coefficients c.
    pub fn expand(&self, c: &[f64]) -> Vec<f64> {
        let mut u = vec![0.0; self.nodes()];
        for (k, &ck) in c.iter().enumerate() {
            if ck != 0.0 {
                for (ui, bi) in u.iter_mut().zip(self.function(k)) {
                    *ui += ck * bi;
                }
            }
        }
        u
    }

    /// R^T R (the Gram matrix of the nodal vectors), for the least-squares coefficients
    /// u_H = (R^T R)^-1 R^T u_h.
    pub fn gram(&self) -> Mat<f64> {
        let r = MatRef::from_column_major_slice(&self.basis, self.nodes(), self.dim());
        let mut g = Mat::<f64>::zeros(self.dim(), self.dim());
        matmul(g.as_mut(), Accum::Replace, r.transpose(), r, 1.0, Par::Seq);
        g
    }

    /// The coarse matrix R^T (sum_e stiff_e K_e + mass h^2 M_e) R, summed cell by cell.
    pub fn coarse_matrix(&self, stiff: &[f64], mass: f64) -> Mat<f64> {
        let (n, nc) = (self.n, self.opts.coarse);
        let r = n / nc;
        let nl = (r + 1) * (r + 1);
        let mut out = Mat::<f64>::zeros(self.dim(), self.dim());
        for (c, (cols, rt)) in self.blocks.iter().enumerate() {
            let (cx, cy) = (c % nc, c / nc);
            let kc = cols.len();
            // T^T = R_c^T A_c (node-major like R_c): each element adds its 4 x 4 block.
            let mut tt = vec![0.0; nl * kc];
            for ey in 0..r {
                for ex in 0..r {
                    let e = element_matrix(n, stiff[(cy * r + ey) * n + cx * r + ex], mass);
                    let l = CORNERS.map(|(dx, dy)| (ey + dy) * (r + 1) + ex + dx);
                    for p in 0..4 {
                        for q in 0..4 {
                            let w = e[p][q];
                            let (dst, src) = (l[p] * kc, l[q] * kc);
                            for a in 0..kc {
                                tt[dst + a] += w * rt[src + a];
                            }
                        }
                    }
                }
            }
            let rm = MatRef::from_column_major_slice(rt, kc, nl);
            let tm = MatRef::from_column_major_slice(&tt, kc, nl);
            let mut blk = Mat::<f64>::zeros(kc, kc);
            matmul(
                blk.as_mut(),
                Accum::Replace,
                rm,
                tm.transpose(),
                1.0,
                Par::Seq,
            );
            for (a, &ca) in cols.iter().enumerate() {
                for (b, &cb) in cols.iter().enumerate() {
                    out[(ca, cb)] += blk[(a, b)];
                }
            }
        }
        out
    }

    /// min over the cells of lambda_{L_i + 1}, the first eigenvalue left out.
    pub fn lambda_excluded_min(&self) -> f64 {
        self.lambda
            .iter()
            .filter_map(|l| l.get(self.opts.per_cell).copied())
            .fold(f64::INFINITY, f64::min)
    }

    /// The element ids of the fine grid inside coarse cell `c` (row-major in (cy, cx)).
    pub fn cell_elements(&self, c: usize) -> impl Iterator<Item = usize> + '_ {
        let (n, nc) = (self.n, self.opts.coarse);
        let r = n / nc;
        let (cx, cy) = (c % nc, c / nc);
        (0..r * r).map(move |k| (cy * r + k / r) * n + cx * r + k % r)
    }
}
