//! Progress of long commands on stderr: an `indicatif` bar (blocks done / total, GB/s, ETA) when
//! stderr is a terminal, plain lines for logs when `TESSERA_PROGRESS=lines`, nothing with
//! `--quiet`, when stderr is redirected, or with `TESSERA_PROGRESS=off`.
//!
//! One command may run several plans one after the other (knn writes two arrays, a reduction
//! reads its input first): the bar starts again whenever a run with a new total begins.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;
use tessera::exec::Progress;
use tessera::ExecOptions;

/// Environment variable that chooses the progress display: `auto` (default), `bar`, `lines`
/// or `off`.
pub(crate) const PROGRESS_ENV: &str = "TESSERA_PROGRESS";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Bar,
    Lines,
    Off,
}

fn mode(quiet: bool) -> Mode {
    if quiet {
        return Mode::Off;
    }
    match std::env::var(PROGRESS_ENV).as_deref() {
        Ok("off") => Mode::Off,
        Ok("lines") => Mode::Lines,
        Ok("bar") => Mode::Bar,
        _ if std::io::stderr().is_terminal() => Mode::Bar,
        _ => Mode::Off,
    }
}

/// The state of the run being shown.
struct Shown {
    bar: Option<ProgressBar>,
    total: usize,
    last_done: usize,
    /// For `lines`: the last tenth reported.
    last_tenth: usize,
}

impl Shown {
    fn restart(&mut self, total: usize, mode: Mode) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
        self.total = total;
        self.last_done = 0;
        self.last_tenth = 0;
        if mode == Mode::Bar && total > 1 {
            let bar = ProgressBar::with_draw_target(
                Some(total as u64),
                ProgressDrawTarget::stderr_with_hz(8),
            );
            let style = ProgressStyle::with_template(
                "{elapsed:>4} [{wide_bar}] {pos}/{len} blocks  {msg}  ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            self.bar = Some(bar);
        }
    }
}

fn rate(bytes: usize, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(1e-9);
    format!("{:.2} GB/s", bytes as f64 / secs / 1e9)
}

/// Adds the progress display chosen by `quiet` and the environment to `opts`.
pub(crate) fn attach(opts: ExecOptions, quiet: bool) -> ExecOptions {
    let mode = mode(quiet);
    if mode == Mode::Off {
        return opts;
    }
    let shown = Mutex::new(Shown {
        bar: None,
        total: 0,
        last_done: 0,
        last_tenth: 0,
    });
    opts.progress(move |p: Progress| {
        let Ok(mut s) = shown.lock() else {
            return;
        };
        if p.total != s.total || p.done <= s.last_done {
            s.restart(p.total, mode);
        }
        s.last_done = p.done;
        let speed = rate(p.bytes, p.elapsed);
        match mode {
            Mode::Bar => {
                if let Some(bar) = &s.bar {
                    bar.set_position(p.done as u64);
                    bar.set_message(speed);
                    if p.done >= p.total {
                        bar.finish_and_clear();
                    }
                }
            }
            Mode::Lines => {
                // A line at every tenth of the run, and at its end.
                let tenth = p.done * 10 / p.total.max(1);
                if p.total > 1 && tenth > s.last_tenth {
                    s.last_tenth = tenth;
                    let elapsed = p.elapsed;
                    let eta = if p.done == 0 {
                        Duration::ZERO
                    } else {
                        elapsed.mul_f64((p.total - p.done.min(p.total)) as f64 / p.done as f64)
                    };
                    eprintln!(
                        "progress: {}/{} blocks, {speed}, {:.1} s, ETA {:.1} s",
                        p.done,
                        p.total,
                        elapsed.as_secs_f64(),
                        eta.as_secs_f64()
                    );
                }
            }
            Mode::Off => {}
        }
    })
}
