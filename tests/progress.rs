//! What an operator sees while a deploy waits: the live display on a terminal, plain lines
//! with a heartbeat elsewhere, no colour codes under `NO_COLOR`.
//!
//! Each test runs the real binary against its own `fitter-sim` whose droplets take 15 s to
//! become active, long enough for the display to move and for the 10 s heartbeat to come
//! while the droplets are still `new`. The simulator, not a sleep, holds the deploy in its
//! wait; the tests only read what fitter prints. Prism is not in the loop: what is checked
//! here is the display, and the API traffic of the same deploy is held to the spec by
//! tests/digitalocean.rs. The pseudo-terminal comes from `portable-pty` (wezterm's, kept
//! up to date), so the test needs no tmux or `script` installed and reads every byte drawn.

use std::io::Read as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fitter_sim::{Config, Simulator};
use portable_pty::{CommandBuilder, PtySize, native_pty_system};

const TOKEN: &str = "dop_v1_fitter_progress_test_token";
const PLAN: &str = "fittings/mesos-digitalocean.yaml";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A simulator whose droplets stay `new` for 15 s.
fn slow_cloud() -> Simulator {
    Simulator::start_background(
        "127.0.0.1:0".parse().unwrap(),
        Config {
            active_delay: Duration::from_secs(15),
            delete_delay: Duration::from_millis(200),
            token: Some(TOKEN.to_string()),
            ..Config::default()
        },
    )
    .expect("the simulator starts")
}

fn command(sim: &Simulator, dir: &std::path::Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fitter"));
    cmd.current_dir(root())
        .args(args)
        .arg("--state")
        .arg(dir.join("do.state.json"))
        .arg(PLAN)
        .env("DIGITALOCEAN_TOKEN", TOKEN)
        .env("DIGITALOCEAN_API_URL", sim.url())
        .env("HOME", dir)
        .env_remove("DIGITALOCEAN_ACCESS_TOKEN")
        .env_remove("FITTER_SSH_KEY")
        .env_remove("SSH_AUTH_SOCK");
    cmd
}

fn dispose(sim: &Simulator, dir: &std::path::Path) {
    let out = command(sim, dir, &["dispose", "--yes"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "dispose: {out:?}");
}

/// The elapsed times the live display showed for `subject`'s line, in order of drawing.
/// indicatif pads each line to the terminal's width rather than ending it, so a line is
/// found by its start and its time by the first `[Ns]` after it.
fn shown_elapsed(screen: &str, subject: &str) -> Vec<u64> {
    let mut seen = Vec::new();
    let start = format!("{subject}: creating");
    for (at, _) in screen.match_indices(&start) {
        let rest: String = screen[at..].chars().take(240).collect();
        let shown = rest.match_indices(" [").find_map(|(open, _)| {
            let inner = &rest[open + 2..];
            let digits: String = inner.chars().take_while(char::is_ascii_digit).collect();
            let n = digits.parse::<u64>().ok()?;
            inner[digits.len()..].starts_with("s]").then_some(n)
        });
        if let Some(n) = shown
            && seen.last() != Some(&n)
        {
            seen.push(n);
        }
    }
    seen
}

#[test]
fn on_a_terminal_the_display_moves_while_droplets_boot() {
    let sim = slow_cloud();
    let dir = tempfile::tempdir().unwrap();
    let pty = native_pty_system()
        .openpty(PtySize {
            rows: 50,
            cols: 160,
            pixel_width: 0,
            pixel_height: 0,
        })
        .expect("a pseudo-terminal");
    let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_fitter"));
    cmd.cwd(root());
    for arg in ["deploy", "--yes", "--skip-bootstrap", "--state"] {
        cmd.arg(arg);
    }
    cmd.arg(dir.path().join("do.state.json"));
    cmd.arg(PLAN);
    cmd.env("DIGITALOCEAN_TOKEN", TOKEN);
    cmd.env("DIGITALOCEAN_API_URL", sim.url());
    cmd.env("HOME", dir.path());
    cmd.env("TERM", "xterm-256color");
    cmd.env("NO_COLOR", "1");
    cmd.env_remove("DIGITALOCEAN_ACCESS_TOKEN");
    cmd.env_remove("FITTER_SSH_KEY");
    cmd.env_remove("SSH_AUTH_SOCK");
    let mut child = pty
        .slave
        .spawn_command(cmd)
        .expect("fitter starts on the pty");
    drop(pty.slave);
    let mut reader = pty.master.try_clone_reader().unwrap();
    let screen = Arc::new(Mutex::new(Vec::new()));
    let copy = {
        let screen = Arc::clone(&screen);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                screen.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        })
    };
    let status = child.wait().unwrap();
    drop(pty.master);
    let _ = copy.join();
    let screen = String::from_utf8_lossy(&screen.lock().unwrap()).into_owned();
    assert!(status.success(), "deploy on a terminal failed:\n{screen}");

    // The line of a booting droplet was redrawn with its time going up while it waited.
    let times = shown_elapsed(&screen, "node.agent1");
    assert!(
        times.len() >= 3 && times.windows(2).all(|w| w[0] < w[1]) && times.last() >= Some(&10),
        "the live line of node.agent1 showed {times:?}; the screen:\n{screen}"
    );
    assert!(
        screen.contains("waiting until it is ready"),
        "the live line says what it waits for:\n{screen}"
    );
    // Redrawn in place (the cursor moves up), the finished lines kept.
    assert!(screen.contains("\x1b[2K"), "{screen:?}");
    assert!(
        screen.contains("node.agent1: creation complete after "),
        "{screen}"
    );
    // NO_COLOR: cursor movements, but no colour or bold (SGR) sequence.
    let sgr = screen
        .match_indices("\x1b[")
        .filter(|(at, _)| {
            let rest = &screen[at + 2..];
            let end = rest
                .find(|c: char| c.is_ascii_alphabetic())
                .unwrap_or(rest.len());
            rest[end..].starts_with('m') && &rest[..end] != "0"
        })
        .count();
    assert_eq!(sgr, 0, "colour codes despite NO_COLOR: {screen:?}");
    dispose(&sim, dir.path());
}

#[test]
fn piped_output_is_plain_lines_with_a_heartbeat() {
    let sim = slow_cloud();
    let dir = tempfile::tempdir().unwrap();
    let out = command(&sim, dir.path(), &["deploy", "--yes", "--skip-bootstrap"])
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for line in [
        "node.agent1: creating...\n",
        "node.agent1: still creating... [10s elapsed]\n",
        "firewall.masters: creation complete after ",
    ] {
        assert!(stderr.contains(line), "no `{line}` in:\n{stderr}");
    }
    assert!(
        !stderr.contains('\x1b') && !stdout.contains('\x1b'),
        "escape codes in piped output: {stderr:?}"
    );
    // Progress is on standard error only: standard output is the plan and the report.
    assert!(!stdout.contains("still creating"), "{stdout}");
    dispose(&sim, dir.path());
}
