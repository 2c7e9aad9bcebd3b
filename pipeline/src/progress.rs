//! Progress bars on a terminal, silence in pipes and CI (one factory, as in hyperfine).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use mfpipe_data::Progress;
use std::io::IsTerminal;

pub struct Bar {
    bar: ProgressBar,
}

impl Bar {
    /// A bar drawn on stderr when it is a terminal, hidden otherwise.
    pub fn new() -> Self {
        let bar = ProgressBar::with_draw_target(
            None,
            if std::io::stderr().is_terminal() {
                ProgressDrawTarget::stderr()
            } else {
                ProgressDrawTarget::hidden()
            },
        );
        bar.set_style(
            ProgressStyle::with_template(
                "{msg:>14} [{bar:40}] {pos}/{len} {elapsed_precise} (eta {eta})",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        Self { bar }
    }
}

impl Default for Bar {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress for Bar {
    fn start(&self, label: &str, total: u64) {
        self.bar.reset();
        self.bar.set_length(total);
        self.bar.set_message(label.to_string());
    }
    fn advance(&self, n: u64) {
        self.bar.inc(n);
    }
    fn finish(&self) {
        self.bar.finish_and_clear();
    }
    fn note(&self, msg: &str) {
        note(msg);
    }
}

/// Print a status line on stderr (kept separate from machine-readable stdout).
pub fn note(msg: impl AsRef<str>) {
    eprintln!("{}", msg.as_ref());
}
