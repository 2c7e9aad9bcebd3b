//! `plasmonic`: the coupled dipole approximation for Vogel spirals of gold spheres (the DMF
//! paper's plasmonic application, Sec. 4.3), from 2 to 10 000 particles.
//!
//! N gold spheres of radius a = 25 nm in vacuum sit at r_n = sqrt(n) a_vs (cos n alpha_vs,
//! sin n alpha_vs, 0), n = 1..N. A plane wave travels along +z with E0 = x-hat. Each sphere is a
//! point dipole p_i = alpha E_i, and the local field is the incident one plus the fields of all
//! other dipoles: E_i = E0 + sum_{j != i} A_ij p_j with the free-space dyadic Green's tensor
//! A_ij = (e^{ikr}/r^3) [k^2 r^2 (I - r^ r^T) + (ikr - 1)(I - 3 r^ r^T)]. The 3N x 3N system
//! (I - alpha A) E = E0 is complex symmetric. Units: nm; CGS volume polarizability (nm^3);
//! exp(-i w t) convention throughout.
//!
//! Two solution paths with the same answer: dense LU (faer) for small N, and COCG, the
//! conjugate-orthogonal conjugate gradient method for complex symmetric systems, whose
//! matrix-vector product evaluates A_ij on the fly in parallel (no 3N x 3N matrix: at
//! N = 10 000 it would take 14 GB). The 3x3 block-Jacobi preconditioner of this system is the
//! identity (A_ii = 0 and every sphere has the same alpha), so COCG is preconditioned by the
//! exact inverse of near-field clusters instead ([`NearField`]).
//!
//! Output: [Q_ext, Q_sca] = C / (N pi a^2) with C_ext = 4 pi k sum Im(E0^* . p_i) and
//! C_abs = 4 pi k sum [Im(E_i^* . p_i) - (2/3) k^3 |p_i|^2], C_sca = C_ext - C_abs.
//!
//! Options (environment, read when the problem is built; both are stored as level settings in
//! every dataset): `MFPIPE_PLASMONIC_POLARIZABILITY` = radiative (default) | quasi-static | mlwa
//! | mie-a1, and `MFPIPE_PLASMONIC_DENSE_MAX_N` = the largest N solved by dense LU (default
//! [`DENSE_MAX_N`], chosen by measurement: see BENCHMARKS.md).

use crate::{
    check_sample, process_cpu_seconds, thread_cpu_seconds, Axis, Batch, Fidelity, InputSpec,
    OutputSpec, ProblemSpec, Sample, Scale, Simulator, Solution, SolveError,
};
use faer::linalg::solvers::Solve;
use faer::{c64, Mat};
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::f64::consts::PI;

/// Sphere radius (nm).
pub const RADIUS: f64 = 25.0;
/// Particles per level.
pub const LEVEL_N: [usize; 6] = [2, 25, 50, 500, 2000, 10000];
/// Default switch-over: N up to this is solved by dense LU, larger N by COCG. Measured with
/// `cargo run --release -p mfpipe-solvers --example plasmonic_switch` (CPU seconds, the
/// preconditioned COCG against LU): LU is as cheap or cheaper up to N = 75, COCG from N = 100
/// on (1.2x at 100, 2.7x at 500, 3.8x at 1000). So the paper's levels (N <= 50) are direct.
pub const DENSE_MAX_N: usize = 75;
/// Should COCG fail to converge (it has no minimisation property and can break down), arrays
/// up to this size fall back to dense LU (0.6 GB at 2000); the path is recorded.
pub const DENSE_FALLBACK_MAX_N: usize = 2000;
/// Arrays larger than this are parallel inside (their samples are solved one at a time);
/// smaller ones run one per rayon task.
pub const PARALLEL_MIN_N: usize = 4 * BLOCK;
/// Spheres per cluster of the near-field preconditioner.
pub const CLUSTER: usize = 32;
/// Particles per block of the matrix-free product (one rayon task each).
const BLOCK: usize = 64;
/// Relative residual ||b - M x|| / ||b|| the iterative path reaches.
pub const TOLERANCE: f64 = 1e-10;

