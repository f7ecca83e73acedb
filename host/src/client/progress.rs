//! Transfer progress on stderr: an indicatif bar (bytes, rate, ETA) when
//! stderr is a terminal, else a plain line every [`LINE_EVERY`] or every
//! tenth of the total, whichever comes first, so CI logs show progress
//! without control characters.

use std::io::IsTerminal as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use super::human_bytes;

/// Longest time between two plain lines while bytes move.
pub const LINE_EVERY: Duration = Duration::from_secs(5);
/// How often the bar redraws even when no byte arrived (so a stalled
/// transfer shows its last position and a falling rate).
const BAR_TICK: Duration = Duration::from_millis(200);

/// Where progress goes; cheap to clone, shared by parallel part uploads.
#[derive(Clone)]
pub struct Progress {
    inner: Arc<Inner>,
}

struct Inner {
    label: String,
    total: u64,
    /// Bytes at the start of this run (resumed transfers start above 0);
    /// the rate counts only what this run moved.
    start_position: u64,
    position: AtomicU64,
    started: Instant,
    display: Display,
}

enum Display {
    Bar(ProgressBar),
    Lines(Mutex<LineState>),
}

struct LineState {
    printed_at: Instant,
    /// Tenths of the total already announced.
    tenths: u64,
    /// The position the last line showed.
    printed: u64,
}

impl Progress {
    /// Progress of `label` (e.g. `push tool.tar.gz`) over `total` bytes,
    /// `position` of them already done; a bar when stderr is a terminal.
    pub fn start(label: &str, total: u64, position: u64) -> Progress {
        let display = if std::io::stderr().is_terminal() {
            Display::Bar(bar(label, total, position))
        } else {
            eprintln!("{label}: {}", human_bytes(total));
            Display::Lines(Mutex::new(LineState {
                printed_at: Instant::now(),
                tenths: tenths_of(position, total),
                printed: position,
            }))
        };
        Progress {
            inner: Arc::new(Inner {
                label: label.to_string(),
                total,
                start_position: position,
                position: AtomicU64::new(position),
                started: Instant::now(),
                display,
            }),
        }
    }

    /// `bytes` more are done.
    pub fn add(&self, bytes: u64) {
        let position = self.inner.position.fetch_add(bytes, Ordering::Relaxed) + bytes;
        match &self.inner.display {
            Display::Bar(bar) => bar.inc(bytes),
            Display::Lines(state) => self.maybe_print_line(state, position),
        }
    }

    /// `bytes` counted before must be done again (a part sent anew).
    pub fn take_back(&self, bytes: u64) {
        self.inner.position.fetch_sub(bytes, Ordering::Relaxed);
        if let Display::Bar(bar) = &self.inner.display {
            bar.dec(bytes);
        }
    }

    /// The transfer ended (well or not): the bar stays on screen with its
    /// last position; plain output gets a closing line.
    pub fn finish(&self) {
        match &self.inner.display {
            Display::Bar(bar) => bar.abandon(),
            Display::Lines(state) => {
                let state = state.lock().unwrap_or_else(|e| e.into_inner());
                if state.printed != self.position() {
                    eprintln!("{}", self.line(self.position()));
                }
            }
        }
    }

    pub fn position(&self) -> u64 {
        self.inner.position.load(Ordering::Relaxed)
    }

    fn maybe_print_line(&self, state: &Mutex<LineState>, position: u64) {
        let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
        let tenths = tenths_of(position, self.inner.total);
        if tenths > state.tenths || state.printed_at.elapsed() >= LINE_EVERY {
            state.tenths = tenths.max(state.tenths);
            state.printed_at = Instant::now();
            state.printed = position;
            eprintln!("{}", self.line(position));
        }
    }

    /// `push f: 512.0 MiB / 2.0 GiB (25%), 98.1 MiB/s, ETA 15s`
    fn line(&self, position: u64) -> String {
        let inner = &self.inner;
        let elapsed = inner.started.elapsed().as_secs_f64();
        let moved = position.saturating_sub(inner.start_position);
        let rate = if elapsed > 0.0 {
            moved as f64 / elapsed
        } else {
            0.0
        };
        let percent = (position * 100).checked_div(inner.total).unwrap_or(100);
        let eta = match inner.total.saturating_sub(position) {
            0 => "done".to_string(),
            _ if rate < 1.0 => "ETA unknown".to_string(),
            left => format!("ETA {}s", (left as f64 / rate).ceil() as u64),
        };
        format!(
            "{}: {} / {} ({percent}%), {}/s, {eta}",
            inner.label,
            human_bytes(position),
            human_bytes(inner.total),
            human_bytes(rate as u64),
        )
    }
}

fn tenths_of(position: u64, total: u64) -> u64 {
    (position * 10).checked_div(total).unwrap_or(10)
}

fn bar(label: &str, total: u64, position: u64) -> ProgressBar {
    let style = ProgressStyle::with_template(
        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
    )
    .expect("a valid template")
    .progress_chars("=> ");
    let bar = ProgressBar::new(total).with_style(style);
    bar.set_message(label.to_string());
    bar.set_position(position);
    // The rate and ETA count from here, not from the resumed position.
    bar.reset_eta();
    bar.enable_steady_tick(BAR_TICK);
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_say_position_percentage_rate_and_eta() {
        let progress = Progress {
            inner: Arc::new(Inner {
                label: "pull f".into(),
                total: 4 << 20,
                start_position: 1 << 20,
                position: AtomicU64::new(1 << 20),
                started: Instant::now() - Duration::from_secs(1),
                display: Display::Lines(Mutex::new(LineState {
                    printed_at: Instant::now(),
                    tenths: 2,
                    printed: 1 << 20,
                })),
            }),
        };
        let line = progress.line(3 << 20);
        assert!(
            line.starts_with("pull f: 3.0 MiB / 4.0 MiB (75%), "),
            "{line}"
        );
        assert!(line.contains("/s, ETA "), "{line}");
        assert!(progress.line(4 << 20).ends_with(", done"));
        assert_eq!(tenths_of(5, 10), 5);
        assert_eq!(tenths_of(0, 0), 10);
    }
}
