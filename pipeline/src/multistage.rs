//! The multi-stage CEM-GMsFEM paper's experiments (Tables 1-4, 6-7, 12-13): the
//! `multistage` network (mfpipe_fusion::multistage) trained stage by stage on a dataset's
//! extras — the reduced inputs the CEM solver stores — towards another extra (the coarse
//! coefficients u_H, or the coarse-cell means of the fine solution), with stage-wise test
//! errors (the paper's eq. (7)) for every input scheme x attention variant x seed.
//!
//! Two reference points go with them: the paper's own baseline, predicting the training mean,
//! and an affine least-squares fit of the target on the problem's inputs (the PDE parameters
//! x). The second is ours: for the linear heat problem the target is exactly affine in the
//! five source parameters, and a model that needs the solver's reduced source to get within a
//! few per cent should be measured against it.

use crate::config::StageScheme;
use crate::export::Exporter;
use crate::util::{finite_mean_std, write_text};
use anyhow::{bail, Context, Result};
use mfpipe_data::dataset::{Dataset, LevelData, STATUS_OK};
use mfpipe_data::Progress;
use mfpipe_fusion::multistage::{mean_relative_l2, train_stages, MultistageParams, StageResult};
use ndarray::{Array2, Array3, Axis};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::fmt::Write as _;
use std::path::Path;

/// One trained network: its scheme, variant, seed and stage results.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub scheme: String,
    /// (m1, r1), or None without attention.
    pub attention: Option<[usize; 2]>,
    pub seed: u64,
    pub stages: Vec<StageResult>,
}

/// Everything the exporters need.
#[derive(Debug, Clone, Serialize)]
pub struct Multistage {
    pub problem: String,
    pub level: usize,
    pub target: String,
    /// Values of the target per sample.
    pub target_len: usize,
    pub n_train: usize,
    pub n_test: usize,
    pub params: MultistageParams,
    pub schemes: Vec<StageScheme>,
    /// Mean relative l2 test error of predicting the training mean.
    pub mean_baseline: f64,
    /// The same for an affine least-squares fit on the inputs x.
    pub affine_baseline: f64,
    pub runs: Vec<Run>,
}

/// An extra as [N, T, F]: per-sample shape [T, a, b] gives T time levels of a b features,
/// [a, b] (or [a]) one level.
fn extra_3d(level: &LevelData, name: &str) -> Result<Array3<f64>> {
    let e = level
        .extras
        .iter()
        .find(|e| e.name == name)
        .with_context(|| {
            let have: Vec<&str> = level.extras.iter().map(|e| e.name.as_str()).collect();
            format!(
                "level {} has no extra {name:?} (it has: {})",
                level.level,
                have.join(", ")
            )
        })?;
    let n = e.values.nrows();
    let (t, f) = if e.shape.len() >= 3 {
        (e.shape[0], e.shape[1..].iter().product())
    } else {
        (1, e.shape.iter().product())
    };
    Ok(e.values
        .clone()
        .into_shape_with_order((n, t, f))
        .expect("extras are [N, prod(shape)]"))
}

/// The stage input of `names` side by side along the features.
fn stage_input(level: &LevelData, names: &[String]) -> Result<Array3<f64>> {
    let parts: Vec<Array3<f64>> = names
        .iter()
        .map(|n| extra_3d(level, n))
        .collect::<Result<_>>()?;
    if parts.iter().any(|p| p.dim().1 != parts[0].dim().1) {
        bail!(
            "the extras {} have different numbers of time levels",
            names.join(", ")
        );
    }
    let views: Vec<_> = parts.iter().map(|p| p.view()).collect();
    Ok(ndarray::concatenate(Axis(2), &views).expect("same samples and time levels"))
}

