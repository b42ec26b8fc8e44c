//! The progress bar drawn on standard error when it is a terminal.
//!
//! `indicatif` draws it: it measures the rate and the time left, fits the
//! line to the terminal's width, limits redraws (the engine may report once
//! per file) and can show several bars at once, which a push of many layers
//! will want.  This module only says what the line holds.

use std::sync::atomic::{AtomicU8, Ordering};

use std::sync::Mutex;

use guix_docker_native::{LayerState, Progress, PushReport};
use indicatif::{BinaryBytes, MultiProgress, ProgressDrawTarget, ProgressStyle};

/// Redraws per second at most.
const REDRAWS_PER_SECOND: u8 = 10;

/// `  12.00 MiB / 40.00 MiB  30% [######.....] 3/10 items  6.00 MiB/s   5s left`:
/// the bar takes the room the other fields leave.
const FULL: &str =
    "{binary_bytes:>11} / {binary_total_bytes} {percent:>3}% [{wide_bar}] {msg} {binary_bytes_per_sec:>13} {eta:>4} left";

/// The narrowest terminal that gets [`FULL`], with room for a bar of some
/// width beside sizes in TiB and six-digit item counts.
const FULL_MIN_WIDTH: u16 = 112;

/// On a narrower terminal: the percentage, then the sizes and items, cut
/// to the width (indicatif does not cut a line; one wider than the
/// terminal wraps, and the next redraw leaves the first row behind).
const COMPACT: &str = "{percent:>3}% {wide_msg}";

const STYLE_UNSET: u8 = 0;
const STYLE_FULL: u8 = 1;
const STYLE_COMPACT: u8 = 2;

/// A progress bar on standard error.
pub struct ProgressBar {
    bar: indicatif::ProgressBar,
    /// The terminal's width now (it may change while the bar is drawn).
    width: Box<dyn Fn() -> u16 + Send + Sync>,
    /// Which style the bar has: `STYLE_*`.
    style: AtomicU8,
}

impl ProgressBar {
    /// A bar on standard error.
    pub fn new() -> ProgressBar {
        Self::on(ProgressDrawTarget::stderr_with_hz(REDRAWS_PER_SECOND), Box::new(stderr_width))
    }

    fn on(target: ProgressDrawTarget, width: Box<dyn Fn() -> u16 + Send + Sync>) -> ProgressBar {
        ProgressBar { bar: indicatif::ProgressBar::with_draw_target(None, target), width, style: AtomicU8::new(STYLE_UNSET) }
    }

    /// Records `progress`; the bar redraws when its last redraw is old enough.
    pub fn update(&self, progress: Progress) {
        let items = format!("{}/{} items", progress.items_done, progress.items_total);
        let wanted = if (self.width)() >= FULL_MIN_WIDTH { STYLE_FULL } else { STYLE_COMPACT };
        if self.style.swap(wanted, Ordering::Relaxed) != wanted {
            let template = if wanted == STYLE_FULL { FULL } else { COMPACT };
            let style = ProgressStyle::with_template(template).expect("the templates are valid");
            self.bar.set_style(style.progress_chars("#>."));
        }
        // The message first: each change may redraw.
        self.bar.set_message(match wanted {
            STYLE_FULL => items,
            _ => format!("{} / {} {items}", BinaryBytes(progress.bytes_done), BinaryBytes(progress.bytes_total)),
        });
        self.bar.set_length(progress.bytes_total);
        self.bar.set_position(progress.bytes_done);
    }

    /// Ends the bar: on success the final state stays on its line; on
    /// failure the line is erased so that the error message stands alone.
    pub fn finish(&self, success: bool) {
        if success {
            self.bar.finish();
        } else {
            self.bar.finish_and_clear();
        }
    }
}

/// A push's bars: one line for the whole (the bytes produced, the
/// layers done and how), and one for each layer uploading, with its bytes
/// sent and its rate; a layer found in the registry or mounted gets a line
/// that stays, saying so.
pub struct PushBars {
    multi: MultiProgress,
    total: indicatif::ProgressBar,
    /// Each layer's bar while it uploads, and whether its end was said.
    layers: Mutex<Vec<(Option<indicatif::ProgressBar>, bool)>>,
}

/// `  45.00 MiB / 90.00 MiB  50% [#####.....] layers: 2 of 6 up (1 uploaded, 1 already there)`
const PUSH_TOTAL: &str = "{binary_bytes:>11} / {binary_total_bytes} {percent:>3}% [{bar:30}] {wide_msg}";
/// `  layer 3/6 uploading     12.00 MiB    5.00 MiB/s`
const PUSH_LAYER: &str = "  {prefix} {msg:<10} {binary_bytes:>11} {binary_bytes_per_sec:>13}";

