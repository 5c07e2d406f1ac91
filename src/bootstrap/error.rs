//! What can go wrong in bootstrap, per node: rendering its files (a template, its
//! cloud-config) and applying them over SSH (connecting, a command failing).
//!
//! Each message is whole, as the operator reads it in the bootstrap summary: the causes
//! (Tera's chain, the SSH error, the decoder's reason) are written into it. So no variant
//! also hands its cause out as `source()`, which would print it twice in a cause chain.

use std::fmt::Write as _;

use thiserror::Error;

use crate::ssh::SshError;

#[derive(Debug, Error)]
pub enum BootstrapError {
    /// A component names a template the catalogue does not have.
    #[error("templates/{component}/{template} is missing")]
    MissingTemplate { component: String, template: String },
    /// A template does not parse; `template` is `component/file`.
    #[error("templates/{template}: {}", describe(.error))]
    Template {
        template: String,
        error: tera::Error,
    },
    #[error("templates/{template}: unknown `each: {each}`")]
    UnknownEach { template: String, each: String },
    /// A template does not render for a node.
    #[error("rendering templates/{template} for `{node}`: {}", describe(.error))]
    Render {
        node: String,
        template: String,
        error: tera::Error,
    },
    #[error("`{node}`: a write_files entry has no path")]
    WriteFileWithoutPath { node: String },
    #[error("`{node}`: write_files {path}: {error}")]
    WriteFileEncoding {
        node: String,
        path: String,
        error: base64::DecodeError,
    },
    #[error("`{node}`: write_files {path} is not text")]
    WriteFileNotText { node: String, path: String },
    /// The node cannot be reached: it does not answer, shows another host key than the one
    /// fitter installed, or refuses the operator's key. The SSH error names the node.
    #[error(transparent)]
    Connect(SshError),
    /// The SSH session broke while a step ran. The SSH error names the node.
    #[error(transparent)]
    Session(SshError),
    /// A host key the plan gives (cloud-config `ssh_keys`) cannot be installed; the SSH
    /// error names the node and the key's place in its cloud-config.
    #[error(transparent)]
    GivenHostKey(SshError),
    /// Installing the missing packages failed; `stderr` is the last line of its errors.
    #[error("`{node}`: installing packages failed: {stderr}")]
    Packages { node: String, stderr: String },
    /// The node's cloud-config script failed; `stderr` is its last lines, ` / ` between.
    #[error("`{node}`: its cloud-config failed (exit {status}): {stderr}")]
    CloudConfig {
        node: String,
        status: u32,
        stderr: String,
    },
    /// A value that would reach the node's shell or file system has an unsafe shape (a
    /// run-time token made it so: the loader checks the plan's own values).
    #[error("`{node}`: {why}")]
    Unsafe { node: String, why: String },
    /// A step's script failed; `what` names the step (`writing files`).
    #[error("`{node}`: {what} failed: {stderr}")]
    Command {
        node: String,
        what: &'static str,
        stderr: String,
    },
    /// A health check still failing when `--health-timeout` ran out.
    #[error("`{node}`: {component} is not healthy ({check}): its last answer: {answer}")]
    Unhealthy {
        node: String,
        component: String,
        check: String,
        answer: String,
    },
}

/// Tera's errors keep their cause in a chain; show all of it.
fn describe(e: &tera::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let _ = write!(text, ": {s}");
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The messages the operator reads in the bootstrap summary, as they were when they
    /// were strings.
    #[test]
    fn messages_read_as_before() {
        let node = || "m1".to_string();
        let cases = [
            (
                BootstrapError::Command {
                    node: node(),
                    what: "writing files",
                    stderr: "No space left on device".into(),
                },
                "`m1`: writing files failed: No space left on device",
            ),
            (
                BootstrapError::CloudConfig {
                    node: node(),
                    status: 2,
                    stderr: "a / b".into(),
                },
                "`m1`: its cloud-config failed (exit 2): a / b",
            ),
            (
                BootstrapError::Packages {
                    node: node(),
                    stderr: "E: Unable to locate package x".into(),
                },
                "`m1`: installing packages failed: E: Unable to locate package x",
            ),
            (
                BootstrapError::WriteFileNotText {
                    node: node(),
                    path: "/etc/x".into(),
                },
                "`m1`: write_files /etc/x is not text",
            ),
            (
                BootstrapError::MissingTemplate {
                    component: "zookeeper".into(),
                    template: "zoo.cfg".into(),
                },
                "templates/zookeeper/zoo.cfg is missing",
            ),
            (
                BootstrapError::Session(SshError::Session {
                    node: node(),
                    message: "channel closed".into(),
                }),
                "SSH session with `m1` failed: channel closed",
            ),
        ];
        for (error, message) in cases {
            assert_eq!(error.to_string(), message);
            assert!(std::error::Error::source(&error).is_none());
        }
    }

    #[test]
    fn a_template_error_shows_its_whole_chain() {
        let error = tera::Tera::default()
            .add_raw_template("common/hosts", "{{ broken")
            .unwrap_err();
        let chain = describe(&error);
        assert!(chain.contains(": "), "{chain}");
        let error = BootstrapError::Template {
            template: "common/hosts".into(),
            error,
        };
        assert_eq!(
            error.to_string(),
            format!("templates/common/hosts: {chain}")
        );
    }
}
