//! The live display on a terminal: one spinner line per resource or node in progress, with
//! what it is doing and for how long; a finished one leaves a line above the spinners.
//!
//! ```text
//! node.master1: creation complete after 14s [id=3164494]
//! ⠙ applying changes [16s]
//! ⠹ node.agent3: creating: waiting for it to boot [15s]
//! ```

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use console::style;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{Activity, Finish, Phase, Reporter, elapsed};

pub struct Live {
    bars: MultiProgress,
    running: Mutex<HashMap<String, (ProgressBar, Activity)>>,
    phases: Mutex<HashMap<&'static str, ProgressBar>>,
}

/// The display on screen, if any: log lines go above it rather than through it.
static SHOWN: Mutex<Option<MultiProgress>> = Mutex::new(None);

/// Writes log output to standard error without breaking the live display: above it while
/// one is shown, straight otherwise. The CLI's log subscriber writes through this.
pub fn write_log(text: &[u8]) {
    use std::io::Write as _;
    let shown = SHOWN.lock().ok().and_then(|s| s.clone());
    match shown {
        Some(bars) => bars.suspend(|| {
            let _ = std::io::stderr().write_all(text);
        }),
        None => {
            let _ = std::io::stderr().write_all(text);
        }
    }
}

/// How often the spinners and elapsed times are redrawn.
const TICK: Duration = Duration::from_millis(120);

impl Live {
    pub fn stderr() -> Live {
        let bars = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        if let Ok(mut shown) = SHOWN.lock() {
            *shown = Some(bars.clone());
        }
        Live {
            bars,
            running: Mutex::new(HashMap::new()),
            phases: Mutex::new(HashMap::new()),
        }
    }

    fn spinner(&self, prefix: String, message: String) -> ProgressBar {
        let style = ProgressStyle::with_template("{spinner:.cyan} {prefix}{msg} [{elapsed}]")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        // Hidden until the display takes it: a bar made with its own target draws itself
        // straight to standard error as soon as it is touched, outside the display, and
        // that frame stays behind in the scrollback.
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
        bar.set_style(style);
        bar.set_prefix(prefix);
        bar.set_message(message);
        let bar = self.bars.add(bar);
        bar.enable_steady_tick(TICK);
        bar
    }

    fn println(&self, line: String) {
        // Not drawn (a terminal that went away): nothing to do about it.
        let _ = self.bars.println(line);
    }
}

impl Reporter for Live {
    fn phase_started(&self, phase: Phase) {
        let bar = self.spinner(String::new(), phase.describe().to_string());
        if let Ok(mut p) = self.phases.lock() {
            p.insert(phase.describe(), bar);
        }
    }

    fn phase_finished(&self, phase: Phase) {
        if let Some(bar) = self
            .phases
            .lock()
            .ok()
            .and_then(|mut p| p.remove(phase.describe()))
        {
            bar.finish_and_clear();
            self.bars.remove(&bar);
        }
    }

    fn started(&self, subject: &str, activity: Activity) {
        let bar = self.spinner(
            format!("{}: ", style(subject).for_stderr().bold()),
            activity.verb().to_string(),
        );
        if let Ok(mut r) = self.running.lock() {
            r.insert(subject.to_string(), (bar, activity));
        }
    }

    fn step(&self, subject: &str, detail: &str) {
        if let Ok(r) = self.running.lock()
            && let Some((bar, activity)) = r.get(subject)
        {
            bar.set_message(format!("{}: {detail}", activity.verb()));
        }
    }

    fn finished(&self, subject: &str, finish: Finish<'_>) {
        let Some((bar, activity)) = self.running.lock().ok().and_then(|mut r| r.remove(subject))
        else {
            return;
        };
        let took = elapsed(bar.elapsed());
        let subject = style(subject).for_stderr().bold();
        let line = match finish {
            Finish::Done { id } => {
                let done = style(format!("{} after {took}", activity.completed()))
                    .for_stderr()
                    .green();
                match id {
                    Some(id) => format!("{subject}: {done} [id={id}]"),
                    None => format!("{subject}: {done}"),
                }
            }
            Finish::Unchanged => format!("{subject}: no changes after {took}"),
            Finish::Failed { error } => format!(
                "{subject}: {}: {error}",
                style(format!("{} failed after {took}", activity.verb()))
                    .for_stderr()
                    .red()
            ),
        };
        // The bar leaves the display in the same draw that prints its line above it, so
        // that no frame of it is left behind in the scrollback.
        bar.finish_and_clear();
        self.bars.remove(&bar);
        self.println(line);
    }
}