impl PushBars {
    /// Bars on standard error.
    pub fn new() -> PushBars {
        Self::on(ProgressDrawTarget::stderr_with_hz(REDRAWS_PER_SECOND))
    }

    fn on(target: ProgressDrawTarget) -> PushBars {
        let multi = MultiProgress::with_draw_target(target);
        let total = multi.add(indicatif::ProgressBar::new(0));
        total.set_style(ProgressStyle::with_template(PUSH_TOTAL).expect("a valid template").progress_chars("#>."));
        PushBars { multi, total, layers: Mutex::new(Vec::new()) }
    }

    /// The engine's progress: bytes produced (before compression).
    pub fn update(&self, progress: Progress) {
        self.total.set_length(progress.bytes_total);
        self.total.set_position(progress.bytes_done);
    }

    /// The push's report: each layer's state.
    pub fn report(&self, report: &PushReport) {
        let n = report.layers.len();
        let mut layers = self.layers.lock().unwrap();
        layers.resize_with(n, || (None, false));
        let (mut uploaded, mut present, mut mounted) = (0, 0, 0);
        for (i, layer) in report.layers.iter().enumerate() {
            let (bar, said) = &mut layers[i];
            let name = format!("layer {}/{n}", i + 1);
            match &layer.state {
                LayerState::Waiting => {}
                LayerState::Uploading { sent } => {
                    let bar = bar.get_or_insert_with(|| {
                        let b = self.multi.add(indicatif::ProgressBar::new(0));
                        b.set_style(ProgressStyle::with_template(PUSH_LAYER).expect("a valid template"));
                        b.set_prefix(name.clone());
                        b.set_message("uploading");
                        b
                    });
                    bar.set_position(*sent);
                }
                done => {
                    if let Some(bar) = bar.take() {
                        bar.finish_and_clear();
                        self.multi.remove(&bar);
                    }
                    let digest = layer.digest.as_deref().unwrap_or("");
                    let short = &digest[..digest.len().min(19)];
                    let line = match done {
                        LayerState::Skipped => {
                            present += 1;
                            format!("  {name} {short}: already in the registry")
                        }
                        LayerState::Mounted { from } => {
                            mounted += 1;
                            format!("  {name} {short}: mounted from {from}")
                        }
                        _ => {
                            uploaded += 1;
                            format!("  {name} {short}: uploaded, {}", BinaryBytes(layer.size.unwrap_or(0)))
                        }
                    };
                    if !*said {
                        *said = true;
                        let _ = self.multi.println(line);
                    }
                }
            }
        }
        self.total.set_message(format!(
            "layers: {} of {n} up ({uploaded} uploaded, {present} already there, {mounted} mounted)",
            uploaded + present + mounted
        ));
    }

    /// Ends the bars: on success the total line stays; on failure all go.
    pub fn finish(&self, success: bool) {
        for (bar, _) in self.layers.lock().unwrap().iter_mut() {
            if let Some(bar) = bar.take() {
                bar.finish_and_clear();
            }
        }
        if success {
            self.total.finish();
        } else {
            self.total.finish_and_clear();
        }
    }
}

