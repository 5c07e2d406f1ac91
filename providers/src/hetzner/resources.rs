//! The deployment's other resources: the operator's key, the placement group, the network
//! and the firewalls. Each is found by name (or the key by fingerprint) before it is made,
//! and after a create whose answer was lost; names are unique per project, so a create sent
//! again cannot make a second one.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::Method;
use serde::de::DeserializeOwned;
use serde_json::{Value as Json, json};

use super::answer::{Action, Firewall, Labels, Network, PlacementGroup, SshKey, has_label};
use super::client::{self, Call, Failure};
use super::{
    DEPLOYMENT_LABEL, FIREWALL_LABEL, Inner, api_error, catalogue, cloud_name, query_value,
};
use crate::api::{
    FirewallRequest, NetworkRequest, NodeRequest, ProviderError, RuleSource, SshKeyRequest,
};

/// A Hetzner rule's protocol and port range: what rules with the same sources merge by.
type RuleKey = (String, Option<(u16, u16)>);

/// How long a delete refused while members detach is tried again.
const DETACH_GRACE: Duration = Duration::from_secs(180);

/// What a find-or-create needs to know of a resource.
pub(super) trait Named: DeserializeOwned {
    fn id(&self) -> u64;
    fn name(&self) -> &str;
    fn labels(&self) -> &Labels;
}

macro_rules! named {
    ($($t:ty),*) => {$(
        impl Named for $t {
            fn id(&self) -> u64 { self.id }
            fn name(&self) -> &str { &self.name }
            fn labels(&self) -> &Labels { &self.labels }
        }
    )*};
}
named!(Network, Firewall, PlacementGroup);

/// `collection` is both the path (`/networks`) and the listing's key; `single` the key of
/// one (`network`).
struct Kind {
    collection: &'static str,
    single: &'static str,
}

const NETWORKS: Kind = Kind {
    collection: "networks",
    single: "network",
};
const FIREWALLS: Kind = Kind {
    collection: "firewalls",
    single: "firewall",
};
const GROUPS: Kind = Kind {
    collection: "placement_groups",
    single: "placement_group",
};

impl Inner {
    fn ours(&self) -> BTreeMap<String, String> {
        BTreeMap::from([(DEPLOYMENT_LABEL.to_string(), self.deployment.clone())])
    }

    async fn find<T: Named>(
        &self,
        resource: &str,
        kind: &Kind,
        name: &str,
    ) -> Result<Option<T>, ProviderError> {
        let found: Vec<T> = self
            .list(
                resource,
                &format!("/{}?name={}", kind.collection, query_value(name)),
                kind.collection,
            )
            .await?;
        Ok(found.into_iter().find(|t| t.name() == name))
    }

    /// The id of a found resource when it is the deployment's, else an error naming it.
    fn take<T: Named>(&self, resource: &str, found: T) -> Result<u64, ProviderError> {
        if has_label(found.labels(), DEPLOYMENT_LABEL, &self.deployment) {
            Ok(found.id())
        } else {
            Err(ProviderError::NotOwned {
                provider: super::KIND,
                resource: format!("{resource} (`{}`, id {})", found.name(), found.id()),
                deployment: self.deployment.clone(),
                owner: "it has no label `fitter/deployment` of this deployment".into(),
            })
        }
    }

    /// Finds the resource by name, else creates it; after a lost answer or a 409 on the
    /// name, finds it again.
    async fn ensure<T: Named>(
        &self,
        resource: &str,
        kind: &Kind,
        name: &str,
        body: &Json,
    ) -> Result<u64, ProviderError> {
        if let Some(found) = self.find::<T>(resource, kind, name).await? {
            return self.take(resource, found);
        }
        let path = format!("/{}", kind.collection);
        for _ in 0..3 {
            match self
                .client
                .send(Method::POST, &path, Some(body), Call::Create)
                .await
            {
                Ok(answer) => {
                    let made: T = client::parse(&Method::POST, &path, &answer, kind.single)
                        .map_err(|f| api_error(resource, f))?;
                    return Ok(made.id());
                }
                Err(Failure::Ambiguous(_)) | Err(Failure::Status { status: 409, .. }) => {
                    if let Some(found) = self.find::<T>(resource, kind, name).await? {
                        return self.take(resource, found);
                    }
                }
                Err(failure) => return Err(api_error(resource, failure)),
            }
        }
        Err(ProviderError::Unreachable {
            provider: super::KIND,
            resource: resource.to_string(),
            message: format!("three creates of `{name}` went unanswered and it is not listed"),
        })
    }

