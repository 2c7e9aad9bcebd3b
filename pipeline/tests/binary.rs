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
    for cmd in [
        "list", "solve", "generate", "train", "run", "predict", "bench",
    ] {
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

#[test]
fn a_closed_pipe_ends_the_output_quietly_and_a_full_disk_is_one_error() {
    use std::io::Read;
    use std::os::unix::process::ExitStatusExt;
    use std::process::Stdio;
    // `pipeline solve ... --json | head -c 400`: the reader goes away after 400 bytes of a
    // much longer line.
    let mut child = Command::new(env!("CARGO_BIN_EXE_pipeline"))
        .args(["solve", "burgers", "--fidelity", "1", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut head = [0u8; 400];
    child
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut head)
        .unwrap();
    drop(child.stdout.take());
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    // Ended by SIGPIPE, as `ls | head` is, with nothing on stderr.
    assert!(
        status.success() || status.signal() == Some(libc_sigpipe()),
        "{status:?}"
    );
    assert!(err.is_empty(), "{err}");

    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_pipeline"))
        .args(["solve", "burgers", "--json"])
        .stdout(full)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("cannot write to stdout") && e.trim_end().lines().count() == 1,
        "{e}"
    );
}

/// SIGPIPE's number on Linux and the BSDs.
fn libc_sigpipe() -> i32 {
    13
}
