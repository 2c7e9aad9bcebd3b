//! Bilinear (Q1) finite elements on the uniform n x n grid of the unit square: the fine scale
//! of CEM-GMsFEM, and the reference (top-level) solver.
//!
//! Nodes are numbered `iy * (n + 1) + ix` (x fastest) at (ix h, iy h), elements `ey * n + ex`.
//! Coefficients (conductivity, sources) are constant on each fine element. A [`Rect`] is a
//! rectangle of fine elements with zero Dirichlet values on its border: the whole square for
//! the fine problem, an oversampled region K_i^+ for a multiscale basis function. Its matrix
//! pattern and symbolic Cholesky factorisation are built once; assembling new values (a new
//! time step, a Picard iterate) only refills the numbers and redoes the numeric factorisation.

use crate::SolveError;
use faer::linalg::solvers::Solve;
use faer::sparse::linalg::solvers::{Llt, SymbolicLlt};
use faer::sparse::{SparseColMat, SymbolicSparseColMat};
use faer::{Mat, Side};

/// Marks a node that is not an unknown (on a Dirichlet border).
const NONE: usize = usize::MAX;

/// The Q1 stiffness matrix of a square element for a unit coefficient (independent of the
/// element size in 2-D). Local nodes counter-clockwise from the lower left.
pub const STIFFNESS: [[f64; 4]; 4] = [
    [4.0 / 6.0, -1.0 / 6.0, -2.0 / 6.0, -1.0 / 6.0],
    [-1.0 / 6.0, 4.0 / 6.0, -1.0 / 6.0, -2.0 / 6.0],
    [-2.0 / 6.0, -1.0 / 6.0, 4.0 / 6.0, -1.0 / 6.0],
    [-1.0 / 6.0, -2.0 / 6.0, -1.0 / 6.0, 4.0 / 6.0],
];

/// The Q1 mass matrix of a square element of unit area (scale by h^2).
pub const MASS: [[f64; 4]; 4] = [
    [4.0 / 36.0, 2.0 / 36.0, 1.0 / 36.0, 2.0 / 36.0],
    [2.0 / 36.0, 4.0 / 36.0, 2.0 / 36.0, 1.0 / 36.0],
    [1.0 / 36.0, 2.0 / 36.0, 4.0 / 36.0, 2.0 / 36.0],
    [2.0 / 36.0, 1.0 / 36.0, 2.0 / 36.0, 4.0 / 36.0],
];

/// Local node offsets (dx, dy) of an element's corners, counter-clockwise.
pub const CORNERS: [(usize, usize); 4] = [(0, 0), (1, 0), (1, 1), (0, 1)];

/// The 4 x 4 matrix stiff K + mass h^2 M of one element (h = 1/n): the one formula every
/// assembly and operator application here uses.
#[inline]
pub fn element_matrix(n: usize, stiff: f64, mass: f64) -> [[f64; 4]; 4] {
    let mh2 = mass / (n * n) as f64;
    let mut e = [[0.0; 4]; 4];
    for p in 0..4 {
        for q in 0..4 {
            e[p][q] = stiff * STIFFNESS[p][q] + mh2 * MASS[p][q];
        }
    }
    e
}

/// The global node numbers of element (ex, ey)'s corners on the n x n grid.
#[inline]
pub fn element_nodes(n: usize, ex: usize, ey: usize) -> [usize; 4] {
    CORNERS.map(|(dx, dy)| (ey + dy) * (n + 1) + ex + dx)
}

/// A rectangle of fine elements [ex0, ex0 + nx) x [ey0, ey0 + ny) of the n x n grid, zero on
/// its border; its unknowns are its interior nodes.
#[derive(Debug, Clone)]
pub struct Rect {
    pub n: usize,
    pub ex0: usize,
    pub ey0: usize,
    pub nx: usize,
    pub ny: usize,
    pattern: SymbolicSparseColMat<usize>,
    /// Per element of the rectangle (row-major in (ey, ex)): where each of the 16 local pairs
    /// lands in the value array, or NONE when either node is on the border.
    scatter: Vec<[usize; 16]>,
    symbolic: SymbolicLlt<usize>,
}

