//! Mutation fuzzing of the HDF5 reader: valid mfpipe files with random byte flips, zeroed
//! runs, truncations and copied blocks must give `Ok` or a `DataError`, never a panic.
//!
//! `cargo test` runs a short, fixed set of cases (MFPIPE_FUZZ_CASES, default 300, starting at
//! case MFPIPE_FUZZ_START, default 600; case k always mutates the same way). `scripts/fuzz` runs
//! millions of cases in chunks, each chunk a process under a time limit, because a corrupted
//! file can make libhdf5 itself loop (see BENCHMARKS.md); such chunks are reported as hangs.

use mfpipe_data::dataset::{Dataset, LevelData, Meta};
use mfpipe_data::{h5, Axis};
use ndarray::{array, Array2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn base() -> Dataset {
    let meta = Meta {
        problem: "toy".into(),
        created: "2026-01-01T00:00:00Z".into(),
        generator: "fuzz".into(),
        seed: 3,
        design: "sobol".into(),
        input_names: vec!["a".into(), "b".into()],
        input_units: vec!["m".into(), "1".into()],
        input_lower: vec![0.0, -1.0],
        input_upper: vec![1.0, 1.0],
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
    let level = |level: usize| LevelData {
        level,
        name: format!("level{level}"),
        description: "fuzz base".into(),
        settings: vec![("n".into(), 16.0)],
        inputs: array![[0.25, 0.5], [0.75, -0.5], [0.5, 0.0]],
        outputs: Array2::from_shape_fn((3, 6), |(i, j)| (i * 10 + j) as f64),
        cost_s: array![0.1, 0.2, 0.3],
        status: array![0, 1, 0],
        role: Some(array![0, 1, 0]),
    };
    Dataset {
        meta,
        levels: vec![level(0), level(1)],
    }
}

fn mutate(bytes: &[u8], rng: &mut ChaCha8Rng) -> Vec<u8> {
    let mut b = bytes.to_vec();
    for _ in 0..rng.random_range(1..=6) {
        let n = b.len();
        if n == 0 {
            break;
        }
        match rng.random_range(0..5) {
            0 => {
                let i = rng.random_range(0..n);
                b[i] ^= 1 << rng.random_range(0..8);
            }
            1 => {
                let i = rng.random_range(0..n);
                b[i] = rng.random();
            }
            2 => {
                let i = rng.random_range(0..n);
                let len = rng.random_range(1..=64).min(n - i);
                b[i..i + len].fill(0);
            }
            3 => {
                let keep = rng.random_range(0..n);
                b.truncate(keep);
            }
            _ => {
                let (src, dst) = (rng.random_range(0..n), rng.random_range(0..n));
                let len = rng.random_range(1..=32).min(n - src).min(n - dst);
                let block = b[src..src + len].to_vec();
                b[dst..dst + len].copy_from_slice(&block);
            }
        }
    }
    b
}

#[test]
fn mutated_files_never_panic_the_reader() {
    let cases = env("MFPIPE_FUZZ_CASES", 300);
    // The default range is one where Debian's libhdf5 1.10.8 does not loop (most ranges of 300
    // hit a case that makes it spin in H5HG_read; see BENCHMARKS.md, "Fuzzing").
    let start = env("MFPIPE_FUZZ_START", 600);
    run(start, cases);
}

/// Cases that once found a bug. 5011: a string attribute holding invalid UTF-8 made the
/// error message's formatting panic (the library's `&str` view was trusted).
#[test]
fn cases_that_found_bugs_stay_fixed() {
    const FOUND: [u64; 1] = [5011];
    for &k in &FOUND {
        run(k, 1);
    }
}

fn run(start: u64, cases: u64) {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.h5");
    h5::write(&good, &base()).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    assert_eq!(h5::read(&good).unwrap(), base());
    let path = dir.path().join("case.h5");
    let (mut ok, mut err, mut panics) = (0u64, 0u64, Vec::new());
    for k in start..start + cases {
        let mut rng = ChaCha8Rng::seed_from_u64(k);
        std::fs::write(&path, mutate(&bytes, &mut rng)).unwrap();
        match std::panic::catch_unwind(|| h5::read(&path)) {
            Ok(Ok(_)) => ok += 1,
            Ok(Err(e)) => {
                // Errors are one line, as the CLI prints them.
                assert!(!e.to_string().contains('\n'), "case {k}: {e}");
                err += 1
            }
            Err(_) => panics.push(k),
        }
    }
    println!(
        "hdf5 reader: {cases} cases from {start}: {ok} read, {err} errors, {} panics",
        panics.len()
    );
    assert!(panics.is_empty(), "cases that panicked: {panics:?}");
}