/// The permittivity of gold at vacuum wavelength `lambda` (nm): the analytic model of Le Ru and
/// Etchegoin (Principles of SERS, 2009, eq. E.2), a Drude term plus two critical points,
/// exp(-i w t) convention (Im eps > 0 is loss).
pub fn gold_permittivity(lambda: f64) -> c64 {
    const EPS_INF: f64 = 1.54;
    const LP: f64 = 177.5;
    const MP: f64 = 14500.0;
    const CP: [(f64, f64, f64); 2] = [(1.27, 470.0, 1900.0), (1.1, 325.0, 1060.0)];
    let i = c64::new(0.0, 1.0);
    let inv = 1.0 / lambda;
    let drude = EPS_INF * (c64::new(1.0, 0.0) - 1.0 / (LP * LP * (inv * inv + i / (MP * lambda))));
    let phase = c64::from_polar(1.0, -PI / 4.0);
    let mut eps = drude;
    for (a, l, m) in CP {
        eps += (a / l) * (phase / (1.0 / l - inv - i / m) + phase.conj() / (1.0 / l + inv + i / m));
    }
    eps
}

/// How a sphere's polarizability follows from its permittivity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Polarizability {
    /// Quasi-static with the radiative-reaction correction (the default): energy conserving.
    Radiative,
    /// alpha0 = a^3 (eps - 1)/(eps + 2), no correction.
    QuasiStatic,
    /// Modified long-wavelength approximation: adds dynamic depolarisation -k^2 alpha0 / a.
    Mlwa,
    /// The exact dipole term of Mie theory, alpha = 3 i a1 / (2 k^3).
    MieA1,
}

impl Polarizability {
    pub const ALL: [Self; 4] = [Self::Radiative, Self::QuasiStatic, Self::Mlwa, Self::MieA1];

    pub fn name(self) -> &'static str {
        match self {
            Self::Radiative => "radiative",
            Self::QuasiStatic => "quasi-static",
            Self::Mlwa => "mlwa",
            Self::MieA1 => "mie-a1",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == s)
    }

    /// The polarizability (nm^3) of a sphere of radius `a` with permittivity `eps` in vacuum
    /// at wavenumber `k` (1/nm).
    pub fn of(self, eps: c64, a: f64, k: f64) -> c64 {
        let one = c64::new(1.0, 0.0);
        let alpha0 = a.powi(3) * (eps - one) / (eps + 2.0);
        let rad = c64::new(0.0, 2.0 / 3.0 * k.powi(3));
        match self {
            Self::QuasiStatic => alpha0,
            Self::Radiative => alpha0 / (one - rad * alpha0),
            Self::Mlwa => alpha0 / (one - k * k / a * alpha0 - rad * alpha0),
            Self::MieA1 => c64::new(0.0, 1.5 / k.powi(3)) * mie_a1(eps.sqrt(), k * a),
        }
    }
}

/// The Mie coefficient a1 (Bohren and Huffman eq. 4.56, mu = mu_1) of a sphere with relative
/// refractive index `m` and size parameter `x` = k a, from the closed-form Riccati-Bessel
/// functions of order 1: psi1(z) = sin z / z - cos z, chi1(z) = cos z / z + sin z,
/// xi1 = psi1 - i chi1, and psi1' = psi0 - psi1 / z (likewise chi1').
pub fn mie_a1(m: c64, x: f64) -> c64 {
    let psi = |z: c64| (z.sin() / z - z.cos(), z.sin() - (z.sin() / z - z.cos()) / z);
    let chi = |z: c64| (z.cos() / z + z.sin(), z.cos() - (z.cos() / z + z.sin()) / z);
    let i = c64::new(0.0, 1.0);
    let xc = c64::new(x, 0.0);
    let (p_x, dp_x) = psi(xc);
    let (c_x, dc_x) = chi(xc);
    let (xi_x, dxi_x) = (p_x - i * c_x, dp_x - i * dc_x);
    let (p_mx, dp_mx) = psi(m * x);
    (m * p_mx * dp_x - p_x * dp_mx) / (m * p_mx * dxi_x - xi_x * dp_mx)
}

/// The Vogel spiral r_n = sqrt(n) a_vs (cos n alpha_vs, sin n alpha_vs, 0), n = 1..N.
pub fn vogel_spiral(n: usize, alpha_vs: f64, a_vs: f64) -> Vec<[f64; 3]> {
    (1..=n)
        .map(|i| {
            let (rho, th) = ((i as f64).sqrt() * a_vs, i as f64 * alpha_vs);
            [rho * th.cos(), rho * th.sin(), 0.0]
        })
        .collect()
}

