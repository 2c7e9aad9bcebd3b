//! Helpers for mfpipe's end-to-end tests: locate the `pipeline` binary and run it.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::OnceLock;

/// Path of the `pipeline` binary of this build profile.
///
/// `cargo test --workspace` builds it before any test runs, because the `pipeline` package
/// has integration tests of its own. When only this crate is tested (`cargo test -p
/// mfpipe-tests`) and the binary is missing, build it here; that resolves features for one
/// package and may recompile dependencies, so it is slower. Set `MFPIPE_TEST_REBUILD=1` to
/// force that build (e.g. after changing the binary and testing only this crate).
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
        let bin = profile_dir.join("pipeline");
        if bin.exists() && std::env::var_os("MFPIPE_TEST_REBUILD").is_none() {
            return bin;
        }
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
        bin
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
