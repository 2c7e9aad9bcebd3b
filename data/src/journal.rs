//! An append-only journal of finished samples, so that an interrupted `generate` loses at
//! most the samples in flight and `--resume` never recomputes or duplicates one.
//!
//! Layout: an 8-byte magic, an 8-byte fingerprint of the run (problem, seed, design, levels
//! and every input), then records `[kind u8][level_pos u32][len u32][body: len bytes][crc32 u32]`,
//! little-endian, the checksum over everything before it. Kind 0 is a finished sample (its
//! index and a [`SampleResult`]: status, cost, seed, values, diagnostics, failure reason,
//! extras), kind 1 the CPU seconds of a level's shared offline stage. A record cut short by a
//! kill, or whose checksum does not match, ends the journal: it and anything after it are
//! discarded and recomputed. Journals of the first format (`MFPJRN01`) are refused with a
//! message saying to remove them.

use crate::dataset::{Dataset, SampleResult};
use crate::DataError;
use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"MFPJRN02";
const OLD_MAGIC: &[u8; 8] = b"MFPJRN01";

/// One journal entry.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// A finished sample of `Dataset::levels[level_pos]`.
    Sample {
        level_pos: usize,
        sample: usize,
        result: SampleResult,
    },
    /// CPU seconds spent on the level's shared offline stage (added up over a run's batches).
    Offline { level_pos: usize, cost_s: f64 },
}

/// Fingerprint of everything that identifies a run; a journal from another run is refused.
pub fn fingerprint(ds: &Dataset) -> u64 {
    let mut h = crc32fast::Hasher::new();
    let mut h2 = crc32fast::Hasher::new_with_initial(0x5a5a_5a5a);
    let mut feed = |b: &[u8]| {
        h.update(b);
        h2.update(b);
    };
    feed(ds.meta.problem.as_bytes());
    feed(&ds.meta.seed.to_le_bytes());
    feed(ds.meta.design.as_bytes());
    feed(&(ds.meta.output_len() as u64).to_le_bytes());
    for l in &ds.levels {
        feed(&(l.level as u64).to_le_bytes());
        for v in l.inputs.iter() {
            feed(&v.to_le_bytes());
        }
    }
    ((h.finalize() as u64) << 32) | h2.finalize() as u64
}

/// Journal path next to a dataset.
pub fn journal_path(dataset: &Path) -> PathBuf {
    let mut s = dataset.as_os_str().to_owned();
    s.push(".journal");
    s.into()
}

pub struct Journal {
    path: PathBuf,
    file: File,
}

impl Journal {
    /// Open (or create) the journal for a run and return the records already in it. A torn
    /// tail is truncated away so new records follow the last good one.
    pub fn open(path: &Path, fp: u64) -> Result<(Self, Vec<Record>), DataError> {
        let mut records = Vec::new();
        let j = Self::open_each(path, fp, |r| {
            records.push(r);
            Ok::<_, DataError>(())
        })?;
        Ok((j, records))
    }

