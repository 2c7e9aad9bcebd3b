//! `h5::Stream` writes a dataset whose values arrive sample by sample in bounded memory, laid
//! out exactly as `h5::write` lays out the same dataset held in memory.
#![cfg(feature = "hdf5")]

mod common;

use common::toy_meta as meta;
use mfpipe_data::dataset::{Dataset, ExtraData, LevelData, STATUS_PENDING};
use mfpipe_data::h5;
use ndarray::{Array1, Array2};
use std::path::Path;

/// A level of `n` pending samples as a head: outputs and extras without columns.
fn head_level(n: usize, with_extra: bool) -> LevelData {
    let inputs = Array2::from_shape_fn(
        (n, 2),
        |(i, j)| if j == 0 { i as f64 / n as f64 } else { 0.0 },
    );
    let mut l = LevelData::all_pending(0, "low".into(), "toy".into(), vec![], inputs, 0, &[]);
    if with_extra {
        l.extras = vec![ExtraData {
            name: "flux".into(),
            unit: "W".into(),
            shape: vec![2],
            values: Array2::zeros((n, 0)),
        }];
    }
    l
}

/// The same level twice: held whole in memory (every value NaN until set), and as a stream
/// to `path`.
fn pair(path: &Path, n: usize, dout: usize) -> (Dataset, h5::Stream) {
    let mut full = Dataset {
        meta: meta(dout),
        levels: vec![head_level(n, true)],
    };
    full.levels[0].outputs = Array2::from_elem((n, dout), f64::NAN);
    full.levels[0].extras[0].values = Array2::from_elem((n, 2), f64::NAN);
    let head = Dataset {
        meta: meta(dout),
        levels: vec![head_level(n, true)],
    };
    (full, h5::Stream::create(path, head).unwrap())
}

fn result(i: usize, d: usize) -> mfpipe_data::dataset::SampleResult {
    mfpipe_data::dataset::SampleResult {
        status: 0,
        cost_s: 0.5,
        seed: i as u64,
        values: (0..d).map(|j| (i * 1000 + j) as f64).collect(),
        diagnostics: [("iterations".to_string(), i as f64)].into(),
        failure: String::new(),
        extras: vec![("flux".into(), vec![i as f64, -(i as f64)])],
    }
}

#[test]
fn a_streamed_file_reads_back_as_the_same_dataset_written_in_memory() {
    let d = tempfile::tempdir().unwrap();
    let (n, dout) = (50, 7);
    let (mut full, mut stream) = pair(&d.path().join("s.h5"), n, dout);
    // Out of order, with gaps (pending samples stay pending, their values NaN).
    for i in (0..n).rev().filter(|i| i % 7 != 3) {
        let r = result(i, dout);
        stream.put(0, i, &r).unwrap();
        full.levels[0].set(i, &r).unwrap();
    }
    stream.finish().unwrap();
    h5::write(&d.path().join("m.h5"), &full).unwrap();
    let (s, m) = (
        h5::read(&d.path().join("s.h5")).unwrap(),
        h5::read(&d.path().join("m.h5")).unwrap(),
    );
    let (ls, lm) = (&s.levels[0], &m.levels[0]);
    let same = |a: &Array2<f64>, b: &Array2<f64>| {
        a.dim() == b.dim() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
    };
    assert!(same(&ls.outputs, &lm.outputs));
    assert!(same(&ls.extras[0].values, &lm.extras[0].values));
    assert_eq!(ls.status, lm.status);
    assert_eq!(ls.seed, lm.seed);
    assert_eq!(ls.diagnostics.keys().collect::<Vec<_>>(), ["iterations"]);
    assert_eq!(ls.status[3], STATUS_PENDING);
    assert_eq!(ls.outputs[[11, 2]], 11_002.0);
    assert!(
        ls.outputs.row(10).iter().all(|v| v.is_nan()),
        "a pending row"
    );
    // The head read has every scalar and no values.
    let h = h5::read_head(&d.path().join("s.h5")).unwrap();
    assert_eq!(h.levels[0].outputs.dim(), (n, 0));
    assert_eq!(h.levels[0].status, ls.status);
    // Strided rows, as merge reads a shard's own samples.
    let (rows, extras) = h5::read_rows(&d.path().join("s.h5"), 0, (4, 5, 3)).unwrap();
    assert_eq!(rows.column(0).to_vec(), [4000.0, 9000.0, 14_000.0]);
    assert_eq!(extras[0].1.column(1).to_vec(), [-4.0, -9.0, -14.0]);
}

#[test]
fn declaring_a_huge_level_allocates_nothing_for_its_values() {
    // 10^6 samples of a 10^4-point field: 80 GB of values if any of it were held.
    let d = tempfile::tempdir().unwrap();
    let (n, dout) = (1_000_000, 10_000);
    let path = d.path().join("big.h5");
    let mut stream = h5::Stream::create(
        &path,
        Dataset {
            meta: meta(dout),
            levels: vec![head_level(n, false)],
        },
    )
    .unwrap();
    for i in [0, 1, 999_999] {
        let mut r = result(i, dout);
        r.extras.clear();
        stream.put(0, i, &r).unwrap();
    }
    stream.finish().unwrap();
    // Unwritten chunks take no space: the file holds the inputs, scalars and three rows.
    let size = std::fs::metadata(&path).unwrap().len();
    assert!(size < 100_000_000, "{size} bytes");
    let h = h5::read_head(&path).unwrap();
    assert_eq!(h.levels[0].len(), n);
    let pending = h.levels[0].status.iter().filter(|&&s| s == STATUS_PENDING);
    assert_eq!(pending.count(), n - 3);
    let (rows, _) = h5::read_rows(&path, 0, (999_998, 1, 2)).unwrap();
    assert!(
        rows.row(0).iter().all(|v| v.is_nan()),
        "unwritten rows read as NaN"
    );
    assert_eq!(rows[[1, 5]], 999_999_005.0);
    let seeds: &Array1<u64> = h.levels[0].seed.as_ref().unwrap();
    assert_eq!(seeds[999_999], 999_999);
}

#[test]
fn a_shards_strided_samples_bridge_their_gaps_without_touching_other_rows() {
    // Shard 1 of 3 writes samples 1, 4, 7, ...: blocks span the other shards' rows, which
    // must stay pending and read as NaN. Then samples 0, 3, 6, ... arrive: their blocks lie
    // below what was written, so they may not bridge gaps (that would write NaN over 1, 4).
    let d = tempfile::tempdir().unwrap();
    let (n, dout) = (200, 5);
    let path = d.path().join("shard.h5");
    let (mut full, mut stream) = pair(&path, n, dout);
    let order: Vec<usize> = (1..n).step_by(3).chain((0..n).step_by(3)).collect();
    for i in order {
        let r = result(i, dout);
        stream.put(0, i, &r).unwrap();
        full.levels[0].set(i, &r).unwrap();
    }
    stream.finish().unwrap();
    let s = h5::read(&path).unwrap();
    let (ls, lm) = (&s.levels[0], &full.levels[0]);
    assert!(ls
        .outputs
        .iter()
        .zip(&lm.outputs)
        .all(|(x, y)| x.to_bits() == y.to_bits()));
    assert_eq!(ls.status, lm.status);
    assert_eq!(ls.status[2], STATUS_PENDING);
    assert!(ls.outputs.row(2).iter().all(|v| v.is_nan()));
    assert_eq!(ls.outputs[[3, 1]], 3001.0);
    assert_eq!(ls.extras[0].values[[4, 1]], -4.0);
}