    pub(super) async fn create_ssh_key(&self, r: &SshKeyRequest) -> Result<u64, ProviderError> {
        let resource = format!("ssh_key.{}", r.name);
        if let Some(id) = self.key_by_fingerprint(&resource, &r.public_key).await? {
            return Ok(id);
        }
        let body = json!({
            "name": r.key_name,
            "public_key": r.public_key.trim(),
            "labels": self.ours(),
        });
        let answer = self
            .client
            .send(Method::POST, "/ssh_keys", Some(&body), Call::Create)
            .await;
        let id = match answer {
            Ok(answer) => {
                client::parse::<SshKey>(&Method::POST, "/ssh_keys", &answer, "ssh_key")
                    .map_err(|f| api_error(&resource, f))?
                    .id
            }
            Err(Failure::Ambiguous(_)) | Err(Failure::Status { status: 409, .. }) => {
                match self.key_by_fingerprint(&resource, &r.public_key).await? {
                    Some(id) => id,
                    None => {
                        return Err(super::unsupported(
                            &resource,
                            format!(
                                "the project has a key named `{}` that is not the operator's; \
                                 remove it or use the key it holds",
                                r.key_name
                            ),
                        ));
                    }
                }
            }
            Err(failure) => return Err(api_error(&resource, failure)),
        };
        *self.key_id.lock().await = Some(id);
        Ok(id)
    }

    async fn key_by_fingerprint(
        &self,
        resource: &str,
        public_key: &str,
    ) -> Result<Option<u64>, ProviderError> {
        let Some(fingerprint) = crate::http::md5_fingerprint(public_key) else {
            return Err(super::unsupported(
                resource,
                "the operator's key does not parse",
            ));
        };
        let keys: Vec<SshKey> = self
            .list(
                resource,
                &format!("/ssh_keys?fingerprint={}", query_value(&fingerprint)),
                "ssh_keys",
            )
            .await?;
        let id = keys
            .into_iter()
            .find(|k| *k.fingerprint == *fingerprint)
            .map(|k| k.id);
        if id.is_some() {
            *self.key_id.lock().await = id;
        }
        Ok(id)
    }

    /// The id of the key servers are made with: known from this run, else found by the
    /// fingerprint of the first authorized key.
    pub(super) async fn operator_key(
        &self,
        resource: &str,
        r: &NodeRequest,
    ) -> Result<Option<u64>, ProviderError> {
        if let Some(id) = *self.key_id.lock().await {
            return Ok(Some(id));
        }
        match r.authorized_keys.first() {
            Some(key) => self.key_by_fingerprint(resource, key).await,
            None => Ok(None),
        }
    }

    pub(super) async fn delete_ssh_key(
        &self,
        resource: &str,
        id: u64,
    ) -> Result<(), ProviderError> {
        // Only a key fitter uploaded (it carries the label) goes; one the operator had in
        // the project before stays.
        let key: Option<SshKey> = self
            .get(resource, &format!("/ssh_keys/{id}"), "ssh_key")
            .await?;
        match key {
            Some(k) if has_label(&k.labels, DEPLOYMENT_LABEL, &self.deployment) => {
                self.delete_retrying(resource, &format!("/ssh_keys/{id}"))
                    .await
            }
            _ => Ok(()),
        }
    }

    pub(super) async fn create_placement_group(
        &self,
        resource: &str,
    ) -> Result<u64, ProviderError> {
        let name = format!("fitter-{}", self.deployment);
        let body = json!({"name": name, "type": "spread", "labels": self.ours()});
        let id = self
            .ensure::<PlacementGroup>(resource, &GROUPS, &name, &body)
            .await?;
        *self.placement_group.lock().await = Some(id);
        Ok(id)
    }

    /// The deployment's placement group, for a server of a quorum: known from this run, else
    /// found by name (`None` when there is none).
    pub(super) async fn placement_group_id(
        &self,
        resource: &str,
    ) -> Result<Option<u64>, ProviderError> {
        if let Some(id) = *self.placement_group.lock().await {
            return Ok(Some(id));
        }
        let name = format!("fitter-{}", self.deployment);
        let found = self
            .find::<PlacementGroup>(resource, &GROUPS, &name)
            .await?;
        let id = match found {
            Some(g) => Some(self.take(resource, g)?),
            None => None,
        };
        *self.placement_group.lock().await = id;
        Ok(id)
    }

