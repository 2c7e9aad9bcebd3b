//! Reading and writing the `mfpipe/1` HDF5 schema (see DESIGN sec. 3 and the README).
//!
//! Writes are atomic: the file is written next to its destination under a temporary name
//! and renamed into place, so a reader never sees a half-written file. Reads validate the
//! schema tag, every required attribute, every shape, status and role codes, and that every
//! sample marked ok is finite, and say precisely what is wrong.

use crate::dataset::{Dataset, LevelData, Meta, SampleResult, STATUS_OK, STATUS_PENDING};
use crate::{Axis, DataError, SCHEMA};
use hdf5::types::VarLenUnicode;
use hdf5::{File, Group, H5Type, Location};
use ndarray::{Array1, Array2, ArrayD, IxDyn};
use std::path::Path;
use std::str::FromStr;

fn h5err(path: &Path) -> impl Fn(hdf5::Error) -> DataError + '_ {
    move |e| DataError::Hdf5 {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

fn vlu(s: &str) -> VarLenUnicode {
    // VarLenUnicode rejects interior NULs; our strings never contain them, but strip to be safe.
    VarLenUnicode::from_str(&s.replace('\0', "")).expect("NUL-free string")
}

/// Bytes of a string attribute as text; invalid UTF-8 (a corrupted file) is replaced, not
/// trusted.
fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn put_str(loc: &Location, name: &str, v: &str) -> hdf5::Result<()> {
    loc.new_attr::<VarLenUnicode>()
        .shape(())
        .create(name)?
        .write_scalar(&vlu(v))
}
fn put_strs(loc: &Location, name: &str, v: &[String]) -> hdf5::Result<()> {
    let data: Vec<VarLenUnicode> = v.iter().map(|s| vlu(s)).collect();
    loc.new_attr::<VarLenUnicode>()
        .shape([data.len()])
        .create(name)?
        .write(&data)
}
fn put_f64s(loc: &Location, name: &str, v: &[f64]) -> hdf5::Result<()> {
    loc.new_attr::<f64>()
        .shape([v.len()])
        .create(name)?
        .write(v)
}
fn put_scalar<T: H5Type>(loc: &Location, name: &str, v: T) -> hdf5::Result<()> {
    loc.new_attr::<T>().shape(()).create(name)?.write_scalar(&v)
}

/// netCDF-4 dimension scales through HDF5's high-level H5DS API (libhdf5_hl, shipped with
/// every HDF5 install; hdf5-metno does not bind it): xarray/h5netcdf then see named
/// dimensions with coordinates instead of `phony_dim_*`.
mod scales {
    use std::os::raw::{c_char, c_uint};

    #[link(name = "hdf5_hl")]
    extern "C" {
        fn H5DSset_scale(dsid: i64, dimname: *const c_char) -> i32;
        fn H5DSattach_scale(did: i64, dsid: i64, idx: c_uint) -> i32;
    }

    /// Make `d` the dimension scale called `name`.
    pub fn set(d: &hdf5::Dataset, name: &str) -> hdf5::Result<()> {
        let c = std::ffi::CString::new(name).map_err(|e| hdf5::Error::from(e.to_string()))?;
        // SAFETY: a valid open dataset id and a NUL-terminated name; the library lock is held.
        let rc = hdf5::sync::sync(|| unsafe { H5DSset_scale(d.id(), c.as_ptr()) });
        if rc < 0 {
            return Err(format!("cannot make {name} a dimension scale").into());
        }
        Ok(())
    }

    /// Attach `scale` to dimension `idx` of `d`.
    pub fn attach(d: &hdf5::Dataset, scale: &hdf5::Dataset, idx: usize) -> hdf5::Result<()> {
        // SAFETY: two valid open dataset ids; the library lock is held.
        let rc =
            hdf5::sync::sync(|| unsafe { H5DSattach_scale(d.id(), scale.id(), idx as c_uint) });
        if rc < 0 {
            return Err(format!("cannot attach dimension {idx} of {}", d.name()).into());
        }
        Ok(())
    }
}

/// Label a level group for netCDF-4 readers (xarray with h5netcdf): dimension scales
/// `sample`, `input` (the input names) and one per output axis (its coordinates) in the group,
/// attached to every per-sample array, and CF `units`/`long_name` attributes and a
/// `flag_values`/`flag_meanings` legend on `status`. Additions only: the mfpipe/1 members
/// are unchanged.
fn label_level(g: &Group, m: &Meta, n: usize) -> hdf5::Result<()> {
    let sample = index_scale(g, "sample", n, "sample index within the level")?;
    let (input, axes) = coordinate_scales(g, &m.input_names, &m.axes)?;
    label_inputs(
        &g.dataset("inputs")?,
        (&sample, &input),
        "inputs of each sample",
        &m.input_units,
    )?;
    let outputs = g.dataset("outputs")?;
    scales::attach(&outputs, &sample, 0)?;
    for (k, a) in axes.iter().enumerate() {
        scales::attach(&outputs, a, k + 1)?;
    }
    put_str(&outputs, "units", &m.output_unit)?;
    put_str(&outputs, "long_name", &m.output_name)?;
    for (name, units, long) in [
        ("cost_s", "s", "CPU seconds of the solve"),
        ("status", "", "0 ok, 1 solver failed, 2 not yet computed"),
        ("role", "", "0 training pool, 1 held-out test"),
        ("seed", "", "the sample's seed"),
        ("failure", "", "the solver's reason for status 1"),
    ] {
        if g.link_exists(name) {
            let d = g.dataset(name)?;
            scales::attach(&d, &sample, 0)?;
            put_str(&d, "long_name", long)?;
            if !units.is_empty() {
                put_str(&d, "units", units)?;
            }
        }
    }
    let status = g.dataset("status")?;
    status
        .new_attr::<u8>()
        .shape([3])
        .create("flag_values")?
        .write(&[0u8, 1, 2])?;
    put_str(&status, "flag_meanings", "ok solver_failed not_computed")?;
    if g.link_exists("diagnostics") {
        let dg = g.group("diagnostics")?;
        for name in dg.member_names()? {
            scales::attach(&dg.dataset(&name)?, &sample, 0)?;
        }
    }
    Ok(())
}

/// The dimension scale `name` of an index, 0..n.
fn index_scale(g: &Group, name: &str, n: usize, long: &str) -> hdf5::Result<hdf5::Dataset> {
    let d = g
        .new_dataset_builder()
        .with_data(&Array1::from_iter(0..n as u64))
        .create(name)?;
    scales::set(&d, name)?;
    put_str(&d, "long_name", long)?;
    Ok(d)
}

/// The coordinate scales of a group of samples: `input` (the input names) and one per
/// output axis (its coordinates, units and name).
fn coordinate_scales(
    g: &Group,
    input_names: &[String],
    axes: &[Axis],
) -> hdf5::Result<(hdf5::Dataset, Vec<hdf5::Dataset>)> {
    let names: Vec<VarLenUnicode> = input_names.iter().map(|s| vlu(s)).collect();
    let input = g
        .new_dataset_builder()
        .with_data(&Array1::from(names))
        .create("input")?;
    scales::set(&input, "input")?;
    put_str(&input, "long_name", "input name")?;
    let mut out = Vec::new();
    for a in axes {
        let d = g
            .new_dataset_builder()
            .with_data(&a.values)
            .create(a.name.as_str())?;
        scales::set(&d, &a.name)?;
        put_str(&d, "units", &a.unit)?;
        put_str(&d, "long_name", &a.name)?;
        out.push(d);
    }
    Ok((input, out))
}

/// An `inputs` array [sample, input] labelled with its scales and units.
fn label_inputs(
    d: &hdf5::Dataset,
    (sample, input): (&hdf5::Dataset, &hdf5::Dataset),
    long: &str,
    units: &[String],
) -> hdf5::Result<()> {
    scales::attach(d, sample, 0)?;
    scales::attach(d, input, 1)?;
    put_str(d, "long_name", long)?;
    put_strs(d, "input_units", units)
}

/// Chunked, shuffled and deflated dataset of any shape (rows are samples).
fn put_array<T: H5Type + Copy>(g: &Group, name: &str, data: &ArrayD<T>) -> hdf5::Result<()> {
    let shape = data.shape().to_vec();
    let b = g.new_dataset_builder();
    if data.is_empty() {
        b.with_data(data).create(name)?;
        return Ok(());
    }
    b.with_data(data)
        .chunk(chunk_of(&shape))
        .shuffle()
        .deflate(1)
        .create(name)?;
    Ok(())
}

/// The chunk of a per-sample array: a few samples at a time, whole rows, about 1 MiB.
fn chunk_of(shape: &[usize]) -> Vec<usize> {
    let row: usize = shape[1..].iter().product::<usize>().max(1);
    let mut chunk = shape.to_vec();
    chunk[0] = (131_072 / row).clamp(1, shape[0].max(1));
    chunk
}

/// A per-sample float array created empty (every row NaN until written), chunked and
/// compressed like [`put_array`]'s, for rows streamed in by [`Stream`].
fn empty_rows(g: &Group, name: &str, shape: &[usize]) -> hdf5::Result<hdf5::Dataset> {
    let b = g.new_dataset::<f64>().shape(shape.to_vec());
    if shape.iter().product::<usize>() == 0 {
        return b.create(name);
    }
    b.chunk(chunk_of(shape))
        .shuffle()
        .deflate(1)
        .fill_value(f64::NAN)
        .create(name)
}

/// Write `ds` to `path` atomically (temporary file + rename).
pub fn write(path: &Path, ds: &Dataset) -> Result<(), DataError> {
    let tmp = tmp_path(path);
    let _ = std::fs::remove_file(&tmp);
    write_to(&tmp, ds).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })?;
    // Flush file data before the rename so a crash cannot leave a renamed but empty file.
    if let Ok(f) = std::fs::File::open(&tmp) {
        let _ = f.sync_all();
    }
    std::fs::rename(&tmp, path).map_err(|source| DataError::Io {
        path: path.display().to_string(),
        source,
    })
}

