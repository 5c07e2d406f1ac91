//! The DigitalOcean provider: API v2 over HTTPS with a bearer token.
//!
//! | plan | DigitalOcean |
//! |---|---|
//! | `ssh_key.operator` | the operator's public key in the account, found by its MD5 fingerprint before uploading |
//! | `tag.deployment` | the tag `fitter-<deployment>`, carried by every droplet |
//! | `network.<name>` | a VPC `fitter-<deployment>-<name>` with the plan's subnet as `ip_range` |
//! | `firewall.<name>` | a cloud firewall applied to the tag `fitter-<deployment>:fw:<name>` |
//! | `node.<name>` | a droplet named after the node, tagged with the deployment, its roles and its firewall |
//!
//! Droplets are created in batches of up to ten (`names`): the apply stage hands over every
//! create that became ready at the same time ([`Provider::create_batch`]), grouped by
//! [`Provider::batch_key`] (the same size, image, region, VPC and tags), and each group is
//! one call. No timer decides what shares a call, so one plan makes the same calls anywhere. Readiness is one list of
//! the deployment's droplets by tag for every waiting droplet, not one GET each: the first
//! poll a few seconds after the first create, then backing off, and sooner again while
//! droplets keep turning `active`. A droplet not yet listed, or `locked`, is pending.
//!
//! A create is never sent twice blindly. When a create's answer is lost (a 5xx, a timeout, a
//! cut connection), the provider lists what carries the deployment's tag (or, for VPCs and
//! firewalls, the names) and adopts what it finds; only what is not there is created again.
//! The same look-up runs before every droplet create, so a run that was killed after its
//! create call and before it saved the id adopts the droplet instead of making a second one.
//!
//! Teardown goes firewalls, droplets (deleted, then waited for until the listing no longer
//! has them), VPCs (403 and 409 retried while members detach), then the tags and the key.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use md5::Digest as _;
use reqwest::Method;
use serde_json::{Value as Json, json};
use tokio::sync::{Mutex, oneshot};

use crate::api::{
    FirewallRequest, NetworkRequest, NodeRequest, Outputs, Owned, Provider, ProviderError, Request,
    SshKeyRequest, TagRequest,
};
use crate::{ProviderKind, ResourceKind};

pub mod body;
pub mod catalogue;
pub mod client;

pub use catalogue::KIND;

use body::{DropletSpec, HostKey};
use client::{Call, Client, Failure, Retries};

/// The public API.
pub const DEFAULT_API_URL: &str = "https://api.digitalocean.com";
/// Droplets per create call: the API's limit for `names`.
pub const BATCH: usize = 10;
/// How long a droplet waited for may be missing from the listings before it counts as
/// nonexistent (the Terraform provider tolerates 404s for about as long after a create).
const UNSEEN_GRACE: Duration = Duration::from_secs(120);

/// What the provider needs besides the deployment's name.
#[derive(Debug, Clone)]
pub struct Settings {
    pub api_url: String,
    pub token: String,
    /// How long a droplet may take to become active with a public address.
    pub ready_timeout: Duration,
    /// The first poll for readiness comes this long after the first create.
    pub first_poll: Duration,
    pub retries: Retries,
}

impl Settings {
    /// From the environment: `DIGITALOCEAN_TOKEN` (or `DIGITALOCEAN_ACCESS_TOKEN`) and
    /// `DIGITALOCEAN_API_URL`.
    pub fn from_env() -> Result<Settings, String> {
        let token = ["DIGITALOCEAN_TOKEN", "DIGITALOCEAN_ACCESS_TOKEN"]
            .iter()
            .find_map(|v| std::env::var(v).ok().filter(|t| !t.trim().is_empty()))
            .ok_or(
                "no DigitalOcean token: set DIGITALOCEAN_TOKEN (or DIGITALOCEAN_ACCESS_TOKEN)",
            )?;
        let api_url = std::env::var("DIGITALOCEAN_API_URL")
            .ok()
            .filter(|u| !u.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_API_URL.to_string());
        if !(api_url.starts_with("https://") || api_url.starts_with("http://")) {
            return Err(format!(
                "DIGITALOCEAN_API_URL `{api_url}` is not an http(s) URL"
            ));
        }
        Ok(Settings {
            api_url,
            token: token.trim().to_string(),
            ready_timeout: Duration::from_secs(600),
            first_poll: Duration::from_secs(3),
            retries: Retries::default(),
        })
    }
}

/// The name of a VPC or firewall in the account: `fitter-<deployment>-<name>`.
pub fn cloud_name(deployment: &str, name: &str) -> String {
    format!("fitter-{deployment}-{name}")
}