/// The width of the terminal on standard error, or 80.  (indicatif
/// measures it too, but does not say.)
fn stderr_width() -> u16 {
    // SAFETY: TIOCGWINSZ fills the winsize we pass; we read it only on success.
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::ioctl(libc::STDERR_FILENO, libc::TIOCGWINSZ, &mut size) } == 0;
    if ok && size.ws_col > 0 {
        size.ws_col
    } else {
        80
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use indicatif::InMemoryTerm;

    fn progress(bytes_done: u64, bytes_total: u64, items_done: u64, items_total: u64) -> Progress {
        Progress { bytes_done, bytes_total, items_done, items_total }
    }

    /// A bar on a virtual terminal `width` columns wide, and the terminal.
    fn on_terminal(width: u16) -> (ProgressBar, InMemoryTerm) {
        let term = InMemoryTerm::new(4, width);
        let target = ProgressDrawTarget::term_like(Box::new(term.clone()));
        (ProgressBar::on(target, Box::new(move || width)), term)
    }

    #[test]
    fn a_line_shows_bytes_percent_items_rate_and_time_left() {
        let (bar, term) = on_terminal(120);
        bar.update(progress(12 << 20, 40 << 20, 3, 10));
        bar.bar.tick();
        let line = term.contents();
        assert!(line.contains("12.00 MiB / 40.00 MiB  30% ["), "{line}");
        assert!(line.contains("] 3/10 items ") && line.contains("/s") && line.ends_with(" left"), "{line}");
        assert!(line.chars().count() <= 120, "{line}");
        let inside: String = line.chars().skip_while(|&c| c != '[').skip(1).take_while(|&c| c != ']').collect();
        let filled = inside.chars().filter(|&c| c == '#').count();
        assert!(filled * 10 >= inside.len() * 3 - 10 && filled * 10 <= inside.len() * 3, "{inside}");
    }

    #[test]
    fn a_line_fits_a_narrow_terminal() {
        for width in [111, 60, 20] {
            let (bar, term) = on_terminal(width);
            bar.update(progress(5 << 30, 10 << 30, 29_000, 58_000));
            bar.bar.tick();
            // One line: nothing wrapped onto the next row.
            assert_eq!(term.contents().lines().count(), 1, "{width} columns: {:?}", term.contents());
            assert!(term.contents().chars().count() <= usize::from(width));
            assert!(term.contents().starts_with(" 50% "), "{width} columns: {:?}", term.contents());
        }
        let (bar, term) = on_terminal(60);
        bar.update(progress(5 << 30, 10 << 30, 29_000, 58_000));
        bar.bar.tick();
        assert_eq!(term.contents(), " 50% 5.00 GiB / 10.00 GiB 29000/58000 items");
    }

    #[test]
    fn a_push_shows_each_layer_and_the_total() {
        use guix_docker_native::LayerReport;
        let term = InMemoryTerm::new(10, 120);
        let bars = PushBars::on(ProgressDrawTarget::term_like(Box::new(term.clone())));
        let layer = |state, digest: Option<&str>| LayerReport { state, digest: digest.map(String::from), size: Some(3 << 20) };
        let mut report = PushReport {
            repository: "docker://localhost:5000/app".into(),
            layers: vec![
                layer(LayerState::Uploading { sent: 2 << 20 }, None),
                layer(LayerState::Skipped, Some("sha256:0123456789abcdef0123")),
                layer(LayerState::Waiting, None),
            ],
            config_present: None,
            manifest: None,
        };
        bars.update(progress(10 << 20, 20 << 20, 1, 3));
        bars.report(&report);
        bars.total.tick();
        let screen = term.contents();
        assert!(screen.contains("layer 1/3 uploading") && screen.contains("2.00 MiB"), "{screen}");
        assert!(screen.contains("layer 2/3 sha256:0123456789ab: already in the registry"), "{screen}");
        assert!(screen.contains("layers: 1 of 3 up (0 uploaded, 1 already there, 0 mounted)"), "{screen}");
        report.layers[0] = layer(LayerState::Uploaded, Some("sha256:ffff"));
        report.layers[2] = layer(LayerState::Mounted { from: "other".into() }, Some("sha256:eeee"));
        bars.report(&report);
        bars.finish(true);
        let screen = term.contents();
        assert!(!screen.contains("uploading "), "{screen}");
        assert!(screen.contains("layer 1/3 sha256:ffff: uploaded, 3.00 MiB"), "{screen}");
        assert!(screen.contains("layer 3/3 sha256:eeee: mounted from other"), "{screen}");
        assert!(screen.contains("layers: 3 of 3 up (1 uploaded, 1 already there, 1 mounted)"), "{screen}");
    }

    #[test]
    fn success_leaves_the_last_line_failure_erases_it() {
        let (bar, term) = on_terminal(100);
        bar.update(progress(0, 100, 0, 1));
        bar.bar.tick();
        let start = term.contents();
        assert!(start.contains("  0%") && start.contains("0/1 items"), "{start}");
        // The bar keeps its place while the numbers change.
        bar.update(progress(77, 100, 1, 1));
        bar.bar.tick();
        assert_eq!(start.find('['), term.contents().find('['), "{start}\n{}", term.contents());
        bar.update(progress(100, 100, 1, 1));
        bar.finish(true);
        let end = term.contents();
        assert!(end.contains("100%") && end.contains("1/1 items"), "{end}");

        let (bar, term) = on_terminal(100);
        bar.update(progress(10, 100, 0, 1));
        bar.bar.tick();
        assert!(!term.contents().is_empty());
        bar.finish(false);
        assert_eq!(term.contents().trim(), "", "the line is erased after a failure");
    }
}