impl Rect {
    /// The whole n x n grid.
    pub fn whole(n: usize) -> Result<Self, SolveError> {
        Self::new(n, 0, 0, n, n)
    }

    pub fn new(n: usize, ex0: usize, ey0: usize, nx: usize, ny: usize) -> Result<Self, SolveError> {
        if nx < 2 || ny < 2 || ex0 + nx > n || ey0 + ny > n {
            return Err(SolveError::failed(format!(
                "rectangle of {nx} x {ny} elements at ({ex0}, {ey0}) does not fit an {n} x {n} grid with an interior node"
            )));
        }
        let unknowns = (nx - 1) * (ny - 1);
        // Column j holds the (up to) 9 neighbours of unknown j, sorted: the 9-point pattern.
        let mut col_ptr = Vec::with_capacity(unknowns + 1);
        let mut row_idx = Vec::with_capacity(9 * unknowns);
        col_ptr.push(0);
        for iy in 1..ny {
            for ix in 1..nx {
                for jy in iy - 1..=iy + 1 {
                    for jx in ix - 1..=ix + 1 {
                        if jx >= 1 && jx < nx && jy >= 1 && jy < ny {
                            row_idx.push((jy - 1) * (nx - 1) + jx - 1);
                        }
                    }
                }
                col_ptr.push(row_idx.len());
            }
        }
        let pattern = SymbolicSparseColMat::new_checked(unknowns, unknowns, col_ptr, None, row_idx);
        let dof = |ix: usize, iy: usize| {
            if ix == 0 || iy == 0 || ix == nx || iy == ny {
                NONE
            } else {
                (iy - 1) * (nx - 1) + ix - 1
            }
        };
        let position = |r: usize, c: usize| {
            let (ptr, rows) = (pattern.col_ptr(), pattern.row_idx());
            let col = &rows[ptr[c]..ptr[c + 1]];
            ptr[c]
                + col
                    .binary_search(&r)
                    .expect("neighbours are in the pattern")
        };
        let mut scatter = Vec::with_capacity(nx * ny);
        for ey in 0..ny {
            for ex in 0..nx {
                let d = CORNERS.map(|(dx, dy)| dof(ex + dx, ey + dy));
                let mut s = [NONE; 16];
                for p in 0..4 {
                    for q in 0..4 {
                        if d[p] != NONE && d[q] != NONE {
                            s[4 * p + q] = position(d[p], d[q]);
                        }
                    }
                }
                scatter.push(s);
            }
        }
        let symbolic = SymbolicLlt::try_new(pattern.as_ref(), Side::Lower)
            .map_err(|e| SolveError::failed(format!("symbolic Cholesky failed: {e:?}")))?;
        Ok(Self {
            n,
            ex0,
            ey0,
            nx,
            ny,
            pattern,
            scatter,
            symbolic,
        })
    }

    pub fn unknowns(&self) -> usize {
        (self.nx - 1) * (self.ny - 1)
    }

    /// The global node of unknown `k`.
    pub fn node(&self, k: usize) -> usize {
        let (ix, iy) = (k % (self.nx - 1) + 1, k / (self.nx - 1) + 1);
        (self.ey0 + iy) * (self.n + 1) + self.ex0 + ix
    }

    /// The unknown at global node `g`, if it is one.
    pub fn unknown(&self, g: usize) -> Option<usize> {
        let (gx, gy) = (g % (self.n + 1), g / (self.n + 1));
        let inside = |g0: usize, len: usize, v: usize| v > g0 && v < g0 + len;
        (inside(self.ex0, self.nx, gx) && inside(self.ey0, self.ny, gy))
            .then(|| (gy - self.ey0 - 1) * (self.nx - 1) + gx - self.ex0 - 1)
    }

