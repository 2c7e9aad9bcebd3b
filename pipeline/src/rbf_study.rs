//! `pipeline rbf-study`: the positive-definiteness study of the gradient-only paper (Wilke,
//! arXiv 2404.14456) with the `rbf-f`, `rbf-fg` and `rbf-g` surrogates.
//!
//! Data: f(x) = x^2 at 121 points spread evenly over [-2, 2]. Model: y = w1 x + w2, fitted
//! by mean squared error, so the loss is a convex quadratic in w = (w1, w2) whose minimiser
//! moves with the data it is computed on (the paper does not spell out its model; this one
//! makes every mini-batch loss positive definite while their minima disagree). The loss is
//! sampled on a 25 x 25 grid of w in [-2, 2]^2 with dynamic mini-batch sub-sampling: every
//! grid point draws its own mini-batch (sizes 3 and 30, and the full batch of 121 as the
//! control), so neighbouring values come from different loss functions while every gradient
//! still points away from its batch's minimum. On these 625 observations the three
//! surrogates are fitted with 100 Gaussian basis functions on a 10 x 10 grid of centres
//! (at least six observations per basis function), for shape parameters log-spaced from
//! 1e-4 to 1e5, over several draws of the mini-batches.
//!
//! A surrogate counts as positive definite when its Hessian is positive definite at every
//! grid point (the true loss's is, everywhere); the report also gives the count at the
//! surrogate's own minimiser over the grid and how far that lands from the full-batch
//! minimiser.
//!
//! The sweep over shape parameters shows where each construction can be convex at all; a
//! user of an RBF surrogate would instead pick one shape parameter from the data. The second
//! table does that: per construction and draw, the shape parameter with the smallest 5-fold
//! cross-validation error on the construction's own observations (values, gradient
//! components, or both; folds are sets of grid points), and the definiteness of the
//! surrogate refitted on all points with it.

use crate::export::Exporter;
use crate::util::write_text;
use anyhow::Result;
use mfpipe_fusion::rbf::{Construction, Rbf};
use ndarray::{Array1, Array2, Axis};
use rand::seq::index::sample;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::Serialize;
use std::fmt::Write as _;
use std::path::Path;

const N_DATA: usize = 121;
const GRID: usize = 25;
const CENTRES: usize = 10;
const FOLDS: usize = 5;

pub struct Settings {
    pub batches: Vec<usize>,
    pub shapes: Vec<f64>,
    pub seeds: Vec<u64>,
}

impl Settings {
    pub fn paper() -> Self {
        Self {
            batches: vec![3, 30, N_DATA],
            shapes: (0..=18)
                .map(|i| 10f64.powf(-4.0 + 0.5 * i as f64))
                .collect(),
            seeds: (0..5).collect(),
        }
    }
    pub fn smoke() -> Self {
        Self {
            batches: vec![3, N_DATA],
            shapes: vec![1e-2, 1e0, 1e2],
            seeds: vec![0],
        }
    }
}

#[derive(Serialize)]
pub struct Row {
    pub batch: usize,
    pub seed: u64,
    pub shape: f64,
    pub surrogate: &'static str,
    /// Hessian positive definite at all 625 grid points.
    pub pd_everywhere: bool,
    /// Hessian positive definite at the surrogate's minimiser over the grid.
    pub pd_at_minimiser: bool,
    /// Smallest Hessian eigenvalue over the grid.
    pub min_curvature: f64,
    /// Distance from the surrogate's grid minimiser to the full-batch minimiser.
    pub minimiser_error: f64,
    /// 5-fold cross-validation error (sum of squared held-out residuals of the observations
    /// this construction uses).
    pub cv_error: f64,
    /// This shape parameter has the smallest `cv_error` of the sweep for this batch, draw
    /// and construction.
    pub cv_choice: bool,
}

fn linspace(a: f64, b: f64, n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| a + (b - a) * i as f64 / (n - 1) as f64)
        .collect()
}

