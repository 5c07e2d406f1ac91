//! The Hetzner personality over real HTTP, as a client sees it: base URL
//! `Simulator::hetzner_url()` (`http://ADDR/v1`).

mod common;

use std::time::Duration;

use common::{Client, ED25519, ED25519_MD5, any_port, give_up_on_slow_post, raw_http};
use fitter_sim::{Api, Config, Fault, Matcher, Simulator};
use serde_json::{Value as Json, json};

const RSA: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQDYptsvw5dl8gWdZSxhImPgryrOWNqvQnE0cVQzwPogOAPjGJsELmhwznU21KnNAJ47ntENv2xHj/1R3tgSneA7gzqI2jvDx7zq74X7KL8QxknUem/gN+27YxFrWspyStD6OJsoicw0GqqC2XqWD2dPiAja2KpAfH3+3l/IBLcRDrb9tyWy+gV0KkIEFWju+YYxar3afWqJniit5AuOObHMc2O29gG1eVr9PnkEFkt4U9nsGFe6JFsJRSadX1GzZqSLIRnvL8I5J8ObAZAGN80xgfyTMF4PL6+3H/28TUzHKIbojcP8q33REMpQNioN7f0bMBxIJjtUUCx/3eg7tPxj rsa";

/// How long servers take to boot and to go away here: short, yet long enough that what a
/// test looks at right after a create is still true on a loaded machine.
const DELAY: Duration = Duration::from_millis(2000);

/// Hetzner, the delays above, and a bucket that [`Client::until`]'s polling never empties.
fn fast() -> Config {
    Config {
        active_delay: DELAY,
        delete_delay: DELAY,
        rate_limit_per_hour: 1_000_000,
        ..Config::hetzner()
    }
}

/// Moves the tokio clock (the simulator's, on this test's runtime) `by` ahead, at once: what
/// waits for a delay is then past it, with no race against a real clock. No request may be in
/// flight meanwhile.
async fn skip(by: Duration) {
    tokio::time::pause();
    tokio::time::advance(by).await;
    tokio::time::resume();
}

/// A delay no test waits out: it is skipped with [`skip`].
const LONG: Duration = Duration::from_secs(3600);

fn server(name: &str) -> Json {
    json!({"name": name, "server_type": "cx22", "image": "debian-12", "location": "fsn1"})
}

fn network(name: &str, range: &str, zone: &str) -> Json {
    json!({
        "name": name,
        "ip_range": range,
        "subnets": [{"type": "cloud", "network_zone": zone}],
    })
}

fn names(list: &Json) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|item| item["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_server_boots_with_addresses_and_actions() {
    let sim = Simulator::start(any_port(), fast()).await.unwrap();
    let client = Client::new(&sim);
    let net = client
        .create("/networks", network("net", "10.0.0.0/16", "eu-central"))
        .await;
    let key = client
        .create("/ssh_keys", json!({"name": "op", "public_key": ED25519}))
        .await;
    let mut body = server("web-1");
    body["networks"] = json!([net]);
    body["ssh_keys"] = json!([key.to_string()]);
    body["labels"] = json!({"role": "web"});
    body["user_data"] = json!("#cloud-config\n");
    let created = client.post("/servers", body).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let first = &created.body["server"];
    assert_eq!(first["status"], "initializing");
    assert_eq!(first["public_net"]["ipv4"]["ip"], "127.2.0.1");
    assert_eq!(first["private_net"][0]["network"], net);
    assert_eq!(first["private_net"][0]["ip"], "10.0.0.2");
    assert_eq!(first["server_type"]["name"], "cx22");
    assert_eq!(first["server_type"]["cores"], 2);
    assert_eq!(first["location"]["name"], "fsn1");
    assert_eq!(first["image"]["name"], "debian-12");
    assert_eq!(first["labels"], json!({"role": "web"}));
    assert_eq!(created.body["root_password"], Json::Null, "keys given");
    let action = &created.body["action"];
    assert_eq!(action["command"], "create_server");
    assert_eq!(action["status"], "running");
    assert_eq!(action["finished"], Json::Null);
    assert_eq!(
        action["resources"],
        json!([{"id": first["id"], "type": "server"}])
    );
    assert_eq!(created.body["next_actions"][0]["command"], "start_server");

    // Without keys there is a root password; a network by name is not a thing.
    let mut body = server("web-2");
    body["networks"] = json!([net]);
    let second = client.post("/servers", body).await;
    assert!(second.body["root_password"].is_string());
    let second = &second.body["server"];
    assert_eq!(second["public_net"]["ipv4"]["ip"], "127.2.0.2");
    assert_eq!(second["private_net"][0]["ip"], "10.0.0.3");

    let id = first["id"].as_u64().unwrap();
    let running = client
        .until(&format!("/servers/{id}"), "web-1 running", |a| {
            a.body["server"]["status"] == "running"
        })
        .await;
    assert_eq!(running.body["server"]["private_net"][0]["ip"], "10.0.0.2");
    let done = client.get(&format!("/actions/{}", action["id"])).await.body["action"].clone();
    assert_eq!(
        (done["status"].as_str(), done["progress"].as_u64()),
        (Some("success"), Some(100))
    );
    assert!(done["finished"].is_string());
    let network = client.get(&format!("/networks/{net}")).await.body["network"].clone();
    assert_eq!(network["servers"].as_array().unwrap().len(), 2);
    assert_eq!(network["subnets"][0]["ip_range"], "10.0.0.0/24");
    assert_eq!(network["subnets"][0]["gateway"], "10.0.0.1");
}

