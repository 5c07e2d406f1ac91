//! The account's side of a deployment: the operator's SSH key (found by fingerprint before
//! uploading, deleted only when fitter uploaded it) and the tags (the deployment's, its roles'
//! and its firewalls').

use reqwest::Method;

use super::answer::{SshKey, Tag};
use super::body;
use super::client::{self, Call, Failure};
use super::{Inner, api_error, md5_fingerprint, unsupported};
use crate::api::{ProviderError, SshKeyRequest};

impl Inner {
    pub(super) async fn ensure_tags(
        &self,
        resource: &str,
        tags: &[String],
    ) -> Result<(), ProviderError> {
        // Held throughout, so that two firewalls naming the same tags create them once.
        let _one_at_a_time = self.tag_creation.lock().await;
        for t in tags {
            if self.tags.lock().await.contains(t) {
                continue;
            }
            // Creating a tag that exists answers with the tag: safe to send again.
            self.client
                .send(
                    Method::POST,
                    "/v2/tags",
                    Some(&body::tag(t)),
                    Call::Idempotent,
                )
                .await
                .map_err(|f| api_error(resource, f))?;
            self.tags.lock().await.insert(t.clone());
        }
        Ok(())
    }

    pub(super) async fn create_ssh_key(&self, r: &SshKeyRequest) -> Result<String, ProviderError> {
        let resource = format!("ssh_key.{}", r.name);
        let fingerprint = md5_fingerprint(&r.public_key).ok_or_else(|| {
            unsupported(
                &resource,
                "the operator's public key is not in OpenSSH format",
            )
        })?;
        // By fingerprint, not by listing: listing keys is limited to 10 calls a minute.
        let path = format!("/v2/account/keys/{fingerprint}");
        if let Some(found) = self.get::<SshKey>(&resource, &path, "ssh_key").await? {
            return Ok(found.id.to_string());
        }
        let answer = self
            .client
            .send(
                Method::POST,
                "/v2/account/keys",
                Some(&body::ssh_key(&r.key_name, &r.public_key)),
                Call::Create,
            )
            .await
            .and_then(|a| {
                client::parse::<SshKey>(&Method::POST, "/v2/account/keys", &a, "ssh_key")
            });
        match answer {
            Ok(created) => Ok(created.id.to_string()),
            // Lost answer, or "already in use": the key is there, find it.
            Err(Failure::Ambiguous(_)) | Err(Failure::Status { status: 422, .. }) => {
                match self.get::<SshKey>(&resource, &path, "ssh_key").await? {
                    Some(found) => Ok(found.id.to_string()),
                    None => Err(api_error(
                        &resource,
                        Failure::Unreachable(
                            "the key upload got no answer and the key is not there".into(),
                        ),
                    )),
                }
            }
            Err(f) => Err(api_error(&resource, f)),
        }
    }

    /// The deployment tag, then every tag fitter made for the deployment's roles and
    /// firewalls (`fitter-<deployment>:...`).
    pub(super) async fn delete_tags(&self, tag: &str) -> Result<(), ProviderError> {
        let resource = format!("tag {tag}");
        let prefix = format!("{tag}:");
        let all: Vec<Tag> = self.list(&resource, "/v2/tags", "tags").await?;
        for t in all {
            if t.name.starts_with(&prefix) {
                self.delete_simple(&resource, &format!("/v2/tags/{}", t.name))
                    .await?;
            }
        }
        self.delete_simple(&resource, &format!("/v2/tags/{tag}"))
            .await?;
        self.tags.lock().await.clear();
        Ok(())
    }

    pub(super) async fn delete_ssh_key(&self, id: &str) -> Result<(), ProviderError> {
        let resource = format!("ssh key {id}");
        let path = format!("/v2/account/keys/{id}");
        let Some(key) = self.get::<SshKey>(&resource, &path, "ssh_key").await? else {
            return Ok(());
        };
        // Only a key fitter uploaded for this deployment: one the operator had in the
        // account already was adopted, not created, and stays.
        if key.name != self.tag.as_str() {
            tracing::info!(%resource, "leaving the account key fitter did not upload");
            return Ok(());
        }
        self.delete_simple(&resource, &path).await
    }
}