/// A_ij p = g1 p + g2 r^ (r^ . p) for particles at `ri` and `rj`: returns (g1, g2, r^) with
/// r^ = (ri - rj) / r, g1 = e^{ikr} (k^2 r^2 + ikr - 1) / r^3, g2 = e^{ikr} (3 - k^2 r^2 - 3ikr) / r^3.
#[inline]
pub fn green(k: f64, ri: [f64; 3], rj: [f64; 3]) -> (c64, c64, [f64; 3]) {
    let d = [ri[0] - rj[0], ri[1] - rj[1], ri[2] - rj[2]];
    let r2 = d[0] * d[0] + d[1] * d[1] + d[2] * d[2];
    let r = r2.sqrt();
    let kr = k * r;
    let (s, c) = kr.sin_cos();
    let e = c64::new(c, s) / (r2 * r);
    let g1 = e * c64::new(kr * kr - 1.0, kr);
    let g2 = e * c64::new(3.0 - kr * kr, -3.0 * kr);
    let inv = 1.0 / r;
    (g1, g2, [d[0] * inv, d[1] * inv, d[2] * inv])
}

/// Which algorithm solved the coupled system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    DenseLu,
    Cocg,
}

/// An array of identical spheres with polarizability `alpha` at wavenumber `k`.
pub struct Array<'a> {
    pub pos: &'a [[f64; 3]],
    pub alpha: c64,
    pub k: f64,
}

/// The solved local fields and how they were obtained.
#[derive(Debug, Clone)]
pub struct Fields {
    /// E_i, three components per particle.
    pub e: Vec<c64>,
    pub path: Path,
    /// COCG iterations (0 for LU).
    pub iterations: usize,
    /// ||E0 - (I - alpha A) E|| / ||E0||, recomputed from the solution.
    pub residual: f64,
}

/// The optical cross-sections (nm^2).
#[derive(Debug, Clone, Copy)]
pub struct Cross {
    pub ext: f64,
    pub abs: f64,
    pub sca: f64,
}

/// Bilinear (unconjugated) product x^T y: the inner "product" of COCG.
fn bilinear(x: &[c64], y: &[c64]) -> c64 {
    x.iter().zip(y).map(|(a, b)| a * b).sum()
}

fn norm(x: &[c64]) -> f64 {
    x.iter().map(|v| v.norm_sqr()).sum::<f64>().sqrt()
}

