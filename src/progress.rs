//! Progress of a long loop (training steps, pretraining, benchmark iterations, demo stages):
//! an `indicatif` bar with position, rate, ETA and a message (loss, lr) when stderr is a
//! terminal, and plain, stable lines when it is not (a log file, a pipe, a test capturing the
//! output), so captured output stays line-based and free of carriage returns and escapes.
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How progress is shown: decided once, from whether stderr is a terminal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// An animated bar (stderr is a terminal).
    Bar,
    /// One line per update (`[label] step k/n: msg  rate steps/s  ETA s`).
    Lines,
    /// Nothing (the caller asked for quiet).
    Off,
}

impl Mode {
    /// `Bar` on a terminal, else `Lines`; `Off` when `show` is false.
    pub fn detect(show: bool) -> Mode {
        if !show {
            Mode::Off
        } else if std::io::stderr().is_terminal() {
            Mode::Bar
        } else {
            Mode::Lines
        }
    }
}

/// One loop's progress: `total` units named `unit` ("step", "iter").
pub struct Progress {
    mode: Mode,
    bar: Option<ProgressBar>,
    label: String,
    unit: &'static str,
    total: u64,
    /// Units already done when this progress started (a resumed run): the rate counts
    /// only what this process did.
    from: u64,
    t0: Instant,
}

impl Progress {
    /// Progress for `total` units, shown as [`Mode::detect`] decides.
    pub fn new(label: &str, unit: &'static str, total: u64, show: bool) -> Progress {
        Self::with_mode(label, unit, total, Mode::detect(show))
    }

    /// Progress of a loop that resumes with `from` of `total` units already done.
    pub fn resuming(label: &str, unit: &'static str, total: u64, show: bool, from: u64) -> Progress {
        let mut p = Self::with_mode(label, unit, total, Mode::detect(show));
        p.from = from.min(total);
        if let Some(b) = &p.bar {
            b.set_position(p.from);
            b.reset_eta();
        }
        p
    }

    /// Progress in an explicit mode (tests use `Lines`).
    pub fn with_mode(label: &str, unit: &'static str, total: u64, mode: Mode) -> Progress {
        let bar = (mode == Mode::Bar).then(|| {
            let b = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(
                "[{prefix}] {bar:30.cyan/blue} {pos:>6}/{len} {msg}  {per_sec}  ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            b.set_style(style);
            b.set_prefix(label.to_string());
            b.enable_steady_tick(Duration::from_millis(250));
            b
        });
        Progress {
            mode,
            bar,
            label: label.to_string(),
            unit,
            total,
            from: 0,
            t0: Instant::now(),
        }
    }

    /// `done` of `total` units finished; `msg` is shown beside (e.g. "loss 0.4123  lr 1.0e-4").
    pub fn update(&self, done: u64, msg: &str) {
        match self.mode {
            Mode::Off => {}
            Mode::Bar => {
                if let Some(b) = &self.bar {
                    b.set_position(done);
                    b.set_message(msg.to_string());
                }
            }
            Mode::Lines => eprintln!("{}", self.line(done, msg)),
        }
    }

    /// The plain line for `done` units (what `Lines` mode prints).
    pub fn line(&self, done: u64, msg: &str) -> String {
        let el = self.t0.elapsed().as_secs_f64();
        let rate = done.saturating_sub(self.from) as f64 / el.max(1e-9);
        let eta = self.total.saturating_sub(done) as f64 / rate.max(1e-9);
        format!(
            "[{}] {} {done}/{}: {msg}  {rate:.2} {}s/s  ETA {eta:.0}s",
            self.label, self.unit, self.total, self.unit
        )
    }

    /// A line of text that is not progress (shown above the bar on a terminal).
    pub fn println(&self, text: &str) {
        match (&self.bar, self.mode) {
            (Some(b), Mode::Bar) => b.println(text),
            _ => eprintln!("{text}"),
        }
    }

    /// Ends the bar (it stays on screen at its last position).
    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(b) = &self.bar {
            if !b.is_finished() {
                b.abandon();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_plain_and_stable() {
        let p = Progress::with_mode("train", "step", 10, Mode::Lines);
        let l = p.line(4, "loss 0.5000");
        assert!(l.starts_with("[train] step 4/10: loss 0.5000  "), "{l}");
        assert!(l.contains(" steps/s  ETA ") && l.ends_with('s'), "{l}");
        assert!(!l.contains('\r') && !l.contains('\u{1b}'), "{l:?}");
        let l = p.line(10, "");
        assert!(l.starts_with("[train] step 10/10:  ") && l.ends_with("ETA 0s"), "{l}");
    }

    #[test]
    fn off_and_lines_have_no_bar() {
        assert!(Progress::with_mode("x", "iter", 3, Mode::Off).bar.is_none());
        assert!(Progress::with_mode("x", "iter", 3, Mode::Lines).bar.is_none());
        assert_eq!(Mode::detect(false), Mode::Off);
    }
}