/// Predictions of a saved model (`pipeline predict --out`), laid out for netCDF-4 readers:
/// `mean` (sample, grid axes...), `variance` alike, `samples` (draw, sample, axes...), the
/// `inputs` (sample, input), each dimension a scale with its coordinates, CF units.
pub struct Predictions<'a> {
    pub problem: &'a str,
    /// The saved model's name and registry kind.
    pub model: &'a str,
    pub kind: &'a str,
    pub input_names: &'a [String],
    pub input_units: &'a [String],
    pub output_name: &'a str,
    pub output_unit: &'a str,
    pub axes: &'a [Axis],
    /// [N, d].
    pub inputs: &'a Array2<f64>,
    /// [N, D] each (D = the product of the axes' lengths).
    pub mean: &'a Array2<f64>,
    pub variance: Option<&'a Array2<f64>>,
    /// [K, N, D].
    pub samples: Option<&'a ndarray::Array3<f64>>,
}

/// The schema tag of a predictions file.
pub const PREDICTIONS_SCHEMA: &str = "mfpipe-predictions/1";

/// Write `p` to `path` atomically (temporary file + rename).
pub fn write_predictions(path: &Path, p: &Predictions) -> Result<(), DataError> {
    let tmp = tmp_path(path);
    let e = h5err(path);
    let written = (|| -> hdf5::Result<()> {
        let f = File::create(&tmp)?;
        put_str(&f, "schema", PREDICTIONS_SCHEMA)?;
        put_str(&f, "problem", p.problem)?;
        put_str(&f, "model", p.model)?;
        put_str(&f, "model_kind", p.kind)?;
        let sample = index_scale(&f, "sample", p.inputs.nrows(), "row of the inputs")?;
        let (input, axes) = coordinate_scales(&f, p.input_names, p.axes)?;
        label_inputs(
            &f.new_dataset_builder()
                .with_data(p.inputs)
                .create("inputs")?,
            (&sample, &input),
            "inputs of each prediction",
            p.input_units,
        )?;
        let field = |name: &str, a: &Array2<f64>, units: &str, long: String| -> hdf5::Result<()> {
            let mut shape = vec![a.nrows()];
            shape.extend(p.axes.iter().map(|ax| ax.values.len()));
            let a = a
                .clone()
                .into_shape_with_order(IxDyn(&shape))
                .map_err(|err| hdf5::Error::from(err.to_string()))?;
            let d = f.new_dataset_builder().with_data(&a).create(name)?;
            scales::attach(&d, &sample, 0)?;
            for (k, ax) in axes.iter().enumerate() {
                scales::attach(&d, ax, k + 1)?;
            }
            put_str(&d, "units", units)?;
            put_str(&d, "long_name", &long)
        };
        field(
            "mean",
            p.mean,
            p.output_unit,
            format!("predicted {} (mean)", p.output_name),
        )?;
        let squared = if p.output_unit.is_empty() || p.output_unit == "1" {
            "1".to_string()
        } else {
            format!("({})^2", p.output_unit)
        };
        if let Some(v) = p.variance {
            field(
                "variance",
                v,
                &squared,
                format!("predictive variance of {}", p.output_name),
            )?;
        }
        if let Some(s) = p.samples {
            let (k, rows, _) = s.dim();
            let draw = index_scale(&f, "draw", k, "sample of the predictive distribution")?;
            let mut shape = vec![k, rows];
            shape.extend(p.axes.iter().map(|ax| ax.values.len()));
            let a = s
                .clone()
                .into_shape_with_order(IxDyn(&shape))
                .map_err(|err| hdf5::Error::from(err.to_string()))?;
            let d = f.new_dataset_builder().with_data(&a).create("samples")?;
            scales::attach(&d, &draw, 0)?;
            scales::attach(&d, &sample, 1)?;
            for (j, ax) in axes.iter().enumerate() {
                scales::attach(&d, ax, j + 2)?;
            }
            put_str(&d, "units", p.output_unit)?;
            put_str(
                &d,
                "long_name",
                &format!("draws of predicted {}", p.output_name),
            )?;
        }
        f.close()
    })();
    if let Err(err) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e(err));
    }
    std::fs::rename(&tmp, path).map_err(|source| DataError::Io {
        path: path.display().to_string(),
        source,
    })
}

/// The temporary name used while writing `path`.
pub fn tmp_path(path: &Path) -> std::path::PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".tmp");
    s.into()
}

