//! `pipeline`: the mfpipe command line (DESIGN sec. 4). Parse, dispatch, and turn every
//! failure into one line on stderr and a non-zero exit; the work is in the library.

use clap::Parser;
use mfpipe_data::h5;
use mfpipe_pipeline::{cli::Cli, commands, util};

fn main() {
    // Rust ignores SIGPIPE, so `pipeline list | head` would panic on the closed pipe; a
    // command-line tool should end quietly instead, as `ls | head` does.
    // SAFETY: called first, before any other thread exists; SIG_DFL is a valid disposition.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // A panic is a bug, but the user still gets one line, not a backtrace.
    std::panic::set_hook(Box::new(|info| {
        if h5::panic_is_contained() {
            return; // the reader turns it into an ordinary error
        }
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        // std's print macros panic when stdout cannot be written (`> /dev/full`): that is
        // the user's stdout, not a bug, so it gets an ordinary one-line error and exit 1.
        if let Some(why) = msg.strip_prefix("failed printing to stdout: ") {
            eprintln!("error: cannot write to stdout: {why}");
            std::process::exit(1);
        }
        eprintln!(
            "error: internal error: {msg} (at {})",
            info.location().map(|l| l.to_string()).unwrap_or_default()
        );
    }));
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = e.print();
                std::process::exit(
                    if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                        2
                    } else {
                        0
                    },
                );
            }
            // clap's first paragraph says what is wrong; the usage block after it is noise here.
            let text = e.render().to_string();
            let first = text
                .split("\n\n")
                .next()
                .unwrap_or("invalid arguments")
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            let first = first.trim_start_matches("error: ").to_string();
            eprintln!("error: {first} (see pipeline --help)");
            std::process::exit(2);
        }
    };
    let res = std::panic::catch_unwind(|| commands::dispatch(cli));
    match res {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            eprintln!("error: {}", util::one_line(&format!("{e:#}")));
            std::process::exit(1);
        }
        Err(_) => std::process::exit(101),
    }
}