impl Array<'_> {
    pub fn n(&self) -> usize {
        self.pos.len()
    }

    /// y = (I - alpha A) x, A evaluated on the fly. A_ij = A_ji, so each pair is evaluated
    /// once and applied both ways: the particles are cut into blocks of [`BLOCK`], one task per
    /// block handles its pairs (i, j > i) and accumulates into a buffer of its own, and the
    /// buffers are summed in block order. The result is the same bits at any thread count.
    pub fn apply(&self, x: &[c64], y: &mut [c64]) {
        let n = self.n();
        let zero = c64::new(0.0, 0.0);
        let blocks = n.div_ceil(BLOCK);
        // Buffer of block b covers particles b * BLOCK .. n (the rows its pairs reach).
        let bufs: Vec<Vec<c64>> = (0..blocks)
            .into_par_iter()
            .map(|b| {
                let start = b * BLOCK;
                let end = (start + BLOCK).min(n);
                let mut buf = vec![zero; 3 * (n - start)];
                for i in start..end {
                    let ri = self.pos[i];
                    let xi = [x[3 * i], x[3 * i + 1], x[3 * i + 2]];
                    let mut acc = [zero; 3];
                    for j in i + 1..n {
                        let (g1, g2, u) = green(self.k, ri, self.pos[j]);
                        let xj = &x[3 * j..3 * j + 3];
                        // A_ij x_j into row i, A_ji x_i = A_ij x_i into row j.
                        let uxj = g2 * (xj[0] * u[0] + xj[1] * u[1] + xj[2] * u[2]);
                        let uxi = g2 * (xi[0] * u[0] + xi[1] * u[1] + xi[2] * u[2]);
                        let row_j = &mut buf[3 * (j - start)..3 * (j - start) + 3];
                        for c in 0..3 {
                            acc[c] += g1 * xj[c] + uxj * u[c];
                            row_j[c] += g1 * xi[c] + uxi * u[c];
                        }
                    }
                    let row_i = &mut buf[3 * (i - start)..3 * (i - start) + 3];
                    for c in 0..3 {
                        row_i[c] += acc[c];
                    }
                }
                buf
            })
            .collect();
        y.par_chunks_mut(3)
            .with_min_len(64)
            .enumerate()
            .for_each(|(i, yi)| {
                let mut acc = [zero; 3];
                for (b, buf) in bufs.iter().enumerate().take(i / BLOCK + 1) {
                    let o = 3 * (i - b * BLOCK);
                    for c in 0..3 {
                        acc[c] += buf[o + c];
                    }
                }
                for c in 0..3 {
                    yi[c] = x[3 * i + c] - self.alpha * acc[c];
                }
            });
    }

    /// The dense 3N x 3N matrix I - alpha A.
    pub fn matrix(&self) -> Mat<c64> {
        let all: Vec<usize> = (0..self.n()).collect();
        self.submatrix(&all)
    }

    /// I - alpha A restricted to the particles `idx` (rows and columns in that order).
    fn submatrix(&self, idx: &[usize]) -> Mat<c64> {
        let n = idx.len();
        let mut m = Mat::<c64>::zeros(3 * n, 3 * n);
        for i in 0..3 * n {
            m[(i, i)] = c64::new(1.0, 0.0);
        }
        for i in 0..n {
            for j in 0..i {
                let (g1, g2, u) = green(self.k, self.pos[idx[i]], self.pos[idx[j]]);
                for a in 0..3 {
                    for b in 0..3 {
                        let delta = if a == b { g1 } else { c64::new(0.0, 0.0) };
                        let v = -self.alpha * (delta + g2 * (u[a] * u[b]));
                        // A_ij = A_ji (even in r^), so the matrix is complex symmetric.
                        m[(3 * i + a, 3 * j + b)] = v;
                        m[(3 * j + b, 3 * i + a)] = v;
                    }
                }
            }
        }
        m
    }

    fn residual(&self, e: &[c64], b: &[c64]) -> f64 {
        let mut r = vec![c64::new(0.0, 0.0); b.len()];
        self.apply(e, &mut r);
        let diff: Vec<c64> = b.iter().zip(&r).map(|(b, r)| b - r).collect();
        norm(&diff) / norm(b)
    }

    /// Solve (I - alpha A) E = E0 (E0 = `e0` at every particle) by dense LU.
    pub fn solve_dense(&self, e0: [c64; 3]) -> Result<Fields, SolveError> {
        let n = self.n();
        let lu = self.matrix().partial_piv_lu();
        let mut rhs = Mat::<c64>::from_fn(3 * n, 1, |i, _| e0[i % 3]);
        lu.solve_in_place(rhs.as_mut());
        let e: Vec<c64> = (0..3 * n).map(|i| rhs[(i, 0)]).collect();
        if e.iter().any(|v| !v.re.is_finite() || !v.im.is_finite()) {
            return Err(SolveError::failed(
                "dense LU gave non-finite fields (singular system)",
            ));
        }
        let b: Vec<c64> = (0..3 * n).map(|i| e0[i % 3]).collect();
        let residual = self.residual(&e, &b);
        Ok(Fields {
            e,
            path: Path::DenseLu,
            iterations: 0,
            residual,
        })
    }

    /// Solve (I - alpha A) E = E0 by COCG from `guess` (E0 if none) to relative residual `tol`,
    /// preconditioned by the exact inverse of the near-field blocks ([`NearField`]).
    /// The recurrence's residual drifts from the true one, so convergence is confirmed with a
    /// fresh product and the method restarted from the iterate if it fell short.
    pub fn solve_cocg(
        &self,
        e0: [c64; 3],
        guess: Option<&[c64]>,
        tol: f64,
        max_iter: usize,
    ) -> Result<Fields, SolveError> {
        let pre = NearField::new(self, CLUSTER);
        let m = 3 * self.n();
        let b: Vec<c64> = (0..m).map(|i| e0[i % 3]).collect();
        let bnorm = norm(&b);
        let mut x: Vec<c64> = guess.map_or_else(|| pre.apply(&b), |g| g.to_vec());
        let zero = c64::new(0.0, 0.0);
        let (mut r, mut p, mut q) = (vec![zero; m], vec![zero; m], vec![zero; m]);
        let mut iterations = 0;
        for _restart in 0..4 {
            self.apply(&x, &mut q);
            for i in 0..m {
                r[i] = b[i] - q[i];
            }
            if norm(&r) <= tol * bnorm {
                return Ok(Fields {
                    residual: norm(&r) / bnorm,
                    e: x,
                    path: Path::Cocg,
                    iterations,
                });
            }
            let mut z = pre.apply(&r);
            p.copy_from_slice(&z);
            let mut rho = bilinear(&r, &z);
            while iterations < max_iter {
                self.apply(&p, &mut q);
                let mu = bilinear(&p, &q);
                if mu.norm() == 0.0 || rho.norm() == 0.0 {
                    break; // breakdown: restart from the current iterate
                }
                let step = rho / mu;
                for i in 0..m {
                    x[i] += step * p[i];
                    r[i] -= step * q[i];
                }
                iterations += 1;
                // Stop the recurrence a little below the target; the true residual decides.
                if norm(&r) <= 0.5 * tol * bnorm {
                    break;
                }
                z = pre.apply(&r);
                let rho_new = bilinear(&r, &z);
                let beta = rho_new / rho;
                rho = rho_new;
                for i in 0..m {
                    p[i] = z[i] + beta * p[i];
                }
            }
            if iterations >= max_iter {
                break;
            }
        }
        let residual = self.residual(&x, &b);
        if residual <= tol {
            return Ok(Fields {
                e: x,
                path: Path::Cocg,
                iterations,
                residual,
            });
        }
        Err(SolveError::failed(format!(
            "COCG did not reach relative residual {tol:.0e} in {iterations} iterations (reached {residual:.2e})"
        )))
    }

    /// The cross-sections of the solved fields for incident field `e0` (|e0| = 1).
    pub fn cross_sections(&self, e: &[c64], e0: [c64; 3]) -> Cross {
        let (mut ext, mut abs) = (0.0, 0.0);
        let k3 = self.k.powi(3);
        for ei in e.chunks(3) {
            let p = [self.alpha * ei[0], self.alpha * ei[1], self.alpha * ei[2]];
            for c in 0..3 {
                ext += (e0[c].conj() * p[c]).im;
                abs += (ei[c].conj() * p[c]).im - 2.0 / 3.0 * k3 * p[c].norm_sqr();
            }
        }
        let f = 4.0 * PI * self.k;
        Cross {
            ext: f * ext,
            abs: f * abs,
            sca: f * (ext - abs),
        }
    }
}

