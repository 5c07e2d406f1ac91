//! Firewalls: a network ACL whose ingress rules name the protected nodes' addresses as
//! destinations, and detaching one from a network so that it can be deleted.

use hyper::{Method, StatusCode};
use serde_json::{Value as Json, json};

use super::{Lxd, acl_name};
use crate::api::{FirewallRequest, ProviderError, RuleSource};

impl Lxd {
    pub(super) fn acl_body(&self, r: &FirewallRequest) -> Json {
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

    pub(super) async fn create_firewall(
        &self,
        r: &FirewallRequest,
    ) -> Result<String, ProviderError> {
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
    pub(super) async fn detach_acl(
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
}
