//! Rendering: every node's files, packages and services from the components' Tera
//! templates and a context made of the plan and the nodes' addresses. A pure function of
//! its inputs (but for the secrets it generates once), so its output is snapshot-tested.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;

use crate::components::Catalog;
use crate::fittings::Fittings;

use super::cloud_config::cloud_config;
use super::{Addresses, BootstrapError, NodeConfig, RenderedFile, ServicePlan};

/// Renders every node's files. `secrets` holds the generated values of `{{ x.secret }}`,
/// `{{ uuid.x }}` and `{{ rsa_private.x }}` tokens (`local_key`, the operator's public key,
/// is `{{ rsa_public.local }}`); new ones are added, and the caller keeps them (in the state)
/// so that they are the same on every run.
pub fn render(
    fittings: &Fittings,
    catalog: &Catalog,
    addresses: &BTreeMap<String, Addresses>,
    secrets: &mut BTreeMap<String, String>,
    local_key: Option<&str>,
) -> Result<Vec<NodeConfig>, BootstrapError> {
    let private = |n: &str| {
        addresses
            .get(n)
            .and_then(|a| a.private.clone())
            .unwrap_or_default()
    };
    let has = |n: &crate::fittings::NodeSpec, role: &str| n.roles.iter().any(|r| r.value == role);
    let zk_nodes: Vec<&crate::fittings::NodeSpec> = fittings
        .nodes
        .iter()
        .filter(|n| has(n, "zookeeper"))
        .collect();
    let servers: Vec<serde_json::Value> = zk_nodes
        .iter()
        .enumerate()
        .map(|(i, n)| json!({"id": i + 1, "name": n.name.value, "address": private(&n.name.value)}))
        .collect();
    let zk_hosts = zk_nodes
        .iter()
        .map(|n| format!("{}:2181", private(&n.name.value)))
        .collect::<Vec<_>>()
        .join(",");
    let masters = fittings
        .nodes
        .iter()
        .filter(|n| has(n, "mesos-master"))
        .count();
    let nodes: Vec<serde_json::Value> = fittings
        .nodes
        .iter()
        .map(|n| json!({"name": n.name.value, "private": private(&n.name.value)}))
        .collect();

    let mut tera = tera::Tera::default();
    let mut out = Vec::new();
    for node in &fittings.nodes {
        let name = &node.name.value;
        let myid = zk_nodes
            .iter()
            .position(|z| &z.name.value == name)
            .map(|i| i + 1);
        let mut context = tera::Context::new();
        context.insert("deployment", &fittings.deployment);
        context.insert("nodes", &nodes);
        context.insert(
            "node",
            &json!({
                "name": name,
                "private": private(name),
                "public": addresses.get(name).and_then(|a| a.public.clone()),
                "roles": node.roles.iter().map(|r| r.value.clone()).collect::<Vec<_>>(),
            }),
        );
        context.insert(
            "zookeeper",
            &json!({"servers": servers, "myid": myid, "connect": zk_hosts, "heap_mb": 256}),
        );
        context.insert(
            "mesos",
            &json!({
                "zk": format!("zk://{zk_hosts}/mesos"),
                "quorum": masters / 2 + 1,
                "cluster": fittings.deployment,
            }),
        );
        context.insert(
            "marathon",
            &json!({"zk": format!("zk://{zk_hosts}/marathon")}),
        );

        let mut config = NodeConfig {
            node: name.clone(),
            files: Vec::new(),
            services: Vec::new(),
            disable: Vec::new(),
            packages: Vec::new(),
            apt_sources: BTreeMap::new(),
            run_on_change: Vec::new(),
            health: Vec::new(),
        };
        for component in fittings.components_of(node, catalog) {
            let install = fittings.installs(component);
            let mut paths = Vec::new();
            for spec in &component.files {
                let template = catalog
                    .template(&component.name, &spec.template)
                    .ok_or_else(|| BootstrapError::MissingTemplate {
                        component: component.name.clone(),
                        template: spec.template.clone(),
                    })?;
                let key = format!("{}/{}", component.name, spec.template);
                if tera.get_template_names().all(|n| n != key) {
                    tera.add_raw_template(&key, template).map_err(|error| {
                        BootstrapError::Template {
                            template: key.clone(),
                            error,
                        }
                    })?;
                }
                let items: Vec<(String, String)> = match spec.each.as_deref() {
                    Some("attributes") => node.attributes.clone().into_iter().collect(),
                    Some(other) => {
                        return Err(BootstrapError::UnknownEach {
                            template: key,
                            each: other.to_string(),
                        });
                    }
                    None => vec![(String::new(), String::new())],
                };
                let settings = fittings
                    .components
                    .get(&component.name)
                    .map(|c| c.settings.clone())
                    .unwrap_or_default();
                for (item, value) in items {
                    let mut ctx = context.clone();
                    ctx.insert("settings", &settings);
                    ctx.insert("attribute", &json!({"name": item, "value": value}));
                    let text = tera
                        .render(&key, &ctx)
                        .map_err(|error| BootstrapError::Render {
                            node: name.clone(),
                            template: key.clone(),
                            error,
                        })?;
                    let path = spec.path.replace("{name}", &item);
                    paths.push(path.clone());
                    config.files.retain(|f: &RenderedFile| f.path != path);
                    config.files.push(RenderedFile {
                        component: component.name.clone(),
                        path,
                        mode: spec.mode.clone(),
                        content: format!("{}\n", text.trim_end_matches('\n')),
                    });
                }
            }
            if install {
                config.packages.extend(component.packages.iter().cloned());
                let sources = fittings
                    .components
                    .get(&component.name)
                    .map(|c| c.packages.clone())
                    .unwrap_or_default();
                if !sources.is_empty() {
                    config.apt_sources.insert(component.name.clone(), sources);
                }
                for service in &component.services {
                    config.services.push(ServicePlan {
                        component: component.name.clone(),
                        name: service.clone(),
                        files: paths.clone(),
                    });
                }
                config.health.extend(super::HealthPlan::of(component));
            }
            config.disable.extend(component.disable.iter().cloned());
        }
        if let Some(cc) = &node.cloud_config {
            cloud_config(
                fittings,
                node,
                cc,
                addresses,
                secrets,
                local_key,
                &mut config,
            )?;
        }
        // A role never disables a service another of the node's roles runs.
        let running: BTreeSet<String> = config.services.iter().map(|s| s.name.clone()).collect();
        config.disable.retain(|d| !running.contains(d));
        config.disable.sort();
        config.disable.dedup();
        out.push(config);
    }
    Ok(out)
}
