//! Plain progress lines, as Terraform prints them when its output is not a terminal:
//!
//! ```text
//! node.agent3: creating...
//! node.agent3: still creating... [10s elapsed]
//! node.agent3: creation complete after 14s [id=3164494]
//! ```
//!
//! A ticker thread prints the heartbeat for whatever is still going, every [`super::HEARTBEAT`]
//! from its start. A thread rather than a tokio task: the reporter is made before the runtime
//! and outlives it, and a heartbeat must keep coming while the runtime's threads are busy.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use console::style;

use super::{Activity, Finish, Phase, Reporter, elapsed};

pub struct Plain {
    shared: Arc<Shared>,
    ticker: Mutex<Option<JoinHandle<()>>>,
}

struct Shared {
    out: Mutex<Box<dyn Write + Send>>,
    running: Mutex<BTreeMap<String, Running>>,
    stopped: Mutex<bool>,
    wake: Condvar,
    colors: bool,
    heartbeat: Duration,
}

struct Running {
    activity: Activity,
    since: Instant,
    next_beat: Instant,
}

impl Plain {
    /// Lines on standard error, with a heartbeat every `heartbeat`.
    pub fn stderr(colors: bool, heartbeat: Duration) -> Plain {
        Plain::new(Box::new(std::io::stderr()), colors, heartbeat)
    }

    pub fn new(out: Box<dyn Write + Send>, colors: bool, heartbeat: Duration) -> Plain {
        let shared = Arc::new(Shared {
            out: Mutex::new(out),
            running: Mutex::new(BTreeMap::new()),
            stopped: Mutex::new(false),
            wake: Condvar::new(),
            colors,
            heartbeat,
        });
        let ticker = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("fitter-heartbeat".into())
                .spawn(move || shared.tick())
                .ok()
        };
        Plain {
            shared,
            ticker: Mutex::new(ticker),
        }
    }

    /// Prints the heartbeat of everything due by `now` (the ticker calls it; tests too).
    pub fn beat(&self, now: Instant) {
        self.shared.beat(now);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn line(&self, subject: &str, text: &str) {
        let subject = if self.colors {
            style(subject).force_styling(true).bold().to_string()
        } else {
            subject.to_string()
        };
        // A closed standard error (a pipe whose reader left) is no reason to stop working.
        let _ = writeln!(lock(&self.out), "{subject}: {text}");
    }

    fn tick(&self) {
        let mut stopped = lock(&self.stopped);
        while !*stopped {
            let next = lock(&self.running).values().map(|r| r.next_beat).min();
            let wait = next
                .map(|n| n.saturating_duration_since(Instant::now()))
                .unwrap_or(self.heartbeat)
                .max(Duration::from_millis(50));
            stopped = self
                .wake
                .wait_timeout(stopped, wait)
                .unwrap_or_else(|e| e.into_inner())
                .0;
            if !*stopped {
                self.beat(Instant::now());
            }
        }
    }

    fn beat(&self, now: Instant) {
        let mut due = Vec::new();
        for (subject, r) in lock(&self.running).iter_mut() {
            if r.next_beat <= now {
                due.push((
                    subject.clone(),
                    r.activity,
                    now.saturating_duration_since(r.since),
                ));
                while r.next_beat <= now {
                    r.next_beat += self.heartbeat;
                }
            }
        }
        for (subject, activity, took) in due {
            self.line(
                &subject,
                &format!("still {}... [{} elapsed]", activity.verb(), elapsed(took)),
            );
        }
    }
}

impl Reporter for Plain {
    fn phase_started(&self, _phase: Phase) {}

    fn started(&self, subject: &str, activity: Activity) {
        let now = Instant::now();
        lock(&self.shared.running).insert(
            subject.to_string(),
            Running {
                activity,
                since: now,
                next_beat: now + self.shared.heartbeat,
            },
        );
        self.shared.wake.notify_all();
        self.shared
            .line(subject, &format!("{}...", activity.verb()));
    }

    /// Plain output keeps to the Terraform lines; the detail is for the live display.
    fn step(&self, _subject: &str, _detail: &str) {}

    fn finished(&self, subject: &str, finish: Finish<'_>) {
        let Some(r) = lock(&self.shared.running).remove(subject) else {
            return;
        };
        let took = elapsed(r.since.elapsed());
        let colors = self.shared.colors;
        let text = match finish {
            Finish::Done { id } => {
                let done = format!("{} after {took}", r.activity.completed());
                let done = if colors {
                    style(done).force_styling(true).green().to_string()
                } else {
                    done
                };
                match id {
                    Some(id) => format!("{done} [id={id}]"),
                    None => done,
                }
            }
            Finish::Unchanged => format!("no changes after {took}"),
            Finish::Failed { error } => {
                let failed = format!("{} failed after {took}", r.activity.verb());
                if colors {
                    format!("{}: {error}", style(failed).force_styling(true).red())
                } else {
                    format!("{failed}: {error}")
                }
            }
        };
        self.shared.line(subject, &text);
    }
}

impl Drop for Plain {
    fn drop(&mut self) {
        *lock(&self.shared.stopped) = true;
        self.shared.wake.notify_all();
        if let Some(t) = lock(&self.ticker).take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            lock(&self.0).extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Buffer {
        fn text(&self) -> String {
            String::from_utf8(lock(&self.0).clone()).unwrap()
        }
    }

    #[test]
    fn lines_and_heartbeats_read_as_terraform_prints_them() {
        let out = Buffer::default();
        // An hour between ticker beats: only the beats the test asks for are printed.
        let plain = Plain::new(Box::new(out.clone()), false, Duration::from_secs(3600));
        let start = Instant::now();
        plain.started("node.agent3", Activity::Creating);
        plain.step("node.agent3", "waiting for it to boot");
        plain.beat(start);
        assert_eq!(
            out.text(),
            "node.agent3: creating...\n",
            "no beat before it is due"
        );
        plain.beat(start + Duration::from_secs(3600));
        plain.beat(start + Duration::from_secs(3601));
        assert!(
            out.text()
                .ends_with("node.agent3: still creating... [60m0s elapsed]\n"),
            "{}",
            out.text()
        );
        assert_eq!(
            out.text().matches("still").count(),
            1,
            "one beat per period"
        );
        plain.finished("node.agent3", Finish::Done { id: Some("42") });
        plain.started("node.agent4", Activity::Destroying);
        plain.finished("node.agent4", Finish::Failed { error: "HTTP 500" });
        let text = out.text();
        assert!(
            text.contains("node.agent3: creation complete after "),
            "{text}"
        );
        assert!(text.contains(" [id=42]\n"), "{text}");
        assert!(
            text.contains("node.agent4: destroying failed after 0s: HTTP 500\n"),
            "{text}"
        );
        assert!(
            !text.contains('\x1b'),
            "no colours when they are off: {text:?}"
        );
    }

    #[test]
    fn colours_when_asked() {
        let out = Buffer::default();
        let plain = Plain::new(Box::new(out.clone()), true, Duration::from_secs(3600));
        plain.started("node.a", Activity::Creating);
        plain.finished("node.a", Finish::Done { id: None });
        drop(plain);
        assert!(out.text().contains('\x1b'), "{:?}", out.text());
    }
}