/// Loss and gradient of y = w1 x + w2 on the samples `idx`.
fn loss(x: &[f64], idx: &[usize], w: [f64; 2]) -> (f64, [f64; 2]) {
    let m = idx.len() as f64;
    let (mut l, mut g) = (0.0, [0.0, 0.0]);
    for &i in idx {
        let r = w[0] * x[i] + w[1] - x[i] * x[i];
        l += r * r / m;
        g[0] += 2.0 * r * x[i] / m;
        g[1] += 2.0 * r / m;
    }
    (l, g)
}

/// The minimiser of the full-batch loss (normal equations of the straight-line fit).
fn full_minimiser(x: &[f64]) -> [f64; 2] {
    let n = x.len() as f64;
    let (sx, sxx) = (x.iter().sum::<f64>(), x.iter().map(|v| v * v).sum::<f64>());
    let (sy, sxy) = (sxx, x.iter().map(|v| v * v * v).sum::<f64>());
    let det = n * sxx - sx * sx;
    [(n * sxy - sx * sy) / det, (sxx * sy - sx * sxy) / det]
}

pub fn run(s: &Settings) -> Result<Vec<Row>> {
    let x = linspace(-2.0, 2.0, N_DATA);
    let ws: Vec<[f64; 2]> = linspace(-2.0, 2.0, GRID)
        .iter()
        .flat_map(|&a| linspace(-2.0, 2.0, GRID).into_iter().map(move |b| [a, b]))
        .collect();
    let points = Array2::from_shape_fn((ws.len(), 2), |(i, j)| ws[i][j]);
    let cgrid = linspace(-2.0, 2.0, CENTRES);
    let centres = Array2::from_shape_fn((CENTRES * CENTRES, 2), |(i, j)| {
        cgrid[if j == 0 { i / CENTRES } else { i % CENTRES }]
    });
    let w_star = full_minimiser(&x);
    let cases: Vec<(usize, u64)> = s
        .batches
        .iter()
        .flat_map(|&b| s.seeds.iter().map(move |&seed| (b, seed)))
        .collect();
    // One task per (batch, draw); each draws from its own seeded stream, so the rows do not
    // depend on the thread count.
    let per_case: Vec<Vec<Row>> = cases
        .par_iter()
        .map(|&(batch, seed)| -> Result<Vec<Row>> {
            // Dynamic mini-batch sub-sampling: a fresh batch at every grid point.
            let mut rng =
                ChaCha8Rng::seed_from_u64(seed.wrapping_mul(1000).wrapping_add(batch as u64));
            let mut values = Array1::zeros(ws.len());
            let mut grads = Array2::zeros((ws.len(), 2));
            for (i, w) in ws.iter().enumerate() {
                let idx = sample(&mut rng, N_DATA, batch.min(N_DATA)).into_vec();
                let (l, g) = loss(&x, &idx, *w);
                values[i] = l;
                grads[[i, 0]] = g[0];
                grads[[i, 1]] = g[1];
            }
            let all: Vec<usize> = (0..ws.len()).collect();
            let mut order = all.clone();
            order.shuffle(&mut rng);
            let data = Data {
                ws: &ws,
                points: &points,
                centres: &centres,
                values: &values,
                grads: &grads,
            };
            let mut rows = Vec::new();
            for kind in Construction::ALL {
                let first = rows.len();
                for &shape in &s.shapes {
                    let rbf = data.fit(kind, shape, &all)?;
                    let curv: Vec<f64> = ws.iter().map(|w| rbf.min_curvature(w)).collect();
                    let at_min = ws
                        .iter()
                        .enumerate()
                        .map(|(i, w)| (rbf.value(w), i))
                        .min_by(|a, b| a.0.total_cmp(&b.0))
                        .map(|(_, i)| i)
                        .expect("grid points");
                    let wm = ws[at_min];
                    rows.push(Row {
                        batch,
                        seed,
                        shape,
                        surrogate: kind.name(),
                        pd_everywhere: curv.iter().all(|c| *c > 0.0),
                        pd_at_minimiser: curv[at_min] > 0.0,
                        min_curvature: curv.iter().cloned().fold(f64::INFINITY, f64::min),
                        minimiser_error: ((wm[0] - w_star[0]).powi(2)
                            + (wm[1] - w_star[1]).powi(2))
                        .sqrt(),
                        cv_error: data.cv_error(kind, shape, &order)?,
                        cv_choice: false,
                    });
                }
                // The first of equal minima: the smoother surrogate wins a tie.
                let best = (first..rows.len())
                    .min_by(|&a, &b| rows[a].cv_error.total_cmp(&rows[b].cv_error))
                    .expect("at least one shape parameter");
                rows[best].cv_choice = true;
            }
            Ok(rows)
        })
        .collect::<Result<_>>()?;
    Ok(per_case.into_iter().flatten().collect())
}

