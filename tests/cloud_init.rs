//! The droplets' `user_data` rendered as cloud-init renders it: a batch of droplets shares one
//! `user_data`, and each picks its own host key with cloud-init's Jinja templating on
//! `v1.local_hostname`. Rather than looking for strings in it, this test takes every create
//! the simulator received, renders the `user_data` with a Jinja engine for each droplet's
//! name (minijinja, the Jinja2 dialect cloud-init uses), reads the result as YAML, and checks
//! that each droplet gets exactly one host key, its own, a valid pair, the one fitter
//! pinned in the state; and that the operator's key is authorised, an existing one used and
//! kept rather than one made.

use std::collections::BTreeSet;

use serde_json::Value as Json;

mod support;
use support::*;

/// `user_data` as cloud-init renders it on the droplet called `hostname`.
fn rendered_for(user_data: &str, hostname: &str) -> serde_yaml_ng::Value {
    let template = user_data
        .strip_prefix("## template: jinja\n")
        .expect("cloud-init renders user_data only with its `## template: jinja` header");
    let env = minijinja::Environment::new();
    let text = env
        .render_str(
            template,
            minijinja::context! { v1 => minijinja::context! { local_hostname => hostname } },
        )
        .unwrap_or_else(|e| panic!("{hostname}: the template does not render: {e}"));
    assert!(text.starts_with("#cloud-config\n"), "{text}");
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{hostname}: not YAML: {e}\n{text}"))
}

#[test]
fn each_droplet_renders_its_own_host_key_from_the_shared_user_data() {
    let sim = fast_simulator();
    let ws = Workspace::new();
    let out = ws.deploy(&sim.url());
    assert!(out.status.success(), "deploy: {}", text(&out));
    let state = ws.state_json();
    // The operator's key: with no `--ssh-key` and none in ~/.ssh, the one fitter made
    // beside the state.
    let mut public = ws.state().into_os_string();
    public.push(".id_ed25519.pub");
    let operator = std::fs::read_to_string(&public).expect("the operator's public key");

    let mut seen = BTreeSet::new();
    let mut private_keys = BTreeSet::new();
    for request in sim.requests() {
        if request.method != "POST" || request.path != "/v2/droplets" || request.status >= 300 {
            continue;
        }
        let body = request.body.expect("a JSON body");
        let user_data = body["user_data"].as_str().expect("user_data");
        let names: Vec<String> = match &body["names"] {
            Json::Array(names) => names
                .iter()
                .filter_map(|n| n.as_str().map(str::to_string))
                .collect(),
            _ => vec![body["name"].as_str().expect("a name").to_string()],
        };
        for name in names {
            let config = rendered_for(user_data, &name);
            let keys = config["ssh_keys"]
                .as_mapping()
                .unwrap_or_else(|| panic!("{name}: no ssh_keys"));
            let entries: Vec<String> = keys
                .keys()
                .filter_map(|k| k.as_str().map(str::to_string))
                .collect();
            assert_eq!(
                entries,
                ["ed25519_private", "ed25519_public"],
                "{name}: one host key pair"
            );
            let private = config["ssh_keys"]["ed25519_private"].as_str().unwrap();
            let public = config["ssh_keys"]["ed25519_public"].as_str().unwrap();
            let pair = fitter::ssh::given_host_key(&name, private, Some(public))
                .unwrap_or_else(|e| panic!("{name}: not a valid pair: {e}"));
            let pinned = state["resources"][format!("node.{name}")]["outputs"]["host_key"]
                .as_str()
                .unwrap_or_else(|| panic!("{name}: no host key in the state"));
            assert_eq!(
                pair.public_openssh.trim(),
                pinned.trim(),
                "{name}: the pinned key"
            );
            assert!(
                private_keys.insert(private.to_string()),
                "{name}: a key of its own"
            );
            assert_eq!(
                config["ssh_genkeytypes"],
                serde_yaml_ng::Value::Sequence(vec![]),
                "{name}"
            );
            assert_eq!(
                config["disable_root"],
                serde_yaml_ng::Value::Bool(false),
                "{name}"
            );
            let authorized: Vec<&str> = config["ssh_authorized_keys"]
                .as_sequence()
                .unwrap_or_else(|| panic!("{name}: no authorised keys"))
                .iter()
                .filter_map(|k| k.as_str())
                .collect();
            assert_eq!(authorized.len(), 1, "{name}: the operator's key");
            assert_eq!(authorized[0].trim(), operator.trim(), "{name}");
            seen.insert(name);
        }
    }
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        expected_names(),
        "every droplet of the plan was created with a host key"
    );
}

/// The operator's own key (`~/.ssh/id_ed25519`) is the one every droplet authorises and the
/// one uploaded to the account; it is used again on the next run, and fitter makes no key of
/// its own beside the state.
#[test]
fn an_existing_operator_key_is_used_and_kept() {
    let sim = fast_simulator();
    let ws = Workspace::new();
    let ssh = ws.dir.path().join(".ssh");
    std::fs::create_dir_all(&ssh).unwrap();
    let key = fitter::ssh::OperatorKey::create(&ssh.join("id_ed25519")).unwrap();
    let before = std::fs::read(ssh.join("id_ed25519")).unwrap();
    for run in 0..2 {
        let out = ws.deploy(&sim.url());
        assert!(out.status.success(), "deploy {run}: {}", text(&out));
    }
    let mut own = ws.state().into_os_string();
    own.push(".id_ed25519");
    assert!(
        !std::path::Path::new(&own).exists(),
        "no key of fitter's own"
    );
    assert_eq!(
        std::fs::read(ssh.join("id_ed25519")).unwrap(),
        before,
        "the key file as it was"
    );
    let snapshot = sim.snapshot();
    let uploaded: Vec<&str> = snapshot
        .ssh_keys
        .iter()
        .filter_map(|k| k["public_key"].as_str().map(str::trim))
        .collect();
    assert_eq!(uploaded, [key.public_openssh.trim()], "the account's key");
    for request in sim.requests() {
        let Some(user_data) = request.body.as_ref().and_then(|b| b["user_data"].as_str()) else {
            continue;
        };
        let config = rendered_for(user_data, "master1");
        assert_eq!(
            config["ssh_authorized_keys"][0].as_str().map(str::trim),
            Some(key.public_openssh.trim())
        );
    }
}
