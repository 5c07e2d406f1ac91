//! The droplets' `user_data` rendered as cloud-init renders it: a batch of droplets shares one
//! `user_data`, and each picks its own host key with cloud-init's Jinja templating on
//! `v1.local_hostname`. Rather than looking for strings in it, this test takes every create
//! the simulator received, renders the `user_data` with a Jinja engine for each droplet's
//! name (minijinja, the Jinja2 dialect cloud-init uses), reads the result as YAML, and checks
//! that each droplet gets exactly one host key, its own, a valid pair, the one fitter
//! pinned in the state; and that the operator's key is authorised.

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
