//! The output formats of a study. A study returns its summary as data; each file it leaves
//! behind (results.json, report.md, the figures) is written by one [`Exporter`] of that
//! summary, and a command lists the exporters it wants. A new format is one more exporter; a
//! new study is one summary type plus the exporters that make sense for it.

use crate::experiment::Record;
use crate::util::write_text;
use anyhow::{Context, Result};
use std::path::Path;

/// One output format of the summary `S`.
pub trait Exporter<S: ?Sized> {
    /// Write this format of `summary` into `dir` (which exists); returns the file names
    /// written, relative to `dir`.
    fn export(&self, summary: &S, dir: &Path) -> Result<Vec<String>>;
}

/// Create `dir` and run every exporter in order; the names of all files written.
pub fn export_all<S: ?Sized>(
    summary: &S,
    dir: &Path,
    exporters: &[&dyn Exporter<S>],
) -> Result<Vec<String>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut files = Vec::new();
    for e in exporters {
        files.extend(e.export(summary, dir)?);
    }
    Ok(files)
}

/// A summary made of scored fits: every study's results.json is the list of its records.
pub trait HasRecords {
    fn records(&self) -> &[Record];
}

/// results.json: one object per fit (the record fields of README "results.json").
pub struct ResultsJson;

impl<S: HasRecords + ?Sized> Exporter<S> for ResultsJson {
    fn export(&self, summary: &S, dir: &Path) -> Result<Vec<String>> {
        write_text(
            &dir.join("results.json"),
            &(serde_json::to_string_pretty(summary.records())? + "\n"),
        )?;
        Ok(vec!["results.json".into()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Two;
    struct Named(&'static str);
    impl Exporter<Two> for Named {
        fn export(&self, _: &Two, dir: &Path) -> Result<Vec<String>> {
            write_text(&dir.join(self.0), self.0)?;
            Ok(vec![self.0.into()])
        }
    }

    #[test]
    fn every_exporter_writes_in_order_into_a_created_directory() {
        let dir = std::env::temp_dir().join(format!("mfpipe-export-{}", std::process::id()));
        let sub = dir.join("a/b");
        let files = export_all(&Two, &sub, &[&Named("x.md"), &Named("y.json")]).unwrap();
        assert_eq!(files, vec!["x.md".to_string(), "y.json".to_string()]);
        assert_eq!(
            std::fs::read_to_string(sub.join("y.json")).unwrap(),
            "y.json"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
