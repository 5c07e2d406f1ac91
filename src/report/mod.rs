//! Progress reporting: what the operations tell the operator while they work.
//!
//! The operations (apply, bootstrap) call a [`Reporter`]: a resource or node started, what
//! it is doing now, how it finished; a phase started and finished. They never print progress
//! themselves and know nothing of terminals, as uv's `Reporter` has it: only the CLI picks a
//! renderer.
//!
//! - [`live::Live`]: on a terminal, one line per resource or node in progress (spinner, what
//!   it is doing, elapsed time), finished lines kept above them. Drawn with indicatif, the
//!   maintained crate for this (cargo and uv use it), so that redraws, terminal width and
//!   output interleaving are not ours to get wrong.
//! - [`plain::Plain`]: when standard error is not a terminal, or with `--no-progress`, plain
//!   lines as Terraform prints them, and a heartbeat for anything still going after 10 s
//!   (`node.agent3: still creating... [10s elapsed]`), so a CI log shows that a long wait is
//!   a wait and not a hang.
//! - [`Silent`]: `-q`, and tests that drive the operations directly.
//!
//! Everything goes to standard error: standard output carries data (the plan, the report,
//! `information`), which must stay the same whatever the display.

pub mod live;
pub mod plain;

use std::io::IsTerminal as _;
use std::sync::Arc;
use std::time::Duration;

/// What a resource or node is being taken through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activity {
    Creating,
    Updating,
    Destroying,
    Bootstrapping,
}

impl Activity {
    /// `creating`, as in `node.x: creating...` and `still creating...`.
    pub fn verb(self) -> &'static str {
        match self {
            Activity::Creating => "creating",
            Activity::Updating => "modifying",
            Activity::Destroying => "destroying",
            Activity::Bootstrapping => "bootstrapping",
        }
    }

    /// `creation complete`, as in `node.x: creation complete after 12s`.
    pub fn completed(self) -> &'static str {
        match self {
            Activity::Creating => "creation complete",
            Activity::Updating => "modifications complete",
            Activity::Destroying => "destruction complete",
            Activity::Bootstrapping => "bootstrap complete",
        }
    }
}

/// A stage of a command that takes a while.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Reading every recorded resource back from its provider.
    Refresh,
    /// Creating, changing and destroying resources.
    Apply,
    /// Configuring the nodes over SSH.
    Bootstrap,
}

impl Phase {
    pub fn describe(self) -> &'static str {
        match self {
            Phase::Refresh => "reading the recorded resources from their providers",
            Phase::Apply => "applying changes",
            Phase::Bootstrap => "bootstrapping the nodes",
        }
    }
}

/// How one resource or node finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish<'a> {
    /// Done; the provider's id when there is one worth showing.
    Done {
        id: Option<&'a str>,
    },
    /// Done, and nothing had to change (bootstrap of a node already in line).
    Unchanged,
    Failed {
        error: &'a str,
    },
}

/// Told by the operations what they are doing. Implementations must be cheap and must not
/// block: they are called from the middle of the work.
pub trait Reporter: Send + Sync {
    fn phase_started(&self, _phase: Phase) {}
    fn phase_finished(&self, _phase: Phase) {}
    /// `subject` (`node.master1`, `bootstrap master1`) started `activity`.
    fn started(&self, subject: &str, activity: Activity);
    /// What `subject` is doing now, within its activity (`waiting for it to boot`).
    fn step(&self, subject: &str, detail: &str);
    fn finished(&self, subject: &str, finish: Finish<'_>);
}

/// Reports nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Reporter for Silent {
    fn started(&self, _: &str, _: Activity) {}
    fn step(&self, _: &str, _: &str) {}
    fn finished(&self, _: &str, _: Finish<'_>) {}
}

/// `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ColorChoice {
    /// Colours when standard error is a terminal and `NO_COLOR` is not set.
    #[default]
    Auto,
    Always,
    Never,
}

/// How the CLI wants progress shown.
#[derive(Debug, Clone, Copy)]
pub struct Display {
    pub quiet: bool,
    pub no_progress: bool,
    pub color: ColorChoice,
}

impl Display {
    /// Whether colours are on: `--color`, then `NO_COLOR` (<https://no-color.org>: set and not
    /// empty), then whether standard error is a terminal.
    pub fn colors(&self) -> bool {
        match self.color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                    && std::io::stderr().is_terminal()
            }
        }
    }

    /// The reporter for this display: silent with `-q`, live on a terminal, plain elsewhere.
    pub fn reporter(&self) -> Arc<dyn Reporter> {
        let colors = self.colors();
        // indicatif's template colours go through console's switch for standard output
        // unless told otherwise: set both, so that `NO_COLOR` means no colour anywhere.
        console::set_colors_enabled(colors);
        console::set_colors_enabled_stderr(colors);
        if self.quiet {
            Arc::new(Silent)
        } else if self.no_progress || !std::io::stderr().is_terminal() {
            Arc::new(plain::Plain::stderr(colors, HEARTBEAT))
        } else {
            Arc::new(live::Live::stderr())
        }
    }
}

/// How often plain output says that something is still going.
pub const HEARTBEAT: Duration = Duration::from_secs(10);

/// Whole seconds, as Terraform shows elapsed time: `12s`, `2m3s`.
pub fn elapsed(d: Duration) -> String {
    let s = d.as_secs();
    if s < 60 {
        format!("{s}s")
    } else {
        format!("{}m{}s", s / 60, s % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elapsed_reads_as_terraform_writes_it() {
        assert_eq!(elapsed(Duration::from_millis(10_900)), "10s");
        assert_eq!(elapsed(Duration::from_secs(123)), "2m3s");
    }

    #[test]
    fn never_and_always_override_the_environment() {
        let never = Display {
            quiet: false,
            no_progress: true,
            color: ColorChoice::Never,
        };
        assert!(!never.colors());
        let always = Display {
            color: ColorChoice::Always,
            ..never
        };
        assert!(always.colors());
    }
}
