//! Bootstrap: turns machines into a cluster over SSH.
//!
//! [`render()`] computes, for every node, the files of its components (`common`, then its
//! roles in the order of their `after:`), from the Tera templates under `templates/` and
//! a context made of the plan and the nodes' addresses: the ZooKeeper servers and this
//! node's `myid`, the Mesos quorum (floor(masters/2)+1), the `zk://` URLs, agent attributes.
//! It is a pure function, so its output is snapshot-tested.
//!
//! [`apply()`] opens one SSH session per node (host key pinned) and, in as few round trips as
//! it can: reads the checksums of every file the node should have; uploads only those that
//! differ (written to a temporary file, then renamed); restarts a service only when one of
//! its files changed (or starts it when it is not running); stops and disables the services
//! a role must not run. A second run uploads nothing and restarts nothing, and says so.
//! Components with `install: false` (Mesos and Marathon, which no longer have a package
//! repository) get their files and no service.
//!
//! Files: `render.rs` (templates to [`NodeConfig`]s), `cloud_config.rs` (a node's
//! cloud-config and its run-time tokens to files and a script), `apply.rs` (the SSH
//! session work), `summary.rs` (the lines printed after a run), `error.rs` (what can go
//! wrong, [`BootstrapError`]).

mod apply;
mod cloud_config;
pub mod drift;
mod error;
mod health;
mod host_keys;
mod render;
mod summary;
mod survey;
mod walk;

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::components::Component;

pub use cloud_config::secret_forms;
pub use error::BootstrapError;
pub use health::{Answer, shown};
pub use host_keys::given_host_keys;
pub use survey::{NOT_RUNNING, Survey, survey};

pub use render::render;
pub use summary::render_report;
pub use walk::{Walk, apply};

/// A node's addresses, from the state.
#[derive(Debug, Clone, Default)]
pub struct Addresses {
    pub private: Option<String>,
    pub public: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RenderedFile {
    pub component: String,
    pub path: String,
    pub mode: String,
    pub content: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServicePlan {
    pub component: String,
    pub name: String,
    /// Paths whose change restarts it.
    pub files: Vec<String>,
}

/// Everything one node should look like.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeConfig {
    pub node: String,
    pub files: Vec<RenderedFile>,
    /// Services to run (components with `install: true`).
    pub services: Vec<ServicePlan>,
    /// Services to stop and disable.
    pub disable: Vec<String>,
    /// Packages to install when missing.
    pub packages: Vec<String>,
    /// APT sources the plan gives for installed components, by component.
    pub apt_sources: BTreeMap<String, Vec<String>>,
    /// Scripts (among `files`) run whenever they changed: the node's cloud-config.
    pub run_on_change: Vec<String>,
    /// The health checks of the components whose services it runs.
    pub health: Vec<HealthPlan>,
}

/// A component's health check, for one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthPlan {
    pub component: String,
    pub name: String,
    pub command: String,
    pub expect: String,
    /// Seconds one attempt may take.
    pub timeout: u64,
    /// The component forms a quorum: its members are checked together too.
    pub quorum: bool,
}

impl HealthPlan {
    /// A component's checks as its nodes run them.
    pub fn of(component: &Component) -> Vec<HealthPlan> {
        component
            .health
            .iter()
            .map(|h| HealthPlan {
                component: component.name.clone(),
                name: h.name.clone(),
                command: h.command.clone(),
                expect: h.expect.clone(),
                timeout: h.timeout,
                quorum: component.quorum,
            })
            .collect()
    }
}

/// Where the node's cloud-config becomes a script, run when it changes.
pub const CLOUD_CONFIG_SCRIPT: &str = "/var/lib/fitter/cloud-config.sh";

/// The files fitter placed on a node, one path a line: what a later run may remove when
/// the plan no longer asks for them. Nothing else on the node is ever deleted.
pub const MANIFEST: &str = "/var/lib/fitter/manifest";

/// What bootstrap did on one node.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NodeReport {
    pub node: String,
    pub uploaded: Vec<String>,
    /// Files fitter had placed that the plan no longer asks for.
    pub removed: Vec<String>,
    pub restarted: Vec<String>,
    /// What the health checks found: `zookeeper: leader`, `sshd: healthy`.
    pub health: Vec<String>,
    /// Quorum components restarted here one node at a time, with this node's turn (1 for
    /// the first node).
    pub rolled: Vec<(String, usize)>,
    /// Why the node failed: the [`BootstrapError`]'s message, as printed and serialised.
    pub error: Option<String>,
}

/// How to reach a node.
pub struct Target {
    pub config: NodeConfig,
    pub address: SocketAddr,
    pub host_key: String,
}

/// Shell-quotes a word.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn sha256(content: &str) -> String {
    let digest = Sha256::digest(content.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}
