//! The fit journal of `run` and `train`: every finished fit (and every finished per-cell
//! search) is written to `<out>/.fits/` as it completes, so a killed run continued with
//! `--resume` refits nothing it already has and ends with the same results.
//!
//! An entry is one file named by a checksum of its key, holding the key itself (so a checksum
//! collision or a file of another run is never taken for this one) and the value, CBOR-encoded
//! (exact for every float). Entries are written to a temporary name and renamed, so a kill
//! leaves either a whole entry or none. The key spells out everything the result depends on:
//! the dataset (problem, creation stamp), the model, its hyperparameters, sizes, seed, search
//! and budget. A run that finishes removes its journal.

use anyhow::{Context, Result};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub struct FitLog {
    dir: PathBuf,
}

#[derive(Serialize, Deserialize)]
struct Entry<T> {
    key: String,
    value: T,
}

impl FitLog {
    /// The journal in `out`; without `resume`, whatever an earlier run left is discarded.
    pub fn open(out: &Path, resume: bool) -> Result<Self> {
        let dir = out.join(".fits");
        if !resume && dir.exists() {
            std::fs::remove_dir_all(&dir)
                .with_context(|| format!("cannot clear {}", dir.display()))?;
        }
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(Self { dir })
    }

    /// How many entries an earlier run left (for the resume message).
    pub fn len(&self) -> usize {
        std::fs::read_dir(&self.dir)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter(|e| e.path().extension().is_some_and(|x| x == "cbor"))
                    .count()
            })
            .unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn path(&self, key: &str) -> PathBuf {
        let mut h = crc32fast::Hasher::new();
        h.update(key.as_bytes());
        // Two checksums (of the key and of it reversed) make accidental collisions moot; the
        // key inside the entry is compared anyway.
        let a = h.finalize();
        let mut h = crc32fast::Hasher::new();
        h.update(&key.bytes().rev().collect::<Vec<_>>());
        self.dir.join(format!("{a:08x}{:08x}.cbor", h.finalize()))
    }

    /// The value stored under `key`, if a whole entry for exactly this key is there.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        let bytes = std::fs::read(self.path(key)).ok()?;
        let e: Entry<T> = ciborium::from_reader(&bytes[..]).ok()?;
        (e.key == key).then_some(e.value)
    }

    /// Store `value` under `key` (atomically).
    pub fn put<T: Serialize>(&self, key: &str, value: &T) -> Result<()> {
        let path = self.path(key);
        let tmp = path.with_extension("tmp");
        let mut bytes = Vec::new();
        ciborium::into_writer(
            &Entry {
                key: key.to_string(),
                value,
            },
            &mut bytes,
        )
        .context("cannot encode a journal entry")?;
        std::fs::write(&tmp, &bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))
    }

    /// The run finished: its results are written, the journal is no longer needed.
    pub fn finish(self) -> Result<()> {
        std::fs::remove_dir_all(&self.dir)
            .with_context(|| format!("cannot remove {}", self.dir.display()))
    }
}
