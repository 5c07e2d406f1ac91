//! Standard output and error that may close before fitter is done: `fitter plan | head`,
//! a deploy piped into a pager the operator quits. `print!` panics on a closed pipe, and a
//! deploy that panicked after creating droplets left the operator guessing. Here a write
//! that fails stops that stream's output for the rest of the command and nothing else:
//! the command finishes its work (a deploy is never cut short by its reader going away;
//! its state is saved as always) and its exit code is the work's own.

use std::sync::atomic::{AtomicBool, Ordering};

static STDOUT_GONE: AtomicBool = AtomicBool::new(false);
static STDERR_GONE: AtomicBool = AtomicBool::new(false);

/// Writes `text` to standard output, unless it is gone.
pub fn stdout(text: &str) {
    write(&STDOUT_GONE, &mut std::io::stdout().lock(), text);
}

/// Writes `text` to standard error, unless it is gone.
pub fn stderr(text: &str) {
    write(&STDERR_GONE, &mut std::io::stderr().lock(), text);
}

fn write(gone: &AtomicBool, out: &mut dyn std::io::Write, text: &str) {
    if gone.load(Ordering::Relaxed) {
        return;
    }
    // A closed pipe (EPIPE) and any other failure (a full disk behind a redirect) alike:
    // the reader cannot get the rest, and retrying would only fail again.
    if out
        .write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .is_err()
    {
        gone.store(true, Ordering::Relaxed);
    }
}

/// `print!` that survives a closed standard output.
macro_rules! out {
    ($($arg:tt)*) => { $crate::cli::output::stdout(&format!($($arg)*)) };
}

/// `println!` that survives a closed standard output.
macro_rules! outln {
    () => { $crate::cli::output::stdout("\n") };
    ($($arg:tt)*) => { $crate::cli::output::stdout(&format!("{}\n", format!($($arg)*))) };
}

/// `eprint!` that survives a closed standard error.
macro_rules! err {
    ($($arg:tt)*) => { $crate::cli::output::stderr(&format!($($arg)*)) };
}

/// `eprintln!` that survives a closed standard error.
macro_rules! errln {
    () => { $crate::cli::output::stderr("\n") };
    ($($arg:tt)*) => { $crate::cli::output::stderr(&format!("{}\n", format!($($arg)*))) };
}