    /// [`Journal::open`], handing each record to `each` as it is read instead of collecting
    /// them: a journal of a million samples is replayed in bounded memory.
    pub fn open_each<E: From<DataError>>(
        path: &Path,
        fp: u64,
        mut each: impl FnMut(Record) -> Result<(), E>,
    ) -> Result<Self, E> {
        let io = |source| DataError::Io {
            path: path.display().to_string(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        if len < 16 {
            file.set_len(0).map_err(io)?;
            file.write_all(MAGIC).map_err(io)?;
            file.write_all(&fp.to_le_bytes()).map_err(io)?;
            file.sync_data().map_err(io)?;
        } else {
            let mut head = [0u8; 16];
            file.read_exact(&mut head).map_err(io)?;
            if &head[..8] == OLD_MAGIC {
                return Err(DataError::Invalid {
                    path: path.display().to_string(),
                    what: "journal of an older mfpipe version; remove it and rerun with --resume (finished samples in the dataset file are kept)".into(),
                }
                .into());
            }
            if &head[..8] != MAGIC {
                return Err(DataError::Invalid {
                    path: path.display().to_string(),
                    what: "not an mfpipe journal".into(),
                }
                .into());
            }
            if u64::from_le_bytes(head[8..].try_into().unwrap()) != fp {
                return Err(DataError::Invalid {
                    path: path.display().to_string(),
                    what: "journal belongs to a different run (problem, seed, design, levels or sample counts differ); remove it or rerun with the original settings".into(),
                }
                .into());
            }
            let mut good = 16u64;
            let mut r = BufReader::new(&mut file);
            while let Some((rec, size)) = read_record(&mut r) {
                each(rec)?;
                good += size;
            }
            drop(r);
            file.set_len(good).map_err(io)?;
        }
        file.seek(SeekFrom::End(0)).map_err(io)?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Append records and push them to the OS, so a killed process keeps them.
    pub fn append(&mut self, records: &[Record]) -> Result<(), DataError> {
        let mut buf = Vec::new();
        for r in records {
            encode(r, &mut buf);
        }
        let io = |source| DataError::Io {
            path: self.path.display().to_string(),
            source,
        };
        self.file.write_all(&buf).map_err(io)?;
        self.file.flush().map_err(io)
    }

    pub fn remove(self) -> Result<(), DataError> {
        drop(self.file);
        std::fs::remove_file(&self.path).map_err(|source| DataError::Io {
            path: self.path.display().to_string(),
            source,
        })
    }
}

/// Bytes of a record body; the writer and the reader below are each other's inverse.
fn encode(r: &Record, buf: &mut Vec<u8>) {
    let start = buf.len();
    let mut body = Vec::new();
    let (kind, level_pos) = match r {
        Record::Sample {
            level_pos,
            sample,
            result,
        } => {
            put_u32(&mut body, *sample);
            body.push(result.status);
            body.extend(result.cost_s.to_le_bytes());
            body.extend(result.seed.to_le_bytes());
            put_f64s(&mut body, &result.values);
            put_u32(&mut body, result.diagnostics.len());
            for (k, v) in &result.diagnostics {
                put_str(&mut body, k);
                body.extend(v.to_le_bytes());
            }
            put_str(&mut body, &result.failure);
            put_u32(&mut body, result.extras.len());
            for (k, v) in &result.extras {
                put_str(&mut body, k);
                put_f64s(&mut body, v);
            }
            (0u8, *level_pos)
        }
        Record::Offline { level_pos, cost_s } => {
            body.extend(cost_s.to_le_bytes());
            (1u8, *level_pos)
        }
    };
    buf.push(kind);
    put_u32(buf, level_pos);
    put_u32(buf, body.len());
    buf.extend(&body);
    let crc = crc32fast::hash(&buf[start..]);
    buf.extend(crc.to_le_bytes());
}

fn put_u32(buf: &mut Vec<u8>, v: usize) {
    buf.extend((v as u32).to_le_bytes());
}
fn put_str(buf: &mut Vec<u8>, s: &str) {
    put_u32(buf, s.len());
    buf.extend(s.as_bytes());
}
fn put_f64s(buf: &mut Vec<u8>, v: &[f64]) {
    put_u32(buf, v.len());
    for x in v {
        buf.extend(x.to_le_bytes());
    }
}

/// A cursor over a record body that fails (None) instead of reading past its end.
struct Body<'a>(&'a [u8]);
impl Body<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if n > self.0.len() {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u32(&mut self) -> Option<usize> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?) as usize)
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn f64(&mut self) -> Option<f64> {
        self.u64().map(f64::from_bits)
    }
    fn str(&mut self) -> Option<String> {
        let n = self.u32()?;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
    fn f64s(&mut self) -> Option<Vec<f64>> {
        let n = self.u32()?;
        let b = self.take(n.checked_mul(8)?)?;
        Some(
            b.chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
                .collect(),
        )
    }
}

fn read_record(r: &mut impl Read) -> Option<(Record, u64)> {
    let mut head = [0u8; 9];
    r.read_exact(&mut head).ok()?;
    let len = u32::from_le_bytes(head[5..9].try_into().unwrap()) as usize;
    // A torn length field could claim gigabytes; no record of ours is that large.
    if len > 1 << 28 {
        return None;
    }
    let mut body = vec![0u8; len + 4];
    r.read_exact(&mut body).ok()?;
    let mut h = crc32fast::Hasher::new();
    h.update(&head);
    h.update(&body[..len]);
    if h.finalize() != u32::from_le_bytes(body[len..].try_into().unwrap()) {
        return None;
    }
    let level_pos = u32::from_le_bytes(head[1..5].try_into().unwrap()) as usize;
    let mut b = Body(&body[..len]);
    let rec = match head[0] {
        0 => {
            let sample = b.u32()?;
            let status = b.u8()?;
            let cost_s = b.f64()?;
            let seed = b.u64()?;
            let values = b.f64s()?;
            let nd = b.u32()?;
            let mut diagnostics = std::collections::BTreeMap::new();
            for _ in 0..nd {
                let k = b.str()?;
                diagnostics.insert(k, b.f64()?);
            }
            let failure = b.str()?;
            let ne = b.u32()?;
            let mut extras = Vec::new();
            for _ in 0..ne {
                let k = b.str()?;
                extras.push((k, b.f64s()?));
            }
            Record::Sample {
                level_pos,
                sample,
                result: SampleResult {
                    status,
                    cost_s,
                    seed,
                    values,
                    diagnostics,
                    failure,
                    extras,
                },
            }
        }
        1 => Record::Offline {
            level_pos,
            cost_s: b.f64()?,
        },
        _ => return None,
    };
    Some((rec, (9 + len + 4) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(i: usize) -> Record {
        Record::Sample {
            level_pos: 1,
            sample: i,
            result: SampleResult {
                status: 0,
                cost_s: 0.5,
                seed: 7 + i as u64,
                values: vec![i as f64, -1.0, 2.5],
                diagnostics: [("iterations".to_string(), 4.0)].into(),
                failure: String::new(),
                extras: vec![("coarse".into(), vec![1.0, 2.0])],
            },
        }
    }

    fn sample_of(r: &Record) -> usize {
        match r {
            Record::Sample { sample, .. } => *sample,
            Record::Offline { .. } => usize::MAX,
        }
    }

    #[test]
    fn torn_tail_is_dropped_and_appends_continue() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.journal");
        let (mut j, old) = Journal::open(&p, 42).unwrap();
        assert!(old.is_empty());
        j.append(&[rec(0), rec(1)]).unwrap();
        drop(j);
        // Simulate a kill in the middle of the third record.
        let mut bytes = std::fs::read(&p).unwrap();
        let mut extra = Vec::new();
        encode(&rec(2), &mut extra);
        bytes.extend(&extra[..extra.len() - 7]);
        std::fs::write(&p, &bytes).unwrap();
        let (mut j, old) = Journal::open(&p, 42).unwrap();
        assert_eq!(old.len(), 2);
        assert_eq!(old[1], rec(1), "every member survives the round trip");
        j.append(&[
            rec(3),
            Record::Offline {
                level_pos: 0,
                cost_s: 2.0,
            },
        ])
        .unwrap();
        drop(j);
        let (_, old) = Journal::open(&p, 42).unwrap();
        assert_eq!(
            old.iter().map(sample_of).collect::<Vec<_>>(),
            vec![0, 1, 3, usize::MAX]
        );
        assert!(
            Journal::open(&p, 43).is_err(),
            "a journal of another run must be refused"
        );
    }
}