/// The observations of one (batch, draw).
struct Data<'a> {
    ws: &'a [[f64; 2]],
    points: &'a Array2<f64>,
    centres: &'a Array2<f64>,
    values: &'a Array1<f64>,
    grads: &'a Array2<f64>,
}

impl Data<'_> {
    /// The surrogate fitted on the grid points `rows`.
    fn fit(&self, kind: Construction, shape: f64, rows: &[usize]) -> Result<Rbf> {
        Ok(Rbf::fit(
            kind,
            self.centres.view(),
            shape,
            self.points.select(Axis(0), rows).view(),
            self.values.select(Axis(0), rows).view(),
            self.grads.select(Axis(0), rows).view(),
        )?)
    }

    /// Sum of squared residuals on held-out grid points over `FOLDS` folds (`order` is a
    /// permutation of the grid points; fold k holds every FOLDS-th of it from k).
    fn cv_error(&self, kind: Construction, shape: f64, order: &[usize]) -> Result<f64> {
        let mut err = 0.0;
        for k in 0..FOLDS {
            let held: Vec<usize> = order.iter().copied().skip(k).step_by(FOLDS).collect();
            let kept: Vec<usize> = order
                .iter()
                .enumerate()
                .filter(|(j, _)| j % FOLDS != k)
                .map(|(_, &i)| i)
                .collect();
            let rbf = self.fit(kind, shape, &kept)?;
            for i in held {
                let w = &self.ws[i];
                if kind.uses_values() {
                    err += (rbf.value(w) - self.values[i]).powi(2);
                }
                if kind.uses_gradients() {
                    let g = rbf.gradient(w);
                    err +=
                        (g[0] - self.grads[[i, 0]]).powi(2) + (g[1] - self.grads[[i, 1]]).powi(2);
                }
            }
        }
        Ok(err)
    }
}

/// The study's outcome: every fitted surrogate's row, the settings and the wall time.
pub struct RbfStudy {
    pub rows: Vec<Row>,
    pub settings: Settings,
    pub wall_s: f64,
}

/// results.json: one object per fitted surrogate.
pub struct RowsJson;

impl Exporter<RbfStudy> for RowsJson {
    fn export(&self, st: &RbfStudy, dir: &Path) -> Result<Vec<String>> {
        write_text(
            &dir.join("results.json"),
            &(serde_json::to_string_pretty(&st.rows)? + "\n"),
        )?;
        Ok(vec!["results.json".into()])
    }
}

/// report.md: the positive-definiteness table per batch size and surrogate, then per shape
/// parameter.
pub struct RbfMarkdown;