/// The near-field preconditioner: the particles are cut into spatial clusters of at most
/// `size` by recursive coordinate bisection, and the preconditioner is the exact inverse
/// (LU) of I - alpha A restricted to each cluster. It is complex symmetric, as COCG needs, and
/// takes the strong couplings of close spheres out of the iteration. (3x3 block-Jacobi, the
/// textbook choice, is the identity here: A_ii = 0 and every sphere has the same alpha.)
pub struct NearField {
    clusters: Vec<Vec<usize>>,
    lus: Vec<faer::linalg::solvers::PartialPivLu<c64>>,
}

impl NearField {
    pub fn new(array: &Array, size: usize) -> Self {
        let clusters = bisect(array.pos, size.max(1));
        let lus = clusters
            .par_iter()
            .map(|c| array.submatrix(c).partial_piv_lu())
            .collect();
        Self { clusters, lus }
    }

    pub fn apply(&self, r: &[c64]) -> Vec<c64> {
        let parts: Vec<Mat<c64>> = self
            .clusters
            .par_iter()
            .zip(&self.lus)
            .map(|(c, lu)| {
                let mut rhs = Mat::<c64>::from_fn(3 * c.len(), 1, |i, _| r[3 * c[i / 3] + i % 3]);
                lu.solve_in_place(rhs.as_mut());
                rhs
            })
            .collect();
        let mut z = vec![c64::new(0.0, 0.0); r.len()];
        for (c, part) in self.clusters.iter().zip(&parts) {
            for (k, &p) in c.iter().enumerate() {
                for a in 0..3 {
                    z[3 * p + a] = part[(3 * k + a, 0)];
                }
            }
        }
        z
    }
}

/// Recursive coordinate bisection: split at the median of the widest coordinate until every
/// part has at most `size` points (ties broken by index, so the result is deterministic).
fn bisect(pos: &[[f64; 3]], size: usize) -> Vec<Vec<usize>> {
    let mut out = Vec::new();
    let mut stack = vec![(0..pos.len()).collect::<Vec<usize>>()];
    while let Some(mut idx) = stack.pop() {
        if idx.len() <= size {
            out.push(idx);
            continue;
        }
        let extent = |a: usize| {
            let (lo, hi) = idx
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &i| {
                    (l.min(pos[i][a]), h.max(pos[i][a]))
                });
            hi - lo
        };
        let axis = (0..3)
            .max_by(|&a, &b| extent(a).total_cmp(&extent(b)))
            .unwrap_or(0);
        idx.sort_by(|&a, &b| pos[a][axis].total_cmp(&pos[b][axis]).then(a.cmp(&b)));
        let right = idx.split_off(idx.len() / 2);
        stack.push(right);
        stack.push(idx);
    }
    out
}

