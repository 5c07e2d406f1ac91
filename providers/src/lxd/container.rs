//! Nodes: a system container from the local image, with its CPU and memory limits and a nic
//! on its network; before its first boot the files API pushes its SSH host key, the authorized
//! keys, its host name, a fresh machine id and a unit that sets its static address.

use bytes::Bytes;
use hyper::{Method, StatusCode};
use serde_json::json;

use super::{KIND, Limits, Lxd, PROFILE, bridge_name, instance_name};
use crate::api::{NodeRequest, ProviderError};

impl Lxd {
    /// Limits changed in place; nesting given or taken away, which takes a restart of the
    /// container (LXD applies `security.nesting` at start).
    pub(super) async fn update_node(
        &self,
        resource: &str,
        r: &NodeRequest,
        id: &str,
    ) -> Result<(), ProviderError> {
        let path = format!("/1.0/instances/{id}");
        // (A container gone since the plan was made fails the PATCH below, naming it.)
        let nested = self
            .get_owned(resource, &path)
            .await?
            .is_some_and(|meta| meta["config"]["security.nesting"].as_str() == Some("true"));
        let mut config = serde_json::Map::new();
        if let Some(limits) = Limits::from_slug(&r.size) {
            config.insert("limits.cpu".into(), json!(limits.cpus.to_string()));
            config.insert(
                "limits.memory".into(),
                json!(format!("{}MiB", limits.memory_mb)),
            );
        }
        config.insert("security.nesting".into(), json!(r.nesting.to_string()));
        let body = json!({ "config": config });
        let answer = self
            .json(resource, Method::PATCH, &path, Some(body))
            .await?;
        self.expect_ok(resource, answer).await?;
        if nested != r.nesting
            && self.instance_status(resource, id).await?.as_deref() == Some("Running")
        {
            let body = json!({"action": "restart", "timeout": 30, "force": false});
            let answer = self
                .json(resource, Method::PUT, &format!("{path}/state"), Some(body))
                .await?;
            self.expect_ok(resource, answer).await?;
        }
        Ok(())
    }

    pub(super) async fn create_node(&self, r: &NodeRequest) -> Result<String, ProviderError> {
        let resource = format!("node.{}", r.name);
        let name = instance_name(&self.deployment, &r.name);
        let path = format!("/1.0/instances/{name}");
        self.settle(&resource, &name).await?;
        let mut existing = self.get_owned(&resource, &path).await?;
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
            if r.nesting {
                // Docker inside the container: its own namespaces, cgroups and mounts. Only
                // nodes whose roles run containers get it (it widens what root inside can do).
                config.insert("security.nesting".into(), json!("true"));
            }
            let mut devices = serde_json::Map::new();
            if let Some((network, _)) = &r.network {
                // The address is configured inside the container (networkd): LXD only takes
                // `ipv4.address` on a nic with DHCP on, and DHCP leases did not work here.
                let bridge = bridge_name(&self.deployment, network);
                let nic = json!({"type": "nic", "network": bridge, "name": "eth0"});
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
            if let Err(refused) = self.expect_ok(&resource, answer).await {
                // A create that a killed run started may not have recorded the instance when
                // it was looked for: then this one fails as "already exists". Adopt that one.
                self.settle(&resource, &name).await?;
                existing = self.get_owned(&resource, &path).await?;
                if existing.is_none() {
                    return Err(refused);
                }
            }
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

    pub(super) async fn instance_status(
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
        // LXD writes the file through a helper process of its own, which under load now and
        // then is not there yet: `dial unix /proc/self/fd/N/forkfile.sock: no such file or
        // directory` (HTTP 500, seen on 12-node deploys here). A push overwrites, so it is
        // tried again, three times in all, a moment apart.
        let mut tries = 0;
        loop {
            tries += 1;
            let answer = self
                .call(
                    resource,
                    Method::POST,
                    &url,
                    Some(Bytes::from(body.to_string())),
                    &headers,
                )
                .await?;
            if answer.status.is_server_error() && tries < 3 {
                tokio::time::sleep(std::time::Duration::from_millis(300 * tries)).await;
                continue;
            }
            return self.expect_ok(resource, answer).await.map(|_| ());
        }
    }

    async fn push_node_files(
        &self,
        resource: &str,
        instance: &str,
        r: &NodeRequest,
    ) -> Result<(), ProviderError> {
        // The image has no host key: sshd offers just this one, the key fitter pins.
        let host_key = format!("{}\n", r.host_key_public.trim_end());
        let file = format!("/etc/ssh/ssh_host_{}_key", r.host_key_type());
        self.push_file(resource, instance, &file, "0600", &r.host_key)
            .await?;
        self.push_file(
            resource,
            instance,
            &format!("{file}.pub"),
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
            // leaves eth0 "pending" forever (seen with Debian 12 in LXD 5.0). It is what
            // "online" means for services that wait for the network (Docker): the image masks
            // networkd's wait-online, which would wait for a link networkd does not manage.
            let unit = format!(
                "# written by fitter: the node's static address and host name\n\
                 [Unit]\nDescription=fitter node address and host name\nDefaultDependencies=no\n\
                 Before=network.target network-online.target ssh.service\n\
                 Wants=network.target\n\n\
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
