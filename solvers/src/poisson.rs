//! `poisson`: Laplace's equation u_xx + u_yy = 0 on the unit square (DMF paper Sec. 4.2) by
//! the 5-point finite-difference stencil.
//!
//! Inputs: the Dirichlet values of the left (x = 0), right (x = 1), bottom (y = 0) and top
//! (y = 1) borders and the value at the centre node, each in [0.1, 0.9]. Level m has
//! n = 8 * 2^m cells per side with nodes (i/n, j/n); each corner node is the mean of its two
//! borders; the node (n/2, n/2) is fixed to `centre`; every other interior node satisfies the
//! 5-point stencil. The output is u on a 100 x 100 grid, x_i = i/99 (first axis) and
//! y_j = j/99, by bilinear interpolation of the nodal solution.
//!
//! The system (interior nodes without the centre) is symmetric positive definite: it is
//! assembled with nalgebra-sparse (which also computes the residual reported in the
//! diagnostics) and solved by faer's sparse Cholesky.

use crate::SolveError;
use crate::{
    check_sample, Axis, CpuClock, Fidelity, InputSpec, OutputSpec, ProblemSpec, Sample, Scale,
    Simulator, Solution,
};
use faer::linalg::solvers::Solve;
use faer::sparse::{SparseColMat, Triplet};
use nalgebra_sparse::{CooMatrix, CsrMatrix};
use std::collections::BTreeMap;

const N_LEVELS: usize = 5;
const GRID: usize = 100;

/// Cells per side at `level`.
pub fn cells(level: usize) -> usize {
    8 << level
}

pub struct Poisson {
    spec: ProblemSpec,
}

impl Default for Poisson {
    fn default() -> Self {
        Self::new()
    }
}

impl Poisson {
    pub fn new() -> Self {
        let inputs = ["left", "right", "bottom", "top", "centre"]
            .into_iter()
            .map(|name| InputSpec {
                name,
                unit: "1",
                lower: 0.1,
                upper: 0.9,
                scale: Scale::Linear,
            })
            .collect();
        let names = ["low", "level1", "high", "level3", "level4"];
        let fidelities = (0..N_LEVELS)
            .map(|level| {
                let n = cells(level);
                Fidelity {
                    level,
                    name: names[level].to_string(),
                    description: format!("5-point finite differences, {n} x {n} cells"),
                    settings: vec![("n_cells".into(), n as f64), ("h".into(), 1.0 / n as f64)],
                }
            })
            .collect();
        Self {
            spec: ProblemSpec {
                name: "poisson",
                summary: "2-D Laplace on the unit square, 5-point finite differences, Dirichlet borders + pinned centre; output u(x, y) on a 100x100 grid",
                inputs,
                fidelities,
                output: output_spec(),
                extras: vec![],
            },
        }
    }
}

/// A nodal solution on the (n + 1) x (n + 1) nodes, `u[i * (n + 1) + j]` at (i/n, j/n).
#[derive(Debug, Clone)]
pub struct Nodal {
    pub n: usize,
    pub u: Vec<f64>,
    /// Max-norm residual of the assembled system at the solution.
    pub residual: f64,
    pub unknowns: usize,
}

impl Nodal {
    pub fn at(&self, i: usize, j: usize) -> f64 {
        self.u[i * (self.n + 1) + j]
    }

    /// Bilinear interpolation at (x, y) in [0, 1]^2.
    pub fn interpolate(&self, x: f64, y: f64) -> f64 {
        let n = self.n as f64;
        let (fx, fy) = ((x * n).clamp(0.0, n), (y * n).clamp(0.0, n));
        let (i, j) = (
            (fx.floor() as usize).min(self.n - 1),
            (fy.floor() as usize).min(self.n - 1),
        );
        let (a, b) = (fx - i as f64, fy - j as f64);
        (1.0 - a) * (1.0 - b) * self.at(i, j)
            + a * (1.0 - b) * self.at(i + 1, j)
            + (1.0 - a) * b * self.at(i, j + 1)
            + a * b * self.at(i + 1, j + 1)
    }
}

