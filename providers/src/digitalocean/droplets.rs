//! Droplets: creating them in batches of up to [`BATCH`] (one call per group of creates that
//! share a spec), adopting what an earlier or interrupted run created instead of creating it
//! again, and the index of the deployment's droplets as last listed. The index holds typed
//! [`Droplet`]s: the few fields fitter reads (a listed droplet is over a kilobyte of JSON,
//! its image, size and region spelled out, and a thousand of those were a fifth of the
//! memory).

use std::collections::HashMap;
use std::time::Duration;

use reqwest::Method;

use super::answer::Droplet;
use super::body::{self, DropletSpec, HostKey};
use super::client::{self, Call, Failure};
use super::{BATCH, Inner, api_error, md5_fingerprint, unsupported};
use crate::api::{NodeRequest, ProviderError};

/// A droplet of a batch still to be created.
struct Pending {
    name: String,
    host_key: String,
    host_key_public: String,
    authorized_keys: Vec<String>,
}

impl Inner {
    /// Lists the deployment's droplets and keeps the list as the index.
    pub(super) async fn list_droplets(
        &self,
        resource: &str,
    ) -> Result<HashMap<u64, Droplet>, ProviderError> {
        self.listed_droplets()
            .await
            .map_err(|f| api_error(resource, f))
    }

    /// The same, failing with the client's [`Failure`], so that the poller can tell an
    /// answer that does not parse (which ends every wait) from one that did not come.
    pub(super) async fn listed_droplets(&self) -> Result<HashMap<u64, Droplet>, Failure> {
        let items: Vec<Droplet> = self
            .client
            .list_of(&format!("/v2/droplets?tag_name={}", self.tag), "droplets")
            .await?;
        let map: HashMap<u64, Droplet> = items.into_iter().map(|d| (d.id, d)).collect();
        *self.droplets.lock().await = Some(map.clone());
        Ok(map)
    }

    /// Lists the deployment's droplets once per run, unless something asked for a fresh list.
    async fn ensure_index(&self, resource: &str) -> Result<(), ProviderError> {
        if self.droplets.lock().await.is_none() {
            self.list_droplets(resource).await?;
        }
        Ok(())
    }

    /// A droplet in the index, as last listed.
    pub(super) async fn indexed(
        &self,
        resource: &str,
        id: u64,
    ) -> Result<Option<Droplet>, ProviderError> {
        self.ensure_index(resource).await?;
        Ok(self
            .droplets
            .lock()
            .await
            .as_ref()
            .and_then(|m| m.get(&id).cloned()))
    }

    /// A droplet of this deployment with that name that no create of this run has taken,
    /// from the index.
    async fn adopt_indexed(
        &self,
        resource: &str,
        name: &str,
    ) -> Result<Option<u64>, ProviderError> {
        self.ensure_index(resource).await?;
        let index = self.droplets.lock().await;
        Ok(match index.as_ref() {
            Some(map) => self.adopt_droplet(name, map).await,
            None => None,
        })
    }

    /// A droplet of `index` with that name that no create of this run has taken.
    async fn adopt_droplet(&self, name: &str, index: &HashMap<u64, Droplet>) -> Option<u64> {
        let mut claimed = self.claimed.lock().await;
        let mut found: Vec<u64> = index
            .iter()
            .filter(|(id, d)| d.name == name && !claimed.contains(*id))
            .map(|(id, _)| *id)
            .collect();
        found.sort();
        let id = *found.first()?;
        claimed.insert(id);
        Some(id)
    }

    pub(super) fn droplet_spec(&self, r: &NodeRequest) -> Result<DropletSpec, ProviderError> {
        let resource = format!("node.{}", r.name);
        let region = r
            .region
            .clone()
            .ok_or_else(|| unsupported(&resource, "a droplet needs a region: set `locationId`"))?;
        let mut tags = r.tags.clone();
        tags.push(self.tag.clone());
        tags.sort();
        tags.dedup();
        let ssh_keys = r
            .authorized_keys
            .iter()
            .filter_map(|k| md5_fingerprint(k))
            .collect();
        Ok(DropletSpec {
            size: r.size.clone(),
            image: r.image.clone(),
            region,
            vpc_uuid: r.network_id.clone(),
            tags,
            ssh_keys,
        })
    }

