//! The log: to standard error at the level `-v`/`-q` (or `FITTER_LOG`) asks, coloured only
//! for a person at a terminal; with `--log-file`, also the debug log to a file, with
//! timestamps and never colour (Terraform's `TF_LOG_PATH`: the record to attach to a bug
//! report, whatever the screen showed). Both are `tracing-subscriber` layers on one
//! registry, each with its own filter.

use std::path::Path;

use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

/// Starts logging; an unwritable `--log-file` is an error before anything is done.
pub fn init(verbose: u8, quiet: bool, file: Option<&Path>) -> Result<(), String> {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, _) => "debug",
    };
    let filter = EnvFilter::try_from_env("FITTER_LOG").unwrap_or_else(|_| EnvFilter::new(level));
    let terminal = tracing_subscriber::fmt::layer()
        .with_writer(|| LogWriter)
        // Colour only for a person at a terminal: never into a pipe or a file.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .without_time()
        .with_filter(filter);
    let to_file = match file {
        None => None,
        Some(path) => {
            let log = open(path).map_err(|e| {
                format!("error: cannot open the log file `{}`: {e}", path.display())
            })?;
            Some(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::sync::Mutex::new(log))
                    .with_ansi(false)
                    .with_filter(EnvFilter::new("debug")),
            )
        }
    };
    let _ = tracing_subscriber::registry()
        .with(terminal)
        .with(to_file)
        .try_init();
    Ok(())
}

/// Appended to, never truncated (several runs in one file read as a history); readable by
/// its owner only, as a debug log names hosts, addresses and paths.
fn open(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

/// Log output, written above the live display when one is shown (a line written through it
/// would leave a broken frame behind).
struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        crate::report::live::write_log(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
