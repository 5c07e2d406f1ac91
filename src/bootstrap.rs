//! Bootstrap: turns machines into a cluster over SSH.
//!
//! [`render`] computes, for every node, the files of its components (`common`, then its
//! roles in the order of their `after:`), from the Tera templates under `templates/` and
//! a context made of the plan and the nodes' addresses: the ZooKeeper servers and this
//! node's `myid`, the Mesos quorum (floor(masters/2)+1), the `zk://` URLs, agent attributes.
//! It is a pure function, so its output is snapshot-tested.
//!
//! [`apply`] opens one SSH session per node (host key pinned) and, in as few round trips as
//! it can: reads the checksums of every file the node should have; uploads only those that
//! differ (written to a temporary file, then renamed); restarts a service only when one of
//! its files changed (or starts it when it is not running); stops and disables the services
//! a role must not run. A second run uploads nothing and restarts nothing, and says so.
//! Components with `install: false` (Mesos and Marathon, which no longer have a package
//! repository) get their files and no service.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::components::{COMMON, Catalog};
use crate::fittings::Fittings;
use crate::report::{Activity, Finish, Reporter};
use crate::ssh::{OperatorKey, Session};

/// A node's addresses, from the state.
#[derive(Debug, Clone, Default)]
pub struct Addresses {
    pub private: Option<String>,
    pub public: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RenderedFile {
    pub component: String,
    pub path: String,
    pub mode: String,
    pub content: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServicePlan {
    pub component: String,
    pub name: String,
    /// Paths whose change restarts it.
    pub files: Vec<String>,
}

/// Everything one node should look like.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeConfig {
    pub node: String,
    pub files: Vec<RenderedFile>,
    /// Services to run (components with `install: true`).
    pub services: Vec<ServicePlan>,
    /// Services to stop and disable.
    pub disable: Vec<String>,
    /// Packages to install when missing.
    pub packages: Vec<String>,
    /// APT sources the plan gives for installed components, by component.
    pub apt_sources: BTreeMap<String, Vec<String>>,
    /// Scripts (among `files`) run whenever they changed: the node's cloud-config.
    pub run_on_change: Vec<String>,
}

/// Where the node's cloud-config becomes a script, run when it changes.
pub const CLOUD_CONFIG_SCRIPT: &str = "/var/lib/fitter/cloud-config.sh";

/// The files fitter placed on a node, one path a line: what a later run may remove when
/// the plan no longer asks for them. Nothing else on the node is ever deleted.
pub const MANIFEST: &str = "/var/lib/fitter/manifest";

/// Renders every node's files. `secrets` holds the generated values of `{{ x.secret }}`
/// and `{{ uuid.x }}` tokens; new ones are added, and the caller keeps them (in the state)
/// so that they are the same on every run.
pub fn render(
    fittings: &Fittings,
    catalog: &Catalog,
    addresses: &BTreeMap<String, Addresses>,
    secrets: &mut BTreeMap<String, String>,
) -> Result<Vec<NodeConfig>, String> {
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
        };
        let mut wanted: BTreeSet<&str> = std::iter::once(COMMON)
            .chain(node.roles.iter().map(|r| r.value.as_str()))
            .collect();
        if fittings.harden_ssh {
            wanted.insert("sshd");
        }
        for component in catalog.ordered() {
            if !wanted.contains(component.name.as_str()) {
                continue;
            }
            let install = fittings
                .components
                .get(&component.name)
                .and_then(|c| c.install)
                .unwrap_or(component.install);
            let mut paths = Vec::new();
            for spec in &component.files {
                let template = catalog
                    .template(&component.name, &spec.template)
                    .ok_or_else(|| {
                        format!("templates/{}/{} is missing", component.name, spec.template)
                    })?;
                let key = format!("{}/{}", component.name, spec.template);
                if tera.get_template_names().all(|n| n != key) {
                    tera.add_raw_template(&key, template)
                        .map_err(|e| format!("templates/{key}: {}", describe(&e)))?;
                }
                let items: Vec<(String, String)> = match spec.each.as_deref() {
                    Some("attributes") => node.attributes.clone().into_iter().collect(),
                    Some(other) => return Err(format!("templates/{key}: unknown `each: {other}`")),
                    None => vec![(String::new(), String::new())],
                };
                for (item, value) in items {
                    let mut ctx = context.clone();
                    ctx.insert("attribute", &json!({"name": item, "value": value}));
                    let text = tera.render(&key, &ctx).map_err(|e| {
                        format!("rendering templates/{key} for `{name}`: {}", describe(&e))
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
            }
            config.disable.extend(component.disable.iter().cloned());
        }
        if let Some(cc) = &node.cloud_config {
            cloud_config(fittings, node, cc, addresses, secrets, &mut config)?;
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

/// plumbery's run-time tokens, rendered for `node`.
fn resolve_token(
    expr: &str,
    fittings: &Fittings,
    node: &crate::fittings::NodeSpec,
    addresses: &BTreeMap<String, Addresses>,
    secrets: &mut BTreeMap<String, String>,
) -> Option<String> {
    use crate::fittings::tokens::{Meaning, classify};
    let address = |name: &str, attribute: &str| -> Option<String> {
        let a = addresses.get(name)?;
        match attribute {
            "private" | "private_host" => a.private.clone(),
            "public" => a.public.clone().or_else(|| Some(String::new())),
            "name" => Some(name.to_string()),
            "id" => Some(name.to_string()),
            _ => None,
        }
    };
    let is_node = |n: &str| fittings.nodes.iter().any(|x| x.name.value == n);
    match classify(expr, is_node) {
        Meaning::SelfAttribute(attribute) => address(&node.name.value, attribute),
        Meaning::Peer {
            node: peer,
            attribute,
        } => address(peer, attribute),
        Meaning::Generated => {
            let parts: Vec<&str> = expr.split('.').collect();
            match parts.as_slice() {
                ["environment", var] => std::env::var(var).ok(),
                ["location", "id"] => Some(fittings.locations[node.location].id.value.clone()),
                ["uuid", name] => Some(
                    secrets
                        .entry(format!("uuid.{name}"))
                        .or_insert_with(crate::state::random_uuid)
                        .clone(),
                ),
                [name, "secret", hash @ ..] | ["secret", name, hash @ ..] => {
                    let value = secrets
                        .entry(format!("secret.{name}"))
                        .or_insert_with(random_secret)
                        .clone();
                    match hash {
                        [] => Some(value),
                        ["sha256"] => Some(sha256(&value)),
                        _ => None,
                    }
                }
                _ => None,
            }
        }
        Meaning::UnknownSelfAttribute(_) | Meaning::Verbatim => None,
    }
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    // Without the OS's randomness there is no secret to make: fail loudly rather than weakly.
    getrandom::fill(&mut b).expect("the operating system provides randomness");
    b
}

/// 9 characters, as plumbery's secrets.
fn random_secret() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    random_bytes::<9>()
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

/// Renders every string of a YAML tree through the tokens.
fn render_tokens(
    node: &crate::yaml::Node,
    resolve: &mut dyn FnMut(&str) -> Option<String>,
) -> serde_json::Value {
    use crate::yaml::Value;
    match &node.value {
        Value::Str(s) => {
            serde_json::Value::String(crate::fittings::tokens::render(s, &mut *resolve))
        }
        Value::Seq(items) => {
            serde_json::Value::Array(items.iter().map(|i| render_tokens(i, resolve)).collect())
        }
        Value::Map(entries) => serde_json::Value::Object(
            entries
                .iter()
                .map(|(k, v)| {
                    (
                        k.scalar_text().unwrap_or_default(),
                        render_tokens(v, resolve),
                    )
                })
                .collect(),
        ),
        _ => node.to_json(),
    }
}

/// A node's cloud-config: `write_files` become files; `hostname`, `packages`, `users`,
/// `ssh_authorized_keys`, `bootcmd` and `runcmd` become one script that runs when it changes
/// (cloud-init runs them once per instance; fitter once per change of what they say).
fn cloud_config(
    fittings: &Fittings,
    node: &crate::fittings::NodeSpec,
    cc: &crate::yaml::Node,
    addresses: &BTreeMap<String, Addresses>,
    secrets: &mut BTreeMap<String, String>,
    config: &mut NodeConfig,
) -> Result<(), String> {
    let mut resolve = |expr: &str| resolve_token(expr, fittings, node, addresses, secrets);
    let cc = render_tokens(cc, &mut resolve);
    let name = &node.name.value;
    let text = |v: &serde_json::Value| -> String {
        match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    };
    for f in cc["write_files"].as_array().into_iter().flatten() {
        let path = f["path"]
            .as_str()
            .ok_or_else(|| format!("`{name}`: a write_files entry has no path"))?;
        let mut content = text(&f["content"]);
        if matches!(f["encoding"].as_str(), Some("b64" | "base64")) {
            use base64::Engine as _;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(content.trim())
                .map_err(|e| format!("`{name}`: write_files {path}: {e}"))?;
            content = String::from_utf8(bytes)
                .map_err(|_| format!("`{name}`: write_files {path} is not text"))?;
        } else if content.is_empty() && f["content"].is_null() {
            content = String::new();
        }
        config.files.retain(|x| x.path != path);
        config.files.push(RenderedFile {
            component: "cloud-config".into(),
            path: path.to_string(),
            mode: f["permissions"]
                .as_str()
                .unwrap_or("0644")
                .trim_start_matches("0o")
                .to_string(),
            content,
        });
    }
    let mut script = String::from(
        "#!/bin/sh\n# written by fitter: the node's cloud-config, run when it changes\nset -e\n",
    );
    for cmd in cc["bootcmd"].as_array().into_iter().flatten() {
        script.push_str(&command_line(cmd));
    }
    if let Some(h) = cc["hostname"].as_str() {
        let _ = writeln!(script, "echo {0} > /etc/hostname; hostname {0}", quote(h));
    }
    let packages: Vec<String> = cc["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .map(text)
        .collect();
    if !packages.is_empty() {
        let list = packages
            .iter()
            .map(|p| quote(p))
            .collect::<Vec<_>>()
            .join(" ");
        let _ = writeln!(
            script,
            "missing=$(for p in {list}; do dpkg-query -W -f='${{Status}}' \"$p\" 2>/dev/null | grep -q 'ok installed' || echo \"$p\"; done)\n\
             [ -z \"$missing\" ] || {{ DEBIAN_FRONTEND=noninteractive apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y $missing; }}"
        );
    }
    let authorize = |script: &mut String, home: &str, user: &str, key: &str| {
        let _ = writeln!(
            script,
            "mkdir -p {home}/.ssh; touch {home}/.ssh/authorized_keys; grep -qxF {k} {home}/.ssh/authorized_keys || echo {k} >> {home}/.ssh/authorized_keys; chown -R {user}: {home}/.ssh; chmod 700 {home}/.ssh; chmod 600 {home}/.ssh/authorized_keys",
            k = quote(key)
        );
    };
    for key in cc["ssh_authorized_keys"].as_array().into_iter().flatten() {
        authorize(&mut script, "/root", "root", &text(key));
    }
    for user in cc["users"].as_array().into_iter().flatten() {
        let Some(login) = user["name"].as_str() else {
            continue;
        }; // `default`: nothing to do
        let shell = user["shell"].as_str().unwrap_or("/bin/bash");
        let _ = writeln!(
            script,
            "id -u {0} >/dev/null 2>&1 || useradd -m -s {1} {0}",
            quote(login),
            quote(shell)
        );
        if let Some(groups) = user["groups"].as_str() {
            let _ = writeln!(script, "usermod -aG {} {}", quote(groups), quote(login));
        }
        if let Some(sudo) = user["sudo"].as_str() {
            let _ = writeln!(
                script,
                "echo {} > /etc/sudoers.d/90-fitter-{login}; chmod 440 /etc/sudoers.d/90-fitter-{login}",
                quote(&format!("{login} {sudo}"))
            );
        }
        let home = format!("$(getent passwd {} | cut -d: -f6)", quote(login));
        for key in user["ssh_authorized_keys"].as_array().into_iter().flatten() {
            authorize(&mut script, &home, login, &text(key));
        }
    }
    for cmd in cc["runcmd"].as_array().into_iter().flatten() {
        script.push_str(&command_line(cmd));
    }
    config.files.push(RenderedFile {
        component: "cloud-config".into(),
        path: CLOUD_CONFIG_SCRIPT.into(),
        mode: "0700".into(),
        content: script,
    });
    config.run_on_change.push(CLOUD_CONFIG_SCRIPT.into());
    Ok(())
}

/// A runcmd entry: a string is a shell line; a list is an argv.
fn command_line(cmd: &serde_json::Value) -> String {
    match cmd {
        serde_json::Value::Array(argv) => {
            let words: Vec<String> = argv
                .iter()
                .map(|a| quote(a.as_str().unwrap_or("")))
                .collect();
            format!("{}\n", words.join(" "))
        }
        serde_json::Value::String(s) => format!("{s}\n"),
        other => format!("{other}\n"),
    }
}

/// Tera's errors keep their cause in a chain; show all of it.
fn describe(e: &tera::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let _ = write!(text, ": {s}");
        source = s.source();
    }
    text
}

fn sha256(content: &str) -> String {
    let digest = Sha256::digest(content.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// What bootstrap did on one node.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NodeReport {
    pub node: String,
    pub uploaded: Vec<String>,
    /// Files fitter had placed that the plan no longer asks for.
    pub removed: Vec<String>,
    pub restarted: Vec<String>,
    pub error: Option<String>,
}

/// How to reach a node.
pub struct Target {
    pub config: NodeConfig,
    pub address: SocketAddr,
    pub host_key: String,
}

/// Brings every node in line with its config, `parallelism` nodes at a time. A node that
/// fails (unreachable, wrong host key, a command failing) fails alone.
pub async fn apply(
    targets: Vec<Target>,
    operator: &OperatorKey,
    parallelism: usize,
    patience: Duration,
    reporter: &dyn Reporter,
) -> Vec<NodeReport> {
    use futures::StreamExt as _;
    futures::stream::iter(targets)
        .map(|t| async move {
            let node = t.config.node.clone();
            let subject = format!("node.{node}");
            reporter.started(&subject, Activity::Bootstrapping);
            match apply_node(&t, operator, patience, &|detail| {
                reporter.step(&subject, detail)
            })
            .await
            {
                Ok(report) => {
                    let unchanged = report.uploaded.is_empty()
                        && report.restarted.is_empty()
                        && report.removed.is_empty();
                    reporter.finished(
                        &subject,
                        if unchanged {
                            Finish::Unchanged
                        } else {
                            Finish::Done { id: None }
                        },
                    );
                    report
                }
                Err(e) => {
                    reporter.finished(&subject, Finish::Failed { error: &e });
                    NodeReport {
                        node,
                        error: Some(e),
                        ..NodeReport::default()
                    }
                }
            }
        })
        .buffered(parallelism.max(1))
        .collect()
        .await
}

/// Shell-quotes a word.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// What a node's bootstrap is doing now, for the reporter.
type Step<'a> = &'a (dyn Fn(&str) + Send + Sync);

async fn apply_node(
    t: &Target,
    operator: &OperatorKey,
    patience: Duration,
    step: Step<'_>,
) -> Result<NodeReport, String> {
    let c = &t.config;
    step(&format!("connecting to {}", t.address));
    let session = Session::connect(&c.node, t.address, &t.host_key, operator, patience)
        .await
        .map_err(|e| e.to_string())?;
    step("comparing files and services");
    let result = apply_session(&session, c, step).await;
    session.close().await;
    result
}

async fn apply_session(
    session: &Session,
    c: &NodeConfig,
    step: Step<'_>,
) -> Result<NodeReport, String> {
    let mut report = NodeReport {
        node: c.node.clone(),
        ..NodeReport::default()
    };
    // 1. One round trip for every checksum and every service's state.
    let mut probe = String::from("set +e\n");
    for f in &c.files {
        let _ = writeln!(
            probe,
            "printf 'F %s\\n' \"$(sha256sum {} 2>/dev/null | cut -d' ' -f1)\"",
            quote(&f.path)
        );
    }
    for s in &c.services {
        let _ = writeln!(
            probe,
            "printf 'S %s\\n' \"$(systemctl is-active {} 2>/dev/null)\"",
            quote(&s.name)
        );
    }
    let _ = writeln!(
        probe,
        "sed 's/^/M /' {} 2>/dev/null || true",
        quote(MANIFEST)
    );
    let out = session.run(&probe).await.map_err(|e| e.to_string())?;
    let mut lines = out.stdout.lines();
    let mut changed = BTreeSet::new();
    for f in &c.files {
        let remote = lines
            .next()
            .and_then(|l| l.strip_prefix("F "))
            .unwrap_or("");
        if remote.trim() != sha256(&f.content) {
            changed.insert(f.path.clone());
        }
    }
    let mut inactive = BTreeSet::new();
    for s in &c.services {
        let state = lines
            .next()
            .and_then(|l| l.strip_prefix("S "))
            .unwrap_or("");
        if state.trim() != "active" {
            inactive.insert(s.name.clone());
        }
    }
    let placed: BTreeSet<String> = lines
        .filter_map(|l| l.strip_prefix("M "))
        .map(str::to_string)
        .collect();
    let wanted: BTreeSet<String> = c.files.iter().map(|f| f.path.clone()).collect();
    // 2. Packages that are missing, from the plan's APT sources when it gives some.
    if !c.packages.is_empty() {
        let list = c
            .packages
            .iter()
            .map(|p| quote(p))
            .collect::<Vec<_>>()
            .join(" ");
        let mut sources = String::new();
        for (component, lines) in &c.apt_sources {
            let quoted: Vec<String> = lines.iter().map(|l| quote(l)).collect();
            let _ = write!(
                sources,
                "printf '%s\\n' {} > /etc/apt/sources.list.d/fitter-{component}.list; ",
                quoted.join(" ")
            );
        }
        step("installing missing packages");
        let cmd = format!(
            "missing=$(for p in {list}; do dpkg-query -W -f='${{Status}}' \"$p\" 2>/dev/null | grep -q 'ok installed' || echo \"$p\"; done); \
             [ -z \"$missing\" ] || {{ {sources}DEBIAN_FRONTEND=noninteractive apt-get update -q && \
             DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing; }}"
        );
        let out = session.run(&cmd).await.map_err(|e| e.to_string())?;
        if out.status != 0 {
            return Err(format!(
                "`{}`: installing packages failed: {}",
                c.node,
                out.stderr.lines().last().unwrap_or("")
            ));
        }
    }
    // 3. Uploads, all in one round trip: a script that writes each file beside its place
    //    (base64, so any content is safe) and renames it over the old one.
    let uploads: Vec<&RenderedFile> = c
        .files
        .iter()
        .filter(|f| changed.contains(&f.path))
        .collect();
    if !uploads.is_empty() {
        use base64::Engine as _;
        let mut script = String::from("set -e\n");
        for f in &uploads {
            let path = quote(&f.path);
            let tmp = quote(&format!("{}.fitter-new", f.path));
            let data = base64::engine::general_purpose::STANDARD.encode(f.content.as_bytes());
            let _ = writeln!(
                script,
                "mkdir -p \"$(dirname {path})\"\nbase64 -d > {tmp} <<'FITTER_EOF'\n{data}\nFITTER_EOF\nchmod {} {tmp}; chown root:root {tmp}; mv -f {tmp} {path}",
                f.mode
            );
        }
        step(&format!(
            "uploading {} file{}",
            uploads.len(),
            crate::diagnostics::plural(uploads.len())
        ));
        run_script(session, &c.node, &script, "writing files").await?;
        report
            .uploaded
            .extend(uploads.iter().map(|f| f.path.clone()));
    }
    // Files placed by an earlier run that the plan no longer asks for go, and the manifest
    // follows the plan (one round trip, only when the set of files changed).
    if placed != wanted {
        let gone: Vec<&String> = placed.difference(&wanted).collect();
        let mut script = String::from("set -e\n");
        for path in &gone {
            let _ = writeln!(script, "rm -f -- {}", quote(path));
        }
        let list: Vec<String> = wanted.iter().map(|p| quote(p)).collect();
        let _ = writeln!(
            script,
            "mkdir -p \"$(dirname {m})\"\nprintf '%s\\n' {} > {m}.fitter-new\nmv -f {m}.fitter-new {m}",
            list.join(" "),
            m = quote(MANIFEST)
        );
        run_script(session, &c.node, &script, "removing files").await?;
        report.removed.extend(gone.into_iter().cloned());
    }
    // The cloud-config script, when it changed.
    for script in c.run_on_change.iter().filter(|p| changed.contains(*p)) {
        let out = session
            .run(&format!("sh {}", quote(script)))
            .await
            .map_err(|e| e.to_string())?;
        if out.status != 0 {
            let tail: Vec<&str> = out.stderr.lines().rev().take(3).collect();
            return Err(format!(
                "`{}`: its cloud-config failed (exit {}): {}",
                c.node,
                out.status,
                tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
            ));
        }
    }
    // 4. Services, in one round trip: restart on change, start when down, enable always.
    let restart: Vec<&ServicePlan> = c
        .services
        .iter()
        .filter(|s| inactive.contains(&s.name) || s.files.iter().any(|p| changed.contains(p)))
        .collect();
    if !restart.is_empty() {
        let mut script = String::from("set -e\n");
        for s in &restart {
            let _ = writeln!(
                script,
                "systemctl enable {0} >/dev/null 2>&1 || true; systemctl restart {0}",
                quote(&s.name)
            );
        }
        let names: Vec<&str> = restart.iter().map(|s| s.name.as_str()).collect();
        step(&format!("restarting {}", names.join(", ")));
        run_script(session, &c.node, &script, "restarting services").await?;
        report
            .restarted
            .extend(restart.iter().map(|s| s.name.clone()));
    }
    if !c.disable.is_empty() {
        let list = c
            .disable
            .iter()
            .map(|d| quote(d))
            .collect::<Vec<_>>()
            .join(" ");
        let cmd = format!(
            "for s in {list}; do if systemctl cat \"$s\" >/dev/null 2>&1; then \
             systemctl is-enabled -q \"$s\" 2>/dev/null && systemctl disable -q \"$s\"; \
             systemctl is-active -q \"$s\" && systemctl stop \"$s\"; fi; done; true"
        );
        session.run(&cmd).await.map_err(|e| e.to_string())?;
    }
    Ok(report)
}

/// Runs a shell script on the node in one round trip; `what` names it in the error.
async fn run_script(session: &Session, node: &str, script: &str, what: &str) -> Result<(), String> {
    let out = session
        .run_with_input("sh -s", script.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    if out.status != 0 {
        return Err(format!("`{node}`: {what} failed: {}", out.stderr.trim()));
    }
    Ok(())
}

/// The summary lines of a bootstrap run.
pub fn render_report(reports: &[NodeReport]) -> String {
    let mut out = String::new();
    let (mut files, mut removed, mut restarts) = (0, 0, 0);
    for r in reports {
        match &r.error {
            Some(e) => {
                let _ = writeln!(out, "bootstrap {}: failed: {e}", r.node);
            }
            None if r.uploaded.is_empty() && r.restarted.is_empty() && r.removed.is_empty() => {
                let _ = writeln!(out, "bootstrap {}: no change", r.node);
            }
            None => {
                let removed = match r.removed.len() {
                    0 => String::new(),
                    n => format!(", {n} file{} removed", crate::diagnostics::plural(n)),
                };
                let _ = writeln!(
                    out,
                    "bootstrap {}: {} file{} uploaded{removed}{}{}",
                    r.node,
                    r.uploaded.len(),
                    crate::diagnostics::plural(r.uploaded.len()),
                    if r.restarted.is_empty() {
                        ""
                    } else {
                        ", restarted "
                    },
                    r.restarted.join(", ")
                );
            }
        }
        files += r.uploaded.len();
        removed += r.removed.len();
        restarts += r.restarted.len();
    }
    let removed = match removed {
        0 => String::new(),
        n => format!(", {n} file{} removed", crate::diagnostics::plural(n)),
    };
    let _ = writeln!(
        out,
        "Bootstrap: {files} file{} uploaded{removed}, {restarts} service{} restarted, {} node{} failed.",
        crate::diagnostics::plural(files),
        crate::diagnostics::plural(restarts),
        reports.iter().filter(|r| r.error.is_some()).count(),
        crate::diagnostics::plural(reports.iter().filter(|r| r.error.is_some()).count()),
    );
    out
}
