//! Networks: a bridge per plan network with the plan's subnet, the gateway on `.1`, no DHCP,
//! NAT or IPv6, and the firewalls on it attached as its ACLs.

use hyper::Method;
use serde_json::json;

use super::{Lxd, acl_name, bridge_name};
use crate::api::{NetworkRequest, ProviderError};

impl Lxd {
    pub(super) async fn create_network(&self, r: &NetworkRequest) -> Result<String, ProviderError> {
        let resource = format!("network.{}", r.name);
        let bridge = bridge_name(&self.deployment, &r.name);
        let path = format!("/1.0/networks/{bridge}");
        if self.get_owned(&resource, &path).await?.is_some() {
            return Ok(bridge);
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
            "name": bridge,
            "type": "bridge",
            "description": format!("fitter deployment {}, network {}", self.deployment, r.name),
            "config": config,
        });
        let answer = self
            .json(&resource, Method::POST, "/1.0/networks", Some(body))
            .await?;
        self.expect_ok(&resource, answer).await?;
        Ok(bridge)
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
    pub(super) async fn set_network_acls(&self, r: &NetworkRequest) -> Result<(), ProviderError> {
        let resource = format!("network.{}", r.name);
        let _one_at_a_time = self.network_config.lock().await;
        let path = format!("/1.0/networks/{}", bridge_name(&self.deployment, &r.name));
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
}