fn write_to(path: &Path, ds: &Dataset) -> Result<(), DataError> {
    let e = h5err(path);
    let f = File::create(path).map_err(&e)?;
    let m = &ds.meta;
    (|| -> hdf5::Result<()> {
        let fid = write_meta(&f, m)?;
        let shape = m.output_shape();
        for l in &ds.levels {
            let g = write_level_start(&fid, l)?;
            let mut oshape = vec![l.len()];
            oshape.extend(&shape);
            let outs = l
                .outputs
                .clone()
                .into_shape_with_order(IxDyn(&oshape))
                .map_err(|e| hdf5::Error::from(e.to_string()))?;
            put_array(&g, "outputs", &outs)?;
            if !l.extras.is_empty() {
                let eg = g.create_group("extras")?;
                for e in &l.extras {
                    let mut eshape = vec![l.len()];
                    eshape.extend(&e.shape);
                    let arr = e
                        .values
                        .clone()
                        .into_shape_with_order(IxDyn(&eshape))
                        .map_err(|err| hdf5::Error::from(err.to_string()))?;
                    put_array(&eg, &e.name, &arr)?;
                    let d = eg.dataset(&e.name)?;
                    put_str(&d, "unit", &e.unit)?;
                }
            }
            write_level_end(&g, m, l)?;
        }
        Ok(())
    })()
    .map_err(&e)?;
    f.close().map_err(&e)
}

/// The root attributes, the grid, and the (empty) fidelity group.
fn write_meta(f: &File, m: &Meta) -> hdf5::Result<Group> {
    put_str(f, "schema", SCHEMA)?;
    put_str(f, "problem", &m.problem)?;
    put_str(f, "created", &m.created)?;
    put_str(f, "generator", &m.generator)?;
    put_scalar(f, "seed", m.seed)?;
    put_str(f, "design", &m.design)?;
    if let Some(sh) = m.shard {
        put_scalar(f, "shard_index", sh.index as u64)?;
        put_scalar(f, "shard_count", sh.count as u64)?;
    }
    put_strs(f, "input_names", &m.input_names)?;
    put_strs(f, "input_units", &m.input_units)?;
    put_f64s(f, "input_lower", &m.input_lower)?;
    put_f64s(f, "input_upper", &m.input_upper)?;
    let axis_names: Vec<String> = m.axes.iter().map(|a| a.name.clone()).collect();
    put_strs(f, "output_axes", &axis_names)?;
    put_str(f, "output_name", &m.output_name)?;
    put_str(f, "output_unit", &m.output_unit)?;
    let grid = f.create_group("grid")?;
    for a in &m.axes {
        let d = grid
            .new_dataset_builder()
            .with_data(&a.values)
            .create(a.name.as_str())?;
        put_str(&d, "unit", &a.unit)?;
        put_str(&d, "units", &a.unit)?;
    }
    f.create_group("fidelity")
}

/// A level's group with its attributes and inputs (the outputs and extras follow).
fn write_level_start(fid: &Group, l: &LevelData) -> hdf5::Result<Group> {
    let g = fid.create_group(&l.level.to_string())?;
    put_str(&g, "name", &l.name)?;
    put_scalar(&g, "level", l.level as u64)?;
    put_str(&g, "description", &l.description)?;
    for (k, v) in &l.settings {
        put_scalar(&g, k, *v)?;
    }
    put_array(&g, "inputs", &l.inputs.clone().into_dyn())?;
    Ok(g)
}

/// The per-sample scalars of a level (cost, status, role, seed, diagnostics, failure
/// texts), its offline cost, and the netCDF labels of everything in it.
fn write_level_end(g: &Group, m: &Meta, l: &LevelData) -> hdf5::Result<()> {
    put_array(g, "cost_s", &l.cost_s.clone().into_dyn())?;
    put_array(g, "status", &l.status.clone().into_dyn())?;
    if let Some(r) = &l.role {
        put_array(g, "role", &r.clone().into_dyn())?;
    }
    if let Some(seed) = &l.seed {
        put_array(g, "seed", &seed.clone().into_dyn())?;
    }
    if let Some(c) = l.offline_cost_s {
        put_scalar(g, "offline_cost_s", c)?;
    }
    if !l.diagnostics.is_empty() {
        let dg = g.create_group("diagnostics")?;
        for (name, v) in &l.diagnostics {
            put_array(&dg, name, &v.clone().into_dyn())?;
        }
    }
    if let Some(fail) = &l.failure {
        let v: Vec<VarLenUnicode> = fail.iter().map(|s| vlu(s)).collect();
        g.new_dataset_builder()
            .with_data(&ndarray::Array1::from(v))
            .create("failure")?;
    }
    label_level(g, m, l.len())
}

/// Rows of one level waiting to be written: consecutive samples from `start`.
struct Pending {
    start: usize,
    rows: usize,
    outputs: Vec<f64>,
    extras: Vec<Vec<f64>>,
}

/// Writes a dataset whose output values arrive sample by sample, holding only a block of
/// rows per level in memory: the file is laid out as [`write`] lays it out (same groups,
/// chunks, compression and labels), the outputs and extras are created empty and filled
/// block by block, the per-sample scalars (status, cost, seed, diagnostics, failure) are
/// kept and written at [`Stream::finish`], which renames the temporary file into place.
pub struct Stream {
    path: std::path::PathBuf,
    tmp: std::path::PathBuf,
    file: File,
    meta: Meta,
    /// Levels as heads ([`read_head`]'s shape: outputs and extras without columns).
    levels: Vec<LevelData>,
    groups: Vec<Group>,
    outputs: Vec<hdf5::Dataset>,
    /// Per level: each declared extra's dataset and its values per sample.
    extras: Vec<Vec<(String, hdf5::Dataset, usize)>>,
    pending: Vec<Option<Pending>>,
    block: usize,
    /// Per level: the end of the highest row range written so far. A block that starts at
    /// or past it may bridge gaps (rows of other shards, still pending) with NaN, the value
    /// unwritten rows read as anyway: a shard's strided samples then go out in whole blocks
    /// instead of one partial chunk per sample.
    written: Vec<usize>,
}

impl Stream {
    /// Start writing `path` (under a temporary name) for the levels of `head` (a dataset as
    /// [`read_head`] gives it: outputs and extras without columns; every sample pending).
    pub fn create(path: &Path, head: Dataset) -> Result<Self, DataError> {
        let tmp = tmp_path(path);
        let _ = std::fs::remove_file(&tmp);
        let e = h5err(path);
        let file = File::create(&tmp).map_err(&e)?;
        let Dataset { meta, levels } = head;
        let shape = meta.output_shape();
        let d_out = meta.output_len();
        let (mut groups, mut outputs, mut extras) = (Vec::new(), Vec::new(), Vec::new());
        (|| -> hdf5::Result<()> {
            let fid = write_meta(&file, &meta)?;
            for l in &levels {
                let g = write_level_start(&fid, l)?;
                let mut oshape = vec![l.len()];
                oshape.extend(&shape);
                outputs.push(empty_rows(&g, "outputs", &oshape)?);
                let mut ex = Vec::new();
                if !l.extras.is_empty() {
                    let eg = g.create_group("extras")?;
                    for x in &l.extras {
                        let mut eshape = vec![l.len()];
                        eshape.extend(&x.shape);
                        let d = empty_rows(&eg, &x.name, &eshape)?;
                        put_str(&d, "unit", &x.unit)?;
                        ex.push((x.name.clone(), d, x.shape.iter().product()));
                    }
                }
                extras.push(ex);
                groups.push(g);
            }
            Ok(())
        })()
        .map_err(&e)?;
        // Blocks of whole chunks, about 16 MiB of outputs.
        let chunk = chunk_of(&[usize::MAX, d_out.max(1)])[0];
        let block = ((2_097_152 / d_out.max(1)).max(1)).div_ceil(chunk) * chunk;
        Ok(Self {
            path: path.to_path_buf(),
            tmp,
            file,
            pending: levels.iter().map(|_| None).collect(),
            written: vec![0; levels.len()],
            meta,
            levels,
            groups,
            outputs,
            extras,
            block,
        })
    }