    /// Sends one batch and answers each of its creates, by name; after a lost answer, adopts
    /// what was created and sends again only what was not.
    async fn send_batch(
        &self,
        spec: &DropletSpec,
        mut members: Vec<Pending>,
    ) -> HashMap<String, Result<String, ProviderError>> {
        let mut answers = HashMap::new();
        for attempt in 0..3 {
            if members.is_empty() {
                return answers;
            }
            let names: Vec<String> = members.iter().map(|m| m.name.clone()).collect();
            let hosts: Vec<HostKey<'_>> = members
                .iter()
                .map(|m| HostKey {
                    name: &m.name,
                    private_openssh: &m.host_key,
                    public_openssh: &m.host_key_public,
                })
                .collect();
            let user_data = body::user_data(&self.deployment, &members[0].authorized_keys, &hosts);
            let request = body::droplets(spec, &names, &user_data);
            tracing::debug!(count = names.len(), "creating droplets");
            let answer = self
                .client
                .send(Method::POST, "/v2/droplets", Some(&request), Call::Create)
                .await;
            // One name answers with `droplet`, several with `droplets`.
            let created = answer.and_then(|a| {
                if a.body.get("droplets").is_some() {
                    client::parse::<Vec<Droplet>>(&Method::POST, "/v2/droplets", &a, "droplets")
                } else {
                    client::parse(&Method::POST, "/v2/droplets", &a, "droplet").map(|d| vec![d])
                }
            });
            match created {
                Ok(created) => {
                    let mut by_name: HashMap<String, u64> = HashMap::new();
                    {
                        // Same order as `adopt_indexed`: the index, then the claims.
                        let mut index = self.droplets.lock().await;
                        let mut claimed = self.claimed.lock().await;
                        for d in created {
                            by_name.insert(d.name.to_string(), d.id);
                            claimed.insert(d.id);
                            if let Some(map) = index.as_mut() {
                                map.insert(d.id, d);
                            }
                        }
                    }
                    for m in members.drain(..) {
                        let result = by_name.get(&m.name).map(u64::to_string).ok_or_else(|| {
                            unsupported(
                                &format!("node.{}", m.name),
                                "the create answer does not list this droplet",
                            )
                        });
                        answers.insert(m.name, result);
                    }
                    return answers;
                }
                Err(Failure::Ambiguous(why)) => {
                    tracing::warn!(
                        %why,
                        attempt,
                        "a droplet create got no answer; looking for what it created before trying again"
                    );
                    // Give the API a moment to list what it did create.
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    let index = match self.list_droplets("node").await {
                        Ok(i) => i,
                        Err(e) => {
                            for m in members.drain(..) {
                                let resource = format!("node.{}", m.name);
                                answers.insert(
                                    m.name,
                                    Err(api_error(&resource, Failure::Unreachable(e.to_string()))),
                                );
                            }
                            return answers;
                        }
                    };
                    let mut rest = Vec::new();
                    for m in members.drain(..) {
                        match self.adopt_droplet(&m.name, &index).await {
                            Some(id) => {
                                answers.insert(m.name, Ok(id.to_string()));
                            }
                            None => rest.push(m),
                        }
                    }
                    members = rest;
                }
                Err(f) => {
                    for m in members.drain(..) {
                        let resource = format!("node.{}", m.name);
                        answers.insert(m.name, Err(api_error(&resource, f.clone())));
                    }
                    return answers;
                }
            }
        }
        for m in members.drain(..) {
            let resource = format!("node.{}", m.name);
            answers.insert(
                m.name,
                Err(api_error(
                    &resource,
                    Failure::Unreachable(
                        "three creates got no answer and the droplet is not there".into(),
                    ),
                )),
            );
        }
        answers
    }

    /// Creates droplets that share one spec, ten a call, and answers each in order. A droplet
    /// of the same name already carrying the deployment's tag is one an earlier, interrupted
    /// run created: it is adopted, not created again.
    pub(super) async fn create_nodes(
        &self,
        requests: &[&NodeRequest],
    ) -> Vec<Result<String, ProviderError>> {
        let mut answers: Vec<Option<Result<String, ProviderError>>> =
            (0..requests.len()).map(|_| None).collect();
        let mut groups: Vec<(DropletSpec, Vec<(usize, Pending)>)> = Vec::new();
        for (i, r) in requests.iter().enumerate() {
            let resource = format!("node.{}", r.name);
            let spec = match self.droplet_spec(r) {
                Ok(spec) => spec,
                Err(e) => {
                    answers[i] = Some(Err(e));
                    continue;
                }
            };
            match self.adopt_indexed(&resource, &r.name).await {
                Ok(Some(id)) => {
                    tracing::info!(%resource, id, "adopting a droplet an earlier run created");
                    answers[i] = Some(Ok(id.to_string()));
                    continue;
                }
                Ok(None) => {}
                Err(e) => {
                    answers[i] = Some(Err(e));
                    continue;
                }
            }
            let pending = Pending {
                name: r.name.clone(),
                host_key: r.host_key.clone(),
                host_key_public: r.host_key_public.clone(),
                authorized_keys: r.authorized_keys.clone(),
            };
            match groups.iter_mut().find(|(s, _)| *s == spec) {
                Some((_, members)) => members.push((i, pending)),
                None => groups.push((spec, vec![(i, pending)])),
            }
        }
        for (spec, members) in groups {
            let mut members = members.into_iter().peekable();
            while members.peek().is_some() {
                let chunk: Vec<(usize, Pending)> = members.by_ref().take(BATCH).collect();
                let order: Vec<(usize, String)> =
                    chunk.iter().map(|(i, m)| (*i, m.name.clone())).collect();
                let mut sent = self
                    .send_batch(&spec, chunk.into_iter().map(|(_, m)| m).collect())
                    .await;
                for (i, name) in order {
                    answers[i] = sent.remove(&name);
                }
            }
        }
        answers
            .into_iter()
            .zip(requests)
            .map(|(a, r)| {
                a.unwrap_or_else(|| {
                    Err(unsupported(
                        &format!("node.{}", r.name),
                        "the batch sending this droplet gave no answer for it",
                    ))
                })
            })
            .collect()
    }
}