/// The smallest surface-to-surface gap (nm) between spheres of radius `RADIUS` at `pos`;
/// negative when spheres overlap (the dipole model is then meaningless).
pub fn min_gap(pos: &[[f64; 3]]) -> f64 {
    let d2 = (0..pos.len())
        .into_par_iter()
        .with_min_len(64)
        .map(|i| {
            let ri = pos[i];
            pos[i + 1..].iter().fold(f64::INFINITY, |m, rj| {
                let d = [ri[0] - rj[0], ri[1] - rj[1], ri[2] - rj[2]];
                m.min(d[0] * d[0] + d[1] * d[1] + d[2] * d[2])
            })
        })
        .reduce(|| f64::INFINITY, f64::min);
    d2.sqrt() - 2.0 * RADIUS
}

/// Options of the problem (see the module docs for how the CLI sets them).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Options {
    pub polarizability: Polarizability,
    /// Largest N solved by dense LU.
    pub dense_max_n: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            polarizability: Polarizability::Radiative,
            dense_max_n: DENSE_MAX_N,
        }
    }
}

impl Options {
    /// The defaults overridden by `MFPIPE_PLASMONIC_POLARIZABILITY` and
    /// `MFPIPE_PLASMONIC_DENSE_MAX_N`; a value that does not parse is an error naming it.
    pub fn from_env() -> Result<Self, String> {
        let mut o = Self::default();
        if let Ok(v) = std::env::var("MFPIPE_PLASMONIC_POLARIZABILITY") {
            o.polarizability = Polarizability::parse(v.trim()).ok_or_else(|| {
                let names: Vec<_> = Polarizability::ALL.iter().map(|p| p.name()).collect();
                format!(
                    "MFPIPE_PLASMONIC_POLARIZABILITY={v:?} is not one of {}",
                    names.join(", ")
                )
            })?;
        }
        if let Ok(v) = std::env::var("MFPIPE_PLASMONIC_DENSE_MAX_N") {
            o.dense_max_n = v.trim().parse().map_err(|_| {
                format!("MFPIPE_PLASMONIC_DENSE_MAX_N={v:?} is not a whole number of particles")
            })?;
        }
        Ok(o)
    }
}

/// One sample's answer: cross-sections and the solver's record.
#[derive(Debug, Clone)]
pub struct Response {
    pub cross: Cross,
    pub fields: Fields,
}

/// Solve one spiral at wavelength `lambda` with the path `opts` selects; `guess` warm-starts
/// the iterative path.
pub fn solve_spiral(
    n: usize,
    lambda: f64,
    alpha_vs: f64,
    a_vs: f64,
    opts: &Options,
    guess: Option<&[c64]>,
) -> Result<Response, SolveError> {
    solve_array(&vogel_spiral(n, alpha_vs, a_vs), lambda, opts, guess)
}

/// Solve the gold spheres at `pos` at wavelength `lambda` (E0 = x-hat).
pub fn solve_array(
    pos: &[[f64; 3]],
    lambda: f64,
    opts: &Options,
    guess: Option<&[c64]>,
) -> Result<Response, SolveError> {
    let n = pos.len();
    let k = 2.0 * PI / lambda;
    let alpha = opts.polarizability.of(gold_permittivity(lambda), RADIUS, k);
    let array = Array { pos, alpha, k };
    let x_hat = [c64::new(1.0, 0.0), c64::new(0.0, 0.0), c64::new(0.0, 0.0)];
    let fields = if n <= opts.dense_max_n {
        array.solve_dense(x_hat)?
    } else {
        match array.solve_cocg(x_hat, guess, TOLERANCE, 20 * 3 * n.max(100)) {
            Err(_) if n <= DENSE_FALLBACK_MAX_N => array.solve_dense(x_hat)?,
            r => r?,
        }
    };
    let cross = array.cross_sections(&fields.e, x_hat);
    if !cross.ext.is_finite() || !cross.sca.is_finite() {
        return Err(SolveError::failed(format!(
            "non-finite cross-section at {lambda} nm"
        )));
    }
    Ok(Response { cross, fields })
}

/// Which of the two problems: one wavelength per sample, or a whole spectrum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Single,
    Spectrum,
}

impl Kind {
    /// Particles per level: the spectrum stops at 2000 (DESIGN sec. 5).
    fn levels(self) -> &'static [usize] {
        match self {
            Kind::Single => &LEVEL_N,
            Kind::Spectrum => &LEVEL_N[..5],
        }
    }
}

