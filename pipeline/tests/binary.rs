//! The binary starts, describes itself, and rejects unusable arguments with a short error.
//!
//! (Having an integration test here also makes `cargo test --workspace` build the
//! `pipeline` binary in the same invocation, with the same features, before the
//! end-to-end tests of the `tests` crate run it.)

use std::process::Command;

fn pipeline(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_pipeline"))
        .args(args)
        .output()
        .expect("run pipeline")
}

#[test]
fn help_lists_every_subcommand() {
    let o = pipeline(&["--help"]);
    assert!(o.status.success());
    let s = String::from_utf8_lossy(&o.stdout);
    for cmd in ["list", "solve", "generate", "train", "run", "bench"] {
        assert!(s.contains(cmd), "--help lacks {cmd}: {s}");
    }
}

#[test]
fn usage_errors_are_one_line_with_exit_code_2() {
    let o = pipeline(&["solve"]);
    assert_eq!(o.status.code(), Some(2));
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(e.trim_end().lines().count(), 1, "{e}");
    assert!(e.contains("required"), "{e}");
}
