//! What the LXD test files share: a plan copied into a scratch folder (its state lives
//! there too) with an operator key of its own, the `fitter` binary run on it, and the
//! output of a command for an assertion message.
//!
//! Each test binary uses part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use fitter::ssh::OperatorKey;
use fitter::state::{self, State};

pub struct Workspace {
    _dir: tempfile::TempDir,
    pub plan: PathBuf,
    pub key: PathBuf,
    pub deployment: String,
    /// `--provider` for every command, when the plan does not say LXD itself.
    provider: Option<&'static str>,
}

/// A failed test still disposes, so that the next test (or run) starts from nothing.
impl Drop for Workspace {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = self.fitter(&["dispose"]);
        }
    }
}

impl Workspace {
    /// A copy of `source` named after the deployment (`<deployment>.yaml`).
    pub fn copy_of(source: &Path, deployment: &str, provider: Option<&'static str>) -> Workspace {
        let dir = tempfile::tempdir().unwrap();
        let plan = dir.path().join(format!("{deployment}.yaml"));
        std::fs::copy(source, &plan).unwrap();
        let key = dir.path().join("operator_ed25519");
        OperatorKey::create(&key).unwrap();
        Workspace {
            _dir: dir,
            plan,
            key,
            deployment: deployment.to_string(),
            provider,
        }
    }

    /// `fitter ARGS PLAN`; `deploy` and `dispose` with `--yes` and the workspace's key.
    pub fn fitter(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_fitter"));
        cmd.args(args).arg(&self.plan);
        if let Some(p) = self.provider {
            cmd.arg("--provider").arg(p);
        }
        if matches!(args.first(), Some(&"deploy") | Some(&"dispose")) {
            cmd.arg("--yes").arg("--ssh-key").arg(&self.key);
        }
        cmd.stdin(Stdio::null()).output().unwrap()
    }

    pub fn state_path(&self) -> PathBuf {
        state::default_path(&self.plan)
    }

    pub fn state(&self) -> State {
        state::read(&self.state_path(), &self.deployment)
            .unwrap()
            .expect("a state file")
    }
}

pub fn text(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
