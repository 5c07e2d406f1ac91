//! Cloud firewalls: a firewall applied to its member tag, the tags its rules name created
//! first, and a create whose answer was lost found again by name.
//!
//! **Drift.** What fitter set is recorded as a digest of the rules as DigitalOcean answers
//! them right after fitter wrote them (`rules_sha256`, in the resource's outputs), made
//! from the rules as a set: protocol, ports (`0` and `all` alike),
//! sorted addresses and tags. A firewall read back whose rules give another digest was
//! edited outside fitter; the next deploy puts the plan's rules back.

use reqwest::Method;
use serde_json::Value as Json;

use sha2::{Digest as _, Sha256};

use super::answer::Firewall;
use super::body;
use super::client::{self, Call, Failure};
use super::{Inner, api_error, cloud_name};
use crate::api::{FirewallRequest, Outputs, ProviderError};

/// The outputs key of the rules' digest.
pub(super) const RULES_DIGEST: &str = "rules_sha256";

/// The digest of a firewall's rules (a request body or an API answer), independent of
/// their order and of how the API spells "all ports".
pub(super) fn rules_digest(firewall: &Json) -> String {
    let strings = |v: Option<&Json>| -> Vec<String> {
        let mut list: Vec<String> = v
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect();
        list.sort();
        list
    };
    let mut rules: Vec<String> = Vec::new();
    for (direction, key, side) in [
        ("in", "inbound_rules", "sources"),
        ("out", "outbound_rules", "destinations"),
    ] {
        for rule in firewall[key].as_array().into_iter().flatten() {
            let protocol = rule["protocol"].as_str().unwrap_or("").to_ascii_lowercase();
            let ports = match rule["ports"].as_str().unwrap_or("") {
                "" | "0" | "all" => "all",
                p => p,
            };
            let ends = &rule[side];
            rules.push(format!(
                "{direction} {protocol} {ports} {:?} {:?}",
                strings(ends.get("addresses")),
                strings(ends.get("tags")),
            ));
        }
    }
    rules.sort();
    Sha256::digest(rules.join("\n").as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Inner {
    pub(super) fn firewall_body(&self, r: &FirewallRequest) -> (Json, Vec<String>) {
        let name = cloud_name(&self.deployment, &r.name);
        let body = body::firewall(&name, &r.rules, &r.member_tag);
        let mut tags: Vec<String> = vec![r.member_tag.clone()];
        for rule in body["inbound_rules"].as_array().into_iter().flatten() {
            for t in rule
                .pointer("/sources/tags")
                .and_then(Json::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(t) = t.as_str() {
                    tags.push(t.to_string());
                }
            }
        }
        tags.sort();
        tags.dedup();
        (body, tags)
    }

    /// Makes firewall `id` what `body` says (rules and tags), as an update or an adoption.
    pub(super) async fn put_firewall(
        &self,
        resource: &str,
        id: &str,
        body: &Json,
    ) -> Result<(), ProviderError> {
        self.client
            .send(
                Method::PUT,
                &format!("/v2/firewalls/{id}"),
                Some(body),
                Call::Idempotent,
            )
            .await
            .map_err(|f| api_error(resource, f))?;
        Ok(())
    }

    /// Whether firewall `id`'s rules are still the ones fitter set (see the module).
    pub(super) async fn firewall_drift(
        &self,
        id: &str,
        recorded: &Outputs,
    ) -> Result<Vec<String>, ProviderError> {
        let Some(set) = recorded.extra.get(RULES_DIGEST).and_then(Json::as_str) else {
            // Recorded before fitter kept the digest: nothing to compare with.
            return Ok(Vec::new());
        };
        let Some(live) = self.live_rules_digest(id).await? else {
            return Ok(Vec::new());
        };
        Ok(if live == set {
            Vec::new()
        } else {
            vec!["its rules are not the ones fitter set (edited at DigitalOcean)".to_string()]
        })
    }

    /// The digest of firewall `id`'s rules as DigitalOcean has them: what fitter records
    /// after it writes them (the API may spell a rule otherwise than fitter sent it), and
    /// what a later read is compared with. `None` when it is gone.
    pub(super) async fn live_rules_digest(
        &self,
        id: &str,
    ) -> Result<Option<String>, ProviderError> {
        let resource = format!("firewall {id}");
        let live = self
            .get::<Json>(&resource, &format!("/v2/firewalls/{id}"), "firewall")
            .await?;
        Ok(live.as_ref().map(rules_digest))
    }

    pub(super) async fn create_firewall(
        &self,
        r: &FirewallRequest,
    ) -> Result<String, ProviderError> {
        let resource = format!("firewall.{}", r.name);
        let (body, tags) = self.firewall_body(r);
        // The API refuses a firewall naming a tag that does not exist yet.
        self.ensure_tags(&resource, &tags).await?;
        let name = cloud_name(&self.deployment, &r.name);
        // The firewall may be there already: a rerun after a lost answer, or a deploy whose
        // state was lost. Its name is the deployment's, so it is adopted, and its rules and
        // tags are made the plan's, as droplets and VPCs are adopted: never a second one.
        for _attempt in 0..2 {
            let firewalls: Vec<Firewall> =
                self.list(&resource, "/v2/firewalls", "firewalls").await?;
            if let Some(fw) = firewalls.into_iter().find(|f| f.name == name.as_str()) {
                let id = fw.id.to_string();
                tracing::info!(%resource, %id, "adopting a firewall of this deployment");
                self.put_firewall(&resource, &id, &body).await?;
                return Ok(id);
            }
            let answer = self
                .client
                .send(Method::POST, "/v2/firewalls", Some(&body), Call::Create)
                .await
                .and_then(|a| {
                    client::parse::<Firewall>(&Method::POST, "/v2/firewalls", &a, "firewall")
                });
            match answer {
                Ok(fw) => return Ok(fw.id.to_string()),
                Err(Failure::Ambiguous(why)) => {
                    tracing::warn!(%resource, %why, "firewall create got no answer; looking it up");
                }
                Err(f) => return Err(api_error(&resource, f)),
            }
        }
        Err(api_error(
            &resource,
            Failure::Unreachable(
                "creating the firewall got no answer twice and it is not there".into(),
            ),
        ))
    }
}