/// Affine least squares y ~ [1, x] b on the training rows (normal equations, ridge 1e-12 of
/// the diagonal for safety); the predictions on `x_test`.
fn affine_fit(x: &Array2<f64>, y: &Array2<f64>, x_test: &Array2<f64>) -> Array2<f64> {
    let with_one = |a: &Array2<f64>| {
        let mut b = Array2::ones((a.nrows(), a.ncols() + 1));
        b.slice_mut(ndarray::s![.., 1..]).assign(a);
        b
    };
    let (a, at) = (with_one(x), with_one(x_test));
    let k = a.ncols();
    let mut m = nalgebra::DMatrix::from_fn(k, k, |i, j| a.column(i).dot(&a.column(j)));
    let scale = (0..k).map(|i| m[(i, i)]).fold(0.0f64, f64::max);
    for i in 0..k {
        m[(i, i)] += 1e-12 * scale;
    }
    let rhs = nalgebra::DMatrix::from_fn(k, y.ncols(), |i, j| a.column(i).dot(&y.column(j)));
    let coef = m
        .cholesky()
        .map(|c| c.solve(&rhs))
        .unwrap_or_else(|| nalgebra::DMatrix::zeros(k, y.ncols()));
    Array2::from_shape_fn((at.nrows(), y.ncols()), |(r, j)| {
        (0..k).map(|i| at[[r, i]] * coef[(i, j)]).sum()
    })
}

/// What to run: target extra, training and test counts, seeds, (m1, r1) variants, schemes,
/// network parameters (the fields of the config's `[study]`).
pub type Plan<'a> = (
    &'a str,
    usize,
    usize,
    &'a [u64],
    &'a [[usize; 2]],
    &'a [StageScheme],
    &'a MultistageParams,
);

/// Run the study on level `level` of `ds`.
pub fn run(
    ds: &Dataset,
    level: usize,
    (target, n_train, n_test, seeds, attention, schemes, params): Plan,
    data_seed: u64,
    progress: &dyn Progress,
) -> Result<Multistage> {
    let lv = ds
        .level(level)
        .with_context(|| format!("the dataset has no level {level}"))?;
    let ok: Vec<usize> = (0..lv.status.len())
        .filter(|&i| lv.status[i] == STATUS_OK)
        .collect();
    if ok.len() < n_train + n_test {
        bail!(
            "level {level} has {} solved samples; the study needs {n_train} training + {n_test} test",
            ok.len()
        );
    }
    // One split for every scheme, variant and seed (the seeds vary the networks).
    let mut order = ok;
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(data_seed ^ 0x6d73));
    let (tr, te) = (&order[..n_train], &order[n_train..n_train + n_test]);
    let take2 = |a: &Array2<f64>, idx: &[usize]| a.select(Axis(0), idx);
    let take3 = |a: &Array3<f64>, idx: &[usize]| a.select(Axis(0), idx);
    let y_all = extra_3d(lv, target)?;
    let y_all = y_all
        .clone()
        .into_shape_with_order((y_all.dim().0, y_all.dim().1 * y_all.dim().2))
        .expect("contiguous");
    let (y_tr, y_te) = (take2(&y_all, tr), take2(&y_all, te));
    let mean = y_tr.mean_axis(Axis(0)).expect("non-empty");
    let mean_baseline =
        mean_relative_l2(&y_te, &Array2::from_shape_fn(y_te.dim(), |(_, j)| mean[j]));
    let affine_baseline = mean_relative_l2(
        &y_te,
        &affine_fit(&take2(&lv.inputs, tr), &y_tr, &take2(&lv.inputs, te)),
    );
    let variants: Vec<Option<[usize; 2]>> = if attention.is_empty() {
        vec![None]
    } else {
        attention.iter().map(|a| Some(*a)).collect()
    };
    let total = schemes.len() * variants.len() * seeds.len();
    progress.start("multistage networks", total as u64);
    let mut runs = Vec::new();
    for scheme in schemes {
        let inputs: Vec<Array3<f64>> = scheme
            .stages
            .iter()
            .map(|names| stage_input(lv, names))
            .collect::<Result<_>>()
            .with_context(|| format!("scheme {:?}", scheme.name))?;
        let train_in: Vec<Array3<f64>> = inputs.iter().map(|a| take3(a, tr)).collect();
        let test_in: Vec<Array3<f64>> = inputs.iter().map(|a| take3(a, te)).collect();
        for v in &variants {
            for &seed in seeds {
                let stages = train_stages(
                    &train_in,
                    &y_tr,
                    &test_in,
                    &y_te,
                    v.map(|[m1, r1]| (m1, r1)),
                    params,
                    seed,
                )
                .with_context(|| {
                    format!("scheme {:?}, attention {v:?}, seed {seed}", scheme.name)
                })?;
                runs.push(Run {
                    scheme: scheme.name.clone(),
                    attention: *v,
                    seed,
                    stages,
                });
                progress.advance(1);
            }
        }
    }
    progress.finish();
    Ok(Multistage {
        problem: ds.meta.problem.clone(),
        level,
        target: target.into(),
        target_len: y_tr.ncols(),
        n_train,
        n_test,
        params: params.clone(),
        schemes: schemes.to_vec(),
        mean_baseline,
        affine_baseline,
        runs,
    })
}