    /// The matrix sum_e stiff[e] K_e + mass h^2 M_e over the rectangle's elements, restricted
    /// to its unknowns. `stiff` is indexed by global element number.
    pub fn matrix(&self, stiff: &[f64], mass: f64) -> SparseColMat<usize, f64> {
        let mut val = vec![0.0; self.pattern.row_idx().len()];
        for ey in 0..self.ny {
            for ex in 0..self.nx {
                let s = &self.scatter[ey * self.nx + ex];
                let e = element_matrix(
                    self.n,
                    stiff[(self.ey0 + ey) * self.n + self.ex0 + ex],
                    mass,
                );
                for p in 0..4 {
                    for q in 0..4 {
                        let pos = s[4 * p + q];
                        if pos != NONE {
                            val[pos] += e[p][q];
                        }
                    }
                }
            }
        }
        SparseColMat::new(self.pattern.clone(), val)
    }

    /// Numeric Cholesky factorisation of a matrix from [`Rect::matrix`].
    pub fn factor(&self, a: &SparseColMat<usize, f64>) -> Result<Factor, SolveError> {
        Llt::try_new_with_symbolic(self.symbolic.clone(), a.as_ref(), Side::Lower)
            .map(Factor)
            .map_err(|e| {
                SolveError::failed(format!(
                    "sparse Cholesky failed (matrix not positive definite?): {e:?}"
                ))
            })
    }

    /// The unknowns' entries of a global nodal vector.
    pub fn restrict(&self, v: &[f64]) -> Vec<f64> {
        (0..self.unknowns()).map(|k| v[self.node(k)]).collect()
    }

    /// A global nodal vector (zero off the unknowns) from the unknowns' values.
    pub fn extend(&self, x: &[f64]) -> Vec<f64> {
        let mut v = vec![0.0; (self.n + 1) * (self.n + 1)];
        for (k, &xk) in x.iter().enumerate() {
            v[self.node(k)] = xk;
        }
        v
    }
}

/// A numeric sparse Cholesky factorisation.
pub struct Factor(Llt<usize, f64>);

impl Factor {
    /// Solve for one right-hand side.
    pub fn solve(&self, b: &[f64]) -> Vec<f64> {
        let mut x = Mat::<f64>::from_fn(b.len(), 1, |r, _| b[r]);
        self.0.solve_in_place(x.as_mut());
        (0..b.len()).map(|r| x[(r, 0)]).collect()
    }
    /// Solve for the columns of `b` in place.
    pub fn solve_mat(&self, b: &mut Mat<f64>) {
        self.0.solve_in_place(b.as_mut());
    }
}

/// The nodal load vector of an element-wise constant source (exact for it: each corner of an
/// element gets f_e h^2 / 4).
pub fn load_const(n: usize, f: &[f64]) -> Vec<f64> {
    let quarter = 0.25 / (n * n) as f64;
    let mut b = vec![0.0; (n + 1) * (n + 1)];
    for ey in 0..n {
        for ex in 0..n {
            let fe = f[ey * n + ex];
            if fe != 0.0 {
                for g in element_nodes(n, ex, ey) {
                    b[g] += quarter * fe;
                }
            }
        }
    }
    b
}

/// The nodal load vector of a smooth source f(x, y), by 2 x 2 Gauss quadrature per element.
pub fn load_fn(n: usize, f: impl Fn(f64, f64) -> f64) -> Vec<f64> {
    let h = 1.0 / n as f64;
    let g = [0.5 - 0.5 / 3f64.sqrt(), 0.5 + 0.5 / 3f64.sqrt()];
    let mut b = vec![0.0; (n + 1) * (n + 1)];
    for ey in 0..n {
        for ex in 0..n {
            let nodes = element_nodes(n, ex, ey);
            for &sx in &g {
                for &sy in &g {
                    let w = 0.25 * h * h * f((ex as f64 + sx) * h, (ey as f64 + sy) * h);
                    let shape = [
                        (1.0 - sx) * (1.0 - sy),
                        sx * (1.0 - sy),
                        sx * sy,
                        (1.0 - sx) * sy,
                    ];
                    for p in 0..4 {
                        b[nodes[p]] += w * shape[p];
                    }
                }
            }
        }
    }
    b
}

