//! `fitter inventory` read by Ansible itself: a deployment on fitter-sim, its inventory in
//! INI, in YAML and as a dynamic inventory (a script running `fitter inventory --format
//! ansible-json`), each given to `ansible-inventory --list` (ansible-core, pinned, in a
//! virtual environment that `scripts/ansible.sh` makes). All must give every node with its
//! address, the SSH settings that check the pinned host key, and a group per role.
//!
//! `#[ignore]`d in a plain `cargo test` (it needs ansible-core); `scripts/test.sh` installs
//! it and runs the whole suite with `--include-ignored`.

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::Value as Json;

mod support;
use support::*;

fn ansible_inventory() -> String {
    let out = Command::new(root().join("scripts/ansible.sh"))
        .arg("path")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ansible-core is not installed: run scripts/ansible.sh install (scripts/test.sh does)"
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// What Ansible reads from an inventory file: `ansible-inventory -i FILE --list`.
fn as_ansible_reads_it(file: &std::path::Path) -> Json {
    let out = Command::new(ansible_inventory())
        .arg("-i")
        .arg(file)
        .arg("--list")
        .env("ANSIBLE_INVENTORY_UNPARSED_FAILED", "true")
        .env("ANSIBLE_LOCAL_TEMP", std::env::temp_dir())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ansible-inventory refused {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
#[ignore = "needs ansible-core: run scripts/test.sh"]
fn ansible_reads_every_inventory_format_with_every_node_and_its_role_groups() {
    let sim = fast_simulator();
    let ws = Workspace::new();
    let out = ws.deploy(&sim.url());
    assert!(out.status.success(), "deploy: {}", text(&out));
    let snap = sim.snapshot();
    let mut listed = Vec::new();
    for format in ["ini", "yaml", "ansible-json"] {
        let out = ws.run(&sim.url(), &["inventory", "--format", format]);
        assert!(out.status.success(), "inventory {format}: {}", text(&out));
        let file = if format == "ansible-json" {
            // A dynamic inventory: an executable Ansible runs with `--list`, here fitter
            // itself, as an operator's two-line script would.
            let script = ws.dir.path().join("fitter-inventory.sh");
            std::fs::write(
                &script,
                format!(
                    "#!/bin/sh\n[ \"$1\" = --list ] || {{ echo '{{}}'; exit 0; }}\n\
                     cd '{}' && HOME='{}' exec '{}' inventory --format ansible-json --state '{}' '{}'\n",
                    root().display(),
                    ws.dir.path().display(),
                    env!("CARGO_BIN_EXE_fitter"),
                    ws.state().display(),
                    root().join(PLAN).display(),
                ),
            )
            .unwrap();
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
            script
        } else {
            let file = ws.dir.path().join(format!("hosts.{format}"));
            std::fs::write(&file, &out.stdout).unwrap();
            file
        };
        let read = as_ansible_reads_it(&file);
        let hostvars = &read["_meta"]["hostvars"];
        for d in droplets_of(&snap) {
            let name = d["name"].as_str().unwrap();
            let public = Json::from(public_ip(d));
            let vars = &hostvars[name];
            assert_eq!(vars["ansible_host"], public, "{format}: {name}: {vars}");
            assert_eq!(vars["ansible_user"], "root", "{format}: {name}");
            let ssh_args = vars["ansible_ssh_common_args"].as_str().unwrap_or_default();
            assert!(
                ssh_args.contains("StrictHostKeyChecking=yes")
                    && ssh_args.contains("UserKnownHostsFile="),
                "{format}: {name}: {vars}"
            );
        }
        let group = |g: &str| -> BTreeSet<String> {
            read[g]["hosts"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|h| h.as_str().map(str::to_string))
                .collect()
        };
        let masters: BTreeSet<String> = (1..=3).map(|i| format!("master{i}")).collect();
        assert_eq!(group("mesos_master"), masters, "{format}: {read}");
        assert_eq!(group("zookeeper"), masters, "{format}");
        assert_eq!(group("mesos_agent").len(), 9, "{format}");
        listed.push(read);
    }
    assert_eq!(listed[0], listed[1], "INI and YAML read the same");
    assert_eq!(
        listed[0], listed[2],
        "INI and the dynamic inventory read the same"
    );
}