    /// The levels' per-sample scalars so far (status, cost, seed, ...), without values.
    pub fn levels(&self) -> &[LevelData] {
        &self.levels
    }

    /// Add to a level's offline (shared) cost.
    pub fn add_offline_cost(&mut self, level_pos: usize, cost_s: f64) {
        *self.levels[level_pos].offline_cost_s.get_or_insert(0.0) += cost_s;
    }

    pub fn set_offline_cost(&mut self, level_pos: usize, cost_s: Option<f64>) {
        self.levels[level_pos].offline_cost_s = cost_s;
    }

    /// Store sample `i` of the level at `level_pos`. Errors as [`LevelData::set`]'s: a sample
    /// out of range, outputs or extras of the wrong length, an undeclared extra.
    pub fn put(&mut self, level_pos: usize, i: usize, r: &SampleResult) -> Result<(), DataError> {
        let d_out = self.meta.output_len();
        self.levels[level_pos].check_result(i, r, d_out)?;
        // A sample continues the level's block if it follows it (across a gap only when the
        // block lies past everything written, so a gap never covers a written row) and the
        // block has room; otherwise the block is written and a new one starts.
        let (written, block) = (self.written[level_pos], self.block);
        let continues = matches!(&self.pending[level_pos], Some(p)
            if i == p.start + p.rows || (i > p.start + p.rows && p.start >= written && i < p.start + block));
        if !continues
            || self.pending[level_pos]
                .as_ref()
                .is_some_and(|p| p.rows >= block)
        {
            self.flush(level_pos)?;
        }
        let ex = &self.extras[level_pos];
        let n_extras = ex.len();
        if let Some(p) = self.pending[level_pos].as_mut() {
            let gap = i - (p.start + p.rows);
            p.rows += gap;
            p.outputs.extend(std::iter::repeat_n(f64::NAN, gap * d_out));
            for (k, (_, _, len)) in ex.iter().enumerate() {
                p.extras[k].extend(std::iter::repeat_n(f64::NAN, gap * len));
            }
        }
        let p = self.pending[level_pos].get_or_insert_with(|| Pending {
            start: i,
            rows: 0,
            outputs: Vec::new(),
            extras: vec![Vec::new(); n_extras],
        });
        p.rows += 1;
        p.outputs.extend_from_slice(&r.values);
        for (k, (name, _, len)) in ex.iter().enumerate() {
            match r.extras.iter().find(|(n, _)| n == name) {
                Some((_, v)) => p.extras[k].extend_from_slice(v),
                None => p.extras[k].extend(std::iter::repeat_n(f64::NAN, *len)),
            }
        }
        self.levels[level_pos].set_scalars(i, r);
        Ok(())
    }

    /// Write a level's pending block into its datasets.
    fn flush(&mut self, level_pos: usize) -> Result<(), DataError> {
        let Some(p) = self.pending[level_pos].take() else {
            return Ok(());
        };
        let e = h5err(&self.path);
        let rows = p.start..p.start + p.rows;
        self.written[level_pos] = self.written[level_pos].max(rows.end);
        let write = |d: &hdf5::Dataset, values: Vec<f64>| -> hdf5::Result<()> {
            let shape = d.shape();
            let mut bshape = shape.clone();
            bshape[0] = rows.len();
            let block = ArrayD::from_shape_vec(IxDyn(&bshape), values)
                .map_err(|err| hdf5::Error::from(err.to_string()))?;
            let mut sel = vec![hdf5::SliceOrIndex::from(rows.clone())];
            sel.extend(std::iter::repeat_n(
                hdf5::SliceOrIndex::from(..),
                shape.len() - 1,
            ));
            d.write_slice(&block, hdf5::Hyperslab::from(sel))
        };
        write(&self.outputs[level_pos], p.outputs).map_err(&e)?;
        for ((_, d, _), v) in self.extras[level_pos].iter().zip(p.extras) {
            write(d, v).map_err(&e)?;
        }
        Ok(())
    }

    /// Write what is left, the per-sample scalars and the labels, and move the file into
    /// place (atomically: until then `path` keeps what it held).
    pub fn finish(mut self) -> Result<(), DataError> {
        for p in 0..self.levels.len() {
            self.flush(p)?;
        }
        let path = self.path.clone();
        let e = h5err(&path);
        for (g, l) in self.groups.iter().zip(&self.levels) {
            write_level_end(g, &self.meta, l).map_err(&e)?;
        }
        let Self {
            tmp,
            file,
            groups,
            outputs,
            extras,
            ..
        } = self;
        drop((groups, outputs, extras));
        file.close().map_err(&e)?;
        if let Ok(f) = std::fs::File::open(&tmp) {
            let _ = f.sync_all();
        }
        std::fs::rename(&tmp, &path).map_err(|source| DataError::Io {
            path: path.display().to_string(),
            source,
        })
    }
}

/// Read and validate a dataset. Samples not yet computed (status 2) are allowed here; call
/// [`Dataset::require_complete`] before training on it.
pub fn read(path: &Path) -> Result<Dataset, DataError> {
    read_mode(path, false)
}

/// Everything of [`read`] but the output and extras values: the levels' `outputs` (and each
/// extra's `values`) have no columns, shapes are still validated. What generation and merging
/// need to resume or combine files of any size in bounded memory; the values are streamed
/// with [`read_rows`].
pub fn read_head(path: &Path) -> Result<Dataset, DataError> {
    read_mode(path, true)
}

/// A block of rows: the outputs [rows, D] and each extra's values (by name) [rows, len].
pub type Rows = (Array2<f64>, Vec<(String, Array2<f64>)>);