/// M u for a global nodal vector u: the consistent Q1 mass matrix applied element by element.
pub fn mass_apply(n: usize, u: &[f64]) -> Vec<f64> {
    operator_apply(n, &vec![0.0; n * n], 1.0, u)
}

/// (sum_e stiff_e K_e + mass h^2 M_e) u for a global nodal vector u, element by element
/// (rows of every node, Dirichlet ones included: callers project or restrict).
pub fn operator_apply(n: usize, stiff: &[f64], mass: f64, u: &[f64]) -> Vec<f64> {
    let mut out = vec![0.0; u.len()];
    for ey in 0..n {
        for ex in 0..n {
            let g = element_nodes(n, ex, ey);
            let e = element_matrix(n, stiff[ey * n + ex], mass);
            for p in 0..4 {
                out[g[p]] += (0..4).map(|q| e[p][q] * u[g[q]]).sum::<f64>();
            }
        }
    }
    out
}

/// The mean of the Q1 function u over each element (the mean of its four nodal values).
pub fn element_means(n: usize, u: &[f64]) -> Vec<f64> {
    let mut out = Vec::with_capacity(n * n);
    for ey in 0..n {
        for ex in 0..n {
            out.push(0.25 * element_nodes(n, ex, ey).iter().map(|&g| u[g]).sum::<f64>());
        }
    }
    out
}

/// a(u, v) = sum_e kappa_e u_e^T K v_e for nodal vectors on the n x n grid.
pub fn energy_product(n: usize, kappa: &[f64], u: &[f64], v: &[f64]) -> f64 {
    let mut sum = 0.0;
    for ey in 0..n {
        for ex in 0..n {
            let g = element_nodes(n, ex, ey);
            let mut e = 0.0;
            for p in 0..4 {
                let kv: f64 = (0..4).map(|q| STIFFNESS[p][q] * v[g[q]]).sum();
                e += u[g[p]] * kv;
            }
            sum += kappa[ey * n + ex] * e;
        }
    }
    sum
}

/// The energy norm sqrt(a(u, u)).
pub fn energy_norm(n: usize, kappa: &[f64], u: &[f64]) -> f64 {
    energy_product(n, kappa, u, u).max(0.0).sqrt()
}

/// The L2 norm of the Q1 function with nodal values u (exact, with the consistent mass).
pub fn l2_norm(n: usize, u: &[f64]) -> f64 {
    let h2 = (1.0 / n as f64).powi(2);
    let mut sum = 0.0;
    for ey in 0..n {
        for ex in 0..n {
            let g = element_nodes(n, ex, ey);
            for p in 0..4 {
                for q in 0..4 {
                    sum += h2 * MASS[p][q] * u[g[p]] * u[g[q]];
                }
            }
        }
    }
    sum.max(0.0).sqrt()
}

/// The Q1 function with nodal values u at (x, y) in the unit square (bilinear in its element).
pub fn interpolate(n: usize, u: &[f64], x: f64, y: f64) -> f64 {
    let locate = |s: f64| {
        let f = (s * n as f64).clamp(0.0, n as f64);
        let i = (f.floor() as usize).min(n - 1);
        (i, f - i as f64)
    };
    let ((ex, a), (ey, b)) = (locate(x), locate(y));
    let g = element_nodes(n, ex, ey);
    (1.0 - a) * (1.0 - b) * u[g[0]]
        + a * (1.0 - b) * u[g[1]]
        + a * b * u[g[2]]
        + (1.0 - a) * b * u[g[3]]
}

/// Solve sum_e stiff_e K_e u = b on the whole grid with zero Dirichlet values (b a global
/// nodal load vector); returns the global nodal solution.
pub fn solve_dirichlet(n: usize, stiff: &[f64], b: &[f64]) -> Result<Vec<f64>, SolveError> {
    let rect = Rect::whole(n)?;
    let factor = rect.factor(&rect.matrix(stiff, 0.0))?;
    Ok(rect.extend(&factor.solve(&rect.restrict(b))))
}
