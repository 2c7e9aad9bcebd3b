//! An append-only journal of finished samples, so that an interrupted `generate` loses at
//! most the samples in flight and `--resume` never recomputes or duplicates one.
//!
//! Layout: an 8-byte magic, an 8-byte fingerprint of the run (problem, seed, design, levels
//! and every input), then records
//! `[level_pos u32][sample u32][status u8][cost f64][len u32][values f64 x len][crc32 u32]`,
//! little-endian. A record cut short by a kill, or whose checksum does not match, ends the
//! journal: it and anything after it are discarded and recomputed.

use crate::dataset::Dataset;
use crate::DataError;
use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"MFPJRN01";

/// One finished sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Index into `Dataset::levels`.
    pub level_pos: usize,
    pub sample: usize,
    pub status: u8,
    pub cost_s: f64,
    pub values: Vec<f64>,
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
        let mut records = Vec::new();
        if len < 16 {
            file.set_len(0).map_err(io)?;
            file.write_all(MAGIC).map_err(io)?;
            file.write_all(&fp.to_le_bytes()).map_err(io)?;
            file.sync_data().map_err(io)?;
        } else {
            let mut head = [0u8; 16];
            file.read_exact(&mut head).map_err(io)?;
            if &head[..8] != MAGIC {
                return Err(DataError::Invalid {
                    path: path.display().to_string(),
                    what: "not an mfpipe journal".into(),
                });
            }
            if u64::from_le_bytes(head[8..].try_into().unwrap()) != fp {
                return Err(DataError::Invalid {
                    path: path.display().to_string(),
                    what: "journal belongs to a different run (problem, seed, design, levels or sample counts differ); remove it or rerun with the original settings".into(),
                });
            }
            let mut good = 16u64;
            let mut r = BufReader::new(&mut file);
            while let Some((rec, size)) = read_record(&mut r) {
                records.push(rec);
                good += size;
            }
            drop(r);
            file.set_len(good).map_err(io)?;
        }
        file.seek(SeekFrom::End(0)).map_err(io)?;
        Ok((
            Self {
                path: path.to_path_buf(),
                file,
            },
            records,
        ))
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

fn encode(r: &Record, buf: &mut Vec<u8>) {
    let start = buf.len();
    buf.extend((r.level_pos as u32).to_le_bytes());
    buf.extend((r.sample as u32).to_le_bytes());
    buf.push(r.status);
    buf.extend(r.cost_s.to_le_bytes());
    buf.extend((r.values.len() as u32).to_le_bytes());
    for v in &r.values {
        buf.extend(v.to_le_bytes());
    }
    let crc = crc32fast::hash(&buf[start..]);
    buf.extend(crc.to_le_bytes());
}

fn read_record(r: &mut impl Read) -> Option<(Record, u64)> {
    let mut head = [0u8; 21];
    r.read_exact(&mut head).ok()?;
    let len = u32::from_le_bytes(head[17..21].try_into().unwrap()) as usize;
    // A torn length field could claim gigabytes; no output of ours is that large.
    if len > 1 << 26 {
        return None;
    }
    let mut body = vec![0u8; len * 8 + 4];
    r.read_exact(&mut body).ok()?;
    let mut h = crc32fast::Hasher::new();
    h.update(&head);
    h.update(&body[..len * 8]);
    if h.finalize() != u32::from_le_bytes(body[len * 8..].try_into().unwrap()) {
        return None;
    }
    let values = body[..len * 8]
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let rec = Record {
        level_pos: u32::from_le_bytes(head[0..4].try_into().unwrap()) as usize,
        sample: u32::from_le_bytes(head[4..8].try_into().unwrap()) as usize,
        status: head[8],
        cost_s: f64::from_le_bytes(head[9..17].try_into().unwrap()),
        values,
    };
    Some((rec, (21 + len * 8 + 4) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(i: usize) -> Record {
        Record {
            level_pos: 1,
            sample: i,
            status: 0,
            cost_s: 0.5,
            values: vec![i as f64, -1.0, f64::NAN],
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
        assert_eq!(old[1].sample, 1);
        j.append(&[rec(3)]).unwrap();
        drop(j);
        let (_, old) = Journal::open(&p, 42).unwrap();
        assert_eq!(
            old.iter().map(|r| r.sample).collect::<Vec<_>>(),
            vec![0, 1, 3]
        );
        assert!(
            Journal::open(&p, 43).is_err(),
            "a journal of another run must be refused"
        );
    }
}