/// Rows `start, start + step, ...` (`count` of them) of one level's outputs, [count, D], and
/// of each of its extras (by name). A read that fails names the array and the layer.
pub fn read_rows(
    path: &Path,
    level: usize,
    (start, step, count): (usize, usize, usize),
) -> Result<Rows, DataError> {
    let e = h5err(path);
    let f = File::open(path).map_err(&e)?;
    let at = format!("/fidelity/{level}");
    let g = f.group(&at).map_err(&e)?;
    let invalid = |what: String| DataError::Invalid {
        path: path.display().to_string(),
        what,
    };
    let block = |d: &hdf5::Dataset, what: &str| -> Result<Array2<f64>, DataError> {
        let shape = d.shape();
        let per: usize = shape[1..].iter().product();
        // Checked before reading: a damaged header can claim any row length.
        if count.saturating_mul(per) > 1 << 30
            || (count > 0 && start + step.max(1) * (count - 1) >= shape[0])
        {
            return Err(invalid(format!(
                "{what}: {count} rows of {per} values from row {start} do not fit its shape {shape:?}"
            )));
        }
        let mut sel = vec![hdf5::SliceOrIndex::SliceCount {
            start,
            step: step.max(1),
            count,
            block: 1,
        }];
        sel.extend(std::iter::repeat_n(
            hdf5::SliceOrIndex::from(..),
            shape.len() - 1,
        ));
        let a: ArrayD<f64> = d.read_slice(hdf5::Hyperslab::from(sel)).map_err(|err| {
            invalid(format!(
                "{what}: {}",
                failure_reason(Want::Float, d.dtype(), &err)
            ))
        })?;
        a.into_shape_with_order((count, per))
            .map_err(|err| invalid(format!("{what}: {err}")))
    };
    let outputs = block(&g.dataset("outputs").map_err(&e)?, &format!("{at}/outputs"))?;
    let mut extras = Vec::new();
    if let Ok(eg) = g.group("extras") {
        for name in eg.member_names().map_err(&e)? {
            let v = block(
                &eg.dataset(&name).map_err(&e)?,
                &format!("{at}/extras/{name}"),
            )?;
            extras.push((name, v));
        }
    }
    Ok((outputs, extras))
}

/// The first sample marked ok with a non-finite output among `outputs`, the rows from `start`
/// of a level (its status in full), as the error to report.
fn ok_but_not_finite(
    level: usize,
    status: &Array1<u8>,
    outputs: &Array2<f64>,
    start: usize,
) -> Option<String> {
    outputs.rows().into_iter().enumerate().find_map(|(k, row)| {
        let i = start + k;
        let j = row.iter().position(|v| !v.is_finite());
        j.filter(|_| status[i] == STATUS_OK).map(|j| {
            format!("/fidelity/{level}/outputs[{i}] is marked ok but value {j} is not finite")
        })
    })
}

/// The values of a dataset read from the file block by block and checked as [`read`] checks
/// them (a sample marked ok has finite outputs; every chunk decodes), holding one block:
/// `pipeline check` on a file of any size. `head` is the file's [`read_head`].
pub fn check_values(path: &Path, head: &Dataset) -> Result<(), DataError> {
    let rows = (2_097_152 / head.meta.output_len().max(1)).max(1);
    for l in &head.levels {
        for a in (0..l.len()).step_by(rows) {
            let b = (a + rows).min(l.len());
            let (outs, _) = read_rows(path, l.level, (a, 1, b - a))?;
            if let Some(what) = ok_but_not_finite(l.level, &l.status, &outs, a) {
                return Err(DataError::Invalid {
                    path: path.display().to_string(),
                    what,
                });
            }
        }
    }
    Ok(())
}

fn read_mode(path: &Path, head: bool) -> Result<Dataset, DataError> {
    let p = path.display().to_string();
    if !path.exists() {
        return Err(DataError::Missing { path: p });
    }
    let meta_len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    if meta_len == 0 {
        return Err(DataError::NotHdf5 {
            path: p,
            reason: "the file is empty".into(),
        });
    }
    let f = File::open(path).map_err(|e| DataError::NotHdf5 {
        path: p.clone(),
        reason: first_line(&e.to_string()),
    })?;
    let r = Reader {
        path: p.clone(),
        f,
        file_len: meta_len,
        head,
    };
    r.read()
}

thread_local! {
    static CONTAINING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether this thread is inside a library call whose panic the reader contains and turns
/// into an error; a panic hook should stay quiet then (the CLI's prints "internal error").
pub fn panic_is_contained() -> bool {
    CONTAINING.with(|c| c.get())
}

/// Run `f`, turning a panic into `Err(())`. Only for calls into the `hdf5` binding that can
/// panic on a damaged file: its attribute iteration formats names it got from libhdf5 and
/// panicked (`capacity overflow`) on cases of the HDF5 fuzzer; it re-raises the panic on our
/// side of the C boundary, where it can be caught.
fn contained<T>(f: impl FnOnce() -> T) -> Result<T, ()> {
    CONTAINING.with(|c| c.set(true));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    CONTAINING.with(|c| c.set(false));
    r.map_err(|_| ())
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").to_string()
}

/// What a stored array or attribute should hold, for [`Reader::read_failed`].
#[derive(Clone, Copy)]
enum Want {
    Float,
    Integer,
    Unsigned,
    Text,
}

impl Want {
    fn name(self) -> &'static str {
        match self {
            Want::Float => "floats",
            Want::Integer => "integers",
            Want::Unsigned => "unsigned integers",
            Want::Text => "strings",
        }
    }
}

/// Why reading an array or attribute failed, by the layer that failed: its datatype is not
/// what we store (or its header is unreadable), a compression filter, its dataspace, or the
/// storage under it.
fn failure_reason(want: Want, dtype: hdf5::Result<hdf5::Datatype>, e: &hdf5::Error) -> String {
    use hdf5::types::TypeDescriptor as T;
    use hdf5::MajorErrorCode as M;
    let msg = first_line(&e.to_string());
    let fits = |t: &T| match want {
        Want::Float => matches!(t, T::Float(_)),
        Want::Integer => matches!(t, T::Integer(_) | T::Unsigned(_)),
        Want::Unsigned => matches!(t, T::Unsigned(_)),
        Want::Text => matches!(
            t,
            T::VarLenUnicode | T::VarLenAscii | T::FixedAscii(_) | T::FixedUnicode(_)
        ),
    };
    match dtype.and_then(|t| t.to_descriptor()) {
        Err(_) => "its datatype header is unreadable (the file is damaged)".to_string(),
        Ok(t) if !fits(&t) => format!("it holds {t}, expected {}", want.name()),
        Ok(_) if e.contains_major(M::Pipeline) => {
            format!("the compression filter failed on its data ({msg}); the file is damaged")
        }
        Ok(_) if e.contains_major(M::Dataspace) => {
            format!("its dataspace is damaged ({msg})")
        }
        Ok(_) if e.contains_major(M::Datatype) => {
            format!("its datatype could not be converted ({msg}); the file is damaged")
        }
        Ok(_) => format!("reading its data failed ({msg}); the file is damaged or truncated"),
    }
}

struct Reader {
    path: String,
    f: File,
    file_len: u64,
    /// Skip the output and extras values ([`read_head`]).
    head: bool,
}

/// Deflate cannot compress by more than about 1032:1, so no dataset of ours holds more than
/// this many times the file's size (with a floor for tiny files).
const MAX_EXPANSION: u64 = 1032;
const MIN_LIMIT: u64 = 1 << 30;

impl Reader {
    fn missing(&self, what: impl Into<String>) -> DataError {
        DataError::MissingField {
            path: self.path.clone(),
            what: what.into(),
        }
    }
    fn invalid(&self, what: impl Into<String>) -> DataError {
        DataError::Invalid {
            path: self.path.clone(),
            what: what.into(),
        }
    }

