//! Helpers for mfpipe's end-to-end tests: locate (building if needed) the `pipeline`
//! binary and run it.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::OnceLock;

/// Path of the `pipeline` binary of this build profile, built once per test process.
///
/// Cargo only builds a binary for tests of its own package, and these tests live in their
/// own crate, so build it explicitly (a no-op when it is up to date).
pub fn pipeline_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().expect("test executable path");
        // target/<profile>/deps/<test> -> target/<profile>
        let profile_dir = exe
            .parent()
            .and_then(|p| p.parent())
            .expect("target dir")
            .to_path_buf();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args([
            "build",
            "--quiet",
            "-p",
            "mfpipe-pipeline",
            "--bin",
            "pipeline",
        ]);
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo build");
        assert!(status.success(), "building the pipeline binary failed");
        profile_dir.join("pipeline")
    })
    .clone()
}

/// Run `pipeline` with arguments in `dir`, stdin closed.
pub fn pipeline(dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(pipeline_bin())
        .args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run pipeline")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