/// The wavelengths (nm) of `plasmonic-spectrum`: 400 + 400 j / 99, j = 0..99.
pub fn spectrum_wavelengths() -> Vec<f64> {
    Axis::uniform("lambda", "nm", 400.0, 800.0, 100).values
}

/// `plasmonic` (one wavelength per sample, output [Q_ext, Q_sca]) and `plasmonic-spectrum`
/// (100 wavelengths per sample, output [2, 100]).
pub struct Plasmonic {
    spec: ProblemSpec,
    opts: Result<Options, String>,
    kind: Kind,
}

impl Default for Plasmonic {
    fn default() -> Self {
        Self::new()
    }
}

impl Plasmonic {
    /// `plasmonic` with the options of the environment (see the module docs).
    pub fn new() -> Self {
        Self::build(Options::from_env(), Kind::Single)
    }

    /// `plasmonic-spectrum` with the options of the environment.
    pub fn spectrum() -> Self {
        Self::build(Options::from_env(), Kind::Spectrum)
    }

    pub fn with_options(opts: Options) -> Self {
        Self::build(Ok(opts), Kind::Single)
    }

    pub fn spectrum_with_options(opts: Options) -> Self {
        Self::build(Ok(opts), Kind::Spectrum)
    }

    fn levels(&self) -> &'static [usize] {
        self.kind.levels()
    }

    fn build(opts: Result<Options, String>, kind: Kind) -> Self {
        let o = opts.clone().unwrap_or_default();
        let input = |name, unit, lower, upper| InputSpec {
            name,
            unit,
            lower,
            upper,
            scale: Scale::Linear,
        };
        let fidelities = kind
            .levels()
            .iter()
            .enumerate()
            .map(|(level, &n)| {
                let path = if n <= o.dense_max_n {
                    "dense LU"
                } else {
                    "COCG"
                };
                Fidelity {
                    level,
                    name: format!("n{n}"),
                    description: format!(
                        "{n} gold spheres, coupled dipoles ({} polarizability), {path}",
                        o.polarizability.name()
                    ),
                    settings: vec![
                        ("n_particles".into(), n as f64),
                        ("radius_nm".into(), RADIUS),
                        (
                            "polarizability".into(),
                            Polarizability::ALL
                                .iter()
                                .position(|p| *p == o.polarizability)
                                .unwrap_or(0) as f64,
                        ),
                        ("dense_max_n".into(), o.dense_max_n as f64),
                    ],
                }
            })
            .collect();
        let quantity = Axis {
            name: "quantity".into(),
            unit: "1".into(),
            values: vec![0.0, 1.0],
        };
        let spiral = [
            input("alpha_vs", "rad", 0.0, 2.0 * PI),
            input("a_vs", "nm", 50.0, 1500.0),
        ];
        let (name, summary, inputs, axes) = match kind {
            Kind::Single => (
                "plasmonic",
                "coupled-dipole extinction and scattering of Vogel spirals of 2..10000 gold spheres (DMF Sec. 4.3); output [Q_ext, Q_sca] (quantity 0, 1)",
                [vec![input("lambda", "nm", 200.0, 800.0)], spiral.to_vec()].concat(),
                vec![quantity],
            ),
            Kind::Spectrum => (
                "plasmonic-spectrum",
                "the plasmonic Vogel spirals, whole spectra: Q_ext and Q_sca at 100 wavelengths from 400 to 800 nm",
                spiral.to_vec(),
                vec![
                    quantity,
                    Axis::uniform("lambda", "nm", 400.0, 800.0, 100),
                ],
            ),
        };
        Self {
            spec: ProblemSpec {
                name,
                summary,
                inputs,
                fidelities,
                output: OutputSpec {
                    name: "Q".into(),
                    unit: "1".into(),
                    axes,
                },
                extras: vec![],
            },
            opts,
            kind,
        }
    }

    fn options(&self) -> Result<&Options, SolveError> {
        self.opts
            .as_ref()
            .map_err(|e| SolveError::failed(e.clone()))
    }

    fn parallel_inside(&self, level: usize) -> bool {
        self.opts.as_ref().is_ok_and(|o| {
            self.levels()
                .get(level)
                .is_some_and(|&n| n > o.dense_max_n && n > PARALLEL_MIN_N)
        })
    }

    /// Solve every wavelength of the spectrum, each iterative solve starting from the
    /// previous wavelength's fields. Returns values [Q_ext(lambda)..., Q_sca(lambda)...].
    fn solve_spectrum(
        &self,
        n: usize,
        x: &[f64],
        opts: &Options,
    ) -> Result<(Vec<f64>, BTreeMap<String, f64>), SolveError> {
        let pos = vogel_spiral(n, x[0], x[1]);
        let lambdas = spectrum_wavelengths();
        let norm = n as f64 * PI * RADIUS * RADIUS;
        let (mut ext, mut sca) = (Vec::new(), Vec::new());
        let mut guess: Option<Vec<c64>> = None;
        let (mut iterations, mut residual, mut path) = (0usize, 0.0f64, 0.0);
        for &lambda in &lambdas {
            let r = solve_array(&pos, lambda, opts, guess.as_deref())?;
            ext.push(r.cross.ext / norm);
            sca.push(r.cross.sca / norm);
            iterations += r.fields.iterations;
            residual = residual.max(r.fields.residual);
            path = path_code(r.fields.path);
            guess = Some(r.fields.e);
        }
        let diagnostics = BTreeMap::from([
            ("path".to_string(), path),
            ("iterations".to_string(), iterations as f64),
            ("residual".to_string(), residual),
            ("min_gap_nm".to_string(), min_gap(&pos)),
        ]);
        Ok(([ext, sca].concat(), diagnostics))
    }
}

