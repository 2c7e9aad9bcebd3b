//! Seeded experimental designs over a problem's input box.
//!
//! Every design is a pure function of (kind, specs, n, seed): the same arguments give the
//! same bits on every machine and thread count.

use crate::{DataError, InputSpec};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DesignKind {
    /// Independent uniform draws.
    Uniform,
    /// Latin hypercube: one point per stratum in every dimension, centred jitter.
    Lhs,
    /// Owen-scrambled Sobol sequence (sobol_burley), seeded.
    Sobol,
    /// Full tensor grid including the bounds: n = k^d, or a given shape per input.
    Grid,
}

impl fmt::Display for DesignKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DesignKind::Uniform => "uniform",
            DesignKind::Lhs => "lhs",
            DesignKind::Sobol => "sobol",
            DesignKind::Grid => "grid",
        })
    }
}

impl FromStr for DesignKind {
    type Err = DataError;
    fn from_str(s: &str) -> Result<Self, DataError> {
        match s {
            "uniform" => Ok(DesignKind::Uniform),
            "lhs" => Ok(DesignKind::Lhs),
            "sobol" => Ok(DesignKind::Sobol),
            "grid" => Ok(DesignKind::Grid),
            other => Err(DataError::Design(format!(
                "unknown design {other:?} (expected sobol, lhs, uniform or grid)"
            ))),
        }
    }
}

/// Points per input of a full grid of `n` points over `d` inputs: `shape` when given (its
/// product must be n), else k per input with n = k^d.
pub fn grid_counts(n: usize, d: usize, shape: &[usize]) -> Result<Vec<usize>, DataError> {
    if !shape.is_empty() {
        if shape.len() != d {
            return Err(DataError::Design(format!(
                "a grid shape {shape:?} has {} entries for {d} inputs",
                shape.len()
            )));
        }
        let total = shape.iter().try_fold(1usize, |a, &k| a.checked_mul(k));
        if shape.contains(&0) || total != Some(n) {
            return Err(DataError::Design(format!(
                "a grid of shape {shape:?} has {} points, not n = {n}",
                total.map_or("too many".to_string(), |t| t.to_string())
            )));
        }
        return Ok(shape.to_vec());
    }
    if d == 0 {
        return Ok(vec![]);
    }
    let k = (n as f64).powf(1.0 / d as f64).round() as usize;
    if k.checked_pow(d as u32) != Some(n) {
        return Err(DataError::Design(format!(
            "a full grid over {d} inputs needs n = k^{d} points, got {n} (or give its shape per input)"
        )));
    }
    Ok(vec![k; d])
}

/// The tensor grid of `counts` points per input (bounds included), last input fastest
/// (row-major, like the output grids).
fn fill_grid(out: &mut Array2<f64>, counts: &[usize]) {
    for i in 0..out.nrows() {
        let mut rem = i;
        for j in (0..counts.len()).rev() {
            let k = counts[j];
            let idx = rem % k;
            rem /= k;
            out[[i, j]] = if k == 1 {
                0.5
            } else {
                idx as f64 / (k - 1) as f64
            };
        }
    }
}

/// A full grid of `shape` points per input over the unit cube, shape [prod, d].
pub fn unit_grid(shape: &[usize]) -> Result<Array2<f64>, DataError> {
    let n = shape.iter().product();
    let counts = grid_counts(n, shape.len(), shape)?;
    let mut out = Array2::<f64>::zeros((n, shape.len()));
    fill_grid(&mut out, &counts);
    Ok(out)
}

/// Points in the unit cube [0,1]^d, shape [n, d].
pub fn unit_design(
    kind: DesignKind,
    n: usize,
    d: usize,
    seed: u64,
) -> Result<Array2<f64>, DataError> {
    let mut out = Array2::<f64>::zeros((n, d));
    match kind {
        DesignKind::Uniform => {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            out.mapv_inplace(|_| rng.random::<f64>());
        }
        DesignKind::Lhs => {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            for j in 0..d {
                let mut perm: Vec<usize> = (0..n).collect();
                for i in (1..n).rev() {
                    perm.swap(i, rng.random_range(0..=i));
                }
                for i in 0..n {
                    out[[i, j]] = (perm[i] as f64 + rng.random::<f64>()) / n as f64;
                }
            }
        }
        DesignKind::Sobol => {
            if d > sobol_burley::NUM_DIMENSIONS as usize {
                return Err(DataError::Design(format!(
                    "Sobol design supports at most {} inputs",
                    sobol_burley::NUM_DIMENSIONS
                )));
            }
            // sobol_burley's indices are 16-bit; past that its points are unspecified.
            if n > 1 << 16 {
                return Err(DataError::Design(format!(
                    "a Sobol design has at most {} points per level (sobol_burley's 16-bit index), {n} asked for; use --design lhs or uniform for more",
                    1 << 16
                )));
            }
            // sobol_burley takes a 32-bit scramble seed; fold the 64-bit seed so nearby seeds differ.
            let s = (seed ^ (seed >> 32)) as u32;
            for i in 0..n {
                for j in 0..d {
                    out[[i, j]] = sobol_burley::sample(i as u32, j as u32, s) as f64;
                }
            }
        }
        DesignKind::Grid => {
            let counts = grid_counts(n, d, &[])?;
            fill_grid(&mut out, &counts);
        }
    }
    Ok(out)
}

