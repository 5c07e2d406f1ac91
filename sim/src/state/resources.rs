//! The resources of the account as the simulator keeps them: what each was created with and
//! when, not what the API shows (that is derived when rendered, in `render`).

use std::cell::RefCell;
use std::time::SystemTime;

use serde_json::Value as Json;
use tokio::time::Instant;

use crate::util::Cidr;

pub(crate) struct Droplet {
    pub(crate) id: u64,
    pub(crate) name: String,
    /// The size slug, as of the last settled action.
    pub(crate) size: String,
    /// The disk in GB, as of the last settled action (a resize without `disk` keeps it).
    pub(crate) disk_gb: u64,
    /// Whether the droplet is off, as of the last settled action.
    pub(crate) powered_off: bool,
    /// The last action started on the droplet (not its create), whose effect shows once it is
    /// complete and is folded into the fields above by [`State::settle`](super::State::settle).
    pub(crate) pending: Option<u64>,
    /// The image as the create asked for it: a slug (string) or an id (integer).
    pub(crate) image: Json,
    pub(crate) region: String,
    pub(crate) vpc_uuid: String,
    pub(crate) tags: Vec<String>,
    pub(crate) created: Instant,
    pub(crate) created_wall: SystemTime,
    pub(crate) deleted: Option<Instant>,
    pub(crate) private_ip: String,
    pub(crate) private_netmask: String,
    pub(crate) private_gateway: String,
    pub(crate) public_ip: String,
    pub(crate) ipv6: bool,
    pub(crate) monitoring: bool,
    pub(crate) backups: bool,
    pub(crate) volumes: Vec<String>,
    /// The droplet's JSON text, with the status, lock and whether its pending action's effect
    /// was applied when it was rendered. Only those (and tags and new actions, which clear
    /// this) change a droplet's JSON, so lists of hundreds of droplets cost a copy each rather
    /// than a rendering.
    pub(crate) rendered: RefCell<Option<(RenderKey, String)>>,
}

/// What a droplet's cached JSON depends on: status, lock, and whether a completed pending
/// action's effect is applied.
pub(crate) type RenderKey = (&'static str, bool, bool);

pub(crate) struct Action {
    pub(crate) id: u64,
    pub(crate) droplet_id: u64,
    pub(crate) kind: ActionKind,
    pub(crate) region: String,
    pub(crate) started: Instant,
    pub(crate) started_wall: SystemTime,
}

/// What an action does to its droplet once it is complete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ActionKind {
    /// The droplet's creation: complete when the droplet is `active`.
    Create,
    PowerOff,
    Shutdown,
    PowerOn,
    /// To `size`; the disk grows to the size's disk only with `disk: true`.
    Resize {
        size: String,
        disk: bool,
    },
}

impl ActionKind {
    /// The action's `type`, as the API names it.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            ActionKind::Create => "create",
            ActionKind::PowerOff => "power_off",
            ActionKind::Shutdown => "shutdown",
            ActionKind::PowerOn => "power_on",
            ActionKind::Resize { .. } => "resize",
        }
    }
}

/// A droplet as it shows now: its status, lock, size and disk, with a completed action's
/// effect applied.
pub(crate) struct DropletView<'d> {
    pub(crate) status: &'static str,
    pub(crate) locked: bool,
    pub(crate) size: &'d str,
    pub(crate) disk_gb: u64,
    /// Whether a completed pending action's effect is applied (not yet settled).
    pub(crate) applied: bool,
}

pub(crate) struct SshKey {
    pub(crate) id: u64,
    pub(crate) name: String,
    pub(crate) public_key: String,
    pub(crate) fingerprint: String,
}

pub(crate) struct Vpc {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) region: String,
    pub(crate) range: Cidr,
    pub(crate) default: bool,
    pub(crate) created_wall: SystemTime,
    /// Private addresses handed out so far (they start at the network's `.2`).
    pub(crate) hosts_issued: u32,
}

pub(crate) struct Firewall {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) inbound_rules: Vec<Json>,
    pub(crate) outbound_rules: Vec<Json>,
    pub(crate) droplet_ids: Vec<u64>,
    pub(crate) tags: Vec<String>,
    pub(crate) created_wall: SystemTime,
}
