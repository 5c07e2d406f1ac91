//! No command prints the API token or a secret fitter keeps: every command's standard
//! output and standard error, at every verbosity (`-q`, none, `-v`, `-vv`), in success and
//! in failure, searched for the token, for every value in the state's `secrets` (the
//! generated RSA pair of plumbery's docker-host plan, made before its node so that it can
//! be its host key) and for the private host keys fitter sends in the droplets'
//! `user_data`. A `-vv` log that wrote request bodies would fail it.
//!
//! Against fitter-sim directly (no Prism: the failures are injected faults), each test with a
//! simulator of its own.

use std::process::Output;

use fitter_sim::{Fault, Matcher};

mod support;
use support::*;

const VERBOSITIES: &[&[&str]] = &[&["-q"], &[], &["-v"], &["-vv"]];

/// What must never be printed: the token, and each secret in the state, whole and by its
/// longest line (a private key logged line by line, or cut short, still shows that line).
fn forbidden(ws: &Workspace, sim: &fitter_sim::Simulator) -> Vec<(String, String)> {
    let mut out = vec![("the token".to_string(), TOKEN.to_string())];
    // The host keys' private halves, as the droplets' creates carried them.
    for request in sim.requests() {
        let Some(user_data) = request.body.as_ref().and_then(|b| b["user_data"].as_str()) else {
            continue;
        };
        let mut inside = false;
        for line in user_data.lines().map(str::trim) {
            if line.contains("BEGIN OPENSSH PRIVATE KEY") {
                inside = true;
            } else if line.contains("END OPENSSH PRIVATE KEY") {
                inside = false;
            } else if inside && line.len() >= 40 {
                out.push((
                    "a line of a private host key in user_data".into(),
                    line.into(),
                ));
            }
        }
    }
    let state = ws.state_json();
    // A pair's public half (`rsa_public.x`) is not secret; every other value is.
    let secrets = state["secrets"].as_object().into_iter().flatten();
    for (name, value) in secrets.filter(|(k, _)| !k.starts_with("rsa_public.")) {
        let value = value.as_str().unwrap_or_default();
        out.push((format!("secret {name}"), value.trim().to_string()));
        if let Some(line) = value.lines().max_by_key(|l| l.len()) {
            out.push((format!("a line of secret {name}"), line.to_string()));
        }
    }
    out
}

fn search(outputs: &[(String, Output)], forbidden: &[(String, String)]) {
    let from_user_data = forbidden
        .iter()
        .filter(|(w, _)| w.contains("user_data"))
        .count();
    let from_state = forbidden
        .iter()
        .filter(|(w, _)| w.contains("secret"))
        .count();
    assert!(
        from_user_data > 0 && from_state > 0,
        "the search has host keys and secrets to look for ({from_user_data} and {from_state})"
    );
    for (command, out) in outputs {
        let all = text(out);
        for (what, value) in forbidden {
            assert!(
                value.len() < 16 || !all.contains(value.as_str()),
                "`fitter {command}` printed {what}:\n{all}"
            );
        }
    }
}

#[test]
fn no_command_prints_the_token_or_a_secret_at_any_verbosity() {
    let sim = fast_simulator();
    let ws = Workspace::new();
    let plan = root().join("tests/cases/plumbery-docker-host/fittings.yaml");
    let mut outputs = Vec::new();
    let run = |args: &[&str], must_succeed: bool| {
        let mut all = args.to_vec();
        all.extend_from_slice(&["--provider", "digitalocean"]);
        let out = ws.command_for(&sim.url(), &plan, &all).output().unwrap();
        assert_eq!(
            out.status.success(),
            must_succeed,
            "fitter {args:?}:\n{}",
            text(&out)
        );
        (args.join(" "), out)
    };
    for verbosity in VERBOSITIES {
        let with = |args: &[&'static str]| -> Vec<&'static str> {
            verbosity.iter().chain(args).copied().collect()
        };
        outputs.push(run(&with(&["plan"]), true));
        outputs.push(run(&with(&["deploy", "--yes", "--skip-bootstrap"]), true));
        outputs.push(run(&with(&["plan"]), true));
        outputs.push(run(&with(&["information"]), true));
        outputs.push(run(&with(&["inventory"]), true));
        // Failures: every write refused by the API, then every read.
        sim.inject(Fault::Status {
            matcher: Matcher::new(Some("DELETE"), "/v2/"),
            status: 500,
        });
        outputs.push(run(&with(&["dispose", "--yes"]), false));
        sim.clear_faults();
        sim.inject(Fault::Status {
            matcher: Matcher::new(Some("GET"), "/v2/"),
            status: 401,
        });
        outputs.push(run(&with(&["plan"]), false));
        outputs.push(run(&with(&["deploy", "--yes", "--skip-bootstrap"]), false));
        sim.clear_faults();
        let forbidden = forbidden(&ws, &sim);
        outputs.push(run(&with(&["dispose", "--yes"]), true));
        search(&outputs, &forbidden);
    }
}
