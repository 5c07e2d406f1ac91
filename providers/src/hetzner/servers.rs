//! Servers: one create each, adoption by name, readiness from one listing by label, deletes
//! waited for until the listing no longer has them.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value as Json, json};

use super::answer::{Server, has_label};
use super::client::{self, Call, Failure};
use super::{
    DEPLOYMENT_LABEL, FIREWALL_LABEL, Inner, api_error, catalogue, query_value, unsupported,
};
use crate::api::{NodeRequest, Outputs, ProviderError};
use crate::poller::{self, Listing, UNSEEN_GRACE, Waited, Watch};

/// `public_ip` and `private_ip` of a running server with a public address; `None` while it
/// is pending. Addresses are `Ipv4Addr`s already: anything else failed when the answer was
/// parsed, naming the call.
pub(super) fn server_ready(server: &Server) -> Option<Outputs> {
    if server.status != "running" {
        return None;
    }
    let mut outputs = Outputs {
        public_ip: Some(server.public_net.ipv4.as_ref()?.ip.into()),
        private_ip: server.private_net.first().map(|n| n.ip.into()),
        ..Outputs::default()
    };
    outputs.extra.insert("server_id".into(), json!(server.id));
    Some(outputs)
}

/// The labels a node's server carries.
pub(super) fn labels(r: &NodeRequest) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    labels.insert(DEPLOYMENT_LABEL.to_string(), r.deployment.clone());
    if let Some(fw) = &r.firewall {
        labels.insert(FIREWALL_LABEL.to_string(), fw.clone());
    }
    for role in &r.roles {
        labels.insert(format!("fitter/role-{role}"), String::new());
    }
    labels
}

impl Listing for Inner {
    type Item = Server;

    fn watch(&self) -> &tokio::sync::Mutex<Watch> {
        &self.watch
    }

    fn first_poll(&self) -> Duration {
        self.settings.first_poll
    }

    fn per_page(&self) -> usize {
        client::PER_PAGE
    }

    async fn list(&self) -> Result<HashMap<u64, Server>, Failure> {
        self.listed_servers().await
    }

    fn ready(server: &Server) -> Option<Outputs> {
        server_ready(server)
    }

    const PROBES: bool = true;

    /// The oldest page of the deployment's servers: they are created first, so they turn
    /// running (or go) first.
    async fn probe(&self) -> Result<HashMap<u64, Server>, Failure> {
        let path = format!(
            "{}&sort=id:asc&page=1&per_page={}",
            self.owned_path("/servers"),
            client::PER_PAGE
        );
        let answer = self
            .client
            .send(Method::GET, &path, None, Call::Idempotent)
            .await?;
        let servers: Vec<Server> = client::parse(&Method::GET, &path, &answer, "servers")?;
        Ok(servers.into_iter().map(|s| (s.id, s)).collect())
    }
}

impl Inner {
    /// Lists the deployment's servers and keeps the listing as the index.
    pub(super) async fn listed_servers(&self) -> Result<HashMap<u64, Server>, Failure> {
        let items: Vec<Server> = self
            .client
            .list_of(&self.owned_path("/servers"), "servers")
            .await?;
        let map: HashMap<u64, Server> = items.into_iter().map(|s| (s.id, s)).collect();
        *self.servers.lock().await = Some(map.clone());
        Ok(map)
    }

    /// Lists the deployment's servers once per run: the first caller lists, the others
    /// (creates sent together) wait for its listing rather than each making their own.
    async fn ensure_index(&self, resource: &str) -> Result<(), ProviderError> {
        let _first = self.first_listing.lock().await;
        if self.servers.lock().await.is_none() {
            self.listed_servers()
                .await
                .map_err(|f| api_error(resource, f))?;
        }
        Ok(())
    }

    /// A server in the index, listing once per run when there is none yet.
    async fn indexed(&self, resource: &str, id: u64) -> Result<Option<Server>, ProviderError> {
        self.ensure_index(resource).await?;
        Ok(self
            .servers
            .lock()
            .await
            .as_ref()
            .and_then(|m| m.get(&id).cloned()))
    }

    /// The server of that name in the project, whoever owns it.
    async fn by_name(&self, resource: &str, name: &str) -> Result<Option<Server>, ProviderError> {
        let found: Vec<Server> = self
            .list(
                resource,
                &format!("/servers?name={}", query_value(name)),
                "servers",
            )
            .await?;
        Ok(found.into_iter().find(|s| s.name == name))
    }

