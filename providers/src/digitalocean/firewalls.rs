//! Cloud firewalls: a firewall applied to its member tag, the tags its rules name created
//! first, and a create whose answer was lost found again by name.

use reqwest::Method;
use serde_json::Value as Json;

use super::answer::Firewall;
use super::body;
use super::client::{self, Call, Failure};
use super::{Inner, api_error, cloud_name};
use crate::api::{FirewallRequest, ProviderError};

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