#[tokio::test]
async fn status_and_deletion_follow_the_tokio_clock() {
    let config = Config {
        active_delay: Duration::from_secs(60),
        delete_delay: Duration::from_secs(60),
        ..fast()
    };
    let sim = Simulator::start(any_port(), config).await.unwrap();
    let client = Client::new(&sim);
    client.post("/servers", server("stays")).await;
    let mut off = server("off");
    off["start_after_create"] = json!(false);
    client.post("/servers", off).await;
    let goes = client.post("/servers", server("goes")).await.body["server"]["id"].clone();
    let deleted = client.delete(&format!("/servers/{goes}")).await;
    assert_eq!(deleted.status, 200);
    assert_eq!(deleted.body["action"]["command"], "delete_server");
    assert_eq!(deleted.body["action"]["status"], "running");
    // No more network from here: a paused clock and network I/O do not mix.
    tokio::time::pause();
    let statuses = || -> Vec<(String, String)> {
        sim.snapshot()
            .hetzner
            .servers
            .iter()
            .map(|s| {
                (
                    s["name"].as_str().unwrap().into(),
                    s["status"].as_str().unwrap().into(),
                )
            })
            .collect()
    };
    let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    assert_eq!(
        statuses(),
        pairs(&[
            ("stays", "initializing"),
            ("off", "initializing"),
            ("goes", "deleting")
        ])
    );
    tokio::time::advance(Duration::from_secs(31)).await;
    assert_eq!(
        statuses(),
        pairs(&[
            ("stays", "starting"),
            ("off", "starting"),
            ("goes", "deleting")
        ])
    );
    tokio::time::advance(Duration::from_secs(30)).await;
    assert_eq!(statuses(), pairs(&[("stays", "running"), ("off", "off")]));
}

#[tokio::test]
async fn names_are_unique_per_project() {
    let config = Config {
        delete_delay: LONG,
        ..fast()
    };
    let sim = Simulator::start(any_port(), config).await.unwrap();
    let client = Client::new(&sim);
    let cases = [
        ("/servers", server("dup")),
        ("/networks", network("dup", "10.0.0.0/16", "eu-central")),
        ("/firewalls", json!({"name": "dup"})),
        ("/ssh_keys", json!({"name": "dup", "public_key": ED25519})),
        (
            "/placement_groups",
            json!({"name": "dup", "type": "spread"}),
        ),
    ];
    for (path, body) in cases {
        assert_eq!(client.post(path, body.clone()).await.status, 201, "{path}");
        let again = client.post(path, body).await;
        assert_eq!(again.status, 409, "{path}: {}", again.body);
        assert_eq!(again.code(), "uniqueness_error", "{path}");
        assert_eq!(again.body["error"]["details"]["fields"][0]["name"], "name");
    }
    // The same key under another name: its fingerprint is taken.
    let same_key = client
        .post("/ssh_keys", json!({"name": "other", "public_key": ED25519}))
        .await;
    assert_eq!(
        (same_key.status, same_key.code()),
        (409, "uniqueness_error")
    );
    assert_eq!(
        same_key.body["error"]["details"]["fields"][0]["name"],
        "public_key"
    );
    // Renaming onto a taken name is refused too.
    let key = client
        .create("/ssh_keys", json!({"name": "rsa", "public_key": RSA}))
        .await;
    let renamed = client
        .put(&format!("/ssh_keys/{key}"), json!({"name": "dup"}))
        .await;
    assert_eq!(renamed.status, 409);
    let snap = sim.snapshot().hetzner;
    assert_eq!(
        (
            snap.servers.len(),
            snap.networks.len(),
            snap.firewalls.len()
        ),
        (1, 1, 1)
    );
    assert_eq!((snap.ssh_keys.len(), snap.placement_groups.len()), (2, 1));
    // A deleted server keeps its name until it is gone.
    let id = snap.servers[0]["id"].clone();
    client.delete(&format!("/servers/{id}")).await;
    assert_eq!(client.post("/servers", server("dup")).await.status, 409);
    skip(LONG).await;
    assert_eq!(client.get(&format!("/servers/{id}")).await.status, 404);
    assert_eq!(client.post("/servers", server("dup")).await.status, 201);
}

