//! Reading a dataset a user hands us without letting libhdf5 take the process down.
//!
//! libhdf5 (C, under the `hdf5` crate) is not hardened against corrupted files: on about one
//! mutated file in a hundred it segfaults, divides by zero or loops forever (measured by
//! `scripts/fuzz`; see BENCHMARKS.md, "Fuzzing"). Neither can be caught in-process. So every
//! dataset is first read by a child `pipeline` (`probe-read`, hidden) under a time limit; only
//! when the child came back (with the data or an ordinary error) does this process read the
//! file itself, on exactly the code path that just succeeded. The child costs a few ms.

use anyhow::{bail, Result};
use mfpipe_data::dataset::Dataset;
use mfpipe_data::h5;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The hidden subcommand the child runs.
pub const PROBE: &str = "probe-read";

/// `h5::read(path)`, but a file on which libhdf5 crashes or hangs gives an error, not a dead
/// or stuck process.
pub fn read(path: &Path) -> Result<Dataset> {
    // Unit tests run inside the test harness, which cannot act as the child; a missing file
    // gives its usual error without a child.
    if cfg!(test) || !path.is_file() {
        return Ok(h5::read(path)?);
    }
    probe(path, false)?;
    Ok(h5::read(path)?)
}

/// `h5::read_head(path)` in the same protection: everything but the output and extras
/// values, so resuming, merging or checking a file of any size takes bounded memory. The
/// child also reads every value (block by block), so a chunk on which libhdf5 crashes is
/// met there.
pub fn read_head(path: &Path) -> Result<Dataset> {
    if cfg!(test) || !path.is_file() {
        return Ok(h5::read_head(path)?);
    }
    probe(path, true)?;
    Ok(h5::read_head(path)?)
}

/// Read `path` in a child process; Ok when the child returned, whatever it read.
fn probe(path: &Path, head: bool) -> Result<()> {
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    // Generous: a loop never ends, a large file on a slow disk does. MFPIPE_READ_TIMEOUT
    // (seconds) replaces the base (the fuzz replay and the tests use 1-2 s).
    let base = std::env::var("MFPIPE_READ_TIMEOUT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let limit = Duration::from_secs(base + size / 10_000_000);
    let mut child = Command::new(std::env::current_exe()?)
        .arg(PROBE)
        .arg(path)
        .args(head.then_some("--head"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let t0 = Instant::now();
    let mut nap = Duration::from_millis(1);
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "cannot read {}: the HDF5 library did not finish in {} s (it loops on some corrupted files); the file is damaged",
                path.display(),
                limit.as_secs()
            );
        }
        std::thread::sleep(nap);
        nap = (nap * 2).min(Duration::from_millis(50));
    };
    // 0: read; 1: an ordinary error, which the in-process read reports in full.
    if matches!(status.code(), Some(0 | 1)) {
        return Ok(());
    }
    use std::os::unix::process::ExitStatusExt;
    let how = match status.signal() {
        Some(11) => "a segmentation fault".to_string(),
        Some(8) => "a floating-point exception".to_string(),
        Some(6) => "an abort".to_string(),
        Some(7) => "a bus error".to_string(),
        Some(s) => format!("signal {s}"),
        None => format!("exit code {}", status.code().unwrap_or(-1)),
    };
    bail!(
        "cannot read {}: the HDF5 library crashed on it ({how}); the file is damaged",
        path.display()
    )
}

/// The child's side: read and report through the exit code only.
pub fn probe_main(path: &Path, head: bool) -> Result<()> {
    if head {
        let ds = h5::read_head(path)?;
        h5::check_values(path, &ds)?;
    } else {
        h5::read(path)?;
    }
    Ok(())
}
