//! Dataset generation: a seeded design per level, solves in parallel, and crash safety.
//!
//! The destination file is always a complete, valid HDF5 snapshot (written atomically):
//! at the start every sample is marked "not yet computed" (status 2), and only the final
//! rename marks them done. Finished samples go to an append-only journal next to the file as
//! they complete, so a killed run keeps them and `--resume` neither recomputes nor
//! duplicates any. The result does not depend on where a run was interrupted.
//!
//! Memory is bounded by a batch, not by the number of samples: results stream into the
//! new file ([`h5::Stream`], a temporary name until it is complete) as they are journaled,
//! and only the per-sample scalars (status, cost, seed, diagnostics) stay in memory.

use anyhow::{bail, Context, Result};
use mfpipe_data::dataset::{
    Dataset, LevelData, Meta, SampleResult, Shard, STATUS_FAILED, STATUS_OK, STATUS_PENDING,
};
use mfpipe_data::design::{self, DesignKind};
use mfpipe_data::journal::{self, Journal, Record};
use mfpipe_data::{h5, Progress};
use mfpipe_solvers::{Batch, Sample, Simulator, SolveError};
use std::collections::BTreeMap;
use std::path::Path;

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct GenSpec {
    pub design: DesignKind,
    /// Points per input of a `grid` design (empty: n^(1/d) each).
    pub grid: Vec<usize>,
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

/// The dataset with inputs and seeds filled in and every sample pending, as a head (outputs
/// and extras without columns: their values are streamed, see [`h5::read_head`]).
pub fn skeleton(sim: &dyn Simulator, spec: &GenSpec) -> Result<Dataset> {
    let ps = sim.spec();
    let out = &ps.output;
    let specs = &ps.inputs;
    let meta = Meta {
        problem: ps.name.to_string(),
        created: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        generator: generator_id(),
        seed: spec.seed,
        // DESIGN sec. 3: the attribute is one of sobol, lhs, uniform, grid; a grid's shape is
        // in its inputs (the distinct values of each column).
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
    // Every sample's inputs, seed, status and cost (and a margin for the failure text and
    // diagnostics) are held in memory; outputs and extras are not.
    let per_sample = 8 * (specs.len() + 16);
    for (&level, &n) in spec.levels.iter().zip(&spec.n) {
        crate::util::check_memory(
            &format!("{} samples of {} level {level}", n, ps.name),
            n,
            per_sample,
        )?;
        let fid = sim.fidelity(&level.to_string())?.clone();
        let seed = design::level_seed(spec.seed, level);
        let inputs = design::design_shaped(spec.design, specs, n, seed, &spec.grid)?;
        let mut l = LevelData::all_pending(
            level,
            fid.name,
            fid.description,
            fid.settings,
            inputs,
            0,
            &[],
        );
        let n = l.len();
        l.extras = ps
            .extras
            .iter()
            .map(|e| mfpipe_data::dataset::ExtraData {
                name: e.name.clone(),
                unit: e.unit.clone(),
                shape: e.shape.clone(),
                values: ndarray::Array2::zeros((n, 0)),
            })
            .collect();
        l.seed = Some(
            l.inputs
                .rows()
                .into_iter()
                .map(|x| mfpipe_data::sample_seed(spec.seed, x.as_slice().expect("row-major")))
                .collect(),
        );
        levels.push(l);
    }
    Ok(Dataset { meta, levels })
}

/// A solver's outcome as the dataset stores it.
fn stored(
    r: Result<mfpipe_solvers::Solution, SolveError>,
    cost_s: f64,
    seed: u64,
    d_out: usize,
) -> SampleResult {
    match r {
        Ok(s) => SampleResult {
            status: STATUS_OK,
            cost_s,
            seed,
            values: s.values,
            diagnostics: s.diagnostics,
            failure: String::new(),
            extras: s.extras.into_iter().collect(),
        },
        Err(e) => {
            let diagnostics = match &e {
                SolveError::Failed { diagnostics, .. } => diagnostics.clone(),
                _ => BTreeMap::new(),
            };
            SampleResult {
                status: STATUS_FAILED,
                cost_s,
                seed,
                values: vec![f64::NAN; d_out],
                diagnostics,
                failure: e.to_string(),
                extras: Vec::new(),
            }
        }
    }
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

/// The advisory lock of one dataset's writer: `flock` on `F.lock` next to the file, taken
/// before any work and held while the process writes. The kernel drops it when the process
/// ends, however it ends, so a killed writer leaves no stale lock: the next writer simply gets
/// it. The file holds the writer's PID, so a second writer is told whom it collides with.
pub struct WriterLock {
    path: std::path::PathBuf,
    _file: std::fs::File,
}

impl WriterLock {
    pub fn acquire(dataset: &Path) -> Result<Self> {
        use std::io::Write as _;
        use std::os::fd::AsRawFd;
        let mut name = dataset.as_os_str().to_owned();
        name.push(".lock");
        let path = std::path::PathBuf::from(name);
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot write next to {}", dataset.display()))?;
        // SAFETY: flock on a file descriptor we own; it only takes or refuses the lock.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::WouldBlock {
                let pid = std::fs::read_to_string(&path).unwrap_or_default();
                let pid = pid.trim();
                bail!(
                    "{} is being written by process {}",
                    dataset.display(),
                    if pid.is_empty() { "(unknown)" } else { pid }
                );
            }
            bail!("cannot lock {}: {err}", path.display());
        }
        file.set_len(0)
            .and_then(|_| writeln!(file, "{}", std::process::id()))
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(Self { path, _file: file })
    }
}

impl Drop for WriterLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

pub struct GenSummary {
    pub computed: usize,
    pub reused: usize,
    pub failed: usize,
}

/// Generate (or, with `resume`, finish) the dataset at `out`.
pub fn generate(
    sim: &dyn Simulator,
    spec: &GenSpec,
    out: &Path,
    resume: bool,
    progress: &dyn Progress,
) -> Result<GenSummary> {
    for &l in &spec.levels {
        mfpipe_solvers::check_level(sim, l)?;
    }
    let _lock = WriterLock::acquire(out)?;
    let mut head = skeleton(sim, spec)?;
    let jpath = journal::journal_path(out);
    // Samples an existing file already holds (only a file finished by hand or by an older
    // version has some while others are pending): copied into the new file.
    let mut keep: Vec<Vec<usize>> = vec![Vec::new(); head.levels.len()];
    let mut offline = vec![None; head.levels.len()];
    if out.exists() {
        if !resume {
            bail!(
                "{} already exists; pass --resume to finish it, or remove it",
                out.display()
            );
        }
        let old = crate::isolate::read_head(out)
            .with_context(|| format!("cannot resume {}", out.display()))?;
        if !same_run(&head, &old) {
            bail!("cannot resume {}: it was generated with a different problem, seed, design, levels or sample counts", out.display());
        }
        if old.meta.shard != head.meta.shard {
            bail!(
                "cannot resume {}: it holds {}, not {}",
                out.display(),
                shard_name(old.meta.shard),
                shard_name(head.meta.shard)
            );
        }
        head.meta.created = old.meta.created.clone();
        for (p, l) in old.levels.iter().enumerate() {
            offline[p] = l.offline_cost_s;
            keep[p] = (0..l.len())
                .filter(|&i| l.status[i] != STATUS_PENDING)
                .collect();
        }
        let todo = global_order(&old).any(|(g, p, i)| {
            old.levels[p].status[i] == STATUS_PENDING && spec.shard.is_none_or(|sh| sh.owns(g))
        });
        if !todo {
            // Nothing left to compute: the file is as finished as this run would make it.
            let _ = std::fs::remove_file(&jpath);
            return Ok(GenSummary {
                computed: 0,
                reused: keep.iter().map(Vec::len).sum(),
                failed: old.levels.iter().map(|l| l.failed()).sum(),
            });
        }
    } else {
        // No snapshot means no run to continue: a stray journal is stale.
        let _ = std::fs::remove_file(&jpath);
        if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        // The all-pending snapshot: outputs are unwritten chunks (read as NaN), so it is
        // small and costs no memory however many samples it declares.
        h5::Stream::create(out, head.clone())?.finish()?;
    }
    let fp = journal::fingerprint(&head);
    let old_file = out.to_path_buf();
    let mut stream = h5::Stream::create(out, head)?;
    let mut reused = 0;
    // Read whole, once, only in the odd case of finished samples in the old file.
    let old = if keep.iter().any(|k| !k.is_empty()) {
        Some(crate::isolate::read(&old_file)?)
    } else {
        None
    };
    for (p, rows) in keep.iter().enumerate() {
        stream.set_offline_cost(p, offline[p]);
        let level = stream.levels()[p].level;
        for &i in rows {
            let l = &old.as_ref().expect("read above").levels[p];
            let mut r = l.get(i);
            // A file from before seeds were stored keeps the seed this run derives.
            if l.seed.is_none() {
                r.seed = stream.levels()[p].seed.as_ref().map_or(0, |s| s[i]);
            }
            stream
                .put(p, i, &r)
                .with_context(|| format!("cannot resume {} (level {level})", out.display()))?;
            reused += 1;
        }
    }
    let misfit = || {
        anyhow::anyhow!(
            "{}: record does not fit the dataset; remove the journal to recompute",
            jpath.display()
        )
    };
    let mut jr = Journal::open_each(&jpath, fp, |r| -> Result<()> {
        match r {
            Record::Sample {
                level_pos,
                sample,
                result,
            } => {
                let l = stream.levels().get(level_pos).ok_or_else(misfit)?;
                if sample >= l.len() {
                    return Err(misfit());
                }
                if l.status[sample] == STATUS_PENDING {
                    stream
                        .put(level_pos, sample, &result)
                        .map_err(|_| misfit())?;
                    reused += 1;
                }
            }
            Record::Offline { level_pos, cost_s } => {
                if level_pos >= stream.levels().len() {
                    return Err(misfit());
                }
                stream.add_offline_cost(level_pos, cost_s);
            }
        }
        Ok(())
    })?;

    let levels = stream.levels();
    let pending: Vec<(usize, usize)> = global_order_of(levels)
        .filter(|&(g, p, i)| {
            levels[p].status[i] == STATUS_PENDING && spec.shard.is_none_or(|sh| sh.owns(g))
        })
        .map(|(_, p, i)| (p, i))
        .collect();
    progress.start("solving", pending.len() as u64);
    // Small batches: each batch is journaled as soon as it is done. Within a batch the
    // samples of one level go to the solver together, so a problem with a shared offline
    // stage or with parallelism inside one solve can organise the work itself.
    let batch = (2 * rayon::current_num_threads()).max(2);
    for chunk in pending.chunks(batch) {
        let mut records = Vec::with_capacity(chunk.len() + 1);
        for part in chunk.chunk_by(|a, b| a.0 == b.0) {
            let p = part[0].0;
            let l = &stream.levels()[p];
            let samples: Vec<Sample> = part
                .iter()
                .map(|&(_, i)| Sample {
                    x: l.inputs.row(i).to_vec(),
                    level: l.level,
                    seed: l.seed.as_ref().map_or(0, |s| s[i]),
                })
                .collect();
            let Batch {
                results,
                cost_s,
                offline_cost_s,
            } = sim.solve_batch(&samples);
            if results.len() != samples.len() || cost_s.len() != samples.len() {
                bail!(
                    "{}: solve_batch returned {} results for {} samples (a solver bug)",
                    sim.name(),
                    results.len(),
                    samples.len()
                );
            }
            let d_out = sim.spec().output.len();
            for (((&(_, i), r), c), s) in part.iter().zip(results).zip(cost_s).zip(&samples) {
                records.push(Record::Sample {
                    level_pos: p,
                    sample: i,
                    result: stored(r, c, s.seed, d_out),
                });
            }
            for (level, cost_s) in offline_cost_s {
                if let Some(level_pos) = stream.levels().iter().position(|l| l.level == level) {
                    records.push(Record::Offline { level_pos, cost_s });
                }
            }
        }
        jr.append(&records)?;
        for r in records {
            match r {
                Record::Sample {
                    level_pos,
                    sample,
                    result,
                } => stream.put(level_pos, sample, &result).with_context(|| {
                    format!("{} broke its declared output or extras", sim.name())
                })?,
                Record::Offline { level_pos, cost_s } => {
                    stream.add_offline_cost(level_pos, cost_s);
                }
            }
        }
        progress.advance(chunk.len() as u64);
    }
    progress.finish();
    let failed = stream.levels().iter().map(|l| l.failed()).sum();
    stream.finish()?;
    jr.remove()?;
    Ok(GenSummary {
        computed: pending.len(),
        reused,
        failed,
    })
}

/// The dataset of `spec` at `path`: reused when complete, resumed when interrupted, generated
/// when missing; a file from other settings is refused.
pub fn ensure(
    sim: &dyn Simulator,
    spec: &GenSpec,
    path: &Path,
    progress: &dyn Progress,
) -> Result<Dataset> {
    let t0 = std::time::Instant::now();
    let expected = skeleton(sim, spec)?;
    Ok(match crate::isolate::read(path) {
        Ok(ds) if same_run(&expected, &ds) && ds.require_complete("").is_ok() => {
            progress.note(&format!("using existing dataset {}", path.display()));
            ds
        }
        Ok(ds) if same_run(&expected, &ds) => {
            progress.note(&format!("resuming {}", path.display()));
            generate(sim, spec, path, true, progress)?;
            crate::isolate::read(path)?
        }
        Ok(_) => bail!(
            "{} exists but was generated with other settings; remove it or pass another --out",
            path.display()
        ),
        Err(e)
            if matches!(
                e.downcast_ref::<mfpipe_data::DataError>(),
                Some(mfpipe_data::DataError::Missing { .. })
            ) =>
        {
            let s = generate(sim, spec, path, false, progress)?;
            progress.note(&format!(
                "generated {} ({} samples) in {:.2} s",
                path.display(),
                s.computed,
                t0.elapsed().as_secs_f64()
            ));
            crate::isolate::read(path)?
        }
        Err(e) => return Err(e),
    })
}

/// Every sample as (global index, level position, index within the level): levels in
/// order, samples in order. Shards partition this sequence.
fn global_order(ds: &Dataset) -> impl Iterator<Item = (usize, usize, usize)> + '_ {
    global_order_of(&ds.levels)
}