    pub(super) async fn delete_placement_group(
        &self,
        resource: &str,
        id: u64,
    ) -> Result<(), ProviderError> {
        self.delete_retrying(resource, &format!("/placement_groups/{id}"))
            .await
    }

    pub(super) async fn create_network(&self, r: &NetworkRequest) -> Result<u64, ProviderError> {
        let resource = format!("network.{}", r.name);
        let name = cloud_name(&self.deployment, &r.name);
        let location = r.region.as_deref().unwrap_or(catalogue::DEFAULT_LOCATION);
        let zone = catalogue::network_zone(location).ok_or_else(|| {
            super::unsupported(&resource, format!("unknown location `{location}`"))
        })?;
        let range = r.subnet.to_string();
        let body = json!({
            "name": name,
            "ip_range": range,
            "subnets": [{"type": "cloud", "network_zone": zone, "ip_range": range}],
            "labels": self.ours(),
        });
        self.ensure::<Network>(&resource, &NETWORKS, &name, &body)
            .await
    }

    pub(super) async fn delete_network(
        &self,
        resource: &str,
        id: u64,
    ) -> Result<(), ProviderError> {
        self.delete_retrying(resource, &format!("/networks/{id}"))
            .await
    }

    /// The firewall's rules as Hetzner takes them: inbound, one rule per protocol and port
    /// range with every source it allows. Rules name addresses: a set of the deployment's
    /// nodes is the network's range, so a node allowed by role is allowed by network.
    fn rules(&self, r: &FirewallRequest) -> Result<Vec<Json>, ProviderError> {
        let resource = format!("firewall.{}", r.name);
        let mut merged: BTreeMap<RuleKey, Vec<String>> = BTreeMap::new();
        for rule in &r.rules {
            let sources: Vec<String> = match &rule.source {
                RuleSource::Anywhere => vec!["0.0.0.0/0".into(), "::/0".into()],
                RuleSource::Cidr(c) => vec![c.clone()],
                RuleSource::Group { addresses, .. } => match r.network_range {
                    Some(range) => vec![range.to_string()],
                    None if !addresses.is_empty() => {
                        addresses.iter().map(|a| format!("{a}/32")).collect()
                    }
                    None => {
                        return Err(super::unsupported(
                            &resource,
                            "a rule that allows the deployment's nodes needs them on a \
                             network (`ethernet:`): Hetzner's rules name addresses",
                        ));
                    }
                },
            };
            let ports = match rule.protocol.as_str() {
                "icmp" => None,
                _ => Some(rule.ports.unwrap_or((1, 65535))),
            };
            let entry = merged.entry((rule.protocol.clone(), ports)).or_default();
            for s in sources {
                if !entry.contains(&s) {
                    entry.push(s);
                }
            }
        }
        Ok(merged
            .into_iter()
            .map(|((protocol, ports), sources)| {
                let mut rule = json!({
                    "direction": "in",
                    "protocol": protocol,
                    "source_ips": sources,
                });
                if let Some((from, to)) = ports {
                    rule["port"] = json!(if from == to {
                        from.to_string()
                    } else {
                        format!("{from}-{to}")
                    });
                }
                rule
            })
            .collect())
    }

    /// The selector of the servers a firewall applies to.
    fn members(&self, firewall: &str) -> String {
        format!(
            "{DEPLOYMENT_LABEL}={},{FIREWALL_LABEL}={firewall}",
            self.deployment
        )
    }

    pub(super) async fn create_firewall(&self, r: &FirewallRequest) -> Result<u64, ProviderError> {
        let resource = format!("firewall.{}", r.name);
        let name = cloud_name(&self.deployment, &r.name);
        let body = json!({
            "name": name,
            "labels": self.ours(),
            "rules": self.rules(r)?,
            "apply_to": [{
                "type": "label_selector",
                "label_selector": {"selector": self.members(&r.name)},
            }],
        });
        self.ensure::<Firewall>(&resource, &FIREWALLS, &name, &body)
            .await
    }

    pub(super) async fn set_rules(
        &self,
        resource: &str,
        id: u64,
        r: &FirewallRequest,
    ) -> Result<(), ProviderError> {
        let path = format!("/firewalls/{id}/actions/set_rules");
        let body = json!({ "rules": self.rules(r)? });
        let answer = self
            .client
            .send(Method::POST, &path, Some(&body), Call::Idempotent)
            .await
            .map_err(|f| api_error(resource, f))?;
        let actions: Vec<Action> = client::parse(&Method::POST, &path, &answer, "actions")
            .map_err(|f| api_error(resource, f))?;
        self.wait_actions(resource, &actions).await
    }