#[tokio::test]
async fn label_selectors_filter_lists() {
    let sim = Simulator::start(any_port(), fast()).await.unwrap();
    let client = Client::new(&sim);
    let labelled = [
        ("web-1", json!({"role": "web", "env": "prod"})),
        ("web-2", json!({"role": "web", "env": "test"})),
        (
            "db-1",
            json!({"role": "db", "env": "prod", "fitter.io/plan": "a"}),
        ),
        ("bare", json!({})),
    ];
    for (name, labels) in &labelled {
        let mut body = server(name);
        body["labels"] = labels.clone();
        assert_eq!(client.post("/servers", body).await.status, 201);
        let group = json!({"name": name, "type": "spread", "labels": labels});
        assert_eq!(client.post("/placement_groups", group).await.status, 201);
    }
    let cases = [
        ("role=web", vec!["web-1", "web-2"]),
        ("role==db", vec!["db-1"]),
        ("role!=web", vec!["db-1", "bare"]),
        ("env", vec!["web-1", "web-2", "db-1"]),
        ("!env", vec!["bare"]),
        ("role in (db,web),env=prod", vec!["web-1", "db-1"]),
        ("env notin (prod)", vec!["web-2", "bare"]),
        ("fitter.io/plan=a", vec!["db-1"]),
    ];
    for (selector, expected) in cases {
        let query = format!("label_selector={}", urlencode(selector));
        for path in ["/servers", "/placement_groups"] {
            let list = client.get(&format!("{path}?{query}")).await;
            assert_eq!(list.status, 200, "{selector}");
            let key = &path[1..];
            assert_eq!(names(&list.body[key]), expected, "{path} {selector}");
        }
    }
    let bad = client
        .get("/servers?label_selector=role%3D%3Dweb%20db")
        .await;
    assert_eq!((bad.status, bad.code()), (400, "invalid_input"));
    // Labels are checked on the way in.
    let mut body = server("bad-labels");
    body["labels"] = json!({"-role": "web"});
    assert_eq!(client.post("/servers", body).await.code(), "invalid_input");
    let mut body = server("bad-labels");
    body["labels"] = json!({"hetzner.cloud/x": "y"});
    assert_eq!(client.post("/servers", body).await.code(), "invalid_input");
    // Names and statuses filter too.
    let named = client.get("/servers?name=db-1").await;
    assert_eq!(names(&named.body["servers"]), ["db-1"]);
    let booting = client
        .get("/servers?status=initializing&status=starting&status=running")
        .await;
    assert_eq!(booting.body["servers"].as_array().unwrap().len(), 4);
    assert_eq!(
        client.get("/servers?status=off").await.body["servers"],
        json!([])
    );
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn lists_page_with_meta_pagination() {
    let sim = Simulator::start(any_port(), fast()).await.unwrap();
    let client = Client::new(&sim);
    let empty = client.get("/placement_groups").await;
    assert_eq!(
        empty.body["meta"]["pagination"],
        json!({"page": 1, "per_page": 25, "previous_page": null, "next_page": null,
               "last_page": 1, "total_entries": 0})
    );
    for n in 0..60 {
        let group = json!({"name": format!("pg-{n:02}"), "type": "spread"});
        assert_eq!(client.post("/placement_groups", group).await.status, 201);
    }
    let mut page = Some(1);
    let mut sizes = Vec::new();
    let mut seen = Vec::new();
    while let Some(n) = page {
        let answer = client.get(&format!("/placement_groups?page={n}")).await;
        let pagination = &answer.body["meta"]["pagination"];
        assert_eq!(pagination["total_entries"], 60);
        assert_eq!(pagination["last_page"], 3);
        assert_eq!(pagination["page"], n);
        sizes.push(answer.body["placement_groups"].as_array().unwrap().len());
        seen.extend(names(&answer.body["placement_groups"]));
        page = pagination["next_page"].as_u64();
    }
    assert_eq!(sizes, [25, 25, 10]);
    assert_eq!(seen.len(), 60);
    assert_eq!(seen[0], "pg-00");
    let last = client.get("/placement_groups?page=2&per_page=50").await;
    assert_eq!(last.body["meta"]["pagination"]["previous_page"], 1);
    assert_eq!(last.body["meta"]["pagination"]["next_page"], Json::Null);
    assert_eq!(last.body["placement_groups"].as_array().unwrap().len(), 10);
    let too_many = client.get("/placement_groups?per_page=51").await;
    assert_eq!((too_many.status, too_many.code()), (400, "invalid_input"));
    assert_eq!(client.get("/placement_groups?page=0").await.status, 400);
    let past = client.get("/placement_groups?page=9").await;
    assert_eq!(past.body["placement_groups"], json!([]));
    let sorted = client
        .get("/placement_groups?sort=name:desc&per_page=2")
        .await;
    assert_eq!(names(&sorted.body["placement_groups"]), ["pg-59", "pg-58"]);
}

#[tokio::test]
async fn actions_are_read_by_id() {
    let sim = Simulator::start(any_port(), fast()).await.unwrap();
    let client = Client::new(&sim);
    let a = client.post("/servers", server("a")).await.body["action"]["id"].clone();
    let b = client.post("/servers", server("b")).await.body["action"]["id"].clone();
    let both = client.get(&format!("/actions?id={b}&id={a}&id=1")).await;
    assert_eq!(both.status, 200);
    let ids: Vec<&Json> = both.body["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["id"])
        .collect();
    assert_eq!(ids, [&a, &b], "the ones that exist, by id");
    assert_eq!(both.body["meta"]["pagination"]["total_entries"], 2);
    // Listing every action was removed from the API.
    let all = client.get("/actions").await;
    assert_eq!((all.status, all.code()), (400, "invalid_input"));
    assert_eq!(client.get("/actions?id=x").await.status, 400);
    assert_eq!(client.get("/actions/1").await.status, 404);
    let done = client
        .until(
            &format!("/actions?id={a}&id={b}"),
            "both created",
            |answer| {
                answer.body["actions"]
                    .as_array()
                    .is_some_and(|l| l.iter().all(|a| a["status"] == "success"))
            },
        )
        .await;
    assert!(done.body["actions"][0]["finished"].is_string());
}

#[tokio::test]
async fn a_deleted_network_detaches_its_servers() {
    let sim = Simulator::start(any_port(), fast()).await.unwrap();
    let client = Client::new(&sim);
    let net = client
        .create("/networks", network("net", "10.0.0.0/16", "eu-central"))
        .await;
    let us = client
        .create("/networks", network("us", "10.1.0.0/16", "us-east"))
        .await;
    // A network has to reach the server's location.
    let mut body = server("far");
    body["networks"] = json!([us]);
    let refused = client.post("/servers", body).await;
    assert_eq!((refused.status, refused.code()), (400, "invalid_input"));
    // Without a location, the server goes where its network is.
    let placed = client
        .post("/servers", json!({"name": "near", "server_type": "cpx11", "image": "ubuntu-24.04", "networks": [us]}))
        .await;
    assert_eq!(placed.body["server"]["location"]["network_zone"], "us-east");
    let mut body = server("web");
    body["networks"] = json!([net]);
    let id = client.create("/servers", body).await;
    assert_eq!(
        client.get(&format!("/networks/{net}")).await.body["network"]["servers"],
        json!([id])
    );
    // The spec: "Attached resources will be detached automatically."
    assert_eq!(client.delete(&format!("/networks/{net}")).await.status, 204);
    assert_eq!(client.get(&format!("/networks/{net}")).await.status, 404);
    let server = client.get(&format!("/servers/{id}")).await;
    assert_eq!(server.body["server"]["private_net"], json!([]));
    // Invalid networks are refused.
    for bad in [
        json!({"name": "public", "ip_range": "8.8.0.0/16"}),
        json!({"name": "tiny", "ip_range": "10.9.0.0/25"}),
        json!({"name": "unaligned", "ip_range": "10.9.0.1/16"}),
        json!({"name": "zone", "ip_range": "10.9.0.0/16", "subnets": [{"type": "cloud", "network_zone": "mars"}]}),
        json!({"name": "outside", "ip_range": "10.9.0.0/16", "subnets": [{"type": "cloud", "network_zone": "eu-central", "ip_range": "10.8.0.0/24"}]}),
    ] {
        let answer = client.post("/networks", bad.clone()).await;
        assert_eq!(
            (answer.status, answer.code()),
            (400, "invalid_input"),
            "{bad}"
        );
    }
}

fn ssh_rule() -> Json {
    json!({"direction": "in", "protocol": "tcp", "port": "22", "source_ips": ["0.0.0.0/0", "2001:0db8::/32"]})
}

#[tokio::test]
async fn firewalls_apply_and_refuse_deletion_while_in_use() {
    let config = Config {
        delete_delay: LONG,
        ..fast()
    };
    let sim = Simulator::start(any_port(), config).await.unwrap();
    let client = Client::new(&sim);
    let direct = client
        .create(
            "/firewalls",
            json!({"name": "direct", "rules": [ssh_rule()]}),
        )
        .await;
    let rules = client.get(&format!("/firewalls/{direct}")).await.body["firewall"]["rules"].clone();
    assert_eq!(
        rules[0]["source_ips"],
        json!(["0.0.0.0/0", "2001:db8::/32"])
    );
    assert_eq!(rules[0]["destination_ips"], json!([]));
    let mut body = server("web-1");
    body["labels"] = json!({"role": "web"});
    body["firewalls"] = json!([{"firewall": direct}]);
    let web = client.create("/servers", body).await;
    let created = client
        .post(
            "/firewalls",
            json!({"name": "by-label", "apply_to": [{"type": "label_selector", "label_selector": {"selector": "role=web"}}]}),
        )
        .await;
    assert_eq!(created.status, 201);
    let by_label = created.body["firewall"]["id"].as_u64().unwrap();
    let applied = &created.body["firewall"]["applied_to"][0];
    assert_eq!(
        applied["applied_to_resources"],
        json!([{"type": "server", "server": {"id": web}}])
    );
    assert_eq!(created.body["actions"][0]["command"], "apply_firewall");
    let shown =
        client.get(&format!("/servers/{web}")).await.body["server"]["public_net"]["firewalls"]
            .clone();
    assert_eq!(
        shown,
        json!([{"id": direct, "status": "applied"}, {"id": by_label, "status": "applied"}])
    );

    for id in [direct, by_label] {
        let refused = client.delete(&format!("/firewalls/{id}")).await;
        assert_eq!((refused.status, refused.code()), (422, "resource_in_use"));
    }
    let path = |id: u64, action: &str| format!("/firewalls/{id}/actions/{action}");
    let server_entry = json!([{"type": "server", "server": {"id": web}}]);
    let refusals = [
        (
            by_label,
            "remove_from_resources",
            json!({"remove_from": server_entry}),
            422,
            "firewall_managed_by_label_selector",
        ),
        (
            direct,
            "apply_to_resources",
            json!({"apply_to": server_entry}),
            422,
            "firewall_already_applied",
        ),
        (
            direct,
            "apply_to_resources",
            json!({"apply_to": [{"type": "server", "server": {"id": 1}}]}),
            404,
            "firewall_resource_not_found",
        ),
    ];
    for (id, action, body, status, code) in refusals {
        let refused = client.post(&path(id, action), body).await;
        assert_eq!(
            (refused.status, refused.code()),
            (status, code),
            "{action} {id}"
        );
    }

    let removed = client
        .post(
            &path(by_label, "remove_from_resources"),
            json!({"remove_from": [{"type": "label_selector", "label_selector": {"selector": "role=web"}}]}),
        )
        .await;
    assert_eq!(removed.status, 201);
    assert_eq!(removed.body["actions"][0]["command"], "remove_firewall");
    assert_eq!(removed.body["actions"][0]["status"], "success");
    assert_eq!(
        client
            .delete(&format!("/firewalls/{by_label}"))
            .await
            .status,
        204
    );
    let set = client
        .post(&path(direct, "set_rules"), json!({"rules": []}))
        .await;
    assert_eq!(
        (set.status, set.body["actions"][0]["command"].as_str()),
        (201, Some("set_firewall_rules"))
    );
    let renamed = client
        .put(
            &format!("/firewalls/{direct}"),
            json!({"name": "renamed", "labels": {"a": "b"}}),
        )
        .await;
    assert_eq!(renamed.body["firewall"]["name"], "renamed");

    // A deleted server holds its firewall until it is gone.
    client.delete(&format!("/servers/{web}")).await;
    let refused = client.delete(&format!("/firewalls/{direct}")).await;
    assert_eq!(refused.code(), "resource_in_use");
    let deleting = client.get(&format!("/servers/{web}")).await;
    assert_eq!(deleting.body["server"]["status"], "deleting");
    skip(LONG).await;
    assert_eq!(client.get(&format!("/servers/{web}")).await.status, 404);
    assert_eq!(
        client.delete(&format!("/firewalls/{direct}")).await.status,
        204
    );
    assert!(sim.snapshot().hetzner.firewalls.is_empty());
    // Malformed rules are refused.
    for bad in [
        json!({"direction": "in", "protocol": "tcp", "source_ips": ["0.0.0.0/0"]}),
        json!({"direction": "in", "protocol": "icmp", "port": "1", "source_ips": ["0.0.0.0/0"]}),
        json!({"direction": "in", "protocol": "tcp", "port": "22"}),
        json!({"direction": "in", "protocol": "tcp", "port": "22", "source_ips": ["10.0.0.1/8"]}),
    ] {
        let answer = client
            .post("/firewalls", json!({"name": "bad", "rules": [bad]}))
            .await;
        assert_eq!(
            (answer.status, answer.code()),
            (400, "invalid_input"),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn placement_groups_hold_ten_and_refuse_deletion_while_used() {
    let sim = Simulator::start(any_port(), fast()).await.unwrap();
    let client = Client::new(&sim);
    let created = client
        .post("/placement_groups", json!({"name": "pg", "type": "spread"}))
        .await;
    assert_eq!(
        (created.status, &created.body["action"]),
        (201, &Json::Null)
    );
    let group = created.body["placement_group"]["id"].as_u64().unwrap();
    let mut ids = Vec::new();
    for n in 0..10 {
        let mut body = server(&format!("node-{n}"));
        body["placement_group"] = json!(group);
        ids.push(client.create("/servers", body).await);
    }
    let mut body = server("node-10");
    body["placement_group"] = json!(group);
    let full = client.post("/servers", body).await;
    assert_eq!(
        (full.status, full.code()),
        (422, "placement_group_member_limit_reached")
    );
    let shown = client.get(&format!("/placement_groups/{group}")).await;
    assert_eq!(shown.body["placement_group"]["servers"], json!(ids));
    let server = client.get(&format!("/servers/{}", ids[0])).await;
    assert_eq!(server.body["server"]["placement_group"]["id"], group);
    let refused = client.delete(&format!("/placement_groups/{group}")).await;
    assert_eq!((refused.status, refused.code()), (422, "resource_in_use"));
    for id in &ids {
        assert_eq!(client.delete(&format!("/servers/{id}")).await.status, 200);
    }
    client
        .until("/servers", "the group's servers gone", |a| {
            a.body["servers"] == json!([])
        })
        .await;
    assert_eq!(
        client
            .delete(&format!("/placement_groups/{group}"))
            .await
            .status,
        204
    );
    assert_eq!(
        client
            .get(&format!("/placement_groups/{group}"))
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn ssh_keys_by_fingerprint_and_in_creates() {
    let sim = Simulator::start(any_port(), fast()).await.unwrap();
    let client = Client::new(&sim);
    let created = client
        .post(
            "/ssh_keys",
            json!({"name": "op", "public_key": ED25519, "labels": {"by": "fitter"}}),
        )
        .await;
    assert_eq!(created.status, 201);
    assert_eq!(created.body["ssh_key"]["fingerprint"], ED25519_MD5);
    let id = created.body["ssh_key"]["id"].as_u64().unwrap();
    let found = client
        .get(&format!("/ssh_keys?fingerprint={ED25519_MD5}"))
        .await;
    assert_eq!(names(&found.body["ssh_keys"]), ["op"]);
    assert_eq!(
        client.get("/ssh_keys?fingerprint=00").await.body["ssh_keys"],
        json!([])
    );
    let bad = client
        .post(
            "/ssh_keys",
            json!({"name": "bad", "public_key": "ssh-rsa nope"}),
        )
        .await;
    assert_eq!((bad.status, bad.code()), (400, "invalid_input"));
    // Keys by name or by id; an unknown one is refused.
    let mut body = server("keyed");
    body["ssh_keys"] = json!(["op", id.to_string()]);
    assert_eq!(client.post("/servers", body).await.status, 201);
    let mut body = server("unkeyed");
    body["ssh_keys"] = json!(["nobody"]);
    let refused = client.post("/servers", body).await;
    assert_eq!((refused.status, refused.code()), (400, "invalid_input"));
    assert_eq!(client.delete(&format!("/ssh_keys/{id}")).await.status, 204);
    assert_eq!(client.get(&format!("/ssh_keys/{id}")).await.status, 404);
}

#[tokio::test]
async fn creates_are_checked_before_anything_changes() {
    let sim = Simulator::start(any_port(), fast()).await.unwrap();
    let client = Client::new(&sim);
    let with = |key: &str, value: Json| {
        let mut body = server("checked");
        body[key] = value;
        body
    };
    let cases = [
        with("name", json!("bad_name")),
        with("name", json!("-web")),
        with("server_type", json!("cx99")),
        with("image", json!("windows-11")),
        with("image", json!("114690389")),
        with("location", json!("mars1")),
        with("datacenter", json!("fsn1-dc14")),
        with("ssh_keys", json!(["nobody"])),
        with("networks", json!([12345])),
        with("firewalls", json!([{"firewall": 12345}])),
        with("placement_group", json!(12345)),
        with("user_data", json!("x".repeat(32 * 1024 + 1))),
        with("labels", json!({"k": "v!"})),
        with(
            "public_net",
            json!({"enable_ipv4": false, "enable_ipv6": false}),
        ),
        json!({"name": "checked", "server_type": "cx22"}),
    ];
    for body in cases {
        let answer = client.post("/servers", body.clone()).await;
        assert_eq!(answer.status, 400, "{body}: {}", answer.body);
        assert_eq!(answer.code(), "invalid_input", "{body}");
        assert!(answer.body["error"]["message"].is_string());
    }
    let json_error = client
        .send(reqwest::Method::POST, "/servers", Some(json!([1])))
        .await;
    assert_eq!((json_error.status, json_error.code()), (400, "json_error"));
    assert!(sim.snapshot().hetzner.servers.is_empty());
    // An arm type takes the arm image of a name; a datacenter stands for its location.
    let mut arm = server("arm");
    arm["server_type"] = json!("cax11");
    arm.as_object_mut().unwrap().remove("location");
    arm["datacenter"] = json!("hel1-dc2");
    let created = client.post("/servers", arm).await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["server"]["image"]["architecture"], "arm");
    assert_eq!(created.body["server"]["location"]["name"], "hel1");
    assert_eq!(created.body["server"]["datacenter"]["name"], "hel1-dc2");
}

#[tokio::test]
async fn the_server_limit_is_403() {
    let config = Config {
        droplet_limit: Some(2),
        ..fast()
    };
    let sim = Simulator::start(any_port(), config).await.unwrap();
    let client = Client::new(&sim);
    let first = client.create("/servers", server("s-1")).await;
    client.create("/servers", server("s-2")).await;
    let refused = client.post("/servers", server("s-3")).await;
    assert_eq!(
        (refused.status, refused.code()),
        (403, "resource_limit_exceeded")
    );
    assert_eq!(sim.snapshot().hetzner.servers.len(), 2);
    // A deleted server no longer counts.
    client.delete(&format!("/servers/{first}")).await;
    assert_eq!(client.post("/servers", server("s-3")).await.status, 201);
}

#[tokio::test]
async fn the_bucket_empties_and_refills() {
    let config = Config {
        rate_limit_per_hour: 5,
        ..fast()
    };
    let sim = Simulator::start(any_port(), config).await.unwrap();
    let client = Client::new(&sim);
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for n in 0..5u64 {
        let answer = client.get("/servers").await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.header("ratelimit-limit"), 5);
        assert_eq!(answer.header("ratelimit-remaining"), 4 - n);
        // Full again (n + 1) × 720 s from now (less what flowed back meanwhile).
        let reset = answer.header("ratelimit-reset");
        assert!(reset + 60 >= before + (n + 1) * 720, "reset {reset}");
        assert!(reset <= before + 3600 + 60, "reset {reset}");
    }
    let limited = client.post("/servers", server("refused")).await;
    assert_eq!(
        (limited.status, limited.code()),
        (429, "rate_limit_exceeded")
    );
    assert_eq!(limited.header("ratelimit-remaining"), 0);
    let snapshot = sim.snapshot();
    assert!(snapshot.hetzner.servers.is_empty(), "nothing handled");
    assert_eq!(
        (snapshot.counts.total, snapshot.counts.rate_limited),
        (6, 1)
    );
    // Another token has a bucket of its own.
    let other = Client {
        token: "another".into(),
        ..Client::new(&sim)
    };
    assert_eq!(other.get("/servers").await.status, 200);
    // One request flows back every 720 s (3600 / 5); a refusal cost nothing.
    skip(Duration::from_secs(600)).await;
    assert_eq!(client.get("/servers").await.status, 429);
    skip(Duration::from_secs(130)).await;
    let refilled = client.get("/servers").await;
    assert_eq!(refilled.status, 200);
    assert_eq!(refilled.header("ratelimit-remaining"), 0);
}

#[tokio::test]
async fn the_personality_decides_the_prefix_and_the_errors() {
    let sim = Simulator::start(any_port(), fast()).await.unwrap();
    let client = Client::new(&sim);
    let droplets = format!("{}/v2/droplets", sim.url());
    let v2 = client.get(&droplets).await;
    assert_eq!((v2.status, v2.code()), (404, "not_found"));
    let unknown = client.get("/volumes").await;
    assert_eq!((unknown.status, unknown.code()), (404, "not_found"));
    let anonymous = Client {
        token: String::new(),
        ..Client::new(&sim)
    };
    let refused = anonymous.get("/servers").await;
    assert_eq!((refused.status, refused.code()), (401, "unauthorized"));
    assert!(refused.body["error"]["details"].is_object());
    // The catalogue.
    let locations = client.get("/locations").await;
    assert_eq!(
        names(&locations.body["locations"]),
        ["fsn1", "nbg1", "hel1", "ash", "hil", "sin"]
    );
    let types = client.get("/server_types?name=ccx13").await;
    assert_eq!(types.body["server_types"][0]["cpu_type"], "dedicated");
    let images = client.get("/images?name=debian-12&architecture=arm").await;
    assert_eq!(images.body["images"][0]["architecture"], "arm");
    assert_eq!(
        client.get("/images/114690387").await.body["image"]["os_flavor"],
        "debian"
    );

    // Switching the personality at run time moves the API.
    sim.set_config(Config::default());
    assert_eq!(client.get("/servers").await.status, 404);
    assert_eq!(client.get(&droplets).await.status, 200);
    assert_eq!(sim.config().api, Api::DigitalOcean);
}

#[tokio::test]
async fn status_faults_answer_hetzner_errors() {
    let sim = Simulator::start(any_port(), fast()).await.unwrap();
    let client = Client::new(&sim);
    sim.inject(Fault::Status {
        matcher: Matcher::new(Some("POST"), "/v1/servers").times(2),
        status: 503,
    });
    for _ in 0..2 {
        let failed = client.post("/servers", server("web")).await;
        assert_eq!((failed.status, failed.code()), (503, "unavailable"));
    }
    assert!(sim.snapshot().hetzner.servers.is_empty());
    assert_eq!(client.post("/servers", server("web")).await.status, 201);
    sim.inject(Fault::Status {
        matcher: Matcher::new(None, "/v1/").times(1),
        status: 429,
    });
    let limited = client.get("/servers").await;
    assert_eq!(
        (limited.status, limited.code()),
        (429, "rate_limit_exceeded")
    );
    assert!(!limited.headers.contains_key("retry-after"));
    assert_eq!(sim.snapshot().counts.rate_limited, 1);
}

#[tokio::test]
async fn a_lost_response_still_creates_and_the_retry_meets_the_name() {
    let sim = Simulator::start(any_port(), fast()).await.unwrap();
    sim.inject(Fault::LostResponse {
        matcher: Matcher::new(Some("POST"), "/v1/servers").times(1),
    });
    let client = Client::new(&sim);
    let result = client
        .try_send(reqwest::Method::POST, "/servers", Some(server("lost")))
        .await;
    assert!(result.is_err(), "expected a network error");
    assert_eq!(sim.snapshot().hetzner.servers[0]["name"], "lost");
    assert_eq!(sim.requests()[0].status, 201);
    // The retry is refused: names are unique, so the client can look the server up by name.
    let retry = client.post("/servers", server("lost")).await;
    assert_eq!((retry.status, retry.code()), (409, "uniqueness_error"));
    let found = client.get("/servers?name=lost").await;
    assert_eq!(found.body["meta"]["pagination"]["total_entries"], 1);
}

#[tokio::test]
async fn a_slow_create_happens_even_when_the_client_gives_up() {
    let sim = Simulator::start(any_port(), fast()).await.unwrap();
    let client = Client::new(&sim);
    give_up_on_slow_post(&sim, "/servers", server("slow"), DELAY).await;
    client
        .until("/servers?name=slow", "the slow create done", |a| {
            a.body["servers"].as_array().is_some_and(|l| l.len() == 1)
        })
        .await;
    assert_eq!(sim.snapshot().hetzner.servers.len(), 1);
}

#[tokio::test]
async fn stuck_servers_stay_starting_and_unlisted_ones_show_late() {
    let sim = Simulator::start(any_port(), fast()).await.unwrap();
    sim.inject(Fault::StuckNew {
        name: "stuck".into(),
    });
    sim.inject(Fault::Unlisted {
        name: "late".into(),
        delay: LONG,
    });
    let client = Client::new(&sim);
    let stuck = client.post("/servers", server("stuck")).await;
    let action = stuck.body["action"]["id"].clone();
    let stuck = stuck.body["server"]["id"].clone();
    let late = client.create("/servers", server("late")).await;
    let fine = client.create("/servers", server("fine")).await;
    // Hidden: missing from the list and 404, though it exists.
    assert_eq!(client.get(&format!("/servers/{late}")).await.status, 404);
    let listed = client.get("/servers").await;
    assert_eq!(names(&listed.body["servers"]), ["stuck", "fine"]);
    assert_eq!(sim.snapshot().hetzner.servers.len(), 3);
    assert_eq!(sim.requests()[3].status, 404);

    skip(LONG).await;
    let shown = client.get(&format!("/servers/{late}")).await;
    assert_eq!(shown.status, 200, "listed once the delay has passed");
    let fine = client.get(&format!("/servers/{fine}")).await;
    assert_eq!(fine.body["server"]["status"], "running");
    let held = client.get(&format!("/servers/{stuck}")).await;
    assert_eq!(held.body["server"]["status"], "starting");
    let running = client.get(&format!("/actions/{action}")).await;
    assert_eq!(running.body["action"]["status"], "running");
    assert!(running.body["action"]["progress"].as_u64().unwrap() < 100);
    sim.clear_faults();
    let freed = client.get(&format!("/servers/{stuck}")).await;
    assert_eq!(freed.body["server"]["status"], "running");
    assert_eq!(
        client.get(&format!("/actions/{action}")).await.body["action"]["status"],
        "success"
    );
}

#[tokio::test]
async fn hostile_faults_apply_to_hetzner_answers() {
    let sim = Simulator::start(any_port(), fast()).await.unwrap();
    let client = Client::new(&sim);
    client.post("/servers", server("web")).await;
    sim.inject(Fault::Field {
        matcher: Matcher::new(Some("GET"), "/v1/servers").times(1),
        field: "ip".into(),
        value: json!("*"),
    });
    let rewritten = client.get("/servers").await;
    assert_eq!(
        rewritten.body["servers"][0]["public_net"]["ipv4"]["ip"],
        "*"
    );
    sim.inject(Fault::EndlessPages {
        matcher: Matcher::new(Some("GET"), "/v1/servers").times(2),
    });
    for page in [1, 7] {
        let endless = client.get(&format!("/servers?page={page}")).await;
        assert_eq!(endless.body["meta"]["pagination"]["next_page"], page + 1);
        assert_eq!(names(&endless.body["servers"]), ["web"]);
    }
    sim.inject(Fault::Answer {
        matcher: Matcher::new(None, "/v1/").times(1),
        status: 200,
        headers: [("content-type".to_owned(), "text/html".to_owned())].into(),
        body: "<html>".into(),
    });
    let html = client.get("/servers").await;
    assert_eq!((html.status, &html.body), (200, &json!("<html>")));
    sim.inject(Fault::Huge {
        matcher: Matcher::new(None, "/v1/").times(1),
        bytes: 100_000,
    });
    let huge = client.get("/servers").await;
    assert_eq!(huge.body.as_str().map(str::len), Some(100_000));
    sim.inject(Fault::StuckActions);
    let fw = client.post("/firewalls", json!({"name": "fw"})).await.body["firewall"]["id"].clone();
    let set = client
        .post(
            &format!("/firewalls/{fw}/actions/set_rules"),
            json!({"rules": [ssh_rule()]}),
        )
        .await;
    let action = set.body["actions"][0]["id"].clone();
    assert_eq!(set.body["actions"][0]["status"], "running");
    sim.clear_faults();
    assert_eq!(
        client.get(&format!("/actions/{action}")).await.body["action"]["status"],
        "success"
    );
}

#[test]
fn the_control_api_speaks_for_both_personalities() {
    // Started as DigitalOcean, switched to Hetzner through the control API.
    let sim = Simulator::start_background(any_port(), Config::default()).unwrap();
    let addr = sim.addr();
    let (status, _) = raw_http(
        addr,
        "PUT",
        "/_sim/config",
        r#"{"api": "hetzner", "rate_limit_per_hour": 3600}"#,
    );
    assert_eq!(status, 204);
    assert_eq!(sim.config().api, Api::Hetzner);
    let (status, config) = raw_http(addr, "GET", "/_sim/config", "");
    assert_eq!(status, 200);
    let config: Json = serde_json::from_str(&config).unwrap();
    assert_eq!(
        (&config["api"], &config["rate_limit_per_hour"]),
        (&json!("hetzner"), &json!(3600))
    );
    let (status, _) = raw_http(
        addr,
        "POST",
        "/v1/ssh_keys",
        &json!({"name": "op", "public_key": ED25519}).to_string(),
    );
    assert_eq!(status, 201);
    let fault = r#"{"kind": "status", "matcher": {"path_prefix": "/v1/ssh_keys", "times": 1}, "status": 500}"#;
    assert_eq!(raw_http(addr, "POST", "/_sim/faults", fault).0, 204);
    let (status, body) = raw_http(addr, "GET", "/v1/ssh_keys", "");
    assert_eq!(status, 500);
    assert_eq!(
        serde_json::from_str::<Json>(&body).unwrap()["error"]["code"],
        "server_error"
    );
    let (status, state) = raw_http(addr, "GET", "/_sim/state", "");
    assert_eq!(status, 200);
    let state: Json = serde_json::from_str(&state).unwrap();
    assert_eq!(state["hetzner"]["ssh_keys"][0]["fingerprint"], ED25519_MD5);
    assert_eq!(state["counts"]["total"], 2);
    let (_, requests) = raw_http(addr, "GET", "/_sim/requests", "");
    let requests: Json = serde_json::from_str(&requests).unwrap();
    assert_eq!(requests[1]["path"], "/v1/ssh_keys");
    assert_eq!(requests[1]["status"], 500);
    assert_eq!(raw_http(addr, "POST", "/_sim/reset", "").0, 204);
    assert!(sim.snapshot().hetzner.ssh_keys.is_empty());
    assert_eq!(sim.config().api, Api::Hetzner, "a reset keeps the config");

    // Configs and snapshots in JSON: `api` defaults to DigitalOcean, `hetzner` to empty.
    let back: Config =
        serde_json::from_value(json!({"api": "hetzner", "active_delay_ms": 5})).unwrap();
    assert_eq!(back.api, Api::Hetzner);
    assert_eq!(
        back.rate_limit_per_hour, 5000,
        "a missing field takes Config::default()'s"
    );
    let plain: Config = serde_json::from_value(json!({})).unwrap();
    assert_eq!(plain.api, Api::DigitalOcean);
    let old: fitter_sim::Snapshot = serde_json::from_value(json!({
        "droplets": [], "vpcs": [], "firewalls": [], "tags": [], "ssh_keys": [],
        "counts": {"total": 0, "get": 0, "post": 0, "put": 0, "patch": 0, "delete": 0, "rate_limited": 0}
    }))
    .unwrap();
    assert!(
        old.hetzner.servers.is_empty(),
        "snapshots without `hetzner` still read"
    );
}
