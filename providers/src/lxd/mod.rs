//! The LXD provider: LXD's REST API on its unix socket, never the `lxc` command.
//!
//! - `ethernet` → a bridge network with the plan's subnet, the gateway on `.1`, no DHCP (the
//!   provider assigns each node its address), no NAT, no IPv6.
//! - a firewall → a network ACL on that bridge whose rules name the protected nodes'
//!   addresses as destinations; the bridge's default for anything not allowed is `reject`.
//! - a node → a system container from the local image, attached to the bridge with its
//!   assigned address; before its first boot, its SSH host key, the authorized keys, a static
//!   network configuration, a fresh machine id and its host name are pushed through the
//!   files API.
//!
//! Every object carries `user.fitter.deployment` (and `user.fitter.name`) in its config, so
//! that dispose finds it without a state file and nothing of another deployment is touched.
//! Instances are named `<deployment>-<node>` so that two deployments on one host never meet.
//!
//! What fitter knows of LXD without asking the daemon (the image, sizes as limits, the
//! plan-time checks, how the socket is found) is in `catalogue.rs`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::{Method, StatusCode};
use serde_json::{Value as Json, json};

use crate::api::{
    FirewallRequest, NetworkRequest, NodeRequest, Outputs, Owned, Provider, ProviderError, Request,
    RuleSource,
};
use crate::{ProviderKind, ResourceKind};

pub mod catalogue;

pub use catalogue::{KIND, Limits};

const OWNER_KEY: &str = "user.fitter.deployment";
const NAME_KEY: &str = "user.fitter.name";
/// The profile `scripts/local-cloud.sh` creates: a root disk on the `fitter` pool, no nic.
const PROFILE: &str = "fitter";

/// Where LXD's socket usually is: Debian's package, the snap, Incus.
pub const SOCKET_CANDIDATES: &[&str] = &[
    "/var/lib/lxd/unix.socket",
    "/var/snap/lxd/common/lxd/unix.socket",
    "/var/lib/incus/unix.socket",
];

