//! Mutation fuzzing of the HDF5 reader: valid mfpipe files with random byte flips, zeroed
//! runs, truncations and copied blocks must give `Ok` or a one-line `DataError`, never a panic.
//!
//! `cargo test` runs a short, fixed set of cases (MFPIPE_FUZZ_CASES, default 300, starting at
//! case MFPIPE_FUZZ_START, default 600; case k always mutates the same way).
//!
//! `scripts/fuzz` runs millions of cases through the ignored `fuzz_drive` test. libhdf5 itself
//! (C, below our reader) segfaults or loops forever on about one mutated file in a hundred, so
//! the driver runs the cases in child processes (`fuzz_child`), one case after another, and when
//! a child dies or its watchdog sees a case run for too long, it records that case as a libhdf5
//! crash or hang and starts a new child at the next case. Every case is thus tried exactly once
//! and classified. The `pipeline` binary reads every dataset in a child first for the same
//! reason (see `pipeline/src/isolate.rs`).

mod common;

use mfpipe_data::dataset::{Dataset, LevelData, Meta};
use mfpipe_data::{h5, Axis};
use ndarray::{array, Array2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn base() -> Dataset {
    // The toy problem with the fuzzer's own generator name and a 2 x 3 grid: the cases'
    // mutations are positions in these exact bytes.
    let meta = Meta {
        generator: "fuzz".into(),
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
        ..common::toy_meta(0)
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
        seed: None,
        diagnostics: Default::default(),
        failure: None,
        extras: vec![],
        offline_cost_s: None,
    };
    Dataset {
        meta,
        levels: vec![level(0), level(1)],
    }
}

/// The base with every optional member of a level (seed, diagnostics, failure reasons,
/// extras, offline cost), so that their readers are fuzzed too. A separate base: the cases
/// of [`base`] (and the regression cases among them) must keep mutating the same bytes.
fn base_with_members() -> Dataset {
    let mut ds = base();
    for l in &mut ds.levels {
        l.seed = Some(array![1, 2, 3]);
        l.diagnostics = [("iterations".to_string(), array![2.0, f64::NAN, 3.0])].into();
        l.failure = Some(vec![String::new(), "diverged".into(), String::new()]);
        l.extras = vec![mfpipe_data::dataset::ExtraData {
            name: "coarse".into(),
            unit: "1".into(),
            shape: vec![2],
            values: array![[1.0, 2.0], [f64::NAN, f64::NAN], [3.0, 4.0]],
        }];
        l.offline_cost_s = Some(0.5);
    }
    ds
}

/// Which base the cases mutate: MFPIPE_FUZZ_BASE=members selects [`base_with_members`].
fn chosen_base() -> Dataset {
    match std::env::var("MFPIPE_FUZZ_BASE").as_deref() {
        Ok("members") => base_with_members(),
        _ => base(),
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

/// In child processes, as `scripts/fuzz` does: libhdf5 1.10.8 itself loops forever on some
/// damaged files (in H5HG_read, the global heap of variable-length strings), and which cases
/// do depends on the base file's bytes, so an in-process run could hang the suite whenever
/// the writer changes. libhdf5's own crashes and hangs are counted; our reader must never
/// panic or give a multi-line error.
#[test]
fn mutated_files_never_panic_the_reader() {
    let cases = env("MFPIPE_FUZZ_CASES", 300);
    let start = env("MFPIPE_FUZZ_START", 600);
    let t = drive_range(start, start + cases, 200);
    check(&format!("hdf5 reader: {cases} cases from {start}"), &t);
}

/// Print what libhdf5 did with a range of cases and fail on anything of ours: a panic or a
/// multi-line error.
fn check(label: &str, t: &Tally) {
    println!(
        "{label}: libhdf5 crashed on {} and hung on {}",
        t.crashes.len(),
        t.hangs.len()
    );
    assert!(t.panics.is_empty(), "reader panicked on {:?}", t.panics);
    assert!(
        t.multiline.is_empty(),
        "multi-line errors on {:?}",
        t.multiline
    );
}

/// The optional members' readers on mutated files, in child processes: variable-length strings
/// (`failure`) live in HDF5's global heap, where libhdf5 1.10.8 itself loops forever on some
/// damaged files, so an in-process run could hang. libhdf5's own crashes and hangs are counted;
/// our reader must never panic or give a multi-line error.
#[test]
fn mutated_optional_members_never_panic_the_reader() {
    let cases = env("MFPIPE_FUZZ_CASES", 300);
    let t = drive_range_of(true, 0, cases, 200);
    check(&format!("hdf5 reader, optional members: {cases} cases"), &t);
}

/// Cases that once found a bug. 5011: a string attribute holding invalid UTF-8 made the
/// error message's formatting panic (the library's `&str` view was trusted). 21382: an
/// attribute claiming more elements than fit in memory panicked allocating for them
/// (`capacity overflow`). 126870: the binding's attribute iteration panicked on a damaged
/// attribute name.
/// (Case numbers name mutations of the base file, so they are the same cases only while the
/// writer's bytes are.)
#[test]
fn cases_that_found_bugs_stay_fixed() {
    const FOUND: [u64; 3] = [5011, 21382, 126870];
    for &k in &FOUND {
        check(&format!("case {k}"), &drive_range(k, k + 1, 2000));
    }
}

/// The valid file every case mutates.
fn base_bytes(dir: &std::path::Path) -> Vec<u8> {
    let good = dir.join("good.h5");
    let ds = chosen_base();
    h5::write(&good, &ds).unwrap();
    assert!(h5::read(&good).unwrap().same_content(&ds));
    std::fs::read(&good).unwrap()
}

/// The mutated file of case `k`.
fn case_bytes(bytes: &[u8], k: u64) -> Vec<u8> {
    mutate(bytes, &mut ChaCha8Rng::seed_from_u64(k))
}

/// What reading one mutated file gave.
enum Outcome {
    Read,
    Error,
    MultiLineError,
    Panic,
}

fn read_case(path: &std::path::Path, bytes: &[u8], k: u64) -> Outcome {
    std::fs::write(path, case_bytes(bytes, k)).unwrap();
    match std::panic::catch_unwind(|| h5::read(path)) {
        Ok(Ok(_)) => Outcome::Read,
        // Errors are one line, as the CLI prints them.
        Ok(Err(e)) if e.to_string().contains('\n') => Outcome::MultiLineError,
        Ok(Err(_)) => Outcome::Error,
        Err(_) => Outcome::Panic,
    }
}

/// One child of [`fuzz_drive`]: reads cases MFPIPE_FUZZ_START.. in order, announcing each on
/// stdout before reading it, so that the driver knows which case killed it. A watchdog aborts
/// the process when one case runs longer than MFPIPE_FUZZ_HANG_MS (a libhdf5 loop: the thread
/// inside libhdf5 cannot be stopped any other way).
#[test]
#[ignore = "run by fuzz_drive"]
fn fuzz_child() {
    let (start, cases) = (env("MFPIPE_FUZZ_START", 0), env("MFPIPE_FUZZ_CASES", 0));
    let hang = Duration::from_millis(env("MFPIPE_FUZZ_HANG_MS", 200));
    let dir = tempfile::tempdir().unwrap();
    let bytes = base_bytes(dir.path());
    let path = dir.path().join("case.h5");
    // The case being read and when it started (ms since `t0`); u64::MAX = between cases.
    let t0 = Instant::now();
    let current = Arc::new((AtomicU64::new(u64::MAX), AtomicU64::new(0)));
    let watch = current.clone();
    std::thread::spawn(move || loop {
        std::thread::sleep(hang / 4);
        let k = watch.0.load(Ordering::SeqCst);
        let since = watch.1.load(Ordering::SeqCst);
        if k != u64::MAX && t0.elapsed().as_millis() as u64 > since + hang.as_millis() as u64 {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "hang {k}");
            let _ = out.flush();
            std::process::abort();
        }
    });
    let mut out = std::io::stdout();
    for k in start..start + cases {
        writeln!(out, "case {k}").unwrap();
        out.flush().unwrap();
        current
            .1
            .store(t0.elapsed().as_millis() as u64, Ordering::SeqCst);
        current.0.store(k, Ordering::SeqCst);
        let outcome = read_case(&path, &bytes, k);
        current.0.store(u64::MAX, Ordering::SeqCst);
        match outcome {
            Outcome::Read | Outcome::Error => {}
            Outcome::MultiLineError => writeln!(out, "multiline {k}").unwrap(),
            Outcome::Panic => writeln!(out, "panic {k}").unwrap(),
        }
    }
    writeln!(out, "finished").unwrap();
}

/// Classified cases. The cases a child returned from are counted only as a total (a child
/// that dies does not report them), so `fuzz_drive` derives it.
#[derive(Default)]
struct Tally {
    panics: Vec<u64>,
    multiline: Vec<u64>,
    crashes: Vec<(u64, String)>,
    hangs: Vec<u64>,
}

/// Cases [start, end) in children, a new child after each case that kills one.
fn drive_range(start: u64, end: u64, hang_ms: u64) -> Tally {
    drive_range_of(false, start, end, hang_ms)
}

/// [`drive_range`] on [`base`] or, with `members`, on [`base_with_members`].
fn drive_range_of(members: bool, start: u64, end: u64, hang_ms: u64) -> Tally {
    let exe = std::env::current_exe().unwrap();
    let mut t = Tally::default();
    let mut next = start;
    while next < end {
        let mut child = Command::new(&exe)
            .args(["fuzz_child", "--exact", "--ignored", "--nocapture"])
            .env("MFPIPE_FUZZ_START", next.to_string())
            .env("MFPIPE_FUZZ_CASES", (end - next).to_string())
            .env("MFPIPE_FUZZ_HANG_MS", hang_ms.to_string())
            .env("MFPIPE_FUZZ_BASE", if members { "members" } else { "base" })
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let (mut last, mut hung, mut finished) = (None, None, false);
        for line in BufReader::new(child.stdout.take().unwrap()).lines() {
            let line = line.unwrap();
            let mut w = line.split_whitespace();
            let (tag, a) = (w.next(), w.next());
            let num = |s: Option<&str>| s.and_then(|s| s.parse::<u64>().ok());
            match tag {
                Some("case") => last = num(a),
                Some("hang") => hung = num(a),
                Some("panic") => t.panics.extend(num(a)),
                Some("multiline") => t.multiline.extend(num(a)),
                Some("finished") => finished = true,
                _ => {}
            }
        }
        let status = child.wait().unwrap();
        if finished && status.success() {
            break;
        }
        let k = last.expect("the child died before its first case");
        if hung == Some(k) {
            t.hangs.push(k);
        } else {
            use std::os::unix::process::ExitStatusExt;
            let how = match status.signal() {
                Some(11) => "SIGSEGV".to_string(),
                Some(6) => "SIGABRT".to_string(),
                Some(7) => "SIGBUS".to_string(),
                Some(s) => format!("signal {s}"),
                None => format!("exit {}", status.code().unwrap_or(-1)),
            };
            t.crashes.push((k, how));
        }
        next = k + 1;
    }
    t
}

/// The long run (`scripts/fuzz`): MFPIPE_FUZZ_CASES cases from MFPIPE_FUZZ_START over
/// MFPIPE_FUZZ_WORKERS parallel children. Prints one summary line, writes the cases on which
/// libhdf5 crashed or hung, or the reader panicked, to MFPIPE_FUZZ_BAD (one `k kind` per line) and, with
/// MFPIPE_FUZZ_KEEP=dir, their files (so the `pipeline` guard can be checked on them).
#[test]
#[ignore = "long; run by scripts/fuzz"]
fn fuzz_drive() {
    let start = env("MFPIPE_FUZZ_START", 0);
    let cases = env("MFPIPE_FUZZ_CASES", 10_000);
    let workers = env("MFPIPE_FUZZ_WORKERS", 2).max(1);
    let hang_ms = env("MFPIPE_FUZZ_HANG_MS", 200);
    let t0 = Instant::now();
    let per = cases.div_ceil(workers);
    let tallies: Vec<Tally> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                let a = start + w * per;
                let b = (a + per).min(start + cases);
                s.spawn(move || drive_range(a, b, hang_ms))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut t = Tally::default();
    for x in tallies {
        t.panics.extend(x.panics);
        t.multiline.extend(x.multiline);
        t.crashes.extend(x.crashes);
        t.hangs.extend(x.hangs);
    }
    // Cases counted by children that died are not in read/errors: derive them from the total.
    let classified = t.panics.len() + t.multiline.len() + t.crashes.len() + t.hangs.len();
    let completed = cases - classified as u64;
    println!(
        "hdf5 reader: {cases} cases from {start} in {:.0} s: {completed} returned (Ok or a one-line error), \
         {} panics, {} multi-line errors; libhdf5 crashed on {} and hung on {}",
        t0.elapsed().as_secs_f64(),
        t.panics.len(),
        t.multiline.len(),
        t.crashes.len(),
        t.hangs.len()
    );
    let mut kinds: std::collections::BTreeMap<&str, usize> = Default::default();
    for (_, how) in &t.crashes {
        *kinds.entry(how.as_str()).or_default() += 1;
    }
    println!("libhdf5 crashes by signal: {kinds:?}");
    if let Ok(list) = std::env::var("MFPIPE_FUZZ_BAD") {
        let mut text = String::new();
        for (k, how) in &t.crashes {
            text += &format!("{k} {how}\n");
        }
        for k in &t.hangs {
            text += &format!("{k} hang\n");
        }
        for k in &t.panics {
            text += &format!("{k} panic\n");
        }
        std::fs::write(list, text).unwrap();
    }
    if let Ok(keep) = std::env::var("MFPIPE_FUZZ_KEEP") {
        let dir = tempfile::tempdir().unwrap();
        let bytes = base_bytes(dir.path());
        std::fs::create_dir_all(&keep).unwrap();
        let ks = t.crashes.iter().map(|c| c.0);
        let ks = ks
            .chain(t.hangs.iter().copied())
            .chain(t.panics.iter().copied());
        for k in ks {
            let p = std::path::Path::new(&keep).join(format!("case-{k}.h5"));
            std::fs::write(p, case_bytes(&bytes, k)).unwrap();
        }
    }
    assert!(t.panics.is_empty(), "cases that panicked: {:?}", t.panics);
    assert!(
        t.multiline.is_empty(),
        "cases with a multi-line error: {:?}",
        t.multiline
    );
}