/// multistage.json: the whole study.
pub struct MultistageJson;

impl Exporter<Multistage> for MultistageJson {
    fn export(&self, s: &Multistage, dir: &Path) -> Result<Vec<String>> {
        write_text(
            &dir.join("multistage.json"),
            &serde_json::to_string_pretty(s)?,
        )?;
        Ok(vec!["multistage.json".into()])
    }
}

/// report.md: one table per scheme, rows = attention variants, columns = stages.
pub struct MultistageMarkdown;

impl Exporter<Multistage> for MultistageMarkdown {
    fn export(&self, s: &Multistage, dir: &Path) -> Result<Vec<String>> {
        let mut md = String::new();
        let _ = writeln!(
            md,
            "# mfpipe study: multi-stage learning on `{}` (multi-stage CEM-GMsFEM paper)\n",
            s.problem
        );
        let p = &s.params;
        let _ = writeln!(
            md,
            "Target: the extra `{}` of level {} ({} values per sample). {} training and {} test samples (one split for every network). Each stage: {} epochs of Adam (lr {}, batch {}) on the L1 loss of standardised targets; attention width {} with {} heads. Errors: the paper's eq. (7), ||u_H - u_learned||_2 / ||u_H||_2 per test sample, averaged; mean (± std over {} seed(s)).\n",
            s.target,
            s.level,
            s.target_len,
            s.n_train,
            s.n_test,
            p.epochs,
            p.lr,
            p.batch,
            p.d_model,
            p.heads,
            s.runs.iter().map(|r| r.seed).collect::<std::collections::BTreeSet<_>>().len()
        );
        let _ = writeln!(
            md,
            "Reference points on the same test samples: predicting the training mean (the paper's baseline) **{:.5}**; an affine least-squares fit on the problem's inputs x **{:.3e}**.\n",
            s.mean_baseline, s.affine_baseline
        );
        for scheme in &s.schemes {
            let stages: Vec<String> = scheme
                .stages
                .iter()
                .map(|names| names.join(" + "))
                .collect();
            let _ = writeln!(md, "## Scheme `{}`\n", scheme.name);
            for (k, st) in stages.iter().enumerate() {
                let _ = writeln!(md, "- stage {}: {}", k + 1, st);
            }
            let k = scheme.stages.len();
            let mut head = "\n| (m1, r1) |".to_string();
            let mut rule = "|---|".to_string();
            for j in 1..=k {
                let _ = write!(head, " stage {j} error |");
                rule.push_str("---|");
            }
            head.push_str(" parameters (last stage) | seconds |");
            rule.push_str("---|---|");
            let _ = writeln!(md, "{head}\n{rule}");
            let mut variants: Vec<Option<[usize; 2]>> = Vec::new();
            for r in s.runs.iter().filter(|r| r.scheme == scheme.name) {
                if !variants.contains(&r.attention) {
                    variants.push(r.attention);
                }
            }
            for v in variants {
                let runs: Vec<&Run> = s
                    .runs
                    .iter()
                    .filter(|r| r.scheme == scheme.name && r.attention == v)
                    .collect();
                let label = v.map_or("none".to_string(), |[a, b]| format!("({a}, {b})"));
                let mut row = format!("| {label} |");
                for j in 0..k {
                    let e: Vec<f64> = runs.iter().map(|r| r.stages[j].test_error).collect();
                    let (m, sd) = finite_mean_std(&e);
                    let _ = write!(row, " {m:.5} ± {sd:.1e} |");
                }
                let params = runs.first().map_or(0, |r| r.stages[k - 1].parameters);
                let secs: f64 = runs
                    .iter()
                    .flat_map(|r| r.stages.iter().map(|s| s.seconds))
                    .sum();
                let _ = write!(row, " {params} | {secs:.1} |");
                let _ = writeln!(md, "{row}");
            }
            let _ = writeln!(md);
        }
        write_text(&dir.join("report.md"), &md)?;
        Ok(vec!["report.md".into()])
    }
}

pub const MULTISTAGE_EXPORTERS: [&dyn Exporter<Multistage>; 2] =
    [&MultistageJson, &MultistageMarkdown];