fn global_order_of(levels: &[LevelData]) -> impl Iterator<Item = (usize, usize, usize)> + '_ {
    levels
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

/// Combine the shard files of one run into `out`, the dataset a single machine would have
/// made. Refuses shards from different runs or code versions, duplicates, missing shards and
/// shards with samples still to compute. Streams: the shards are read as heads and their
/// values block by block, so memory holds one block of rows, whatever the size.
pub fn merge(paths: &[std::path::PathBuf], out: &Path) -> Result<usize> {
    let shards = paths
        .iter()
        .map(|p| Ok((p.display().to_string(), crate::isolate::read_head(p)?)))
        .collect::<Result<Vec<_>>>()?;
    let (first_path, first) = shards.first().context("no shard files given")?;
    let count = match first.meta.shard {
        Some(s) => s.count,
        None => bail!("{first_path} is a whole dataset, not a shard"),
    };
    let mut seen: Vec<Option<&str>> = vec![None; count];
    for (path, ds) in &shards {
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
    // Shard k, in the order of the shard index.
    let by_index: Vec<(&Path, &Dataset)> = (0..count)
        .map(|k| {
            let j = shards
                .iter()
                .position(|(_, d)| d.meta.shard.is_some_and(|s| s.index == k))
                .expect("checked above");
            (paths[j].as_path(), &shards[j].1)
        })
        .collect();
    for (g, p, i) in global_order(first) {
        let (path, src) = by_index[g % count];
        let l = &src.levels[p];
        if l.status[i] == STATUS_PENDING {
            bail!("{} is not finished (sample {i} of fidelity {} is pending); finish it with `pipeline generate ... --resume`", path.display(), l.level);
        }
    }
    let mut head = first.clone();
    head.meta.shard = None;
    let mut stream = h5::Stream::create(out, head)?;
    let mut offset = 0;
    for p in 0..first.levels.len() {
        let (level, n) = (first.levels[p].level, first.levels[p].len());
        // Blocks of about 2M values (16 MiB; at least 8 rows per shard); within one, each
        // shard is read once, at the rows it owns (every count-th sample of the global
        // order).
        let block = (2_097_152 / first.meta.output_len().max(1)).max(8 * count);
        for a in (0..n).step_by(block) {
            let b = (a + block).min(n);
            // Per row of the block: its output values and its extras, once its shard is read.
            type Row = (Vec<f64>, Vec<(String, Vec<f64>)>);
            let mut rows: Vec<Option<Row>> = vec![None; b - a];
            for (k, (path, _)) in by_index.iter().enumerate() {
                let first_row = a + (k + count - (offset + a) % count) % count;
                if first_row >= b {
                    continue;
                }
                let taken = (b - 1 - first_row) / count + 1;
                let (outs, extras) = h5::read_rows(path, level, (first_row, count, taken))?;
                for t in 0..taken {
                    let ex = extras
                        .iter()
                        .map(|(name, v)| (name.clone(), v.row(t).to_vec()))
                        .collect();
                    rows[first_row + t * count - a] = Some((outs.row(t).to_vec(), ex));
                }
            }
            for (t, row) in rows.into_iter().enumerate() {
                let i = a + t;
                let (_, src) = by_index[(offset + i) % count];
                let mut r = src.levels[p].get(i);
                let (values, extras) = row.expect("every row has its shard");
                r.values = values;
                if !r.extras.is_empty() {
                    r.extras = extras;
                }
                stream.put(p, i, &r)?;
            }
        }
        // A shared offline stage ran once per shard that had samples of the level: the merged
        // file records the CPU seconds all of them spent.
        let costs: Vec<f64> = by_index
            .iter()
            .filter_map(|(_, d)| d.levels[p].offline_cost_s)
            .collect();
        stream.set_offline_cost(p, (!costs.is_empty()).then(|| costs.iter().sum()));
        offset += n;
    }
    let total = offset;
    stream.finish()?;
    Ok(total)
}