/// The socket to use: the plan's, else `LXD_SOCKET`, else the first candidate that exists.
pub fn find_socket(from_plan: Option<&str>) -> Option<PathBuf> {
    if let Some(p) = from_plan {
        return Some(PathBuf::from(p));
    }
    if let Some(p) = std::env::var_os("LXD_SOCKET") {
        return Some(PathBuf::from(p));
    }
    SOCKET_CANDIDATES
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// The instance name of a node: `<deployment>-<node>`.
pub fn instance_name(deployment: &str, node: &str) -> String {
    format!("{deployment}-{node}")
}

/// The ACL name of a firewall.
pub fn acl_name(deployment: &str, firewall: &str) -> String {
    format!("fitter-{deployment}-{firewall}")
}

pub struct Lxd {
    socket: PathBuf,
    deployment: String,
    /// `security.acls` is one value on the network: changing it is read-modify-write, so
    /// firewalls attach one at a time (concurrent writes lost one ACL and left the bridge
    /// unfiltered).
    network_config: tokio::sync::Mutex<()>,
}

/// An answer from LXD: the HTTP status and the JSON envelope.
struct Answer {
    status: StatusCode,
    body: Json,
}

impl Answer {
    fn metadata(&self) -> &Json {
        &self.body["metadata"]
    }

    fn error(&self) -> String {
        self.body["error"]
            .as_str()
            .filter(|s| !s.is_empty())
            .unwrap_or("no error message")
            .to_string()
    }
}

impl Lxd {
    pub fn new(socket: &Path, deployment: &str) -> Lxd {
        Lxd {
            socket: socket.to_path_buf(),
            deployment: deployment.to_string(),
            network_config: tokio::sync::Mutex::new(()),
        }
    }

    fn unreachable(&self, resource: &str, message: impl std::fmt::Display) -> ProviderError {
        ProviderError::Unreachable {
            provider: KIND,
            resource: resource.to_string(),
            message: format!("{} ({message})", self.socket.display()),
        }
    }

    fn refused(&self, resource: &str, answer: &Answer) -> ProviderError {
        ProviderError::Api {
            provider: KIND,
            resource: resource.to_string(),
            status: answer.status.as_u16(),
            message: answer.error(),
        }
    }

    /// One HTTP/1.1 exchange on a fresh connection (a unix socket costs nothing to open).
    async fn call(
        &self,
        resource: &str,
        method: Method,
        path: &str,
        body: Option<Bytes>,
        headers: &[(&str, String)],
    ) -> Result<Answer, ProviderError> {
        let stream = tokio::net::UnixStream::connect(&self.socket)
            .await
            .map_err(|e| self.unreachable(resource, e))?;
        let io = hyper_util::rt::TokioIo::new(stream);
        let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| self.unreachable(resource, e))?;
        let driver = tokio::spawn(connection);
        let method_name = method.to_string();
        let mut builder = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("Host", "lxd")
            .header("Connection", "close");
        let is_raw = headers.iter().any(|(k, _)| *k == "Content-Type");
        if !is_raw {
            builder = builder.header("Content-Type", "application/json");
        }
        for (k, v) in headers {
            builder = builder.header(*k, v);
        }
        let request = builder
            .body(Full::new(body.unwrap_or_default()))
            .map_err(|e| self.unreachable(resource, e))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| self.unreachable(resource, e))?;
        let status = response.status();
        tracing::debug!(target: "fitter::lxd", "{method_name} {path} -> {status}");
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| self.unreachable(resource, e))?
            .to_bytes();
        // Let LXD close the connection itself: it finishes some work (a network's firewall
        // rules) after answering, and a connection torn down under it cancels that work.
        drop(sender);
        let _ = tokio::time::timeout(Duration::from_secs(5), driver).await;
        let body = serde_json::from_slice(&bytes).unwrap_or(Json::Null);
        Ok(Answer { status, body })
    }

    async fn json(
        &self,
        resource: &str,
        method: Method,
        path: &str,
        body: Option<Json>,
    ) -> Result<Answer, ProviderError> {
        let bytes = body.map(|b| Bytes::from(b.to_string()));
        self.call(resource, method, path, bytes, &[]).await
    }

    /// Fails unless the answer is a success; waits for it when it is an operation.
    async fn expect_ok(&self, resource: &str, answer: Answer) -> Result<Json, ProviderError> {
        if !answer.status.is_success() {
            return Err(self.refused(resource, &answer));
        }
        if answer.body["type"] == "async" {
            let op = answer.body["operation"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            return self.wait_operation(resource, &op).await;
        }
        Ok(answer.metadata().clone())
    }

    async fn wait_operation(&self, resource: &str, op: &str) -> Result<Json, ProviderError> {
        let answer = self
            .json(
                resource,
                Method::GET,
                &format!("{op}/wait?timeout=300"),
                None,
            )
            .await?;
        if !answer.status.is_success() {
            return Err(self.refused(resource, &answer));
        }
        let meta = answer.metadata();
        match meta["status"].as_str() {
            Some("Success") => Ok(meta.clone()),
            _ => Err(ProviderError::Api {
                provider: KIND,
                resource: resource.to_string(),
                status: meta["status_code"]
                    .as_u64()
                    .and_then(|c| u16::try_from(c).ok())
                    .unwrap_or(answer.status.as_u16()),
                message: meta["err"]
                    .as_str()
                    .unwrap_or("operation failed")
                    .to_string(),
            }),
        }
    }

    /// The object at `path`, or `None` on 404; errors unless it is this deployment's.
    async fn get_owned(&self, resource: &str, path: &str) -> Result<Option<Json>, ProviderError> {
        let answer = self.json(resource, Method::GET, path, None).await?;
        if answer.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !answer.status.is_success() {
            return Err(self.refused(resource, &answer));
        }
        let meta = answer.metadata().clone();
        if meta["managed"] == json!(false) {
            // A bare kernel interface LXD does not manage (left by a failed delete): not an
            // LXD object at all.
            return Ok(None);
        }
        let owner = meta["config"][OWNER_KEY].as_str().unwrap_or("");
        if owner != self.deployment {
            return Err(ProviderError::NotOwned {
                provider: KIND,
                resource: resource.to_string(),
                deployment: self.deployment.clone(),
                owner: if owner.is_empty() {
                    "not created by fitter".to_string()
                } else {
                    format!("it belongs to deployment `{owner}`")
                },
            });
        }
        Ok(Some(meta))
    }

    fn owner_config(&self, name: &str) -> serde_json::Map<String, Json> {
        let mut config = serde_json::Map::new();
        config.insert(OWNER_KEY.into(), json!(self.deployment));
        config.insert(NAME_KEY.into(), json!(name));
        config
    }

    async fn create_network(&self, r: &NetworkRequest) -> Result<String, ProviderError> {
        let resource = format!("network.{}", r.name);
        let path = format!("/1.0/networks/{}", r.name);
        if self.get_owned(&resource, &path).await?.is_some() {
            return Ok(r.name.clone());
        }
        let mut config = self.owner_config(&r.name);
        config.insert(
            "ipv4.address".into(),
            json!(format!("{}/{}", r.subnet.gateway(), r.subnet.prefix)),
        );
        config.insert("ipv4.nat".into(), json!("false"));
        config.insert("ipv4.dhcp".into(), json!("false"));
        config.insert("ipv6.address".into(), json!("none"));
        config.insert("dns.mode".into(), json!("none"));
        // The ACLs go in at creation: LXD 5.0 restarts the bridge's dnsmasq on every network
        // update, and updates in quick succession lost their firewall rules or failed.
        config.insert("security.acls".into(), json!(self.acl_list(&r.firewalls)));
        // Once an ACL is attached, what no rule allows is refused.
        config.insert(
            "security.acls.default.ingress.action".into(),
            json!("reject"),
        );
        config.insert("security.acls.default.egress.action".into(), json!("allow"));
        let body = json!({
            "name": r.name,
            "type": "bridge",
            "description": format!("fitter deployment {}", self.deployment),
            "config": config,
        });
        let answer = self
            .json(&resource, Method::POST, "/1.0/networks", Some(body))
            .await?;
        self.expect_ok(&resource, answer).await?;
        Ok(r.name.clone())
    }

    fn acl_list(&self, firewalls: &[String]) -> String {
        let mut acls: Vec<String> = firewalls
            .iter()
            .map(|f| acl_name(&self.deployment, f))
            .collect();
        acls.sort();
        acls.join(",")
    }

    /// Sets a network's ACLs when the plan's firewalls on it changed.
    async fn set_network_acls(&self, r: &NetworkRequest) -> Result<(), ProviderError> {
        let resource = format!("network.{}", r.name);
        let _one_at_a_time = self.network_config.lock().await;
        let path = format!("/1.0/networks/{}", r.name);
        let answer = self.json(&resource, Method::GET, &path, None).await?;
        let meta = self.expect_ok(&resource, answer).await?;
        let wanted = self.acl_list(&r.firewalls);
        if meta["config"]["security.acls"].as_str().unwrap_or("") == wanted {
            return Ok(());
        }
        let mut config = meta["config"].clone();
        config["security.acls"] = json!(wanted);
        let body = json!({"config": config, "description": meta["description"]});
        let answer = self.json(&resource, Method::PUT, &path, Some(body)).await?;
        self.expect_ok(&resource, answer).await.map(|_| ())
    }

    fn acl_body(&self, r: &FirewallRequest) -> Json {
        let destination = r
            .members
            .iter()
            .filter_map(|m| m.address)
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let mut ingress = Vec::new();
        for rule in &r.rules {
            let source = match &rule.source {
                RuleSource::Anywhere => String::new(),
                RuleSource::Cidr(c) => c.clone(),
                RuleSource::Group { addresses, .. } => {
                    if addresses.is_empty() {
                        continue;
                    }
                    addresses
                        .iter()
                        .map(|a| a.to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                }
            };
            // IPv6 ranges cannot match an IPv4-only bridge.
            if source.contains(':') {
                continue;
            }
            let protocol = match rule.protocol.as_str() {
                "icmp" => "icmp4",
                p => p,
            };
            let port = match rule.ports {
                None | Some((0, 0)) => String::new(),
                Some((a, b)) if a == b => a.to_string(),
                Some((a, b)) => format!("{a}-{b}"),
            };
            let mut entry = json!({
                "action": "allow",
                "state": "enabled",
                "protocol": protocol,
                "source": source,
                "destination": destination,
            });
            if protocol != "icmp4" && !port.is_empty() {
                entry["destination_port"] = json!(port);
            }
            // Roles that live on the same nodes resolve to the same addresses; LXD refuses a
            // rule that duplicates another.
            if !ingress.contains(&entry) {
                ingress.push(entry);
            }
        }
        json!({
            "description": format!("fitter deployment {}, firewall {}", self.deployment, r.name),
            "config": self.owner_config(&r.name),
            "ingress": ingress,
            "egress": [{"action": "allow", "state": "enabled", "description": "outbound open"}],
        })
    }

    async fn create_firewall(&self, r: &FirewallRequest) -> Result<String, ProviderError> {
        let resource = format!("firewall.{}", r.name);
        let name = acl_name(&self.deployment, &r.name);
        let path = format!("/1.0/network-acls/{name}");
        let mut body = self.acl_body(r);
        if self.get_owned(&resource, &path).await?.is_some() {
            let answer = self.json(&resource, Method::PUT, &path, Some(body)).await?;
            self.expect_ok(&resource, answer).await?;
        } else {
            body["name"] = json!(name);
            let answer = self
                .json(&resource, Method::POST, "/1.0/network-acls", Some(body))
                .await?;
            self.expect_ok(&resource, answer).await?;
        }
        Ok(name)
    }

    /// Removes an ACL from a network's `security.acls`, so that the ACL can be deleted.
    async fn detach_acl(
        &self,
        resource: &str,
        network: &str,
        acl: &str,
    ) -> Result<(), ProviderError> {
        let attach = false;
        let _one_at_a_time = self.network_config.lock().await;
        let path = format!("/1.0/networks/{network}");
        let answer = self.json(resource, Method::GET, &path, None).await?;
        if answer.status == StatusCode::NOT_FOUND && !attach {
            return Ok(());
        }
        let meta = self.expect_ok(resource, answer).await?;
        let current = meta["config"]["security.acls"].as_str().unwrap_or("");
        let mut acls: Vec<&str> = current.split(',').filter(|s| !s.is_empty()).collect();
        let present = acls.contains(&acl);
        if attach == present {
            return Ok(());
        }
        if attach {
            acls.push(acl);
        } else {
            acls.retain(|a| *a != acl);
        }
        // PUT the whole config: a PATCH of `security.acls` alone is stored by LXD 5.0 but
        // does not reload the bridge's firewall rules.
        let mut config = meta["config"].clone();
        config["security.acls"] = json!(acls.join(","));
        let body = json!({"config": config, "description": meta["description"]});
        let answer = self.json(resource, Method::PUT, &path, Some(body)).await?;
        self.expect_ok(resource, answer).await?;
        Ok(())
    }

    async fn create_node(&self, r: &NodeRequest) -> Result<String, ProviderError> {
        let resource = format!("node.{}", r.name);
        let name = instance_name(&self.deployment, &r.name);
        let path = format!("/1.0/instances/{name}");
        let existing = self.get_owned(&resource, &path).await?;
        if existing.is_none() {
            let limits = Limits::from_slug(&r.size).ok_or_else(|| ProviderError::Unsupported {
                provider: KIND,
                resource: resource.clone(),
                message: format!("size `{}` names no CPU and memory", r.size),
            })?;
            let mut config = self.owner_config(&r.name);
            config.insert("limits.cpu".into(), json!(limits.cpus.to_string()));
            config.insert(
                "limits.memory".into(),
                json!(format!("{}MiB", limits.memory_mb)),
            );
            let mut devices = serde_json::Map::new();
            if let Some((network, _)) = &r.network {
                // The address is configured inside the container (networkd): LXD only takes
                // `ipv4.address` on a nic with DHCP on, and DHCP leases did not work here.
                let nic = json!({"type": "nic", "network": network, "name": "eth0"});
                devices.insert("eth0".into(), nic);
            }
            let body = json!({
                "name": name,
                "type": "container",
                "source": {"type": "image", "alias": r.image},
                "profiles": [PROFILE],
                "config": config,
                "devices": devices,
            });
            let answer = self
                .json(&resource, Method::POST, "/1.0/instances", Some(body))
                .await?;
            self.expect_ok(&resource, answer).await?;
        }
        let mut state = self.instance_status(&resource, &name).await?;
        if existing.is_some() && state.as_deref() == Some("Running") {
            // A container of this deployment that the state does not know as ready (a run
            // killed after its start, or a state file lost): its host key may not be the one
            // fitter holds now. Stop it, install the keys again, start it.
            let body = json!({"action": "stop", "force": true, "timeout": 30});
            let answer = self
                .json(&resource, Method::PUT, &format!("{path}/state"), Some(body))
                .await?;
            self.expect_ok(&resource, answer).await?;
            state = Some("Stopped".to_string());
        }
        if state.as_deref() != Some("Running") {
            // Files go in before the first boot, and again after a crash before it.
            self.push_node_files(&resource, &name, r).await?;
            let body = json!({"action": "start", "timeout": 60});
            let answer = self
                .json(&resource, Method::PUT, &format!("{path}/state"), Some(body))
                .await?;
            self.expect_ok(&resource, answer).await?;
        }
        Ok(name)
    }

    async fn instance_status(
        &self,
        resource: &str,
        name: &str,
    ) -> Result<Option<String>, ProviderError> {
        let answer = self
            .json(
                resource,
                Method::GET,
                &format!("/1.0/instances/{name}/state"),
                None,
            )
            .await?;
        if answer.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let meta = self.expect_ok(resource, answer).await?;
        Ok(meta["status"].as_str().map(str::to_string))
    }

    async fn push_file(
        &self,
        resource: &str,
        instance: &str,
        path: &str,
        mode: &str,
        content: &str,
    ) -> Result<(), ProviderError> {
        self.push(resource, instance, path, "file", Some(mode), content)
            .await
    }

    async fn push_symlink(
        &self,
        resource: &str,
        instance: &str,
        path: &str,
        target: &str,
    ) -> Result<(), ProviderError> {
        self.push(resource, instance, path, "symlink", None, target)
            .await
    }

    /// The files API: a file (its content) or a symlink (its target), owned by root.
    async fn push(
        &self,
        resource: &str,
        instance: &str,
        path: &str,
        kind: &str,
        mode: Option<&str>,
        body: &str,
    ) -> Result<(), ProviderError> {
        let mut headers = vec![
            ("Content-Type", "application/octet-stream".to_string()),
            ("X-LXD-uid", "0".to_string()),
            ("X-LXD-gid", "0".to_string()),
            ("X-LXD-type", kind.to_string()),
            ("X-LXD-write", "overwrite".to_string()),
        ];
        if let Some(mode) = mode {
            headers.push(("X-LXD-mode", mode.to_string()));
        }
        let url = format!("/1.0/instances/{instance}/files?path={path}");
        let answer = self
            .call(
                resource,
                Method::POST,
                &url,
                Some(Bytes::from(body.to_string())),
                &headers,
            )
            .await?;
        self.expect_ok(resource, answer).await.map(|_| ())
    }

    async fn push_node_files(
        &self,
        resource: &str,
        instance: &str,
        r: &NodeRequest,
    ) -> Result<(), ProviderError> {
        let host_key = format!("{}\n", r.host_key_public.trim_end());
        self.push_file(
            resource,
            instance,
            "/etc/ssh/ssh_host_ed25519_key",
            "0600",
            &r.host_key,
        )
        .await?;
        self.push_file(
            resource,
            instance,
            "/etc/ssh/ssh_host_ed25519_key.pub",
            "0644",
            &host_key,
        )
        .await?;
        let mut keys = r.authorized_keys.join("\n");
        keys.push('\n');
        self.push_file(
            resource,
            instance,
            "/root/.ssh/authorized_keys",
            "0600",
            &keys,
        )
        .await?;
        self.push_file(
            resource,
            instance,
            "/etc/hostname",
            "0644",
            &format!("{}\n", r.name),
        )
        .await?;
        self.push_file(
            resource,
            instance,
            "/etc/machine-id",
            "0444",
            &format!("{}\n", machine_id()),
        )
        .await?;
        if let (Some((_, subnet)), Some(address)) = (&r.network, r.address) {
            // A oneshot unit rather than networkd: without udev in a container, networkd
            // leaves eth0 "pending" forever (seen with Debian 12 in LXD 5.0).
            let unit = format!(
                "# written by fitter: the node's static address and host name\n\
                 [Unit]\nDescription=fitter node address and host name\nDefaultDependencies=no\n\
                 Before=network.target ssh.service\nWants=network.target\n\n\
                 [Service]\nType=oneshot\nRemainAfterExit=yes\n\
                 ExecStart=/bin/sh -c 'echo {name} > /etc/hostname && hostname {name}'\n\
                 ExecStart=/usr/sbin/ip link set eth0 up\n\
                 ExecStart=/usr/sbin/ip address replace {address}/{} dev eth0\n\
                 ExecStart=/usr/sbin/ip route replace default via {}\n\n\
                 [Install]\nWantedBy=multi-user.target\n",
                subnet.prefix,
                subnet.gateway(),
                name = r.name,
            );
            let unit_path = "/etc/systemd/system/fitter-node.service";
            self.push_file(resource, instance, unit_path, "0644", &unit)
                .await?;
            self.push_symlink(
                resource,
                instance,
                "/etc/systemd/system/multi-user.target.wants/fitter-node.service",
                unit_path,
            )
            .await?;
        }
        Ok(())
    }

    async fn list(&self, what: &str) -> Result<Vec<Json>, ProviderError> {
        let answer = self
            .json(what, Method::GET, &format!("/1.0/{what}?recursion=1"), None)
            .await?;
        let meta = self.expect_ok(what, answer).await?;
        Ok(meta.as_array().cloned().unwrap_or_default())
    }
}

/// A fresh machine id: 32 hex digits, as systemd wants.
fn machine_id() -> String {
    let mut b = [0u8; 16];
    if getrandom::fill(&mut b).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        b = nanos.to_le_bytes();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl Lxd {
    /// LXD has no account: keys are pushed as files, ownership is a config key.
    fn no_account_resources(&self, request: &Request) -> ProviderError {
        ProviderError::Unsupported {
            provider: KIND,
            resource: request.address(),
            message: "lxd has no account to hold keys or tags".into(),
        }
    }
}

#[async_trait]
impl Provider for Lxd {
    fn kind(&self) -> ProviderKind {
        KIND
    }

    fn predicted_id(&self, request: &Request) -> Option<String> {
        Some(match request {
            Request::Network(r) => r.name.clone(),
            Request::Firewall(r) => acl_name(&self.deployment, &r.name),
            Request::Node(r) => instance_name(&self.deployment, &r.name),
            Request::SshKey(_) | Request::Tag(_) => return None,
        })
    }

    async fn create(&self, request: &Request) -> Result<String, ProviderError> {
        match request {
            Request::Network(r) => self.create_network(r).await,
            Request::Firewall(r) => self.create_firewall(r).await,
            Request::Node(r) => self.create_node(r).await,
            Request::SshKey(_) | Request::Tag(_) => Err(self.no_account_resources(request)),
        }
    }

    async fn wait_ready(&self, request: &Request, id: &str) -> Result<Outputs, ProviderError> {
        let mut outputs = Outputs::new();
        outputs.insert("lxd_name".into(), json!(id));
        if let Request::Node(r) = request {
            let resource = request.address();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
            loop {
                match self.instance_status(&resource, id).await?.as_deref() {
                    Some("Running") => break,
                    _ if tokio::time::Instant::now() > deadline => {
                        return Err(ProviderError::Timeout {
                            resource,
                            seconds: 120,
                            what: "the container is not running".into(),
                        });
                    }
                    _ => tokio::time::sleep(Duration::from_millis(250)).await,
                }
            }
            if let Some(address) = r.address {
                outputs.insert("private_ip".into(), json!(address.to_string()));
            }
        }
        Ok(outputs)
    }

    async fn read(&self, kind: ResourceKind, id: &str) -> Result<Option<Outputs>, ProviderError> {
        let (resource, path) = match kind {
            ResourceKind::Network => (format!("network.{id}"), format!("/1.0/networks/{id}")),
            ResourceKind::Firewall => (format!("firewall.{id}"), format!("/1.0/network-acls/{id}")),
            ResourceKind::Node => (format!("node.{id}"), format!("/1.0/instances/{id}")),
            ResourceKind::SshKey | ResourceKind::Tag => return Ok(Some(Outputs::new())),
        };
        Ok(self.get_owned(&resource, &path).await?.map(|meta| {
            let mut outputs = Outputs::new();
            outputs.insert("lxd_name".into(), meta["name"].clone());
            outputs
        }))
    }

    async fn update(&self, request: &Request, id: &str) -> Result<Outputs, ProviderError> {
        let resource = request.address();
        match request {
            Request::Firewall(r) => {
                let answer = self
                    .json(
                        &resource,
                        Method::PUT,
                        &format!("/1.0/network-acls/{id}"),
                        Some(self.acl_body(r)),
                    )
                    .await?;
                self.expect_ok(&resource, answer).await?;
            }
            Request::Node(r) => {
                if let Some(limits) = Limits::from_slug(&r.size) {
                    let body = json!({"config": {
                        "limits.cpu": limits.cpus.to_string(),
                        "limits.memory": format!("{}MiB", limits.memory_mb),
                    }});
                    let answer = self
                        .json(
                            &resource,
                            Method::PATCH,
                            &format!("/1.0/instances/{id}"),
                            Some(body),
                        )
                        .await?;
                    self.expect_ok(&resource, answer).await?;
                }
            }
            Request::Network(r) => self.set_network_acls(r).await?,
            Request::SshKey(_) | Request::Tag(_) => return Err(self.no_account_resources(request)),
        }
        self.wait_ready(request, id).await
    }

    async fn delete(&self, kind: ResourceKind, id: &str) -> Result<(), ProviderError> {
        match kind {
            ResourceKind::Node => {
                let resource = format!("node.{id}");
                let path = format!("/1.0/instances/{id}");
                if self.get_owned(&resource, &path).await?.is_none() {
                    return Ok(());
                }
                if self.instance_status(&resource, id).await?.as_deref() == Some("Running") {
                    let body = json!({"action": "stop", "force": true, "timeout": 30});
                    let answer = self
                        .json(&resource, Method::PUT, &format!("{path}/state"), Some(body))
                        .await?;
                    self.expect_ok(&resource, answer).await?;
                }
                let answer = self.json(&resource, Method::DELETE, &path, None).await?;
                if answer.status != StatusCode::NOT_FOUND {
                    self.expect_ok(&resource, answer).await?;
                }
            }
            ResourceKind::Firewall => {
                let resource = format!("firewall.{id}");
                let path = format!("/1.0/network-acls/{id}");
                let Some(meta) = self.get_owned(&resource, &path).await? else {
                    return Ok(());
                };
                // In a dispose the network is already gone and the ACL goes at once. Only an
                // ACL still attached to a network that stays is detached first. LXD 5.0 may
                // also refuse for a moment right after a network is deleted (it tries to
                // restart the deleted bridge's dnsmasq): that passes, so try again.
                let mut last = None;
                for _ in 0..20 {
                    let answer = {
                        let _one_at_a_time = self.network_config.lock().await;
                        self.json(&resource, Method::DELETE, &path, None).await?
                    };
                    if answer.status.is_success() || answer.status == StatusCode::NOT_FOUND {
                        return Ok(());
                    }
                    if answer.error().contains("in use") {
                        for user in meta["used_by"].as_array().into_iter().flatten() {
                            if let Some(network) =
                                user.as_str().and_then(|u| u.strip_prefix("/1.0/networks/"))
                            {
                                let network = network.split('?').next().unwrap_or(network);
                                self.detach_acl(&resource, network, id).await?;
                            }
                        }
                    }
                    last = Some(answer);
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                if let Some(answer) = last {
                    return Err(self.refused(&resource, &answer));
                }
            }
            ResourceKind::Network => {
                let resource = format!("network.{id}");
                let path = format!("/1.0/networks/{id}");
                // Wait until no instance uses the network before asking to delete it: a
                // DELETE refused as "in use" left LXD 5.0 with a stray dnsmasq and firewall
                // chains once the network was finally deleted.
                let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
                loop {
                    let Some(meta) = self.get_owned(&resource, &path).await? else {
                        return Ok(());
                    };
                    let in_use = meta["used_by"].as_array().is_some_and(|u| !u.is_empty());
                    if !in_use {
                        break;
                    }
                    if tokio::time::Instant::now() > deadline {
                        return Err(ProviderError::Timeout {
                            resource,
                            seconds: 60,
                            what: format!("still used by {}", meta["used_by"]),
                        });
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                let answer = self.json(&resource, Method::DELETE, &path, None).await?;
                if answer.status != StatusCode::NOT_FOUND {
                    self.expect_ok(&resource, answer).await?;
                }
                // LXD answers before the bridge and its dnsmasq are gone; touching the ACLs
                // meanwhile made it restart that dnsmasq and leave it behind. Done means the
                // name is unknown even as a bare interface.
                let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
                while tokio::time::Instant::now() < deadline {
                    let answer = self.json(&resource, Method::GET, &path, None).await?;
                    if answer.status == StatusCode::NOT_FOUND {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            ResourceKind::SshKey | ResourceKind::Tag => {}
        }
        Ok(())
    }

    async fn owned(&self, deployment: &str) -> Result<Vec<Owned>, ProviderError> {
        let mut out = Vec::new();
        for (what, kind) in [
            ("instances", ResourceKind::Node),
            ("network-acls", ResourceKind::Firewall),
            ("networks", ResourceKind::Network),
        ] {
            for item in self.list(what).await? {
                if item["config"][OWNER_KEY].as_str() == Some(deployment) {
                    out.push(Owned {
                        kind,
                        name: item["config"][NAME_KEY].as_str().unwrap_or("").to_string(),
                        id: item["name"].as_str().unwrap_or("").to_string(),
                    });
                }
            }
        }
        Ok(out)
    }
}

/// Whether the LXD daemon answers on `socket`.
pub async fn ping(socket: &Path) -> Result<(), ProviderError> {
    let lxd = Lxd::new(socket, "");
    let answer = lxd
        .json("the LXD daemon", Method::GET, "/1.0", None)
        .await?;
    if answer.status.is_success() {
        Ok(())
    } else {
        Err(lxd.refused("the LXD daemon", &answer))
    }
}
