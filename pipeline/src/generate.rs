//! Dataset generation: a seeded design per level, solves in parallel, and crash safety.
//!
//! The destination file is always a complete, valid HDF5 snapshot (written atomically):
//! at the start every sample is marked "not yet computed" (status 2), and only the final
//! write marks them done. Finished samples go to an append-only journal next to the file as
//! they complete, so a killed run keeps them and `--resume` neither recomputes nor
//! duplicates any. The result does not depend on where a run was interrupted.

use crate::progress::Bar;
use anyhow::{bail, Context, Result};
use mfpipe_data::dataset::{
    Dataset, LevelData, Meta, Shard, STATUS_FAILED, STATUS_OK, STATUS_PENDING,
};
use mfpipe_data::design::{self, DesignKind};
use mfpipe_data::journal::{self, Journal, Record};
use mfpipe_data::{h5, Progress};
use mfpipe_solvers::Simulator;
use ndarray::{Array1, Array2};
use rayon::prelude::*;
use std::path::Path;

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct GenSpec {
    pub design: DesignKind,
    pub seed: u64,
    pub levels: Vec<usize>,
    pub n: Vec<usize>,
    /// Compute only this shard's samples (the file still holds the whole design).
    pub shard: Option<Shard>,
}

pub fn generator_id() -> String {
    format!(
        "mfpipe {} (git {})",
        env!("CARGO_PKG_VERSION"),
        env!("MFPIPE_GIT_REV")
    )
}

/// The dataset with inputs filled in and every sample pending.
pub fn skeleton(sim: &dyn Simulator, spec: &GenSpec) -> Result<Dataset> {
    let out = sim.output();
    let d_out = out.len();
    let specs = sim.inputs();
    let meta = Meta {
        problem: sim.name().to_string(),
        created: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        generator: generator_id(),
        seed: spec.seed,
        design: spec.design.to_string(),
        input_names: specs.iter().map(|s| s.name.to_string()).collect(),
        input_units: specs.iter().map(|s| s.unit.to_string()).collect(),
        input_lower: specs.iter().map(|s| s.lower).collect(),
        input_upper: specs.iter().map(|s| s.upper).collect(),
        output_name: out.name.clone(),
        output_unit: out.unit.clone(),
        axes: out.axes.clone(),
        shard: spec.shard,
    };
    let mut levels = Vec::new();
    for (&level, &n) in spec.levels.iter().zip(&spec.n) {
        let fid = sim.fidelity(&level.to_string())?.clone();
        let inputs = design::design(spec.design, specs, n, design::level_seed(spec.seed, level))?;
        levels.push(LevelData {
            level,
            name: fid.name,
            description: fid.description,
            settings: fid.settings,
            inputs,
            outputs: Array2::from_elem((n, d_out), f64::NAN),
            cost_s: Array1::zeros(n),
            status: Array1::from_elem(n, STATUS_PENDING),
            role: None,
        });
    }
    Ok(Dataset { meta, levels })
}

/// Whether two files come from the same run (so one may be resumed, reused or merged with
/// the other): problem, seed, design, grid, levels and every input bit for bit. Which shard
/// a file holds is not compared here.
pub fn same_run(a: &Dataset, b: &Dataset) -> bool {
    a.meta.problem == b.meta.problem
        && a.meta.seed == b.meta.seed
        && a.meta.design == b.meta.design
        && a.meta.axes == b.meta.axes
        && a.levels.len() == b.levels.len()
        && a.levels.iter().zip(&b.levels).all(|(x, y)| {
            x.level == y.level
                && x.inputs.dim() == y.inputs.dim()
                && x.inputs
                    .iter()
                    .zip(y.inputs.iter())
                    .all(|(p, q)| p.to_bits() == q.to_bits())
        })
}

pub struct GenSummary {
    pub dataset: Dataset,
    pub computed: usize,
    pub reused: usize,
}

