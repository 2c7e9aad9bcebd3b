//! Small helpers shared by studies and exporters (a leaf: imports nothing of the crate).

use anyhow::{Context, Result};
use std::path::Path;

/// Mean and (population) standard deviation of the finite values; NaN when there are none
/// (every fit diverged).
pub fn finite_mean_std(v: &[f64]) -> (f64, f64) {
    let v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    let m = v.iter().sum::<f64>() / v.len() as f64;
    let s = (v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / v.len() as f64).sqrt();
    (m, s)
}

/// A searched configuration (`hyperparameters.search.chosen`, or any name -> number map) as
/// `name=value, ...`.
pub fn fmt_config(chosen: &serde_json::Value) -> String {
    chosen
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| format!("{k}={:.3e}", v.as_f64().unwrap_or(f64::NAN)))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_else(|| "-".into())
}

/// Write an output file, naming it in the error.
pub fn write_text(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// Collapse a multi-line message into one line.
pub fn one_line(s: &str) -> String {
    s.split('\n')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Physical memory of this machine in bytes (None where the OS does not say).
pub fn physical_memory() -> Option<u64> {
    // SAFETY: sysconf only reads system configuration values.
    let (pages, size) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    (pages > 0 && size > 0).then(|| pages as u64 * size as u64)
}

/// Refuse, before allocating, to hold `count` items of `bytes_each` bytes in memory when that
/// exceeds the machine's physical memory: a one-line error naming the count and the size,
/// instead of an allocation failure that aborts the process.
pub fn check_memory(what: &str, count: usize, bytes_each: usize) -> Result<()> {
    let gb = |b: u128| b as f64 / 1e9;
    let need = count as u128 * bytes_each as u128;
    if let Some(have) = physical_memory() {
        if need > have as u128 {
            anyhow::bail!(
                "{what} would need {:.1} GB in memory ({bytes_each} bytes a sample), more than this machine's {:.1} GB",
                gb(need),
                gb(have as u128)
            );
        }
    }
    Ok(())
}

/// Creates the output directory `dir` (and its parents) before any work, with an error that
/// names it and says what is wrong: a file in the way, or a parent that cannot be created.
pub fn output_dir(dir: &Path) -> Result<()> {
    if dir.exists() && !dir.is_dir() {
        anyhow::bail!(
            "--out {} exists and is not a directory; pass a directory (it is created if missing)",
            dir.display()
        );
    }
    std::fs::create_dir_all(dir).map_err(|e| {
        anyhow::anyhow!(
            "cannot create the output directory {}: {}",
            dir.display(),
            one_line(&e.to_string())
        )
    })
}