fn path_code(p: Path) -> f64 {
    match p {
        Path::DenseLu => 0.0,
        Path::Cocg => 1.0,
    }
}

impl Simulator for Plasmonic {
    fn spec(&self) -> &ProblemSpec {
        &self.spec
    }

    fn solve(&self, s: &Sample) -> Result<Solution, SolveError> {
        check_sample(&self.spec, s)?;
        let opts = self.options()?;
        // The iterative path is parallel inside: its cost is the CPU of every thread.
        let inside = self.parallel_inside(s.level);
        let cpu = || {
            if inside {
                process_cpu_seconds()
            } else {
                thread_cpu_seconds()
            }
        };
        let start = cpu();
        let n = self.levels()[s.level];
        let (values, diagnostics) = match self.kind {
            Kind::Spectrum => self.solve_spectrum(n, &s.x, opts)?,
            Kind::Single => {
                let pos = vogel_spiral(n, s.x[1], s.x[2]);
                let r = solve_array(&pos, s.x[0], opts, None)?;
                let norm = n as f64 * PI * RADIUS * RADIUS;
                let ez = r
                    .fields
                    .e
                    .chunks(3)
                    .map(|e| e[2].norm())
                    .fold(0.0, f64::max);
                let diagnostics = BTreeMap::from([
                    ("path".to_string(), path_code(r.fields.path)),
                    ("iterations".to_string(), r.fields.iterations as f64),
                    ("residual".to_string(), r.fields.residual),
                    ("q_abs".to_string(), r.cross.abs / norm),
                    ("max_abs_ez".to_string(), ez),
                    ("min_gap_nm".to_string(), min_gap(&pos)),
                ]);
                (vec![r.cross.ext / norm, r.cross.sca / norm], diagnostics)
            }
        };
        Ok(Solution {
            values,
            extras: BTreeMap::new(),
            cost_s: (cpu() - start).max(0.0),
            diagnostics,
        })
    }

    /// More spheres is a different array, not a finer model of the same one.
    fn levels_refine(&self) -> bool {
        false
    }

    /// 10 000 spheres take about 40 s; a spectrum of 2000 about as long.
    fn heavy_from(&self) -> usize {
        match self.kind {
            Kind::Single => 5,
            Kind::Spectrum => 4,
        }
    }

    /// Small arrays: one sample per rayon task (the default). Arrays on the iterative path are
    /// parallel inside, so their samples run one after another.
    fn solve_batch(&self, batch: &[Sample]) -> Batch {
        let (inside, outside): (Vec<usize>, Vec<usize>) =
            (0..batch.len()).partition(|&i| self.parallel_inside(batch[i].level));
        let mut timed: Vec<Option<(Result<Solution, SolveError>, f64)>> =
            (0..batch.len()).map(|_| None).collect();
        let small: Vec<_> = outside
            .par_iter()
            .map(|&i| crate::timed_solve(self, &batch[i]))
            .collect();
        for (i, t) in outside.into_iter().zip(small) {
            timed[i] = Some(t);
        }
        for i in inside {
            let start = process_cpu_seconds();
            let r = self.solve(&batch[i]);
            timed[i] = Some((r, process_cpu_seconds() - start));
        }
        Batch::from_timed(timed.into_iter().flatten().collect())
    }
}