/// The MD5 fingerprint DigitalOcean gives an OpenSSH public key: colon-separated hex.
pub fn md5_fingerprint(public_openssh: &str) -> Option<String> {
    let blob = public_openssh.split_whitespace().nth(1)?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(blob)
        .ok()?;
    let digest = md5::Md5::digest(&raw);
    Some(
        digest
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":"),
    )
}

pub struct DigitalOcean {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    deployment: String,
    /// `fitter-<deployment>`.
    tag: String,
    settings: Settings,
    /// The deployment's droplets as last listed, by id; `None` until first needed.
    droplets: Mutex<Option<HashMap<u64, Json>>>,
    /// Droplets a create of this run has taken: each is adopted once only.
    claimed: Mutex<HashSet<u64>>,
    /// Tags known to exist.
    tags: Mutex<HashSet<String>>,
    tag_creation: Mutex<()>,
    watch: Mutex<Watch>,
}

/// A droplet of a batch still to be created.
struct Pending {
    name: String,
    host_key: String,
    host_key_public: String,
    authorized_keys: Vec<String>,
}

/// Droplets waited for by the poller.
#[derive(Default)]
struct Watch {
    ready: HashMap<u64, Vec<oneshot::Sender<Outputs>>>,
    /// When a droplet waited for was first missing from a listing: right after a create
    /// the API may not list it yet, so only a long absence means it does not exist.
    unseen: HashMap<u64, tokio::time::Instant>,
    gone: HashMap<u64, Vec<oneshot::Sender<()>>>,
    polling: bool,
}

impl DigitalOcean {
    pub fn new(deployment: &str, settings: Settings) -> Result<DigitalOcean, String> {
        let client = Client::new(&settings.api_url, &settings.token, settings.retries)?;
        Ok(DigitalOcean {
            inner: Arc::new(Inner {
                client,
                deployment: deployment.to_string(),
                tag: format!("fitter-{deployment}"),
                settings,
                droplets: Mutex::new(None),
                claimed: Mutex::new(HashSet::new()),
                tags: Mutex::new(HashSet::new()),
                tag_creation: Mutex::new(()),
                watch: Mutex::new(Watch::default()),
            }),
        })
    }
}

fn api_error(resource: &str, failure: Failure) -> ProviderError {
    match failure {
        Failure::Status { status, message } => {
            let message = if status == 401 {
                format!("{message}; check DIGITALOCEAN_TOKEN")
            } else {
                message
            };
            ProviderError::Api {
                provider: KIND,
                resource: resource.to_string(),
                status,
                message,
            }
        }
        Failure::Unreachable(message) | Failure::Ambiguous(message) => ProviderError::Unreachable {
            provider: KIND,
            resource: resource.to_string(),
            message,
        },
    }
}

fn unsupported(resource: &str, message: impl Into<String>) -> ProviderError {
    ProviderError::Unsupported {
        provider: KIND,
        resource: resource.to_string(),
        message: message.into(),
    }
}

fn id_of(value: &Json) -> Option<String> {
    match value.get("id")? {
        Json::Number(n) => Some(n.to_string()),
        Json::String(s) => Some(s.clone()),
        _ => None,
    }
}

/// What the provider keeps of a listed droplet: a full one is over a kilobyte of JSON (its
/// image, size and region spelled out), and a thousand of them were a fifth of the memory.
fn compact(droplet: &Json) -> Json {
    let v4: Vec<Json> = droplet
        .pointer("/networks/v4")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
        .map(|n| json!({"ip_address": n["ip_address"], "type": n["type"]}))
        .collect();
    json!({
        "id": droplet["id"],
        "name": droplet["name"],
        "status": droplet["status"],
        "locked": droplet["locked"],
        "networks": {"v4": v4},
    })
}

/// `public_ip` and `private_ip` of an active droplet; `None` while it is pending.
fn droplet_ready(droplet: &Json) -> Option<Outputs> {
    if droplet["status"] != "active" || droplet["locked"] == json!(true) {
        return None;
    }
    let mut outputs = Outputs::new();
    for net in droplet.pointer("/networks/v4")?.as_array()? {
        let ip = net["ip_address"].as_str()?;
        match net["type"].as_str()? {
            "public" => outputs.insert("public_ip".into(), json!(ip)),
            "private" => outputs.insert("private_ip".into(), json!(ip)),
            _ => None,
        };
    }
    outputs.get("public_ip")?;
    if let Some(id) = droplet.get("id") {
        outputs.insert("droplet_id".into(), id.clone());
    }
    Some(outputs)
}

impl Inner {
    async fn get(&self, resource: &str, path: &str) -> Result<Option<Json>, ProviderError> {
        let answer = self
            .client
            .send(Method::GET, path, None, Call::Idempotent)
            .await
            .map_err(|f| api_error(resource, f))?;
        Ok((answer.status != 404).then_some(answer.body))
    }