    /// Why reading `what` failed, named by the layer that failed: its datatype is not what
    /// we store (or its header is unreadable), a compression filter, its dataspace, or the
    /// storage under it. (A deflate failure used to read as "not a float array".)
    fn read_failed(
        &self,
        what: &str,
        want: Want,
        dtype: hdf5::Result<hdf5::Datatype>,
        e: &hdf5::Error,
    ) -> DataError {
        self.invalid(format!("{what}: {}", failure_reason(want, dtype, e)))
    }

    /// A corrupted header can claim any shape. Refuse what the file cannot hold before the
    /// library allocates for it: more than isize::MAX bytes panics (`capacity overflow`, found
    /// by the HDF5 fuzzer), a merely huge allocation aborts the process. Attributes are
    /// stored uncompressed, so they take at least a byte per element of the file; datasets
    /// may be deflated, by at most [`MAX_EXPANSION`].
    fn check_size(&self, what: &str, shape: &[usize], attribute: bool) -> Result<(), DataError> {
        let elements = shape
            .iter()
            .try_fold(1u64, |acc, &n| acc.checked_mul(n as u64));
        let limit = if attribute {
            self.file_len
        } else {
            (self.file_len.saturating_mul(MAX_EXPANSION) / 8).max(MIN_LIMIT / 8)
        };
        match elements {
            Some(n) if n <= limit => Ok(()),
            _ => Err(self.invalid(format!(
                "{what} claims shape {shape:?}, more than a {} byte file can hold (the file is damaged)",
                self.file_len
            ))),
        }
    }

    /// An optional string attribute: "" when absent, an error when present but unreadable
    /// (a damaged attribute is reported, not read as missing).
    fn opt_str_attr(&self, loc: &Location, name: &str, whose: &str) -> Result<String, DataError> {
        if loc.attr(name).is_err() {
            return Ok(String::new());
        }
        self.str_attr(loc, name, whose)
    }

    fn str_attr(&self, loc: &Location, name: &str, whose: &str) -> Result<String, DataError> {
        let a = loc
            .attr(name)
            .map_err(|_| self.missing(format!("attribute {whose}{name}")))?;
        // Accept both variable-length and fixed-length strings (h5py writes either). The
        // library hands back whatever bytes the file holds, so a corrupted file can carry
        // invalid UTF-8: convert from bytes, never trust the `&str` views.
        if let Ok(s) = a.read_scalar::<VarLenUnicode>() {
            return Ok(text(s.as_bytes()));
        }
        if let Ok(s) = a.read_scalar::<hdf5::types::VarLenAscii>() {
            return Ok(text(s.as_bytes()));
        }
        if let Ok(s) = a.read_scalar::<hdf5::types::FixedUnicode<256>>() {
            return Ok(text(s.as_bytes()));
        }
        if let Ok(s) = a.read_scalar::<hdf5::types::FixedAscii<256>>() {
            return Ok(text(s.as_bytes()));
        }
        Err(self.invalid(format!("attribute {whose}{name} is not a string")))
    }
    fn strs_attr(&self, loc: &Location, name: &str) -> Result<Vec<String>, DataError> {
        let a = loc
            .attr(name)
            .map_err(|_| self.missing(format!("attribute {name}")))?;
        self.check_size(&format!("attribute {name}"), &a.shape(), true)?;
        if let Ok(v) = a.read_raw::<VarLenUnicode>() {
            return Ok(v.iter().map(|s| text(s.as_bytes())).collect());
        }
        if let Ok(v) = a.read_raw::<hdf5::types::VarLenAscii>() {
            return Ok(v.iter().map(|s| text(s.as_bytes())).collect());
        }
        if let Ok(v) = a.read_raw::<hdf5::types::FixedUnicode<256>>() {
            return Ok(v.iter().map(|s| text(s.as_bytes())).collect());
        }
        if let Ok(v) = a.read_raw::<hdf5::types::FixedAscii<256>>() {
            return Ok(v.iter().map(|s| text(s.as_bytes())).collect());
        }
        let e = a.read_raw::<VarLenUnicode>().err();
        Err(match e {
            Some(e) => self.read_failed(&format!("attribute {name}"), Want::Text, a.dtype(), &e),
            None => self.invalid(format!("attribute {name} is not an array of strings")),
        })
    }
    fn f64s_attr(&self, loc: &Location, name: &str) -> Result<Vec<f64>, DataError> {
        let a = loc
            .attr(name)
            .map_err(|_| self.missing(format!("attribute {name}")))?;
        self.check_size(&format!("attribute {name}"), &a.shape(), true)?;
        a.read_raw::<f64>()
            .map_err(|e| self.read_failed(&format!("attribute {name}"), Want::Float, a.dtype(), &e))
    }

    fn u64_attr(&self, loc: &Location, name: &str) -> Result<Option<u64>, DataError> {
        match loc.attr(name) {
            Ok(a) => a
                .read_scalar::<u64>()
                .or_else(|_| a.read_scalar::<i64>().map(|v| v as u64))
                .map(Some)
                .map_err(|_| self.invalid(format!("attribute {name} is not an integer"))),
            Err(_) => Ok(None),
        }
    }

    fn shard(&self, root: &Location) -> Result<Option<crate::dataset::Shard>, DataError> {
        match (
            self.u64_attr(root, "shard_index")?,
            self.u64_attr(root, "shard_count")?,
        ) {
            (None, None) => Ok(None),
            (Some(index), Some(count)) if count > 0 && index < count => {
                Ok(Some(crate::dataset::Shard {
                    index: index as usize,
                    count: count as usize,
                }))
            }
            (i, c) => Err(self.invalid(format!(
                "shard attributes are inconsistent (shard_index {i:?}, shard_count {c:?})"
            ))),
        }
    }

