//! The progress bar drawn on standard error when it is a terminal.
//!
//! The engine reports progress on its building thread, possibly very often
//! (once per file); the bar redraws at most ten times a second, each time
//! over the same line (`\r`, then "erase to end of line").

use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use guix_docker_native::Progress;

const REDRAW_INTERVAL: Duration = Duration::from_millis(100);

/// A progress bar on standard error.
pub struct ProgressBar {
    state: Mutex<State>,
}

struct State {
    start: Instant,
    last_draw: Option<Instant>,
    last: Option<Progress>,
}

impl ProgressBar {
    pub fn new() -> ProgressBar {
        ProgressBar { state: Mutex::new(State { start: Instant::now(), last_draw: None, last: None }) }
    }

    /// Records `progress` and redraws when the last redraw is old enough.
    pub fn update(&self, progress: Progress) {
        let Ok(mut state) = self.state.lock() else { return };
        state.last = Some(progress);
        let now = Instant::now();
        if state.last_draw.is_some_and(|t| now.duration_since(t) < REDRAW_INTERVAL) {
            return;
        }
        state.last_draw = Some(now);
        draw(progress, now.duration_since(state.start));
    }

    /// Ends the bar: on success the final state stays on its line; on
    /// failure the line is erased so that the error message stands alone.
    pub fn finish(&self, success: bool) {
        let Ok(state) = self.state.lock() else { return };
        let Some(last) = state.last else { return };
        if success {
            draw(last, state.start.elapsed());
            eprintln!();
        } else if state.last_draw.is_some() {
            eprint!("\r\x1b[K");
        }
    }
}

fn draw(progress: Progress, elapsed: Duration) {
    let line = render_line(progress, elapsed, terminal_width());
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "\r{line}\x1b[K");
    let _ = err.flush();
}

/// The width of the terminal on standard error, or 80.
fn terminal_width() -> usize {
    // SAFETY: TIOCGWINSZ fills the winsize we pass; we read it only on success.
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::ioctl(libc::STDERR_FILENO, libc::TIOCGWINSZ, &mut size) } == 0;
    if ok && size.ws_col > 0 {
        usize::from(size.ws_col)
    } else {
        80
    }
}

/// `1023 B`, `1.5 KiB`, `12.0 MiB`, `1.2 GiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// `0:07`, `12:34`, `1:02:03`.
pub fn human_duration(seconds: u64) -> String {
    let (h, m, s) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

/// One line of progress, at most `width - 1` characters (a line as wide as
/// the terminal would wrap on some terminals and break the redraw):
/// `  12.0 MiB / 40.0 MiB  30% [######........]  3/10 items    6.0 MiB/s  0:05 left`.
pub fn render_line(p: Progress, elapsed: Duration, width: usize) -> String {
    let fraction = if p.bytes_total > 0 { (p.bytes_done as f64 / p.bytes_total as f64).min(1.0) } else { 1.0 };
    let seconds = elapsed.as_secs_f64();
    let rate = if seconds > 0.0 { p.bytes_done as f64 / seconds } else { 0.0 };
    let left = if p.bytes_done >= p.bytes_total {
        "done".to_string()
    } else if rate > 0.0 && seconds >= 0.5 {
        format!("{} left", human_duration(((p.bytes_total - p.bytes_done) as f64 / rate).ceil() as u64))
    } else {
        "--:-- left".to_string()
    };
    // Fields padded to their widest, so that the bar keeps its width and
    // nothing jumps from one redraw to the next.
    let head = format!(
        "{:>10} / {} {:>3.0}%",
        human_bytes(p.bytes_done),
        human_bytes(p.bytes_total),
        (fraction * 100.0).floor()
    );
    let digits = p.items_total.to_string().len();
    let tail = format!(
        "{:>digits$}/{} items {:>10}/s {:>10}",
        p.items_done,
        p.items_total,
        human_bytes(rate as u64),
        left
    );
    let budget = width.saturating_sub(1);
    // The bar takes what is left between the head and the tail, if enough.
    let room = budget.saturating_sub(head.len() + tail.len() + 4);
    let line = if room >= 10 {
        let bar_width = room.min(40);
        let filled = ((fraction * bar_width as f64) as usize).min(bar_width);
        format!("{head} [{}{}] {tail}", "#".repeat(filled), ".".repeat(bar_width - filled))
    } else {
        format!("{head}  {tail}")
    };
    line.chars().take(budget).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(bytes_done: u64, bytes_total: u64, items_done: u64, items_total: u64) -> Progress {
        Progress { bytes_done, bytes_total, items_done, items_total }
    }

    #[test]
    fn sizes_and_durations() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(40 << 20), "40.0 MiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
        assert_eq!(human_duration(7), "0:07");
        assert_eq!(human_duration(754), "12:34");
        assert_eq!(human_duration(3723), "1:02:03");
    }

    #[test]
    fn a_line_shows_bytes_percent_items_rate_and_time_left() {
        let line = render_line(progress(12 << 20, 40 << 20, 3, 10), Duration::from_secs(2), 120);
        assert!(line.starts_with("  12.0 MiB / 40.0 MiB  30% ["), "{line}");
        assert!(line.ends_with("]  3/10 items    6.0 MiB/s  0:05 left"), "{line}");
        assert!(line.chars().count() <= 119);
        let bar: String = line.chars().skip_while(|&c| c != '[').skip(1).take_while(|&c| c != ']').collect();
        assert_eq!(bar.chars().filter(|&c| c == '#').count() * 10, bar.len() * 3);
    }

    #[test]
    fn a_line_fits_a_narrow_terminal() {
        let p = progress(5 << 30, 10 << 30, 29_000, 58_000);
        let narrow = render_line(p, Duration::from_secs(10), 60);
        assert!(!narrow.contains('['), "no room for a bar: {narrow}");
        assert!(narrow.chars().count() <= 59);
        assert!(render_line(p, Duration::from_secs(10), 20).chars().count() <= 19);
    }

    #[test]
    fn start_and_end() {
        let start = render_line(progress(0, 100, 0, 1), Duration::ZERO, 100);
        assert!(start.contains("   0%") && start.ends_with("--:-- left"), "{start}");
        // The bar keeps its place and width while the numbers change.
        let later = render_line(progress(77, 100, 1, 1), Duration::from_secs(3), 100);
        assert_eq!(start.find('['), later.find('['), "{start}\n{later}");
        assert_eq!(start.find(']'), later.find(']'), "{start}\n{later}");
        let end = render_line(progress(100, 100, 1, 1), Duration::from_secs(1), 100);
        assert!(end.contains(" 100%") && end.ends_with("done"), "{end}");
        let empty = render_line(progress(0, 0, 0, 0), Duration::ZERO, 100);
        assert!(empty.contains(" 100%"), "{empty}");
    }
}