    /// Lists the deployment's droplets and keeps the list as the index.
    async fn list_droplets(&self, resource: &str) -> Result<HashMap<u64, Json>, ProviderError> {
        let items = self
            .client
            .list(&format!("/v2/droplets?tag_name={}", self.tag), "droplets")
            .await
            .map_err(|f| api_error(resource, f))?;
        let map: HashMap<u64, Json> = items
            .iter()
            .filter_map(|d| Some((d.get("id")?.as_u64()?, compact(d))))
            .collect();
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
    async fn indexed(&self, resource: &str, id: u64) -> Result<Option<Json>, ProviderError> {
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
    async fn adopt_droplet(&self, name: &str, index: &HashMap<u64, Json>) -> Option<u64> {
        let mut claimed = self.claimed.lock().await;
        let mut found: Vec<u64> = index
            .iter()
            .filter(|(id, d)| d["name"] == name && !claimed.contains(*id))
            .map(|(id, _)| *id)
            .collect();
        found.sort();
        let id = *found.first()?;
        claimed.insert(id);
        Some(id)
    }

    async fn ensure_tags(&self, resource: &str, tags: &[String]) -> Result<(), ProviderError> {
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

    async fn create_ssh_key(&self, r: &SshKeyRequest) -> Result<String, ProviderError> {
        let resource = format!("ssh_key.{}", r.name);
        let fingerprint = md5_fingerprint(&r.public_key).ok_or_else(|| {
            unsupported(
                &resource,
                "the operator's public key is not in OpenSSH format",
            )
        })?;
        // By fingerprint, not by listing: listing keys is limited to 10 calls a minute.
        let path = format!("/v2/account/keys/{fingerprint}");
        if let Some(found) = self.get(&resource, &path).await? {
            return id_of(&found["ssh_key"])
                .ok_or_else(|| unsupported(&resource, "the key has no id"));
        }
        let answer = self
            .client
            .send(
                Method::POST,
                "/v2/account/keys",
                Some(&body::ssh_key(&r.key_name, &r.public_key)),
                Call::Create,
            )
            .await;
        match answer {
            Ok(a) => id_of(&a.body["ssh_key"])
                .ok_or_else(|| unsupported(&resource, "the answer has no key id")),
            // Lost answer, or "already in use": the key is there, find it.
            Err(Failure::Ambiguous(_)) | Err(Failure::Status { status: 422, .. }) => {
                match self.get(&resource, &path).await? {
                    Some(found) => id_of(&found["ssh_key"])
                        .ok_or_else(|| unsupported(&resource, "the key has no id")),
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

    async fn create_network(&self, r: &NetworkRequest) -> Result<String, ProviderError> {
        let resource = format!("network.{}", r.name);
        let region = r
            .region
            .as_deref()
            .ok_or_else(|| unsupported(&resource, "a VPC needs a region: set `locationId`"))?;
        let name = cloud_name(&self.deployment, &r.name);
        let description = self.description();
        let body = body::vpc(&name, region, &r.subnet.to_string(), &description);
        for _attempt in 0..2 {
            match self
                .client
                .send(Method::POST, "/v2/vpcs", Some(&body), Call::Create)
                .await
            {
                Ok(a) => {
                    return id_of(&a.body["vpc"])
                        .ok_or_else(|| unsupported(&resource, "the answer has no VPC id"));
                }
                // VPC names are unique in an account: a lost create or a rerun finds it.
                Err(Failure::Ambiguous(_)) | Err(Failure::Status { status: 422, .. }) => {
                    if let Some(vpc) = self
                        .find_by_name(&resource, "/v2/vpcs", "vpcs", &name)
                        .await?
                    {
                        if vpc["description"] != json!(description) {
                            return Err(ProviderError::NotOwned {
                                provider: KIND,
                                resource,
                                deployment: self.deployment.clone(),
                                owner: format!("VPC `{name}`, description {}", vpc["description"]),
                            });
                        }
                        return id_of(&vpc)
                            .ok_or_else(|| unsupported(&resource, "the VPC has no id"));
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

    fn description(&self) -> String {
        format!("fitter deployment {}", self.deployment)
    }

    async fn find_by_name(
        &self,
        resource: &str,
        path: &str,
        key: &str,
        name: &str,
    ) -> Result<Option<Json>, ProviderError> {
        let items = self
            .client
            .list(path, key)
            .await
            .map_err(|f| api_error(resource, f))?;
        Ok(items.into_iter().find(|i| i["name"] == name))
    }

    fn firewall_body(&self, r: &FirewallRequest) -> (Json, Vec<String>) {
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

    async fn create_firewall(&self, r: &FirewallRequest) -> Result<String, ProviderError> {
        let resource = format!("firewall.{}", r.name);
        let (body, tags) = self.firewall_body(r);
        // The API refuses a firewall naming a tag that does not exist yet.
        self.ensure_tags(&resource, &tags).await?;
        let name = cloud_name(&self.deployment, &r.name);
        // A rerun after a lost answer: the firewall may be there already.
        for attempt in 0..2 {
            if attempt > 0
                && let Some(fw) = self
                    .find_by_name(&resource, "/v2/firewalls", "firewalls", &name)
                    .await?
            {
                return id_of(&fw).ok_or_else(|| unsupported(&resource, "the firewall has no id"));
            }
            match self
                .client
                .send(Method::POST, "/v2/firewalls", Some(&body), Call::Create)
                .await
            {
                Ok(a) => {
                    return id_of(&a.body["firewall"])
                        .ok_or_else(|| unsupported(&resource, "the answer has no firewall id"));
                }
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

    fn droplet_spec(&self, r: &NodeRequest) -> Result<DropletSpec, ProviderError> {
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
            match answer {
                Ok(a) => {
                    let created: Vec<Json> = match a.body.get("droplets").and_then(Json::as_array) {
                        Some(list) => list.clone(),
                        None => a.body.get("droplet").cloned().into_iter().collect(),
                    };
                    let mut by_name: HashMap<String, u64> = HashMap::new();
                    {
                        // Same order as `adopt_indexed`: the index, then the claims.
                        let mut index = self.droplets.lock().await;
                        let mut claimed = self.claimed.lock().await;
                        for d in created {
                            if let (Some(name), Some(id)) = (d["name"].as_str(), d["id"].as_u64()) {
                                by_name.insert(name.to_string(), id);
                                claimed.insert(id);
                                if let Some(map) = index.as_mut() {
                                    map.insert(id, compact(&d));
                                }
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
    async fn create_nodes(&self, requests: &[&NodeRequest]) -> Vec<Result<String, ProviderError>> {
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

    /// Registers a wait and makes sure the poller runs.
    async fn start_polling(self: &Arc<Self>) {
        let mut watch = self.watch.lock().await;
        if watch.polling {
            return;
        }
        watch.polling = true;
        let inner = Arc::clone(self);
        tokio::spawn(async move { inner.poll().await });
    }

    /// One list of the deployment's droplets answers every wait; polls come sooner while
    /// droplets keep changing and back off while nothing does.
    async fn poll(self: Arc<Self>) {
        let mut wait = self.settings.first_poll;
        let mut quiet = Duration::from_secs(1);
        loop {
            tokio::time::sleep(wait).await;
            let idle = {
                let mut watch = self.watch.lock().await;
                let idle = watch.ready.is_empty() && watch.gone.is_empty();
                if idle {
                    watch.polling = false;
                }
                idle
            };
            if idle {
                return;
            }
            let listed = self.list_droplets("node").await;
            let mut progress = false;
            let mut pages = 1;
            match listed {
                Ok(map) => {
                    pages = map.len().div_ceil(client::PER_PAGE).max(1);
                    let mut watch = self.watch.lock().await;
                    let ready: Vec<(u64, Outputs)> = watch
                        .ready
                        .keys()
                        .filter_map(|id| Some((*id, droplet_ready(map.get(id)?)?)))
                        .collect();
                    for (id, outputs) in ready {
                        progress = true;
                        watch.unseen.remove(&id);
                        for tx in watch.ready.remove(&id).unwrap_or_default() {
                            let _ = tx.send(outputs.clone());
                        }
                    }
                    // Missing too long: the waiters' channels close, which they report.
                    let now = tokio::time::Instant::now();
                    let waited: Vec<u64> = watch.ready.keys().copied().collect();
                    for id in waited {
                        if map.contains_key(&id) {
                            watch.unseen.remove(&id);
                            continue;
                        }
                        let since = *watch.unseen.entry(id).or_insert(now);
                        if now.duration_since(since) > UNSEEN_GRACE {
                            watch.unseen.remove(&id);
                            watch.ready.remove(&id);
                        }
                    }
                    let gone: Vec<u64> = watch
                        .gone
                        .keys()
                        .filter(|id| !map.contains_key(id))
                        .copied()
                        .collect();
                    for id in gone {
                        progress = true;
                        for tx in watch.gone.remove(&id).unwrap_or_default() {
                            let _ = tx.send(());
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "listing droplets failed; will poll again"),
            }
            // While nothing changes, back off to a second per page of the listing (5 s for a
            // thousand droplets, 25 requests a minute), so the creates keep most of the
            // 250-a-minute budget; while droplets keep turning active, poll every half second.
            let cap = Duration::from_secs(pages as u64).max(Duration::from_secs(2));
            if progress {
                wait = Duration::from_millis(500);
                quiet = Duration::from_secs(1);
            } else {
                wait = quiet;
                quiet = quiet.mul_f64(1.5).min(cap);
            }
        }
    }

    async fn wait_droplet(
        self: &Arc<Self>,
        resource: &str,
        id: &str,
    ) -> Result<Outputs, ProviderError> {
        let numeric: u64 = id
            .parse()
            .map_err(|_| unsupported(resource, format!("`{id}` is not a droplet id")))?;
        // Already active in the index (an adopted droplet): no need to wait for a poll.
        if let Some(map) = self.droplets.lock().await.as_ref()
            && let Some(outputs) = map.get(&numeric).and_then(droplet_ready)
        {
            return Ok(outputs);
        }
        let (tx, rx) = oneshot::channel();
        self.watch
            .lock()
            .await
            .ready
            .entry(numeric)
            .or_default()
            .push(tx);
        self.start_polling().await;
        let timeout = self.settings.ready_timeout;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(outputs)) => Ok(outputs),
            Ok(Err(_)) => Err(ProviderError::Timeout {
                resource: resource.to_string(),
                seconds: UNSEEN_GRACE.as_secs(),
                what: format!("droplet {id} is not listed: it does not exist"),
            }),
            Err(_) => Err(ProviderError::Timeout {
                resource: resource.to_string(),
                seconds: timeout.as_secs(),
                what: format!("droplet {id} is not active with a public address"),
            }),
        }
    }

    async fn delete_droplet(self: &Arc<Self>, id: &str) -> Result<(), ProviderError> {
        let resource = format!("droplet {id}");
        let numeric: u64 = id
            .parse()
            .map_err(|_| unsupported(&resource, format!("`{id}` is not a droplet id")))?;
        self.client
            .send(
                Method::DELETE,
                &format!("/v2/droplets/{id}"),
                None,
                Call::Idempotent,
            )
            .await
            .map_err(|f| api_error(&resource, f))?;
        let (tx, rx) = oneshot::channel();
        self.watch
            .lock()
            .await
            .gone
            .entry(numeric)
            .or_default()
            .push(tx);
        self.start_polling().await;
        let timeout = self.settings.ready_timeout;
        tokio::time::timeout(timeout, rx)
            .await
            .map_err(|_| ProviderError::Timeout {
                resource,
                seconds: timeout.as_secs(),
                what: "the droplet is still listed after its delete".into(),
            })?
            .ok();
        self.claimed.lock().await.remove(&numeric);
        if let Some(map) = self.droplets.lock().await.as_mut() {
            map.remove(&numeric);
        }
        Ok(())
    }

    /// Deletes a VPC, retrying while the API says it still has members.
    async fn delete_vpc(&self, id: &str) -> Result<(), ProviderError> {
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

    async fn delete_simple(&self, resource: &str, path: &str) -> Result<(), ProviderError> {
        self.client
            .send(Method::DELETE, path, None, Call::Idempotent)
            .await
            .map(|_| ())
            .map_err(|f| api_error(resource, f))
    }

    /// The deployment tag, then every tag fitter made for the deployment's roles and
    /// firewalls (`fitter-<deployment>:...`).
    async fn delete_tags(&self, tag: &str) -> Result<(), ProviderError> {
        let resource = format!("tag {tag}");
        let prefix = format!("{tag}:");
        let all = self
            .client
            .list("/v2/tags", "tags")
            .await
            .map_err(|f| api_error(&resource, f))?;
        for t in all {
            if let Some(name) = t["name"].as_str()
                && name.starts_with(&prefix)
            {
                self.delete_simple(&resource, &format!("/v2/tags/{name}"))
                    .await?;
            }
        }
        self.delete_simple(&resource, &format!("/v2/tags/{tag}"))
            .await?;
        self.tags.lock().await.clear();
        Ok(())
    }

    async fn delete_ssh_key(&self, id: &str) -> Result<(), ProviderError> {
        let resource = format!("ssh key {id}");
        let path = format!("/v2/account/keys/{id}");
        let Some(key) = self.get(&resource, &path).await? else {
            return Ok(());
        };
        // Only a key fitter uploaded for this deployment: one the operator had in the
        // account already was adopted, not created, and stays.
        if key["ssh_key"]["name"] != json!(self.tag) {
            tracing::info!(%resource, "leaving the account key fitter did not upload");
            return Ok(());
        }
        self.delete_simple(&resource, &path).await
    }

    /// Runs one droplet action unless `done` already holds, and waits for it. An action is
    /// a POST: after a lost answer the droplet is read again rather than the action resent.
    async fn droplet_action(
        &self,
        resource: &str,
        id: &str,
        action: &Json,
        done: impl Fn(&Json) -> bool,
    ) -> Result<(), ProviderError> {
        let path = format!("/v2/droplets/{id}");
        let deadline = tokio::time::Instant::now() + self.settings.ready_timeout;
        let mut pause = Duration::from_secs(1);
        loop {
            let droplet = self
                .get(resource, &path)
                .await?
                .map(|d| d["droplet"].clone())
                .ok_or_else(|| unsupported(resource, format!("droplet {id} is gone")))?;
            let locked = droplet["locked"] == json!(true);
            if !locked && done(&droplet) {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                return Err(ProviderError::Timeout {
                    resource: resource.to_string(),
                    seconds: self.settings.ready_timeout.as_secs(),
                    what: format!("droplet {id}: {} did not complete", action["type"]),
                });
            }
            if !locked {
                match self
                    .client
                    .send(
                        Method::POST,
                        &format!("{path}/actions"),
                        Some(action),
                        Call::Create,
                    )
                    .await
                {
                    Ok(a) => {
                        if let Some(action_id) = a.body.pointer("/action/id").and_then(Json::as_u64)
                        {
                            self.wait_action(resource, action_id).await?;
                        }
                        continue;
                    }
                    // Lost answer, or "already has a pending event": look again.
                    Err(Failure::Ambiguous(_)) | Err(Failure::Status { status: 422, .. }) => {}
                    Err(f) => return Err(api_error(resource, f)),
                }
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(5));
        }
    }

    /// Polls an action until it completes; an errored action is an error.
    async fn wait_action(&self, resource: &str, action_id: u64) -> Result<(), ProviderError> {
        let mut pause = Duration::from_millis(500);
        loop {
            tokio::time::sleep(pause).await;
            let action = self
                .get(resource, &format!("/v2/actions/{action_id}"))
                .await?
                .unwrap_or_default();
            match action.pointer("/action/status").and_then(Json::as_str) {
                Some("completed") => return Ok(()),
                Some("errored") => {
                    return Err(unsupported(
                        resource,
                        format!("action {action_id} ({}) errored", action["action"]["type"]),
                    ));
                }
                _ => pause = (pause * 2).min(Duration::from_secs(5)),
            }
        }
    }

    async fn update_node(&self, r: &NodeRequest, id: &str) -> Result<Outputs, ProviderError> {
        let resource = format!("node.{}", r.name);
        let path = format!("/v2/droplets/{id}");
        let read = || async {
            self.get(&resource, &path)
                .await?
                .map(|d| d["droplet"].clone())
                .ok_or_else(|| unsupported(&resource, format!("droplet {id} is gone")))
        };
        let mut droplet = read().await?;
        if droplet["size_slug"] != json!(r.size) {
            // CPU and memory change with the droplet off; the disk is left alone, so the
            // resize can be undone. Each step checks the droplet first, so a run that
            // stopped half-way picks up where it was.
            let size = r.size.clone();
            self.droplet_action(&resource, id, &body::action("power_off"), |d| {
                d["status"] == "off" || d["size_slug"] == json!(size)
            })
            .await?;
            self.droplet_action(&resource, id, &body::resize(&r.size), |d| {
                d["size_slug"] == json!(size)
            })
            .await?;
            self.droplet_action(&resource, id, &body::action("power_on"), |d| {
                d["status"] == "active"
            })
            .await?;
            droplet = read().await?;
        }
        let droplet = &droplet;
        let spec = self.droplet_spec(r)?;
        let have: HashSet<String> = droplet["tags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_str().map(str::to_string))
            .collect();
        let numeric: u64 = id.parse().unwrap_or_default();
        let missing: Vec<String> = spec
            .tags
            .iter()
            .filter(|t| !have.contains(*t))
            .cloned()
            .collect();
        self.ensure_tags(&resource, &missing).await?;
        let prefix = format!("{}:", self.tag);
        let extra = have
            .iter()
            .filter(|t| t.starts_with(&prefix) && !spec.tags.contains(*t));
        let changes = missing
            .iter()
            .map(|t| (Method::POST, t))
            .chain(extra.map(|t| (Method::DELETE, t)));
        for (method, t) in changes {
            // Tagging is a set operation: safe to send again.
            let answer = self
                .client
                .send(
                    method,
                    &format!("/v2/tags/{t}/resources"),
                    Some(&body::tag_resources(&[numeric])),
                    Call::Idempotent,
                )
                .await
                .map_err(|f| api_error(&resource, f))?;
            if answer.status == 404 {
                return Err(api_error(
                    &resource,
                    Failure::Status {
                        status: 404,
                        message: format!("the tag `{t}` does not exist"),
                    },
                ));
            }
        }
        Ok(droplet_ready(droplet).unwrap_or_default())
    }
}

#[async_trait]
impl Provider for DigitalOcean {
    fn kind(&self) -> ProviderKind {
        KIND
    }

    fn predicted_id(&self, request: &Request) -> Option<String> {
        // A tag's id is its name; everything else gets its id from the API.
        match request {
            Request::Tag(r) => Some(r.tag.clone()),
            _ => None,
        }
    }

    async fn create(&self, request: &Request) -> Result<String, ProviderError> {
        let inner = &self.inner;
        match request {
            Request::SshKey(r) => inner.create_ssh_key(r).await,
            Request::Tag(TagRequest { tag, .. }) => {
                inner
                    .ensure_tags(&request.address(), std::slice::from_ref(tag))
                    .await?;
                Ok(tag.clone())
            }
            Request::Network(r) => inner.create_network(r).await,
            Request::Firewall(r) => inner.create_firewall(r).await,
            Request::Node(r) => inner
                .create_nodes(&[r])
                .await
                .pop()
                .unwrap_or_else(|| Err(unsupported(&request.address(), "no create answer"))),
        }
    }

    fn batch_key(&self, request: &Request) -> Option<String> {
        match request {
            Request::Node(r) => self
                .inner
                .droplet_spec(r)
                .ok()
                .map(|spec| format!("{spec:?}")),
            _ => None,
        }
    }

    fn batch_limit(&self) -> usize {
        BATCH
    }

    async fn create_batch(&self, requests: &[Request]) -> Vec<Result<String, ProviderError>> {
        let nodes: Vec<&NodeRequest> = requests
            .iter()
            .filter_map(|r| match r {
                Request::Node(n) => Some(n),
                _ => None,
            })
            .collect();
        if nodes.len() != requests.len() {
            // Only droplets batch; anything else is created one at a time.
            let mut answers = Vec::with_capacity(requests.len());
            for r in requests {
                answers.push(self.create(r).await);
            }
            return answers;
        }
        self.inner.create_nodes(&nodes).await
    }

    async fn wait_ready(&self, request: &Request, id: &str) -> Result<Outputs, ProviderError> {
        let mut outputs = Outputs::new();
        match request {
            Request::Node(_) => return self.inner.wait_droplet(&request.address(), id).await,
            Request::SshKey(r) => {
                if let Some(f) = md5_fingerprint(&r.public_key) {
                    outputs.insert("fingerprint".into(), json!(f));
                }
            }
            Request::Network(_) | Request::Firewall(_) | Request::Tag(_) => {}
        }
        Ok(outputs)
    }

    async fn read(&self, kind: ResourceKind, id: &str) -> Result<Option<Outputs>, ProviderError> {
        let inner = &self.inner;
        let (resource, path, key) = match kind {
            ResourceKind::Node => {
                let resource = format!("droplet {id}");
                if let Ok(numeric) = id.parse::<u64>()
                    && let Some(d) = inner.indexed(&resource, numeric).await?
                {
                    return Ok(Some(droplet_ready(&d).unwrap_or_default()));
                }
                (resource, format!("/v2/droplets/{id}"), "droplet")
            }
            ResourceKind::SshKey => (
                format!("ssh key {id}"),
                format!("/v2/account/keys/{id}"),
                "ssh_key",
            ),
            ResourceKind::Tag => (format!("tag {id}"), format!("/v2/tags/{id}"), "tag"),
            ResourceKind::Network => (format!("VPC {id}"), format!("/v2/vpcs/{id}"), "vpc"),
            ResourceKind::Firewall => (
                format!("firewall {id}"),
                format!("/v2/firewalls/{id}"),
                "firewall",
            ),
        };
        Ok(inner.get(&resource, &path).await?.map(|body| {
            let mut outputs = Outputs::new();
            if kind == ResourceKind::Node
                && let Some(o) = droplet_ready(&body[key])
            {
                outputs = o;
            }
            outputs
        }))
    }

    async fn update(&self, request: &Request, id: &str) -> Result<Outputs, ProviderError> {
        let inner = &self.inner;
        let resource = request.address();
        match request {
            Request::Firewall(r) => {
                let (body, tags) = inner.firewall_body(r);
                inner.ensure_tags(&resource, &tags).await?;
                inner
                    .client
                    .send(
                        Method::PUT,
                        &format!("/v2/firewalls/{id}"),
                        Some(&body),
                        Call::Idempotent,
                    )
                    .await
                    .map_err(|f| api_error(&resource, f))?;
                Ok(Outputs::new())
            }
            Request::Node(r) => inner.update_node(r, id).await,
            Request::Network(r) => {
                let body = body::vpc_update(
                    &cloud_name(&inner.deployment, &r.name),
                    &inner.description(),
                );
                inner
                    .client
                    .send(
                        Method::PUT,
                        &format!("/v2/vpcs/{id}"),
                        Some(&body),
                        Call::Idempotent,
                    )
                    .await
                    .map_err(|f| api_error(&resource, f))?;
                Ok(Outputs::new())
            }
            Request::SshKey(_) | Request::Tag(_) => self.wait_ready(request, id).await,
        }
    }

    async fn delete(&self, kind: ResourceKind, id: &str) -> Result<(), ProviderError> {
        let inner = &self.inner;
        match kind {
            ResourceKind::Node => inner.delete_droplet(id).await,
            ResourceKind::Network => inner.delete_vpc(id).await,
            ResourceKind::Firewall => {
                inner
                    .delete_simple(&format!("firewall {id}"), &format!("/v2/firewalls/{id}"))
                    .await
            }
            ResourceKind::Tag => inner.delete_tags(id).await,
            ResourceKind::SshKey => inner.delete_ssh_key(id).await,
        }
    }

    async fn owned(&self, deployment: &str) -> Result<Vec<Owned>, ProviderError> {
        let inner = &self.inner;
        let resource = format!("deployment {deployment}");
        let tag = format!("fitter-{deployment}");
        let prefix = format!("{}-", tag);
        let mut owned = Vec::new();
        let droplets = inner
            .client
            .list(&format!("/v2/droplets?tag_name={tag}"), "droplets")
            .await
            .map_err(|f| api_error(&resource, f))?;
        for d in droplets {
            if let (Some(name), Some(id)) = (d["name"].as_str(), id_of(&d)) {
                owned.push(Owned {
                    kind: ResourceKind::Node,
                    name: name.to_string(),
                    id,
                });
            }
        }
        let member_prefix = format!("{tag}:");
        for fw in inner
            .client
            .list("/v2/firewalls", "firewalls")
            .await
            .map_err(|f| api_error(&resource, f))?
        {
            let ours = fw["tags"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|t| t.as_str().is_some_and(|t| t.starts_with(&member_prefix)));
            if ours && let (Some(name), Some(id)) = (fw["name"].as_str(), id_of(&fw)) {
                let name = name.strip_prefix(&prefix).unwrap_or(name).to_string();
                owned.push(Owned {
                    kind: ResourceKind::Firewall,
                    name,
                    id,
                });
            }
        }
        let description = format!("fitter deployment {deployment}");
        for vpc in inner
            .client
            .list("/v2/vpcs", "vpcs")
            .await
            .map_err(|f| api_error(&resource, f))?
        {
            if vpc["description"] == json!(description)
                && let (Some(name), Some(id)) = (vpc["name"].as_str(), id_of(&vpc))
            {
                let name = name.strip_prefix(&prefix).unwrap_or(name).to_string();
                owned.push(Owned {
                    kind: ResourceKind::Network,
                    name,
                    id,
                });
            }
        }
        if inner
            .get(&resource, &format!("/v2/tags/{tag}"))
            .await?
            .is_some()
        {
            owned.push(Owned {
                kind: ResourceKind::Tag,
                name: "deployment".into(),
                id: tag.clone(),
            });
        }
        // One call of the ten a minute that listing keys allows.
        for key in inner
            .client
            .list("/v2/account/keys", "ssh_keys")
            .await
            .map_err(|f| api_error(&resource, f))?
        {
            if key["name"] == json!(tag)
                && let Some(id) = id_of(&key)
            {
                owned.push(Owned {
                    kind: ResourceKind::SshKey,
                    name: "operator".into(),
                    id,
                });
            }
        }
        Ok(owned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_md5_of_the_key_blob() {
        // What `ssh-keygen -l -E md5` printed for this key.
        let key =
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICx73qsoahGpr3PKmDxdnFg3Alkxms8z4aoVJI0U0TEE test";
        assert_eq!(
            md5_fingerprint(key).unwrap(),
            "56:a0:fe:79:7b:ea:46:33:1a:ad:d9:ad:e2:90:fd:9e"
        );
        assert!(md5_fingerprint("not a key").is_none());
    }

    #[test]
    fn a_droplet_is_ready_when_active_unlocked_and_public() {
        let mut d = json!({"id": 7, "status": "new", "locked": false, "networks": {"v4": []}});
        assert!(droplet_ready(&d).is_none());
        d["status"] = json!("active");
        assert!(droplet_ready(&d).is_none(), "no public address yet");
        d["networks"]["v4"] = json!([
            {"ip_address": "10.10.0.2", "type": "private"},
            {"ip_address": "127.1.0.2", "type": "public"}
        ]);
        let o = droplet_ready(&d).unwrap();
        assert_eq!(o["public_ip"], "127.1.0.2");
        assert_eq!(o["private_ip"], "10.10.0.2");
        d["locked"] = json!(true);
        assert!(droplet_ready(&d).is_none());
    }
}