    fn read(&self) -> Result<Dataset, DataError> {
        let root: &Location = &self.f;
        let schema = self
            .str_attr(root, "schema", "")
            .map_err(|_| DataError::WrongSchema {
                path: self.path.clone(),
                found: "<none>".into(),
            })?;
        if schema != SCHEMA {
            return Err(DataError::WrongSchema {
                path: self.path.clone(),
                found: schema,
            });
        }
        let problem = self.str_attr(root, "problem", "")?;
        let created = self.opt_str_attr(root, "created", "")?;
        let generator = self.opt_str_attr(root, "generator", "")?;
        let seed = self
            .u64_attr(root, "seed")?
            .ok_or_else(|| self.missing("attribute seed"))?;
        let design = self.str_attr(root, "design", "")?;
        let input_names = self.strs_attr(root, "input_names")?;
        let d = input_names.len();
        let input_units = self.strs_attr(root, "input_units")?;
        let input_lower = self.f64s_attr(root, "input_lower")?;
        let input_upper = self.f64s_attr(root, "input_upper")?;
        for (what, len) in [
            ("input_units", input_units.len()),
            ("input_lower", input_lower.len()),
            ("input_upper", input_upper.len()),
        ] {
            if len != d {
                return Err(DataError::Shape {
                    path: self.path.clone(),
                    what: format!("attribute {what}"),
                    found: vec![len],
                    expected: vec![d],
                });
            }
        }
        let axis_names = self.strs_attr(root, "output_axes")?;
        let output_name = self.str_attr(root, "output_name", "")?;
        let output_unit = self.opt_str_attr(root, "output_unit", "")?;
        let grid = self
            .f
            .group("grid")
            .map_err(|_| self.missing("group /grid"))?;
        let mut axes = Vec::new();
        for name in &axis_names {
            let ds = grid
                .dataset(name)
                .map_err(|_| self.missing(format!("dataset /grid/{name}")))?;
            self.check_size(&format!("/grid/{name}"), &ds.shape(), false)?;
            let values = ds.read_raw::<f64>().map_err(|e| {
                self.read_failed(&format!("/grid/{name}"), Want::Float, ds.dtype(), &e)
            })?;
            if ds.ndim() != 1 || values.is_empty() || values.iter().any(|v| !v.is_finite()) {
                return Err(
                    self.invalid(format!("/grid/{name} must be a non-empty finite 1-D array"))
                );
            }
            let unit = self.opt_str_attr(&ds, "unit", &format!("/grid/{name} "))?;
            axes.push(Axis {
                name: name.clone(),
                unit,
                values,
            });
        }
        let shard = self.shard(root)?;
        let meta = Meta {
            shard,
            problem,
            created,
            generator,
            seed,
            design,
            input_names,
            input_units,
            input_lower,
            input_upper,
            output_name,
            output_unit,
            axes,
        };

        let fid = self
            .f
            .group("fidelity")
            .map_err(|_| self.missing("group /fidelity"))?;
        let mut names = fid
            .member_names()
            .map_err(|e| self.invalid(e.to_string()))?;
        names.sort_by_key(|n| n.parse::<usize>().unwrap_or(usize::MAX));
        if names.is_empty() {
            return Err(self.invalid("/fidelity has no levels"));
        }
        let mut levels = Vec::new();
        for name in names {
            let level: usize = name
                .parse()
                .map_err(|_| self.invalid(format!("/fidelity/{name} is not a level number")))?;
            let g = fid
                .group(&name)
                .map_err(|_| self.invalid(format!("/fidelity/{name} is not a group")))?;
            levels.push(self.read_level(&g, level, &meta)?);
        }
        self.check_bounds(&meta, &levels)?;
        Ok(Dataset { meta, levels })
    }

    /// The declared input ranges are ordered and finite, and every sample's design point
    /// (pending ones too: the design is written up front) lies inside them: a model trained on the file
    /// refuses predictions outside the declared box, so a file whose samples leave it is
    /// refused here, the same way by check, train and run.
    fn check_bounds(&self, meta: &Meta, levels: &[LevelData]) -> Result<(), DataError> {
        for (j, name) in meta.input_names.iter().enumerate() {
            let (lo, hi) = (meta.input_lower[j], meta.input_upper[j]);
            if !(lo.is_finite() && hi.is_finite() && lo <= hi) {
                return Err(self.invalid(format!(
                    "input {name} declares the range [{lo}, {hi}] (input_lower/input_upper): not a finite, ordered range"
                )));
            }
            let slack = 1e-12 * (hi - lo).abs().max(lo.abs()).max(hi.abs());
            for l in levels {
                let outside = (0..l.inputs.nrows()).find(|&i| {
                    let x = l.inputs[[i, j]];
                    !(x >= lo - slack && x <= hi + slack)
                });
                if let Some(i) = outside {
                    return Err(self.invalid(format!(
                        "/fidelity/{}/inputs[{i}]: {name} = {} lies outside its declared range [{lo}, {hi}]",
                        l.level,
                        l.inputs[[i, j]]
                    )));
                }
            }
        }
        Ok(())
    }