/// A design over the problem's input box, shape [n, d], honouring each input's scale.
pub fn design(
    kind: DesignKind,
    specs: &[InputSpec],
    n: usize,
    seed: u64,
) -> Result<Array2<f64>, DataError> {
    design_shaped(kind, specs, n, seed, &[])
}

/// [`design`] with a grid's points per input (`grid_shape`, used by [`DesignKind::Grid`] only;
/// empty = n^(1/d) per input). The grid ignores the seed, so every level gets the same points.
pub fn design_shaped(
    kind: DesignKind,
    specs: &[InputSpec],
    n: usize,
    seed: u64,
    grid_shape: &[usize],
) -> Result<Array2<f64>, DataError> {
    let mut pts = match kind {
        DesignKind::Grid if !grid_shape.is_empty() => {
            grid_counts(n, specs.len(), grid_shape)?;
            unit_grid(grid_shape)?
        }
        _ => unit_design(kind, n, specs.len(), seed)?,
    };
    for (j, spec) in specs.iter().enumerate() {
        pts.column_mut(j).mapv_inplace(|u| spec.from_unit(u));
    }
    Ok(pts)
}

/// Seed of the design at one fidelity level: each level gets its own stream so that
/// high-fidelity inputs are not a copy of the low-fidelity ones.
pub fn level_seed(seed: u64, level: usize) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(level as u64 + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lhs_has_one_point_per_stratum() {
        let p = unit_design(DesignKind::Lhs, 17, 3, 5).unwrap();
        for j in 0..3 {
            let mut strata: Vec<usize> = p.column(j).iter().map(|u| (u * 17.0) as usize).collect();
            strata.sort();
            assert_eq!(strata, (0..17).collect::<Vec<_>>());
        }
    }

    #[test]
    fn sobol_first_2k_points_fill_each_dyadic_interval() {
        // A (0,m,d)-net property per dimension: 2^k points, one in each [i/2^k, (i+1)/2^k).
        let p = unit_design(DesignKind::Sobol, 64, 2, 11).unwrap();
        for j in 0..2 {
            let mut bins: Vec<usize> = p.column(j).iter().map(|u| (u * 64.0) as usize).collect();
            bins.sort();
            assert_eq!(bins, (0..64).collect::<Vec<_>>());
        }
    }

    #[test]
    fn a_sobol_design_past_its_index_range_is_refused_naming_the_way_out() {
        let full = unit_design(DesignKind::Sobol, 1 << 16, 1, 0).unwrap();
        assert_eq!(full.nrows(), 65536);
        let e = unit_design(DesignKind::Sobol, (1 << 16) + 1, 1, 0)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("at most 65536") && e.contains("65537") && e.contains("lhs"),
            "{e}"
        );
    }

    #[test]
    fn designs_are_reproducible_and_seed_dependent() {
        for kind in [DesignKind::Uniform, DesignKind::Lhs, DesignKind::Sobol] {
            let a = unit_design(kind, 10, 2, 3).unwrap();
            let b = unit_design(kind, 10, 2, 3).unwrap();
            let c = unit_design(kind, 10, 2, 4).unwrap();
            assert_eq!(a, b);
            assert_ne!(a, c);
        }
    }

    #[test]
    fn grid_requires_a_power() {
        assert!(unit_design(DesignKind::Grid, 10, 2, 0).is_err());
        let g = unit_design(DesignKind::Grid, 9, 2, 0).unwrap();
        assert_eq!(g.row(0).to_vec(), vec![0.0, 0.0]);
        assert_eq!(g.row(1).to_vec(), vec![0.0, 0.5]);
        assert_eq!(g.row(8).to_vec(), vec![1.0, 1.0]);
    }

    #[test]
    fn a_shaped_grid_has_its_counts_per_input_and_refuses_a_wrong_total() {
        // The DMF paper's MD design: 6 temperatures x 19 densities.
        let g = unit_grid(&[6, 19]).unwrap();
        assert_eq!(g.nrows(), 114);
        assert_eq!(g.row(1).to_vec(), vec![0.0, 1.0 / 18.0]);
        assert_eq!(g.row(19).to_vec(), vec![0.2, 0.0]);
        assert_eq!(g.row(113).to_vec(), vec![1.0, 1.0]);
        assert!(grid_counts(100, 2, &[6, 19]).is_err());
        assert!(grid_counts(114, 3, &[6, 19]).is_err());
        assert!(grid_counts(0, 2, &[0, 19]).is_err());
    }

    #[test]
    fn log_scale_maps_geometrically() {
        let s = InputSpec {
            name: "a",
            unit: "",
            lower: 1e-3,
            upper: 1e-1,
            scale: crate::Scale::Log,
        };
        approx::assert_relative_eq!(s.from_unit(0.5), 1e-2, max_relative = 1e-12);
    }
}
