//! Progress on stderr: a bar on a terminal, plain lines otherwise (pipes, CI, cluster logs).
//! One factory, as in hyperfine.
//!
//! The bar shows done/total, the elapsed time and what was started last (model, N_L, N_H,
//! seed); an estimate of the time left only once a quarter of the work is done, because jobs
//! differ in cost by orders of magnitude (a GP on 4 samples against a searched network on 32)
//! and an estimate from the first cheap ones would say minutes for seconds of work. Off a
//! terminal there is no bar: a line every 10 s while a stage runs (from a ticker thread, so
//! one long job does not mean minutes of silence) and one when it ends.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use mfpipe_data::Progress;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often a line is printed off a terminal while a stage runs.
const LINE_EVERY: Duration = Duration::from_secs(10);

pub struct Bar {
    bar: ProgressBar,
    /// Off a terminal: the stage's label, total, done, start and last line, shared with the
    /// ticker thread.
    lines: Option<Arc<Mutex<Lines>>>,
}

struct Lines {
    label: String,
    total: u64,
    done: u64,
    start: Instant,
    last: Instant,
}

impl Lines {
    fn line(&self, what: &str) -> String {
        format!(
            "{}: {}/{} {what} ({:.0} s)",
            self.label,
            self.done,
            self.total,
            self.start.elapsed().as_secs_f64()
        )
    }
}

impl Bar {
    pub fn new() -> Self {
        let terminal = std::io::stderr().is_terminal();
        let bar = ProgressBar::with_draw_target(
            None,
            if terminal {
                ProgressDrawTarget::stderr()
            } else {
                ProgressDrawTarget::hidden()
            },
        );
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix} [{bar:30}] {pos}/{len} {elapsed} {left} {wide_msg}",
            )
            .expect("valid template")
            .with_key("left", |s: &ProgressState, w: &mut dyn std::fmt::Write| {
                let (pos, len) = (s.pos(), s.len().unwrap_or(0));
                let _ = if len > 0 && pos * 4 >= len && pos < len {
                    write!(
                        w,
                        "(about {} left)",
                        humantime::format_duration(round(s.eta()))
                    )
                } else {
                    Ok(())
                };
            })
            .progress_chars("=> "),
        );
        let lines = (!terminal).then(|| {
            let lines = Arc::new(Mutex::new(Lines {
                label: String::new(),
                total: 0,
                done: 0,
                start: Instant::now(),
                last: Instant::now(),
            }));
            // The ticker holds a weak reference: it ends with the Bar.
            let weak = Arc::downgrade(&lines);
            std::thread::spawn(move || loop {
                std::thread::sleep(Duration::from_secs(1));
                let Some(l) = weak.upgrade() else { return };
                let mut l = l.lock().unwrap_or_else(|e| e.into_inner());
                if l.total > 0 && l.done < l.total && l.last.elapsed() >= LINE_EVERY {
                    l.last = Instant::now();
                    note(l.line("done"));
                }
            });
            lines
        });
        Self { bar, lines }
    }
}

/// Whole seconds (minutes above ten minutes): an estimate is not more precise than that.
fn round(d: Duration) -> Duration {
    let s = d.as_secs();
    Duration::from_secs(if s > 600 { s / 60 * 60 } else { s.max(1) })
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
        self.bar.set_prefix(label.to_string());
        self.bar.set_message("");
        if let Some(l) = &self.lines {
            let mut l = l.lock().unwrap_or_else(|e| e.into_inner());
            *l = Lines {
                label: label.to_string(),
                total,
                done: 0,
                start: Instant::now(),
                last: Instant::now(),
            };
        }
    }
    fn advance(&self, n: u64) {
        self.bar.inc(n);
        // Off a terminal the ticker prints; here only the count moves.
        if let Some(l) = &self.lines {
            l.lock().unwrap_or_else(|e| e.into_inner()).done += n;
        }
    }
    fn working_on(&self, what: &str) {
        self.bar.set_message(what.to_string());
    }
    fn finish(&self) {
        self.bar.finish_and_clear();
        if let Some(l) = &self.lines {
            let mut l = l.lock().unwrap_or_else(|e| e.into_inner());
            // A stage that took less than a line's interval needs no line; a stage is
            // finished once.
            if l.total > 0 && l.start.elapsed() >= LINE_EVERY {
                note(l.line("finished"));
            }
            l.total = 0;
        }
    }
    fn note(&self, msg: &str) {
        note(msg);
    }
}

/// Print a status line on stderr (kept separate from machine-readable stdout).
pub fn note(msg: impl AsRef<str>) {
    eprintln!("{}", msg.as_ref());
}
