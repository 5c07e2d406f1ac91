//! `fitter import` (issue 13) against fitter-sim: a droplet and a firewall made by hand
//! through the API are taken into the state under the plan's addresses, checked against
//! the plan (what differs is said, and planned as a change, not a second droplet), then
//! deploy makes them the plan's and dispose removes them.

use fitter_sim::Simulator;
use serde_json::Value as Json;

mod support;
use support::*;

const PLAN_TEXT: &str = r#"---
locationId: nyc3
provider: digitalocean
blueprints:
  - web:
      ethernet: {name: imported, subnet: 10.50.0.0/24}
      nodes:
        - web1:
            size: s-2vcpu-4gb
            glue: [internet 22 80]
"#;

/// A call behind fitter's back: the status and the JSON body.
fn json_api(sim: &Simulator, method: &str, path: &str, body: Option<&str>) -> (u16, Json) {
    let (status, body) = api(sim, method, path, body);
    (status, serde_json::from_str(&body).unwrap_or(Json::Null))
}

#[test]
fn a_droplet_and_a_firewall_made_by_hand_are_imported_checked_and_made_the_plans() {
    let sim = fast_simulator();
    let ws = Workspace::new();
    let plan = ws.dir.path().join("handmade.yaml");
    std::fs::write(&plan, PLAN_TEXT).unwrap();
    // `fitter import PLAN ADDRESS ID`: the plan first, as for `fitter ssh PLAN NODE`.
    let fitter = |args: &[&str]| {
        let mut cmd = if args.first() == Some(&"import") {
            let mut cmd = ws.command_for(&sim.url(), &plan, &args[..1]);
            cmd.args(&args[1..]);
            cmd
        } else {
            ws.command_for(&sim.url(), &plan, args)
        };
        cmd.output().unwrap()
    };

    let (status, droplet) = json_api(
        &sim,
        "POST",
        "/v2/droplets",
        Some(
            r#"{"name": "web1", "region": "nyc3", "size": "s-1vcpu-1gb", "image": "debian-12-x64"}"#,
        ),
    );
    assert_eq!(status, 202, "{droplet}");
    let droplet_id = droplet["droplet"]["id"].to_string();
    let (status, firewall) = json_api(
        &sim,
        "POST",
        "/v2/firewalls",
        Some(
            r#"{"name": "by-hand", "inbound_rules": [{"protocol": "tcp", "ports": "3306", "sources": {"addresses": ["0.0.0.0/0"]}}],
                "outbound_rules": [{"protocol": "tcp", "ports": "0", "destinations": {"addresses": ["0.0.0.0/0"]}}]}"#,
        ),
    );
    assert_eq!(status, 202, "{firewall}");
    let firewall_id = firewall["firewall"]["id"].as_str().unwrap().to_string();

    // Checked against the plan: an unknown address, an unknown id, then the droplet.
    let out = fitter(&["import", "node.web2", &droplet_id]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("did you mean `node.web1`?"),
        "{}",
        text(&out)
    );
    let out = fitter(&["import", "node.web1", "999999999"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("digitalocean has no node `999999999`"),
        "{}",
        text(&out)
    );
    let out = fitter(&["import", "node.web1", &droplet_id]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        said.contains(&format!("Imported {droplet_id} (web1) as `node.web1`")),
        "{said}"
    );
    assert!(
        said.contains(
            "differs from the plan: size: s-1vcpu-1gb at digitalocean, s-2vcpu-4gb in the plan"
        ),
        "{said}"
    );
    assert!(said.contains("no host key pinned"), "{said}");
    let out = fitter(&["import", "node.web1", &droplet_id]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("is in the state already"),
        "{}",
        text(&out)
    );
    let out = fitter(&["import", "firewall.web", &firewall_id]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // The plan: the droplet resized, the firewall's rules set; nothing made twice.
    let out = fitter(&["plan"]);
    let planned = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        planned.contains("# node.web1 will be updated in place"),
        "{planned}"
    );
    assert!(
        planned.contains("# firewall.web will be updated in place"),
        "{planned}"
    );
    assert!(
        !planned.contains("# node.web1 will be created"),
        "{planned}"
    );

    let out = fitter(&["deploy", "--yes", "--skip-bootstrap"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let snap = sim.snapshot();
    assert_eq!(
        snap.droplets.len(),
        1,
        "no second droplet: {:?}",
        snap.droplets
    );
    assert_eq!(snap.droplets[0]["id"].to_string(), droplet_id);
    assert_eq!(snap.droplets[0]["size_slug"], "s-2vcpu-4gb");
    let fw = snap
        .firewalls
        .iter()
        .find(|f| f["id"] == firewall_id.as_str())
        .expect("the imported firewall");
    let ports: Vec<&str> = fw["inbound_rules"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["ports"].as_str())
        .collect();
    assert!(!ports.contains(&"3306") && ports.contains(&"80"), "{fw}");
    let again = fitter(&["plan", "--detailed-exitcode"]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));

    let out = fitter(&["dispose", "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let snap = sim.snapshot();
    assert!(
        snap.droplets.is_empty() && snap.firewalls.is_empty(),
        "{snap:?}"
    );
}