    /// Takes a server found by name: ours (the deployment's label) and not yet taken by
    /// this run, else an error naming it.
    async fn adopt(&self, resource: &str, server: Server) -> Result<u64, ProviderError> {
        if !has_label(&server.labels, DEPLOYMENT_LABEL, &self.deployment) {
            let owner = server
                .labels
                .iter()
                .find(|(k, _)| **k == DEPLOYMENT_LABEL)
                .map_or("no fitter deployment label".to_string(), |(_, v)| {
                    format!("labelled for deployment `{v}`")
                });
            return Err(ProviderError::NotOwned {
                provider: super::KIND,
                resource: format!("{resource} (server `{}`, id {})", server.name, server.id),
                deployment: self.deployment.clone(),
                owner,
            });
        }
        if !self.claimed.lock().await.insert(server.id) {
            return Err(unsupported(
                resource,
                format!("server `{}` is already taken by another node", server.name),
            ));
        }
        tracing::info!(
            resource,
            id = server.id,
            "adopting a server this deployment made"
        );
        if let Some(map) = self.servers.lock().await.as_mut() {
            map.insert(server.id, server.clone());
        }
        Ok(server.id)
    }

    /// After a 409 on the name: the server exists, perhaps not listed yet (the API lists a
    /// new server a little late); look until it shows, for as long as a wait would.
    async fn by_name_until(&self, resource: &str, name: &str) -> Result<Server, ProviderError> {
        let started = tokio::time::Instant::now();
        let mut pause = Duration::from_millis(500);
        loop {
            if let Some(server) = self.by_name(resource, name).await? {
                return Ok(server);
            }
            if started.elapsed() > UNSEEN_GRACE {
                return Err(unsupported(
                    resource,
                    format!(
                        "the name `{name}` is taken in the project (409), yet no server of \
                         that name is listed after {} s",
                        UNSEEN_GRACE.as_secs()
                    ),
                ));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(5));
        }
    }

    fn server_body(&self, r: &NodeRequest, key: Option<u64>, group: Option<u64>) -> Json {
        let host = crate::digitalocean::body::HostKey {
            name: &r.name,
            private_openssh: &r.host_key,
            public_openssh: &r.host_key_public,
        };
        let mut body = json!({
            "name": r.name,
            "server_type": catalogue::server_type(&r.size).unwrap_or(&r.size),
            "image": catalogue::image(&r.image).unwrap_or_else(|| r.image.clone()),
            "location": r.region.as_deref().unwrap_or(catalogue::DEFAULT_LOCATION),
            "labels": labels(r),
            "user_data": crate::digitalocean::body::user_data(
                &r.deployment,
                &r.authorized_keys,
                if r.host_key.is_empty() { &[] } else { std::slice::from_ref(&host) },
            ),
            "public_net": {"enable_ipv4": true, "enable_ipv6": false},
            "start_after_create": true,
        });
        if let Some(key) = key {
            // The spec takes keys by id or name, as strings.
            body["ssh_keys"] = json!([key.to_string()]);
        }
        if let Some(network) = r.network_id.as_deref().and_then(|n| n.parse::<u64>().ok()) {
            body["networks"] = json!([network]);
        }
        if let Some(group) = group {
            body["placement_group"] = json!(group);
        }
        body
    }

    pub(super) async fn create_server(&self, r: &NodeRequest) -> Result<u64, ProviderError> {
        let resource = format!("node.{}", r.name);
        if r.address.is_some() {
            return Err(unsupported(
                &resource,
                "a fixed private address (`glue: primary`) is not supported on Hetzner yet; \
                 the network gives each server its address",
            ));
        }
        if r.network.is_some() && r.network_id.is_none() {
            return Err(unsupported(&resource, "its network has no id yet"));
        }
        // The deployment's servers, listed once per run: a killed run's server is adopted.
        self.ensure_index(&resource).await?;
        let listed = self
            .servers
            .lock()
            .await
            .as_ref()
            .and_then(|m| m.values().find(|s| s.name == r.name.as_str()).cloned());
        if let Some(server) = listed {
            return self.adopt(&resource, server).await;
        }
        let key = self.operator_key(&resource, r).await?;
        let group = if r.spread {
            self.placement_group_id(&resource).await?
        } else {
            None
        };
        let body = self.server_body(r, key, group);
        // At most three sends: a lost answer is looked up, and a second send cannot make a
        // duplicate (the name is unique; the API answers 409, which is looked up too).
        for _ in 0..3 {
            match self
                .client
                .send(Method::POST, "/servers", Some(&body), Call::Create)
                .await
            {
                Ok(answer) => {
                    let server: Server =
                        client::parse(&Method::POST, "/servers", &answer, "server")
                            .map_err(|f| api_error(&resource, f))?;
                    self.claimed.lock().await.insert(server.id);
                    let id = server.id;
                    if let Some(map) = self.servers.lock().await.as_mut() {
                        map.insert(id, server);
                    }
                    return Ok(id);
                }
                Err(Failure::Ambiguous(why)) => {
                    tracing::warn!(resource, %why, "create answer lost; looking the server up");
                    if let Some(server) = self.by_name(&resource, &r.name).await? {
                        return self.adopt(&resource, server).await;
                    }
                }
                Err(Failure::Status {
                    status: 409,
                    message,
                }) if message.contains("uniqueness") => {
                    let server = self.by_name_until(&resource, &r.name).await?;
                    return self.adopt(&resource, server).await;
                }
                Err(failure) => return Err(api_error(&resource, failure)),
            }
        }
        Err(ProviderError::Unreachable {
            provider: super::KIND,
            resource,
            message: "three creates went unanswered and the server is not listed".into(),
        })
    }

