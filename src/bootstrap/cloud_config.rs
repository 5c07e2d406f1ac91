//! A node's cloud-config applied over SSH: its run-time tokens rendered (addresses of the
//! node and its peers, generated secrets and uuids), `write_files` as files, the other keys
//! the loader accepts ([`CLOUD_CONFIG_KEYS`](crate::fittings::CLOUD_CONFIG_KEYS)) as one
//! script run when it changes.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::fittings::Fittings;
use crate::fittings::cloud_config::{check_file_path, check_permissions, check_user_name};

use super::{
    Addresses, BootstrapError, CLOUD_CONFIG_SCRIPT, NodeConfig, RenderedFile, ServicePlan, quote,
    sha256,
};

/// plumbery's run-time tokens, rendered for `node`.
pub(super) fn resolve_token(
    expr: &str,
    fittings: &Fittings,
    node: &crate::fittings::NodeSpec,
    addresses: &BTreeMap<String, Addresses>,
    secrets: &mut BTreeMap<String, String>,
    local_key: Option<&str>,
) -> Option<String> {
    use crate::fittings::tokens::{Meaning, classify};
    let address = |name: &str, attribute: &str| -> Option<String> {
        // No provider fitter drives gives its nodes IPv6 addresses yet (LXD's bridges have
        // none; DigitalOcean's droplets are made without): empty, like a missing public
        // address, rather than the token left in a configuration file.
        if attribute == "ipv6" {
            return Some(String::new());
        }
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
                // The operator's own public key: plumbery's "the local `id_rsa.pub`".
                ["rsa_public", "local"] => local_key.map(str::to_string),
                // A key pair made once per name, both halves kept in the state.
                [half @ ("rsa_private" | "rsa_public"), name] => {
                    let (private, public) =
                        (format!("rsa_private.{name}"), format!("rsa_public.{name}"));
                    if !secrets.contains_key(&private) || !secrets.contains_key(&public) {
                        match crate::ssh::generate_rsa_pair() {
                            Ok((p, q)) => {
                                secrets.insert(private.clone(), p);
                                secrets.insert(public.clone(), q);
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "no RSA key pair for `{expr}`");
                                return None;
                            }
                        }
                    }
                    secrets.get(&format!("{half}.{name}")).cloned()
                }
                [name, "secret", hash @ ..] | ["secret", name, hash @ ..] => {
                    let value = secrets
                        .entry(format!("secret.{name}"))
                        .or_insert_with(random_secret)
                        .clone();
                    match hash {
                        [] => Some(value),
                        ["md5"] => Some(hex_digest::<md5::Md5>(&value)),
                        ["sha1"] => Some(hex_digest::<sha1::Sha1>(&value)),
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

/// Every form a secret may take in a rendered file: itself and the digests its tokens give
/// (`{{ x.secret.md5 }}` is the credential itself where a service checks md5 sums), for
/// what must never print them.
pub fn secret_forms(value: &str) -> [String; 4] {
    [
        value.to_string(),
        hex_digest::<md5::Md5>(value),
        hex_digest::<sha1::Sha1>(value),
        sha256(value),
    ]
}

/// The hex digest of a secret, as plumbery's `{{ x.secret.md5 }}` and `.sha1` give it.
fn hex_digest<D: sha2::Digest>(value: &str) -> String {
    D::digest(value.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
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
pub(super) fn render_tokens(
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
pub(super) fn cloud_config(
    fittings: &Fittings,
    node: &crate::fittings::NodeSpec,
    cc: &crate::yaml::Node,
    addresses: &BTreeMap<String, Addresses>,
    secrets: &mut BTreeMap<String, String>,
    local_key: Option<&str>,
    config: &mut NodeConfig,
) -> Result<(), BootstrapError> {
    let mut resolve =
        |expr: &str| resolve_token(expr, fittings, node, addresses, secrets, local_key);
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
            .ok_or_else(|| BootstrapError::WriteFileWithoutPath { node: name.clone() })?;
        let mut content = text(&f["content"]);
        if matches!(f["encoding"].as_str(), Some("b64" | "base64")) {
            use base64::Engine as _;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(content.trim())
                .map_err(|error| BootstrapError::WriteFileEncoding {
                    node: name.clone(),
                    path: path.to_string(),
                    error,
                })?;
            content = String::from_utf8(bytes).map_err(|_| BootstrapError::WriteFileNotText {
                node: name.clone(),
                path: path.to_string(),
            })?;
        } else if content.is_empty() && f["content"].is_null() {
            content = String::new();
        }
        // Checked again once tokens are filled in: a token may have made any of them.
        let mode = f["permissions"].as_str().unwrap_or("0644");
        let unsafe_value = check_file_path(path)
            .and_then(|()| check_permissions(mode))
            .err();
        if let Some(why) = unsafe_value {
            return Err(BootstrapError::Unsafe {
                node: name.clone(),
                why: why.to_string(),
            });
        }
        config.files.retain(|x| x.path != path);
        config.files.push(RenderedFile {
            component: "cloud-config".into(),
            path: path.to_string(),
            mode: mode.trim_start_matches("0o").to_string(),
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
        check_user_name(login).map_err(|why| BootstrapError::Unsafe {
            node: name.clone(),
            why: why.to_string(),
        })?;
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
                "echo {} > {file}; chmod 440 {file}",
                quote(&format!("{login} {sudo}")),
                file = quote(&format!("/etc/sudoers.d/90-fitter-{login}"))
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
    sshd_settings(&cc, config);
    Ok(())
}

/// Where `ssh_pwauth` and `disable_root` go: a drop-in read before fitter's hardening
/// (`50-fitter.conf`), so that what the plan says wins (sshd keeps the first value it reads).
pub const SSHD_CLOUD_CONFIG: &str = "/etc/ssh/sshd_config.d/40-fitter-cloud-config.conf";

/// cloud-init's `ssh_pwauth` and `disable_root` through sshd's configuration, never locking
/// fitter out: it connects as root with its key, so `disable_root: true` is
/// `PermitRootLogin prohibit-password` (no root password, keys only), where cloud-init
/// would refuse root altogether; `disable_root: false` leaves root as the image has it.
/// sshd reloads when the drop-in changes.
fn sshd_settings(cc: &serde_json::Value, config: &mut NodeConfig) {
    let mut lines = Vec::new();
    match &cc["ssh_pwauth"] {
        serde_json::Value::Bool(yes) => lines.push(format!(
            "PasswordAuthentication {}",
            if *yes { "yes" } else { "no" }
        )),
        serde_json::Value::String(s) if matches!(s.as_str(), "true" | "yes") => {
            lines.push("PasswordAuthentication yes".to_string())
        }
        serde_json::Value::String(s) if matches!(s.as_str(), "false" | "no") => {
            lines.push("PasswordAuthentication no".to_string())
        }
        _ => {}
    }
    if matches!(&cc["disable_root"], serde_json::Value::Bool(true))
        || cc["disable_root"].as_str() == Some("true")
    {
        lines.push("PermitRootLogin prohibit-password".to_string());
    }
    if lines.is_empty() {
        return;
    }
    let content = format!(
        "# written by fitter from the plan's cloud-config (ssh_pwauth, disable_root)\n{}\n",
        lines.join("\n")
    );
    config.files.push(RenderedFile {
        component: "cloud-config".into(),
        path: SSHD_CLOUD_CONFIG.into(),
        mode: "0644".into(),
        content,
    });
    config.services.push(ServicePlan {
        component: "cloud-config".into(),
        name: "ssh".into(),
        files: vec![SSHD_CLOUD_CONFIG.into()],
    });
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::SSHD_CLOUD_CONFIG;
    use crate::bootstrap::{CLOUD_CONFIG_SCRIPT, render};
    use crate::components::Catalog;
    use crate::fittings::{self, CLOUD_CONFIG_KEYS, LoadOptions};

    const PLAN: &str = r#"---
defaults:
  provider: lxd
---
locationId: local
blueprints:
  - web:
      ethernet: {name: web, subnet: 10.0.0.0/24}
      nodes:
        - web1:
            cloud-config:
              write_files: [{path: /etc/fitter-test, content: written}]
              bootcmd: [echo bootcmd-ran]
              runcmd: [echo runcmd-ran]
              packages: [cowsay]
              users: [{name: alice}]
              ssh_authorized_keys: [ssh-ed25519 AAAAC3Nza test]
              hostname: web-one
              ssh_pwauth: false
              disable_root: true
              ssh_keys:
                rsa_private: "{{ rsa_private.web }}"
                rsa_public: "{{ rsa_public.web }}"
"#;

    /// The loader accepts the keys of `CLOUD_CONFIG_KEYS` without a warning because
    /// bootstrap applies them: each one must leave a trace in what is rendered.
    #[test]
    fn every_key_the_loader_accepts_is_applied() {
        let catalog = Catalog::builtin().unwrap();
        let options = LoadOptions {
            parameters: BTreeMap::new(),
            provider: None,
            catalog: &catalog,
        };
        let loaded = fittings::load("web.yaml", PLAN, &options);
        assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
        let f = loaded.fittings.unwrap();
        let mut secrets = BTreeMap::new();
        let configs = render(&f, &catalog, &BTreeMap::new(), &mut secrets, None).unwrap();
        // `ssh_keys` is applied when the node is made (bootstrap/host_keys.rs), not by the
        // script: the node's host key, from the same secrets.
        let host_keys = crate::bootstrap::given_host_keys(&f, &mut secrets, None).unwrap();
        let web = &configs[0];
        let script = &web
            .files
            .iter()
            .find(|f| f.path == CLOUD_CONFIG_SCRIPT)
            .unwrap()
            .content;
        for key in CLOUD_CONFIG_KEYS {
            let applied = match *key {
                "write_files" => web.files.iter().any(|f| f.path == "/etc/fitter-test"),
                "bootcmd" => script.contains("echo bootcmd-ran"),
                "runcmd" => script.contains("echo runcmd-ran"),
                "packages" => script.contains("'cowsay'"),
                "users" => script.contains("useradd -m -s '/bin/bash' 'alice'"),
                "ssh_authorized_keys" => script.contains("'ssh-ed25519 AAAAC3Nza test'"),
                "hostname" => script.contains("'web-one' > /etc/hostname"),
                "ssh_pwauth" | "disable_root" => web.files.iter().any(|f| {
                    f.path == SSHD_CLOUD_CONFIG
                        && f.content.contains("PasswordAuthentication no")
                        && f.content.contains("PermitRootLogin prohibit-password")
                }),
                "ssh_keys" => host_keys
                    .get("web1")
                    .is_some_and(|k| k.public_openssh.trim() == secrets["rsa_public.web"].trim()),
                other => {
                    panic!("`{other}` is accepted by the loader: test how bootstrap applies it")
                }
            };
            assert!(applied, "`{key}` left no trace:\n{script}");
        }
    }
}
