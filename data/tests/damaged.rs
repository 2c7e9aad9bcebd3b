//! Damaged and foreign files are refused with an error that names the object and the layer
//! that failed (compression filter, datatype, declared ranges), never read as something else.
#![cfg(feature = "hdf5")]

mod common;

use mfpipe_data::dataset::{Dataset, LevelData};
use mfpipe_data::h5;
use ndarray::{Array1, Array2};
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

fn dataset() -> Dataset {
    let meta = common::toy_meta(400);
    let n = 8;
    let level = LevelData {
        level: 0,
        name: "low".into(),
        description: "toy".into(),
        settings: vec![("n_cells".into(), 16.0)],
        inputs: Array2::from_shape_fn(
            (n, 2),
            |(i, j)| {
                if j == 0 {
                    i as f64 / n as f64
                } else {
                    -0.5
                }
            },
        ),
        // Not constant, so deflate has something to encode and a flipped byte breaks it.
        outputs: Array2::from_shape_fn((n, 400), |(i, j)| ((i * 400 + j) as f64).sin()),
        cost_s: Array1::from_elem(n, 0.1),
        status: Array1::zeros(n),
        role: None,
        seed: None,
        diagnostics: Default::default(),
        failure: None,
        extras: vec![],
        offline_cost_s: None,
    };
    Dataset {
        meta,
        levels: vec![level],
    }
}

fn message(path: &Path) -> String {
    h5::read(path).expect_err("the file is refused").to_string()
}

#[test]
fn a_corrupted_compressed_chunk_is_reported_as_a_filter_failure() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("toy.h5");
    h5::write(&path, &dataset()).unwrap();
    h5::read(&path).expect("the intact file reads");
    // Where the (deflated) outputs chunk sits in the file.
    let (addr, size) = {
        let f = hdf5::File::open(&path).unwrap();
        let ds = f.dataset("fidelity/0/outputs").unwrap();
        let info = ds.chunk_info(0).expect("outputs are chunked");
        (info.addr, info.size)
    };
    assert!(size > 64, "chunk of {size} bytes");
    let mut file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.seek(SeekFrom::Start(addr + size / 3)).unwrap();
    file.write_all(&[0xff; 24]).unwrap();
    drop(file);
    let e = message(&path);
    assert!(e.contains("/fidelity/0/outputs"), "{e}");
    assert!(e.contains("compression filter"), "{e}");
    assert!(!e.contains("not a float array"), "{e}");
    assert_eq!(e.lines().count(), 1, "{e}");
}

#[test]
fn a_setting_stored_as_text_is_named_not_skipped() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("toy.h5");
    h5::write(&path, &dataset()).unwrap();
    {
        let f = hdf5::File::open_rw(&path).unwrap();
        let g = f.group("fidelity/0").unwrap();
        let v: hdf5::types::VarLenUnicode = "fast".parse().unwrap();
        g.new_attr::<hdf5::types::VarLenUnicode>()
            .create("offline_cost_s")
            .unwrap()
            .write_scalar(&v)
            .unwrap();
    }
    let e = message(&path);
    assert!(e.contains("offline_cost_s"), "{e}");
    assert!(e.contains("expected floats"), "{e}");
}

#[test]
fn samples_outside_the_declared_ranges_are_refused() {
    let d = tempfile::tempdir().unwrap();
    // A sample of input a at 1.5, with a declared range [0, 1].
    let path = d.path().join("outside.h5");
    let mut ds = dataset();
    ds.levels[0].inputs[[3, 0]] = 1.5;
    h5::write(&path, &ds).unwrap();
    let e = message(&path);
    assert!(
        e.contains("/fidelity/0/inputs[3]") && e.contains("a = 1.5") && e.contains("[0, 1]"),
        "{e}"
    );
    // Swapped bounds.
    let path = d.path().join("swapped.h5");
    let mut ds = dataset();
    ds.meta.input_lower[1] = 1.0;
    ds.meta.input_upper[1] = -1.0;
    h5::write(&path, &ds).unwrap();
    let e = message(&path);
    assert!(
        e.contains("input b") && e.contains("[1, -1]") && e.contains("ordered"),
        "{e}"
    );
}

#[test]
fn a_sample_marked_ok_with_a_non_finite_value_is_refused_whole_and_block_by_block() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("nan.h5");
    let mut ds = dataset();
    ds.levels[0].outputs[[5, 17]] = f64::NAN;
    h5::write(&path, &ds).unwrap();
    let e = message(&path);
    assert!(
        e.contains("/fidelity/0/outputs[5] is marked ok but value 17 is not finite"),
        "{e}"
    );
    // The head read does not look at values; the block-wise check does, the same way.
    let head = h5::read_head(&path).unwrap();
    let e = h5::check_values(&path, &head).unwrap_err().to_string();
    assert!(
        e.contains("/fidelity/0/outputs[5] is marked ok but value 17 is not finite"),
        "{e}"
    );
    // Marked failed, the same value is what a failed sample holds.
    ds.levels[0].status[5] = mfpipe_data::dataset::STATUS_FAILED;
    h5::write(&path, &ds).unwrap();
    h5::check_values(&path, &h5::read_head(&path).unwrap()).unwrap();
    h5::read(&path).unwrap();
}