    pub(super) async fn wait_server(
        self: &Arc<Self>,
        resource: &str,
        id: &str,
    ) -> Result<Outputs, ProviderError> {
        let number = super::numeric(resource, id)?;
        if let Some(map) = self.servers.lock().await.as_ref()
            && let Some(outputs) = map.get(&number).and_then(server_ready)
        {
            return Ok(outputs);
        }
        let timeout = self.settings.ready_timeout;
        match poller::ready(self, number, timeout).await {
            Waited::Done(outputs) => Ok(outputs),
            Waited::Failed(failure) => Err(api_error(resource, failure)),
            Waited::Unseen => Err(ProviderError::Timeout {
                resource: resource.to_string(),
                seconds: UNSEEN_GRACE.as_secs(),
                what: format!("server {id} is not listed: it does not exist"),
            }),
            Waited::TimedOut => Err(ProviderError::Timeout {
                resource: resource.to_string(),
                seconds: timeout.as_secs(),
                what: format!("server {id} is not running with a public address"),
            }),
        }
    }

    pub(super) async fn read_server(
        &self,
        resource: &str,
        id: u64,
    ) -> Result<Option<Outputs>, ProviderError> {
        if let Some(server) = self.indexed(resource, id).await? {
            return Ok(Some(server_ready(&server).unwrap_or_default()));
        }
        let server: Option<Server> = self
            .get(resource, &format!("/servers/{id}"), "server")
            .await?;
        Ok(server.map(|s| server_ready(&s).unwrap_or_default()))
    }

    /// Labels follow the plan (roles, firewall); a new server type is not done in place.
    pub(super) async fn update_server(
        &self,
        r: &NodeRequest,
        id: u64,
    ) -> Result<Outputs, ProviderError> {
        let resource = format!("node.{}", r.name);
        let server = match self.indexed(&resource, id).await? {
            Some(s) => s,
            None => self
                .get::<Server>(&resource, &format!("/servers/{id}"), "server")
                .await?
                .ok_or_else(|| unsupported(&resource, format!("server {id} is gone")))?,
        };
        let wanted_type = catalogue::server_type(&r.size).unwrap_or(&r.size);
        if server.server_type.name != wanted_type {
            return Err(unsupported(
                &resource,
                format!(
                    "changing a server's type ({} to {}) is not supported on Hetzner yet; \
                     deploy with --replace to make it anew",
                    server.server_type.name, wanted_type
                ),
            ));
        }
        let wanted = labels(r);
        let has: BTreeMap<String, String> = server
            .labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        if has != wanted {
            self.client
                .send(
                    Method::PUT,
                    &format!("/servers/{id}"),
                    Some(&json!({ "labels": wanted })),
                    Call::Idempotent,
                )
                .await
                .map_err(|f| api_error(&resource, f))?;
        }
        Ok(server_ready(&server).unwrap_or_default())
    }

    /// Deletes servers: the API has no bulk form, so one DELETE each, all sent at once (the
    /// client's bucket paces them), then one listing waits for all of them to go.
    pub(super) async fn delete_servers(
        self: &Arc<Self>,
        ids: &[String],
    ) -> Vec<Result<(), ProviderError>> {
        futures::future::join_all(ids.iter().map(|id| async move {
            let resource = format!("server {id}");
            let number = super::numeric(&resource, id)?;
            self.delete_server(&resource, number).await
        }))
        .await
    }

    pub(super) async fn delete_server(
        self: &Arc<Self>,
        resource: &str,
        id: u64,
    ) -> Result<(), ProviderError> {
        self.client
            .send(
                Method::DELETE,
                &format!("/servers/{id}"),
                None,
                Call::Idempotent,
            )
            .await
            .map_err(|f| api_error(resource, f))?;
        let timeout = self.settings.ready_timeout;
        match poller::gone(self, id, timeout).await {
            Waited::Done(()) | Waited::Unseen => {}
            Waited::Failed(failure) => return Err(api_error(resource, failure)),
            Waited::TimedOut => {
                return Err(ProviderError::Timeout {
                    resource: resource.to_string(),
                    seconds: timeout.as_secs(),
                    what: "the server is still listed after its delete".into(),
                });
            }
        }
        self.claimed.lock().await.remove(&id);
        if let Some(map) = self.servers.lock().await.as_mut() {
            map.remove(&id);
        }
        Ok(())
    }
}