    fn read_level(&self, g: &Group, level: usize, meta: &Meta) -> Result<LevelData, DataError> {
        let at = |what: &str| format!("/fidelity/{level}/{what}");
        let whose = format!("/fidelity/{level} ");
        let lname = match self.opt_str_attr(g, "name", &whose)? {
            n if n.is_empty() => level.to_string(),
            n => n,
        };
        let description = self.opt_str_attr(g, "description", &whose)?;
        let mut settings = Vec::new();
        let names = contained(|| g.attr_names())
            .map_err(|_| {
                self.invalid(format!(
                    "/fidelity/{level}: the HDF5 binding failed listing its attributes (the file is damaged)"
                ))
            })?
            .unwrap_or_default();
        for a in names {
            if ["name", "level", "description", "offline_cost_s"].contains(&a.as_str()) {
                continue;
            }
            // Numeric attributes are the level's settings; text ones are not ours to read.
            // One that cannot be opened or read is damage, reported, not skipped.
            let what = format!("attribute {whose}{a}");
            let attr = g.attr(&a).map_err(|_| {
                self.invalid(format!("{what} cannot be opened (the file is damaged)"))
            })?;
            use hdf5::types::TypeDescriptor as T;
            match attr.dtype().and_then(|t| t.to_descriptor()) {
                Ok(T::Integer(_) | T::Unsigned(_) | T::Float(_)) => {
                    let v = attr
                        .read_scalar::<f64>()
                        .map_err(|e| self.read_failed(&what, Want::Float, attr.dtype(), &e))?;
                    settings.push((a, v));
                }
                Ok(_) => {}
                Err(e) => return Err(self.read_failed(&what, Want::Float, attr.dtype(), &e)),
            }
        }
        let open = |what: &str| {
            let ds = g
                .dataset(what)
                .map_err(|_| self.missing(format!("dataset {}", at(what))))?;
            self.check_size(&at(what), &ds.shape(), false)?;
            Ok::<_, DataError>(ds)
        };
        // The output and extras values: a head read does not allocate them, and a file still
        // being generated declares them in full while holding few (unwritten chunks take no
        // space), so only their shapes are checked (against the inputs' sample count, which
        // is bounded by the file).
        let open_values = |what: &str| {
            if !self.head {
                return open(what);
            }
            g.dataset(what)
                .map_err(|_| self.missing(format!("dataset {}", at(what))))
        };
        let d = meta.input_names.len();
        let inputs_ds = open("inputs")?;
        let shape = inputs_ds.shape();
        if shape.len() != 2 || shape[1] != d {
            return Err(DataError::Shape {
                path: self.path.clone(),
                what: at("inputs"),
                found: shape,
                expected: vec![inputs_ds.shape().first().copied().unwrap_or(0), d],
            });
        }
        let n = shape[0];
        let inputs: Array2<f64> = inputs_ds
            .read_2d::<f64>()
            .map_err(|e| self.read_failed(&at("inputs"), Want::Float, inputs_ds.dtype(), &e))?;
        let outputs_ds = open_values("outputs")?;
        let mut expected = vec![n];
        expected.extend(meta.output_shape());
        if outputs_ds.shape() != expected {
            return Err(DataError::Shape {
                path: self.path.clone(),
                what: at("outputs"),
                found: outputs_ds.shape(),
                expected,
            });
        }
        let outputs = if self.head {
            Array2::zeros((n, 0))
        } else {
            let flat = outputs_ds.read_raw::<f64>().map_err(|e| {
                self.read_failed(&at("outputs"), Want::Float, outputs_ds.dtype(), &e)
            })?;
            Array2::from_shape_vec((n, meta.output_len()), flat)
                .map_err(|e| self.invalid(e.to_string()))?
        };
        let vec1 = |what: &str| -> Result<hdf5::Dataset, DataError> {
            let ds = open(what)?;
            if ds.shape() != vec![n] {
                return Err(DataError::Shape {
                    path: self.path.clone(),
                    what: at(what),
                    found: ds.shape(),
                    expected: vec![n],
                });
            }
            Ok(ds)
        };
        let read_f64 = |what: &str| -> Result<Array1<f64>, DataError> {
            let ds = vec1(what)?;
            ds.read_1d::<f64>()
                .map_err(|e| self.read_failed(&at(what), Want::Float, ds.dtype(), &e))
        };
        let cost_s = read_f64("cost_s")?;
        let status_ds = vec1("status")?;
        let status: Array1<u8> = status_ds
            .read_1d::<u8>()
            .map_err(|e| self.read_failed(&at("status"), Want::Integer, status_ds.dtype(), &e))?;
        if let Some((i, s)) = status
            .iter()
            .enumerate()
            .find(|(_, s)| **s > STATUS_PENDING)
        {
            return Err(self.invalid(format!(
                "{}[{i}] = {s}, expected 0 (ok), 1 (failed) or 2 (pending)",
                at("status")
            )));
        }
        let role = if g.link_exists("role") {
            let ds = vec1("role")?;
            let r: Array1<u8> = ds
                .read_1d::<u8>()
                .map_err(|e| self.read_failed(&at("role"), Want::Integer, ds.dtype(), &e))?;
            if let Some((i, v)) = r.iter().enumerate().find(|(_, v)| **v > 1) {
                return Err(self.invalid(format!(
                    "{}[{i}] = {v}, expected 0 (train) or 1 (test)",
                    at("role")
                )));
            }
            Some(r)
        } else {
            None
        };
        let seed = if g.link_exists("seed") {
            let ds = vec1("seed")?;
            Some(
                ds.read_1d::<u64>()
                    .map_err(|e| self.read_failed(&at("seed"), Want::Unsigned, ds.dtype(), &e))?,
            )
        } else {
            None
        };
        let offline_cost_s = match g.attr("offline_cost_s") {
            Ok(a) => Some(a.read_scalar::<f64>().map_err(|e| {
                self.read_failed(
                    &format!("attribute {whose}offline_cost_s"),
                    Want::Float,
                    a.dtype(),
                    &e,
                )
            })?),
            Err(_) => None,
        };
        let mut diagnostics = std::collections::BTreeMap::new();
        if let Ok(dg) = g.group("diagnostics") {
            let names = dg.member_names().map_err(|e| self.invalid(e.to_string()))?;
            for name in names {
                let what = format!("diagnostics/{name}");
                let v = read_f64(&what)?;
                diagnostics.insert(name, v);
            }
        }
        let failure = if g.link_exists("failure") {
            let ds = vec1("failure")?;
            let v = ds
                .read_raw::<VarLenUnicode>()
                .map(|v| v.iter().map(|s| text(s.as_bytes())).collect::<Vec<_>>())
                .or_else(|_| {
                    ds.read_raw::<hdf5::types::VarLenAscii>()
                        .map(|v| v.iter().map(|s| text(s.as_bytes())).collect())
                })
                .map_err(|_| {
                    self.invalid(format!("{} is not an array of strings", at("failure")))
                })?;
            Some(v)
        } else {
            None
        };
        let mut extras = Vec::new();
        if let Ok(eg) = g.group("extras") {
            let names = eg.member_names().map_err(|e| self.invalid(e.to_string()))?;
            for name in names {
                let what = format!("extras/{name}");
                let ds = open_values(&what)?;
                let shape = ds.shape();
                if shape.first() != Some(&n) {
                    return Err(DataError::Shape {
                        path: self.path.clone(),
                        what: at(&what),
                        found: shape,
                        expected: vec![n],
                    });
                }
                let per: usize = shape[1..].iter().product();
                let values = if self.head {
                    Array2::zeros((n, 0))
                } else {
                    let flat = ds
                        .read_raw::<f64>()
                        .map_err(|e| self.read_failed(&at(&what), Want::Float, ds.dtype(), &e))?;
                    Array2::from_shape_vec((n, per), flat)
                        .map_err(|e| self.invalid(e.to_string()))?
                };
                let unit = self.opt_str_attr(&ds, "unit", &format!("{} ", at(&what)))?;
                extras.push(crate::dataset::ExtraData {
                    name,
                    unit,
                    shape: shape[1..].to_vec(),
                    values,
                });
            }
        }
        for i in 0..n {
            if let Some(j) = inputs.row(i).iter().position(|v| !v.is_finite()) {
                return Err(self.invalid(format!("{}[{i}, {j}] is not finite", at("inputs"))));
            }
        }
        if let Some(what) = ok_but_not_finite(level, &status, &outputs, 0) {
            return Err(self.invalid(what));
        }
        Ok(LevelData {
            level,
            name: lname,
            description,
            settings,
            inputs,
            outputs,
            cost_s,
            status,
            role,
            seed,
            diagnostics,
            failure,
            extras,
            offline_cost_s,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    pub(crate) fn sample_dataset() -> Dataset {
        let meta = Meta {
            problem: "toy".into(),
            created: "2026-01-01T00:00:00Z".into(),
            generator: "test".into(),
            seed: 3,
            design: "sobol".into(),
            input_names: vec!["a".into()],
            input_units: vec!["m".into()],
            input_lower: vec![0.0],
            input_upper: vec![1.0],
            output_name: "u".into(),
            output_unit: "1".into(),
            shard: None,
            axes: vec![
                Axis {
                    name: "t".into(),
                    unit: "s".into(),
                    values: vec![0.0, 1.0],
                },
                Axis {
                    name: "x".into(),
                    unit: "m".into(),
                    values: vec![0.0, 0.5, 1.0],
                },
            ],
        };
        let level = LevelData {
            level: 0,
            name: "low".into(),
            description: "toy".into(),
            settings: vec![("n".into(), 16.0)],
            inputs: array![[0.25], [0.75]],
            outputs: Array2::from_shape_fn((2, 6), |(i, j)| (i * 10 + j) as f64),
            cost_s: array![0.1, 0.2],
            status: array![0, 2],
            role: Some(array![0, 1]),
            seed: Some(array![11, 12]),
            diagnostics: [("iterations".to_string(), array![3.0, f64::NAN])].into(),
            failure: Some(vec![String::new(), "did not converge".into()]),
            extras: vec![crate::dataset::ExtraData {
                name: "coarse".into(),
                unit: "1".into(),
                shape: vec![2, 2],
                values: Array2::from_shape_fn((2, 4), |(i, j)| (i * 4 + j) as f64),
            }],
            offline_cost_s: Some(1.5),
        };
        Dataset {
            meta,
            levels: vec![level],
        }
    }

    #[test]
    fn round_trip_preserves_everything() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.h5");
        let ds = sample_dataset();
        write(&p, &ds).unwrap();
        let back = read(&p).unwrap();
        assert!(back.same_content(&ds));
        assert_eq!(back.levels[0].offline_cost_s, Some(1.5));
        assert_eq!(back.levels[0].cost_s, ds.levels[0].cost_s);
        assert!(matches!(
            back.require_complete("a.h5"),
            Err(DataError::Incomplete { pending: 1, .. })
        ));
    }
}