    /// Removes the firewall from what it applies to, waits for that, then deletes it.
    pub(super) async fn delete_firewall(
        &self,
        resource: &str,
        id: u64,
    ) -> Result<(), ProviderError> {
        let firewall: Option<Firewall> = self
            .get(resource, &format!("/firewalls/{id}"), "firewall")
            .await?;
        let Some(firewall) = firewall else {
            return Ok(());
        };
        if !firewall.applied_to.is_empty() {
            let remove: Vec<Json> = firewall
                .applied_to
                .iter()
                .map(|a| match (&a.server, &a.label_selector) {
                    (Some(s), _) => json!({"type": "server", "server": {"id": s.id}}),
                    (None, Some(l)) => json!({
                        "type": "label_selector",
                        "label_selector": {"selector": &*l.selector},
                    }),
                    (None, None) => json!({"type": &*a.kind}),
                })
                .collect();
            let path = format!("/firewalls/{id}/actions/remove_from_resources");
            let answer = self
                .client
                .send(
                    Method::POST,
                    &path,
                    Some(&json!({ "remove_from": remove })),
                    Call::Idempotent,
                )
                .await;
            match answer {
                Ok(answer) => {
                    let actions: Vec<Action> =
                        client::parse(&Method::POST, &path, &answer, "actions")
                            .map_err(|f| api_error(resource, f))?;
                    self.wait_actions(resource, &actions).await?;
                }
                // A resource it names is gone already (its server deleted): the delete
                // below says whether the firewall still applies to anything.
                Err(Failure::Status { status: 404, .. }) => {}
                Err(failure) => return Err(api_error(resource, failure)),
            }
        }
        self.delete_retrying(resource, &format!("/firewalls/{id}"))
            .await
    }

    /// Waits until every action has ended, reading them many at a time.
    async fn wait_actions(&self, resource: &str, actions: &[Action]) -> Result<(), ProviderError> {
        let mut pending: Vec<u64> = actions
            .iter()
            .filter(|a| a.status == "running")
            .map(|a| a.id)
            .collect();
        let started = tokio::time::Instant::now();
        let mut pause = Duration::from_millis(500);
        while !pending.is_empty() {
            if started.elapsed() > self.settings.ready_timeout {
                return Err(ProviderError::Timeout {
                    resource: resource.to_string(),
                    seconds: self.settings.ready_timeout.as_secs(),
                    what: format!("actions {pending:?} are still running"),
                });
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(5));
            let ids: Vec<String> = pending.iter().map(|id| format!("id={id}")).collect();
            let read: Vec<Action> = self
                .list(resource, &format!("/actions?{}", ids.join("&")), "actions")
                .await?;
            for action in &read {
                if action.status == "error" {
                    let why = action.error.as_ref().map_or("no message".to_string(), |e| {
                        format!("{} ({})", e.message, e.code)
                    });
                    return Err(ProviderError::Api {
                        provider: super::KIND,
                        resource: resource.to_string(),
                        status: 200,
                        message: format!("action {} `{}` failed: {why}", action.id, action.command),
                    });
                }
            }
            if let Some(unknown) = pending.iter().find(|id| !read.iter().any(|a| a.id == **id)) {
                return Err(super::unsupported(
                    resource,
                    format!("the API does not know action {unknown}, which it gave"),
                ));
            }
            pending.retain(|id| read.iter().any(|a| a.id == *id && a.status == "running"));
        }
        Ok(())
    }

    /// Deletes, retrying while the API refuses because something still uses the resource
    /// (a network's servers detaching, a group's servers going); 404 is gone already.
    async fn delete_retrying(&self, resource: &str, path: &str) -> Result<(), ProviderError> {
        let started = tokio::time::Instant::now();
        let mut pause = Duration::from_millis(500);
        loop {
            match self
                .client
                .send(Method::DELETE, path, None, Call::Idempotent)
                .await
            {
                Ok(_) => return Ok(()),
                Err(Failure::Status { status, message })
                    if matches!(status, 409 | 412 | 422 | 423)
                        && started.elapsed() < DETACH_GRACE =>
                {
                    tracing::debug!(resource, status, %message, "still in use; trying again");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
                Err(failure) => return Err(api_error(resource, failure)),
            }
        }
    }
}
