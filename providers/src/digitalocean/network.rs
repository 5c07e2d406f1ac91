//! VPCs: a network is a VPC `fitter-<deployment>-<name>` whose description names the
//! deployment; found by name after a lost create, and deleted once its members have left.

use std::time::Duration;

use reqwest::Method;

use super::answer::Vpc;
use super::body;
use super::client::{self, Call, Failure};
use super::{Inner, KIND, api_error, cloud_name, unsupported};
use crate::api::{NetworkRequest, ProviderError};

impl Inner {
    pub(super) async fn create_network(&self, r: &NetworkRequest) -> Result<String, ProviderError> {
        let resource = format!("network.{}", r.name);
        let region = r
            .region
            .as_deref()
            .ok_or_else(|| unsupported(&resource, "a VPC needs a region: set `locationId`"))?;
        let name = cloud_name(&self.deployment, &r.name);
        let description = self.description();
        let body = body::vpc(&name, region, &r.subnet.to_string(), &description);
        for _attempt in 0..2 {
            let answer = self
                .client
                .send(Method::POST, "/v2/vpcs", Some(&body), Call::Create)
                .await
                .and_then(|a| client::parse::<Vpc>(&Method::POST, "/v2/vpcs", &a, "vpc"));
            match answer {
                Ok(vpc) => return Ok(vpc.id.to_string()),
                // VPC names are unique in an account: a lost create or a rerun finds it.
                Err(Failure::Ambiguous(_)) | Err(Failure::Status { status: 422, .. }) => {
                    let vpcs: Vec<Vpc> = self.list(&resource, "/v2/vpcs", "vpcs").await?;
                    if let Some(vpc) = vpcs.into_iter().find(|v| v.name == name.as_str()) {
                        if vpc.description.as_deref() != Some(description.as_str()) {
                            let described = match &vpc.description {
                                Some(d) => format!("description \"{d}\""),
                                None => "no description".to_string(),
                            };
                            return Err(ProviderError::NotOwned {
                                provider: KIND,
                                resource,
                                deployment: self.deployment.clone(),
                                owner: format!("VPC `{name}`, {described}"),
                            });
                        }
                        return Ok(vpc.id.to_string());
                    }
                }
                Err(f) => return Err(api_error(&resource, f)),
            }
        }
        Err(api_error(
            &resource,
            Failure::Unreachable("creating the VPC got no answer twice and it is not there".into()),
        ))
    }

    pub(super) fn description(&self) -> String {
        format!("fitter deployment {}", self.deployment)
    }

    /// Deletes a VPC, retrying while the API says it still has members.
    pub(super) async fn delete_vpc(&self, id: &str) -> Result<(), ProviderError> {
        let resource = format!("VPC {id}");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
        let mut wait = Duration::from_secs(1);
        loop {
            match self
                .client
                .send(
                    Method::DELETE,
                    &format!("/v2/vpcs/{id}"),
                    None,
                    Call::Idempotent,
                )
                .await
            {
                Ok(_) => return Ok(()),
                Err(Failure::Status {
                    status: 403 | 409,
                    message,
                }) if tokio::time::Instant::now() < deadline => {
                    tracing::debug!(%resource, %message, "VPC still has members; waiting");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(10));
                }
                Err(f) => return Err(api_error(&resource, f)),
            }
        }
    }
}