/// Solve the 5-point Laplace problem with Dirichlet values `boundary(i, j)` on the border
/// nodes and optionally one interior node pinned to a value. This general entry point is what
/// the tests check against harmonic polynomials and Fourier series.
pub fn solve_dirichlet(
    n: usize,
    boundary: impl Fn(usize, usize) -> f64,
    pinned: Option<((usize, usize), f64)>,
) -> Result<Nodal, SolveError> {
    let m = n + 1;
    let node = |i: usize, j: usize| i * m + j;
    let mut u = vec![0.0; m * m];
    // Index of each unknown node (interior, not pinned), usize::MAX for known nodes.
    let mut index = vec![usize::MAX; m * m];
    let mut unknowns = 0;
    for i in 0..m {
        for j in 0..m {
            if i == 0 || j == 0 || i == n || j == n {
                u[node(i, j)] = boundary(i, j);
            } else if pinned.is_some_and(|(p, _)| p == (i, j)) {
                u[node(i, j)] = pinned.unwrap().1;
            } else {
                index[node(i, j)] = unknowns;
                unknowns += 1;
            }
        }
    }
    // 4 u_ij - sum of neighbours = 0; known neighbours go to the right-hand side.
    let mut coo = CooMatrix::new(unknowns, unknowns);
    let mut rhs = vec![0.0; unknowns];
    for i in 1..n {
        for j in 1..n {
            let row = index[node(i, j)];
            if row == usize::MAX {
                continue;
            }
            coo.push(row, row, 4.0);
            for (a, b) in [(i - 1, j), (i + 1, j), (i, j - 1), (i, j + 1)] {
                match index[node(a, b)] {
                    usize::MAX => rhs[row] += u[node(a, b)],
                    col => coo.push(row, col, -1.0),
                }
            }
        }
    }
    let a = CsrMatrix::from(&coo);
    let triplets: Vec<Triplet<usize, usize, f64>> = a
        .triplet_iter()
        .map(|(r, c, v)| Triplet::new(r, c, *v))
        .collect();
    let mat = SparseColMat::<usize, f64>::try_new_from_triplets(unknowns, unknowns, &triplets)
        .map_err(|e| SolveError::failed(format!("sparse Cholesky failed: {e:?}")))?;
    let llt = mat
        .sp_cholesky(faer::Side::Lower)
        .map_err(|e| SolveError::failed(format!("sparse Cholesky failed: {e:?}")))?;
    let mut x = faer::Mat::<f64>::from_fn(unknowns, 1, |r, _| rhs[r]);
    llt.solve_in_place(x.as_mut());
    // Residual of the assembled system, with nalgebra-sparse's product.
    let sol = nalgebra::DVector::from_fn(unknowns, |r, _| x[(r, 0)]);
    let ax = &a * &sol;
    let residual = (0..unknowns)
        .map(|r| (ax[r] - rhs[r]).abs())
        .fold(0.0, f64::max);
    for (k, idx) in index.iter().enumerate() {
        if *idx != usize::MAX {
            u[k] = x[(*idx, 0)];
        }
    }
    Ok(Nodal {
        n,
        u,
        residual,
        unknowns,
    })
}

/// The benchmark's nodal solution for inputs [left, right, bottom, top, centre] at `n` cells.
pub fn solve_benchmark(x: &[f64], n: usize) -> Result<Nodal, SolveError> {
    let [left, right, bottom, top, centre] = [x[0], x[1], x[2], x[3], x[4]];
    let boundary = |i: usize, j: usize| {
        // i indexes x, j indexes y; corners are the mean of their two borders.
        let side_x = match i {
            0 => Some(left),
            i if i == n => Some(right),
            _ => None,
        };
        let side_y = match j {
            0 => Some(bottom),
            j if j == n => Some(top),
            _ => None,
        };
        match (side_x, side_y) {
            (Some(a), Some(b)) => 0.5 * (a + b),
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => unreachable!("only border nodes are asked for"),
        }
    };
    solve_dirichlet(n, boundary, Some(((n / 2, n / 2), centre)))
}

fn output_spec() -> OutputSpec {
    OutputSpec {
        name: "u".into(),
        unit: "1".into(),
        axes: vec![
            Axis::uniform("x", "1", 0.0, 1.0, GRID),
            Axis::uniform("y", "1", 0.0, 1.0, GRID),
        ],
    }
}
impl Simulator for Poisson {
    fn spec(&self) -> &ProblemSpec {
        &self.spec
    }
    fn solve(&self, s: &Sample) -> Result<Solution, SolveError> {
        check_sample(&self.spec, s)?;
        let clock = CpuClock::start();
        let nodal = solve_benchmark(&s.x, cells(s.level))?;
        let out = &self.spec.output;
        let mut values = Vec::with_capacity(GRID * GRID);
        for &xi in &out.axes[0].values {
            for &yj in &out.axes[1].values {
                values.push(nodal.interpolate(xi, yj));
            }
        }
        let cost_s = clock.seconds();
        let diagnostics = BTreeMap::from([
            ("residual".to_string(), nodal.residual),
            ("unknowns".to_string(), nodal.unknowns as f64),
        ]);
        Ok(Solution {
            values,
            cost_s,
            diagnostics,
            extras: BTreeMap::new(),
        })
    }
}