impl Exporter<RbfStudy> for RbfMarkdown {
    fn export(&self, st: &RbfStudy, dir: &Path) -> Result<Vec<String>> {
        let (rows, s, wall_s) = (&st.rows, &st.settings, st.wall_s);
        let mut md = String::new();
        let _ = writeln!(md, "# Gradient-only surrogates: positive definiteness\n");
        let _ = writeln!(md, "Loss of y = w1 x + w2 fitted to f(x) = x² on {N_DATA} points in [-2, 2], sampled on a {GRID} x {GRID} grid of w in [-2, 2]² with a fresh mini-batch at every grid point; Gaussian RBF surrogates with {} centres; {} shape parameters from {:.0e} to {:.0e}; {} mini-batch draws. A surrogate is positive definite (PD) when its Hessian is PD at every grid point. Wall time {wall_s:.1} s.\n", CENTRES * CENTRES, s.shapes.len(), s.shapes[0], s.shapes[s.shapes.len() - 1], s.seeds.len());
        let _ = writeln!(md, "| mini-batch | surrogate | PD everywhere | PD at its minimiser | median distance of its minimiser from the full-batch one |\n|---|---|---|---|---|");
        for &b in &s.batches {
            for kind in Construction::ALL {
                let sel: Vec<&Row> = rows
                    .iter()
                    .filter(|r| r.batch == b && r.surrogate == kind.name())
                    .collect();
                let mut d: Vec<f64> = sel.iter().map(|r| r.minimiser_error).collect();
                d.sort_by(f64::total_cmp);
                let label = if b == N_DATA {
                    format!("{b} (full)")
                } else {
                    b.to_string()
                };
                let _ = writeln!(
                    md,
                    "| {label} | {} | {} of {} | {} of {} | {:.3} |",
                    kind.name(),
                    sel.iter().filter(|r| r.pd_everywhere).count(),
                    sel.len(),
                    sel.iter().filter(|r| r.pd_at_minimiser).count(),
                    sel.len(),
                    d.get(d.len() / 2).copied().unwrap_or(f64::NAN)
                );
            }
        }
        let _ = writeln!(md, "\n## Shape parameter chosen by cross-validation\n\nPer construction and draw, the shape parameter with the smallest {FOLDS}-fold cross-validation error on the construction's own observations, then the surrogate refitted on all grid points with it.\n");
        let _ = writeln!(md, "| mini-batch | surrogate | PD everywhere | PD at its minimiser | median chosen shape parameter | median distance of its minimiser from the full-batch one |\n|---|---|---|---|---|---|");
        for &b in &s.batches {
            for kind in Construction::ALL {
                let sel: Vec<&Row> = rows
                    .iter()
                    .filter(|r| r.batch == b && r.surrogate == kind.name() && r.cv_choice)
                    .collect();
                let median = |mut v: Vec<f64>| {
                    v.sort_by(f64::total_cmp);
                    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
                };
                let _ = writeln!(
                    md,
                    "| {b} | {} | {} of {} | {} of {} | {:.0e} | {:.3} |",
                    kind.name(),
                    sel.iter().filter(|r| r.pd_everywhere).count(),
                    sel.len(),
                    sel.iter().filter(|r| r.pd_at_minimiser).count(),
                    sel.len(),
                    median(sel.iter().map(|r| r.shape).collect()),
                    median(sel.iter().map(|r| r.minimiser_error).collect()),
                );
            }
        }
        let _ = writeln!(
            md,
            "\n## By shape parameter\n\nPD everywhere, counted over the mini-batch draws.\n"
        );
        for &b in &s.batches {
            let _ = writeln!(md, "\n### Mini-batch {b}\n\n| shape parameter | rbf-f | rbf-fg | rbf-g |\n|---|---|---|---|");
            for &eps in &s.shapes {
                let cell = |k: Construction| {
                    let sel: Vec<&Row> = rows
                        .iter()
                        .filter(|r| r.batch == b && r.shape == eps && r.surrogate == k.name())
                        .collect();
                    format!(
                        "{}/{}",
                        sel.iter().filter(|r| r.pd_everywhere).count(),
                        sel.len()
                    )
                };
                let _ = writeln!(
                    md,
                    "| {eps:.0e} | {} | {} | {} |",
                    cell(Construction::Values),
                    cell(Construction::ValuesAndGradients),
                    cell(Construction::Gradients)
                );
            }
        }
        write_text(&dir.join("report.md"), &md)?;
        Ok(vec!["report.md".into()])
    }
}

/// Every output of the study.
pub const EXPORTERS: [&dyn Exporter<RbfStudy>; 2] = [&RowsJson, &RbfMarkdown];