/// Generate (or, with `resume`, finish) the dataset at `out`.
pub fn generate(
    sim: &dyn Simulator,
    spec: &GenSpec,
    out: &Path,
    resume: bool,
) -> Result<GenSummary> {
    for &l in &spec.levels {
        mfpipe_solvers::check_level(sim, l)?;
    }
    let mut ds = skeleton(sim, spec)?;
    let jpath = journal::journal_path(out);
    let mut reused = 0;
    if out.exists() {
        if !resume {
            bail!(
                "{} already exists; pass --resume to finish it, or remove it",
                out.display()
            );
        }
        let old = crate::isolate::read(out)
            .with_context(|| format!("cannot resume {}", out.display()))?;
        if !same_run(&ds, &old) {
            bail!("cannot resume {}: it was generated with a different problem, seed, design, levels or sample counts", out.display());
        }
        if old.meta.shard != ds.meta.shard {
            bail!(
                "cannot resume {}: it holds {}, not {}",
                out.display(),
                shard_name(old.meta.shard),
                shard_name(ds.meta.shard)
            );
        }
        ds.meta.created = old.meta.created.clone();
        for (new, old) in ds.levels.iter_mut().zip(&old.levels) {
            for i in 0..new.len() {
                if old.status[i] != STATUS_PENDING {
                    new.status[i] = old.status[i];
                    new.cost_s[i] = old.cost_s[i];
                    new.outputs.row_mut(i).assign(&old.outputs.row(i));
                    reused += 1;
                }
            }
        }
    } else {
        // No snapshot means no run to continue: a stray journal is stale.
        let _ = std::fs::remove_file(&jpath);
        if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        h5::write(out, &ds)?;
    }
    let fp = journal::fingerprint(&ds);
    let (mut jr, records) = Journal::open(&jpath, fp)?;
    for r in records {
        let l = ds
            .levels
            .get_mut(r.level_pos)
            .context("journal names a level that does not exist")?;
        if r.sample >= l.len() || r.values.len() != l.outputs.ncols() {
            bail!(
                "{}: record does not fit the dataset; remove the journal to recompute",
                jpath.display()
            );
        }
        if l.status[r.sample] == STATUS_PENDING {
            l.status[r.sample] = r.status;
            l.cost_s[r.sample] = r.cost_s;
            l.outputs.row_mut(r.sample).assign(&Array1::from(r.values));
            reused += 1;
        }
    }

    let pending: Vec<(usize, usize)> = global_order(&ds)
        .filter(|&(g, p, i)| {
            ds.levels[p].status[i] == STATUS_PENDING && spec.shard.is_none_or(|sh| sh.owns(g))
        })
        .map(|(_, p, i)| (p, i))
        .collect();
    let bar = Bar::new();
    bar.start("solving", pending.len() as u64);
    // Small batches: each batch is journaled as soon as it is done.
    let batch = (2 * rayon::current_num_threads()).max(2);
    for chunk in pending.chunks(batch) {
        let records: Vec<Record> = chunk
            .par_iter()
            .map(|&(p, i)| {
                let l = &ds.levels[p];
                let x = l.inputs.row(i).to_vec();
                let start = std::time::Instant::now();
                match sim.solve(&x, l.level) {
                    Ok(s) => Record {
                        level_pos: p,
                        sample: i,
                        status: STATUS_OK,
                        cost_s: s.cost_s,
                        values: s.values,
                    },
                    Err(_) => Record {
                        level_pos: p,
                        sample: i,
                        status: STATUS_FAILED,
                        cost_s: start.elapsed().as_secs_f64(),
                        values: vec![f64::NAN; l.outputs.ncols()],
                    },
                }
            })
            .collect();
        jr.append(&records)?;
        for r in records {
            let l = &mut ds.levels[r.level_pos];
            l.status[r.sample] = r.status;
            l.cost_s[r.sample] = r.cost_s;
            l.outputs.row_mut(r.sample).assign(&Array1::from(r.values));
        }
        bar.advance(chunk.len() as u64);
    }
    bar.finish();
    h5::write(out, &ds)?;
    jr.remove()?;
    Ok(GenSummary {
        computed: pending.len(),
        reused,
        dataset: ds,
    })
}

/// Every sample as (global index, level position, index within the level): levels in
/// order, samples in order. Shards partition this sequence.
fn global_order(ds: &Dataset) -> impl Iterator<Item = (usize, usize, usize)> + '_ {
    ds.levels
        .iter()
        .enumerate()
        .flat_map(|(p, l)| (0..l.len()).map(move |i| (p, i)))
        .enumerate()
        .map(|(g, (p, i))| (g, p, i))
}

fn shard_name(s: Option<Shard>) -> String {
    match s {
        Some(s) => format!("shard {}/{}", s.index, s.count),
        None => "the whole dataset".into(),
    }
}

/// Combine the shard files of one run into the dataset a single machine would have made.
/// Refuses shards from different runs or code versions, duplicates, missing shards and
/// shards with samples still to compute.
pub fn merge(shards: &[(String, Dataset)]) -> Result<Dataset> {
    let (first_path, first) = shards.first().context("no shard files given")?;
    let count = match first.meta.shard {
        Some(s) => s.count,
        None => bail!("{first_path} is a whole dataset, not a shard"),
    };
    let mut seen: Vec<Option<&str>> = vec![None; count];
    for (path, ds) in shards {
        let Some(sh) = ds.meta.shard else {
            bail!("{path} is a whole dataset, not a shard")
        };
        if sh.count != count {
            bail!(
                "{path} is shard {}/{} but {first_path} is one of {count}",
                sh.index,
                sh.count
            );
        }
        if !same_run(first, ds) {
            bail!("{path} does not belong with {first_path}: different problem, seed, design, levels or sample counts");
        }
        if ds.meta.generator != first.meta.generator {
            bail!(
                "{path} was made by {:?} but {first_path} by {:?}; regenerate with one version",
                ds.meta.generator,
                first.meta.generator
            );
        }
        if let Some(other) = seen[sh.index].replace(path) {
            bail!(
                "shard {}/{count} given twice ({other} and {path})",
                sh.index
            );
        }
    }
    if let Some(i) = seen.iter().position(Option::is_none) {
        bail!("shard {i}/{count} is missing");
    }
    let mut merged = first.clone();
    merged.meta.shard = None;
    let by_index: Vec<&(String, Dataset)> = (0..count)
        .map(|k| {
            shards
                .iter()
                .find(|(_, d)| d.meta.shard.is_some_and(|s| s.index == k))
                .expect("checked above")
        })
        .collect();
    for (g, p, i) in global_order(first).collect::<Vec<_>>() {
        let (path, src) = by_index[g % count];
        let l = &src.levels[p];
        if l.status[i] == STATUS_PENDING {
            bail!("{path} is not finished (sample {i} of fidelity {} is pending); finish it with `pipeline generate ... --resume`", l.level);
        }
        let m = &mut merged.levels[p];
        m.status[i] = l.status[i];
        m.cost_s[i] = l.cost_s[i];
        m.outputs.row_mut(i).assign(&l.outputs.row(i));
    }
    Ok(merged)
}
