//! The simulator over real HTTP, as a client sees it.

mod common;

use std::time::Duration;

use common::{Answer, Client, ED25519, ED25519_MD5, any_port, give_up_on_slow_post, raw_http};
use fitter_sim::{Config, Fault, Matcher, Simulator};
use serde_json::{Value as Json, json};

/// How long droplets take to become active and to go away in these tests: short, yet long
/// enough that a loaded machine still sees them `new` right after the create.
const DELAY: Duration = Duration::from_millis(2000);

/// The delays above, and a rate limit that [`Client::until`]'s polling stays under.
fn fast() -> Config {
    Config {
        active_delay: DELAY,
        delete_delay: DELAY,
        rate_limit_per_minute: 10_000,
        ..Config::default()
    }
}

fn droplet(name: &str) -> Json {
    json!({"name": name, "region": "nyc3", "size": "s-1vcpu-1gb", "image": "ubuntu-24-04-x64"})
}

fn v4(droplet: &Json, kind: &str) -> Option<String> {
    droplet["networks"]["v4"]
        .as_array()?
        .iter()
        .find(|n| n["type"] == kind)
        .and_then(|n| n["ip_address"].as_str())
        .map(str::to_owned)
}

#[tokio::test]
async fn a_new_droplet_becomes_active_with_addresses() {
    let sim = Simulator::start(any_port(), fast()).await.unwrap();
    let client = Client::new(&sim);
    let created = client.post("/v2/droplets", droplet("web-1")).await;
    assert_eq!(created.status, 202);
    let first = &created.body["droplet"];
    assert_eq!(first["status"], "new");
    assert_eq!(first["networks"]["v4"], json!([]));
    assert!(first["id"].is_u64());
    let action = &created.body["links"]["actions"][0];
    assert_eq!(action["rel"], "create");
    let action_id = action["id"].as_u64().unwrap();
    let second = client.post("/v2/droplets", droplet("web-2")).await.body["droplet"]["id"]
        .as_u64()
        .unwrap();

    let in_progress = client.get(&format!("/v2/actions/{action_id}")).await;
    assert_eq!(in_progress.body["action"]["status"], "in-progress");
    assert_eq!(in_progress.body["action"]["completed_at"], Json::Null);

    let got = client
        .until(
            &format!("/v2/droplets/{}", first["id"]),
            "web-1 active",
            |a| a.body["droplet"]["status"] == "active",
        )
        .await
        .body["droplet"]
        .clone();
    assert_eq!(got["status"], "active");
    assert_eq!(got["locked"], false);
    // The droplet went into the region's default VPC, created on the way.
    let vpc = client
        .get(&format!("/v2/vpcs/{}", got["vpc_uuid"].as_str().unwrap()))
        .await;
    assert_eq!(vpc.status, 200);
    assert_eq!(vpc.body["vpc"]["default"], true);
    assert_eq!(vpc.body["vpc"]["ip_range"], "10.100.0.0/20");
    assert_eq!(v4(&got, "private").as_deref(), Some("10.100.0.2"));
    assert_eq!(v4(&got, "public").as_deref(), Some("127.1.0.1"));
    let other = client.get(&format!("/v2/droplets/{second}")).await.body["droplet"].clone();
    assert_eq!(v4(&other, "private").as_deref(), Some("10.100.0.3"));
    assert_eq!(v4(&other, "public").as_deref(), Some("127.1.0.2"));

    let done = client.get(&format!("/v2/actions/{action_id}")).await;
    assert_eq!(done.body["action"]["status"], "completed");
    assert_eq!(done.body["action"]["resource_id"], first["id"]);
}

#[tokio::test]
async fn delays_follow_the_tokio_clock() {
    let config = Config {
        active_delay: Duration::from_secs(60),
        delete_delay: Duration::from_secs(60),
        ..Config::default()
    };
    let sim = Simulator::start(any_port(), config).await.unwrap();
    let client = Client::new(&sim);
    client.post("/v2/droplets", droplet("stays")).await;
    let id = client.post("/v2/droplets", droplet("goes")).await.body["droplet"]["id"].clone();
    assert_eq!(
        client.delete(&format!("/v2/droplets/{id}")).await.status,
        204
    );
    // No more network from here: a paused clock and network I/O do not mix.
    tokio::time::pause();
    let statuses = |snapshot: fitter_sim::Snapshot| -> Vec<(Json, Json)> {
        snapshot
            .droplets
            .iter()
            .map(|d| (d["name"].clone(), d["status"].clone()))
            .collect()
    };
    assert_eq!(
        statuses(sim.snapshot()),
        [
            (json!("stays"), json!("new")),
            (json!("goes"), json!("off"))
        ]
    );
    tokio::time::advance(Duration::from_secs(61)).await;
    assert_eq!(
        statuses(sim.snapshot()),
        [(json!("stays"), json!("active"))]
    );
}

#[tokio::test]
async fn lists_paginate_with_links() {
    let sim = Simulator::start(any_port(), fast()).await.unwrap();
    let client = Client::new(&sim);
    let empty = client.get("/v2/droplets").await;
    assert_eq!(
        empty.body,
        json!({"droplets": [], "links": {}, "meta": {"total": 0}})
    );
    for batch in 0..5 {
        let names: Vec<String> = (0..9).map(|i| format!("node-{batch}-{i}")).collect();
        let mut body = droplet("x");
        body.as_object_mut().unwrap().remove("name");
        body["names"] = json!(names);
        body["tags"] = json!(["cluster"]);
        assert_eq!(client.post("/v2/droplets", body).await.status, 202);
    }
    let mut url = "/v2/droplets?tag_name=cluster&per_page=20".to_owned();
    let mut pages = Vec::new();
    loop {
        let page = client.get(&url).await;
        assert_eq!(page.status, 200);
        assert_eq!(page.body["meta"]["total"], 45);
        pages.push(page.body["droplets"].as_array().unwrap().len());
        match page.body["links"]["pages"]["next"].as_str() {
            Some(next) => {
                assert!(next.starts_with(&sim.url()), "{next}");
                assert!(next.contains("tag_name=cluster"), "{next}");
                url = next.to_owned();
            }
            None => break,
        }
    }
    assert_eq!(pages, vec![20, 20, 5]);
    let last = client.get("/v2/droplets?page=3&per_page=20").await;
    let links = &last.body["links"]["pages"];
    assert!(links["first"].is_string() && links["prev"].is_string());
    assert!(links.get("next").is_none() && links.get("last").is_none());
    let middle = client.get("/v2/droplets?page=2").await;
    assert_eq!(
        middle.body["links"]["pages"]["last"],
        format!("{}/v2/droplets?page=3&per_page=20", sim.url())
    );
    assert_eq!(client.get("/v2/droplets?per_page=201").await.status, 422);
    assert_eq!(
        client.get("/v2/droplets?per_page=200").await.body["droplets"]
            .as_array()
            .unwrap()
            .len(),
        45
    );
}

#[tokio::test]
async fn names_create_a_batch() {
    let sim = Simulator::start(any_port(), fast()).await.unwrap();
    let client = Client::new(&sim);
    let mut body = droplet("x");
    body.as_object_mut().unwrap().remove("name");
    body["names"] = json!(["a-1", "a-2", "a-3"]);
    let created = client.post("/v2/droplets", body.clone()).await;
    assert_eq!(created.status, 202);
    let droplets = created.body["droplets"].as_array().unwrap();
    let names: Vec<&str> = droplets
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a-1", "a-2", "a-3"]);
    assert_eq!(
        created.body["links"]["actions"].as_array().unwrap().len(),
        3
    );
    assert!(created.body.get("droplet").is_none());

    body["names"] = json!((0..11).map(|i| format!("b-{i}")).collect::<Vec<_>>());
    assert_eq!(client.post("/v2/droplets", body.clone()).await.status, 422);
    body["names"] = json!(["bad_name"]);
    assert_eq!(client.post("/v2/droplets", body).await.status, 422);
    assert_eq!(sim.snapshot().droplets.len(), 3);
}

#[tokio::test]
async fn past_the_budget_requests_get_429_with_retry_after() {
    let config = Config {
        rate_limit_per_minute: 5,
        ..fast()
    };
    let sim = Simulator::start(any_port(), config).await.unwrap();
    let client = Client::new(&sim);
    for n in 0..5 {
        let answer = client.get("/v2/droplets").await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.headers["ratelimit-limit"], "5000");
        assert_eq!(
            answer.headers["ratelimit-remaining"],
            (4999 - n).to_string().as_str()
        );
        assert!(answer.headers.contains_key("ratelimit-reset"));
    }
    let limited = client.get("/v2/droplets").await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.body["id"], "too_many_requests");
    let retry: u64 = limited.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "retry-after {retry}");
    // The refused request did not count.
    assert_eq!(limited.headers["ratelimit-remaining"], "4995");
    // Creates are refused too, and change nothing.
    assert_eq!(
        client.post("/v2/droplets", droplet("web")).await.status,
        429
    );
    let snapshot = sim.snapshot();
    assert!(snapshot.droplets.is_empty());
    assert_eq!(snapshot.counts.rate_limited, 2);
    assert_eq!(snapshot.counts.total, 7);
    // Another token has its own budget.
    let other = Client {
        token: "another".into(),
        ..Client::new(&sim)
    };
    assert_eq!(other.get("/v2/droplets").await.status, 200);
    // reset() forgets the windows.
    sim.reset();
    assert_eq!(client.get("/v2/droplets").await.status, 200);
}

#[tokio::test]
async fn listing_ssh_keys_has_its_own_budget() {
    let config = Config {
        key_list_per_minute: 2,
        ..fast()
    };
    let sim = Simulator::start(any_port(), config).await.unwrap();
    let client = Client::new(&sim);
    assert_eq!(client.get("/v2/account/keys").await.status, 200);
    assert_eq!(client.get("/v2/account/keys").await.status, 200);
    let limited = client.get("/v2/account/keys").await;
    assert_eq!(limited.status, 429);
    assert!(limited.headers.contains_key("retry-after"));
    // Keys by id or fingerprint, and other endpoints, are not held back.
    let created = client
        .post(
            "/v2/account/keys",
            json!({"name": "fitter", "public_key": ED25519}),
        )
        .await;
    assert_eq!(created.status, 201);
    assert_eq!(created.body["ssh_key"]["fingerprint"], ED25519_MD5);
    assert_eq!(
        client
            .get(&format!("/v2/account/keys/{ED25519_MD5}"))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn ssh_keys_are_unique_and_usable_by_fingerprint() {
    let sim = Simulator::start(any_port(), fast()).await.unwrap();
    let client = Client::new(&sim);
    let key = json!({"name": "fitter", "public_key": ED25519});
    let id = client.post("/v2/account/keys", key.clone()).await.body["ssh_key"]["id"].clone();
    let again = client.post("/v2/account/keys", key).await;
    assert_eq!(again.status, 422);
    assert_eq!(
        again.body["message"],
        "SSH Key is already in use on your account"
    );
    let mut body = droplet("web");
    body["ssh_keys"] = json!([id, ED25519_MD5]);
    assert_eq!(client.post("/v2/droplets", body.clone()).await.status, 202);
    body["ssh_keys"] = json!([12345]);
    assert_eq!(client.post("/v2/droplets", body).await.status, 422);
    assert_eq!(
        client
            .delete(&format!("/v2/account/keys/{id}"))
            .await
            .status,
        204
    );
    assert_eq!(
        client.get(&format!("/v2/account/keys/{id}")).await.status,
        404
    );
}

#[tokio::test]
async fn a_lost_response_still_creates_the_droplet() {
    let sim = Simulator::start(any_port(), fast()).await.unwrap();
    sim.inject(Fault::LostResponse {
        matcher: Matcher::new(Some("POST"), "/v2/droplets").times(1),
    });
    let client = Client::new(&sim);
    let result = client
        .try_send(reqwest::Method::POST, "/v2/droplets", Some(droplet("lost")))
        .await;
    let error = match result {
        Err(error) => error,
        Ok(answer) => panic!("expected a network error, got HTTP {}", answer.status),
    };
    assert!(error.status().is_none(), "{error}");
    let snapshot = sim.snapshot();
    assert_eq!(snapshot.droplets.len(), 1);
    assert_eq!(snapshot.droplets[0]["name"], "lost");
    let requests = sim.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].status, 202);
    assert_eq!(requests[0].body.as_ref().unwrap()["name"], "lost");
    // Only once: the retry is answered (and creates a duplicate, as the real API would).
    assert_eq!(
        client.post("/v2/droplets", droplet("lost")).await.status,
        202
    );
    assert_eq!(
        client.get("/v2/droplets?name=lost").await.body["meta"]["total"],
        2
    );
}

#[tokio::test]
async fn a_slow_create_happens_even_when_the_client_gives_up() {
    let sim = Simulator::start(any_port(), fast()).await.unwrap();
    let client = Client::new(&sim);
    give_up_on_slow_post(&sim, "/v2/droplets", droplet("slow"), DELAY).await;
    assert!(sim.snapshot().droplets.is_empty());
    client
        .until("/v2/droplets", "the slow create done", |a| {
            a.body["meta"]["total"] == 1
        })
        .await;
    assert_eq!(sim.snapshot().droplets.len(), 1);
}

#[tokio::test]
async fn a_reset_during_a_slow_request_is_harmless() {
    let sim = Simulator::start(any_port(), fast()).await.unwrap();
    sim.inject(Fault::Slow {
        matcher: Matcher::new(Some("GET"), "/v2/vpcs"),
        delay: Duration::from_secs(5),
    });
    let client = Client::new(&sim);
    let slow = tokio::spawn(async move { client.get("/v2/vpcs").await.status });
    // Recorded as it arrives; the fault holds it for 5 s, far longer than this check takes.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while sim.requests().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the request never arrived"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(sim.requests().len(), 1);
    assert_eq!(sim.requests()[0].status, 0, "still in flight");
    sim.reset();
    assert_eq!(slow.await.unwrap(), 200);
    assert!(sim.requests().is_empty());
}

#[tokio::test]
async fn stuck_new_droplets_stay_new() {
    let sim = Simulator::start(any_port(), fast()).await.unwrap();
    sim.inject(Fault::StuckNew {
        name: "stuck".into(),
    });
    let client = Client::new(&sim);
    client.post("/v2/droplets", droplet("stuck")).await;
    client.post("/v2/droplets", droplet("fine")).await;
    client
        .until("/v2/droplets?name=fine", "fine active", |a| {
            a.body["droplets"][0]["status"] == "active"
        })
        .await;
    let status = |name: &'static str| {
        let snapshot = sim.snapshot();
        snapshot
            .droplets
            .iter()
            .find(|d| d["name"] == name)
            .map(|d| d["status"].clone())
            .unwrap()
    };
    assert_eq!(status("stuck"), "new");
    assert_eq!(status("fine"), "active");
    sim.clear_faults();
    assert_eq!(status("stuck"), "active");
}

#[tokio::test]
async fn a_vpc_with_members_cannot_be_deleted() {
    let sim = Simulator::start(any_port(), fast()).await.unwrap();
    let client = Client::new(&sim);
    let vpc = client
        .post(
            "/v2/vpcs",
            json!({"name": "fitter-net", "region": "nyc3", "ip_range": "10.30.0.0/24"}),
        )
        .await;
    assert_eq!(vpc.status, 201);
    assert_eq!(vpc.body["vpc"]["default"], false);
    let vpc_id = vpc.body["vpc"]["id"].as_str().unwrap().to_owned();
    let again = client
        .post("/v2/vpcs", json!({"name": "fitter-net", "region": "nyc3"}))
        .await;
    assert_eq!(again.status, 422);
    let public = client
        .post(
            "/v2/vpcs",
            json!({"name": "public", "region": "nyc3", "ip_range": "8.8.8.0/24"}),
        )
        .await;
    assert_eq!(public.status, 422);

    let mut body = droplet("member");
    body["vpc_uuid"] = json!(vpc_id);
    let id = client.post("/v2/droplets", body).await.body["droplet"]["id"].clone();
    let members = client.get(&format!("/v2/vpcs/{vpc_id}/members")).await;
    assert_eq!(
        members.body["members"][0]["urn"],
        format!("do:droplet:{id}")
    );
    let refused = client.delete(&format!("/v2/vpcs/{vpc_id}")).await;
    assert_eq!(refused.status, 403);
    assert_eq!(refused.body["id"], "forbidden");

    assert_eq!(
        client.delete(&format!("/v2/droplets/{id}")).await.status,
        204
    );
    // Still a member until the deletion has gone through.
    assert_eq!(client.get(&format!("/v2/droplets/{id}")).await.status, 200);
    assert_eq!(
        client.delete(&format!("/v2/vpcs/{vpc_id}")).await.status,
        403
    );
    client
        .until(&format!("/v2/droplets/{id}"), "the droplet gone", |a| {
            a.status == 404
        })
        .await;
    assert_eq!(
        client.delete(&format!("/v2/vpcs/{vpc_id}")).await.status,
        204
    );
    assert_eq!(client.get(&format!("/v2/vpcs/{vpc_id}")).await.status, 404);

    // The region's default VPC is never deleted.
    let default = sim.snapshot().vpcs;
    assert!(default.is_empty(), "no default VPC was needed: {default:?}");
    client.post("/v2/droplets", droplet("in-default")).await;
    let default_id = sim.snapshot().vpcs[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        client
            .delete(&format!("/v2/vpcs/{default_id}"))
            .await
            .status,
        403
    );
}

#[tokio::test]
async fn firewalls_need_existing_tags() {
    let sim = Simulator::start(any_port(), fast()).await.unwrap();
    let client = Client::new(&sim);
    let firewall = json!({
        "name": "fitter-fw",
        "inbound_rules": [
            {"protocol": "tcp", "ports": "22", "sources": {"addresses": ["0.0.0.0/0"]}},
            {"protocol": "tcp", "ports": "2181", "sources": {"tags": ["zk"]}},
        ],
        "outbound_rules": [
            {"protocol": "icmp", "ports": "0", "destinations": {"addresses": ["0.0.0.0/0"]}},
        ],
        "tags": ["zk"],
    });
    let refused = client.post("/v2/firewalls", firewall.clone()).await;
    assert_eq!(refused.status, 422);
    assert_eq!(refused.body["id"], "unprocessable_entity");
    assert!(sim.snapshot().firewalls.is_empty());

    assert_eq!(
        client.post("/v2/tags", json!({"name": "zk"})).await.status,
        201
    );
    let created = client.post("/v2/firewalls", firewall.clone()).await;
    assert_eq!(created.status, 202);
    assert_eq!(created.body["firewall"]["status"], "succeeded");
    assert_eq!(created.body["firewall"]["tags"], json!(["zk"]));

    let mut no_ports = firewall;
    no_ports["inbound_rules"][0]
        .as_object_mut()
        .unwrap()
        .remove("ports");
    assert_eq!(client.post("/v2/firewalls", no_ports).await.status, 400);
}

#[tokio::test]
async fn tags_and_deleting_by_tag() {
    let sim = Simulator::start(any_port(), fast()).await.unwrap();
    let client = Client::new(&sim);
    assert_eq!(
        client
            .post("/v2/tags", json!({"name": "bad tag"}))
            .await
            .status,
        422
    );
    let created = client.post("/v2/tags", json!({"name": "web"})).await;
    assert_eq!(created.status, 201);
    assert_eq!(created.body["tag"]["resources"]["count"], 0);
    assert_eq!(
        client.post("/v2/tags", json!({"name": "web"})).await.status,
        201
    );
    let mut body = droplet("web-1");
    body["tags"] = json!(["web", "fitter:plan-1"]);
    client.post("/v2/droplets", body).await;
    client.post("/v2/droplets", droplet("other")).await;
    let tag = client.get("/v2/tags/fitter:plan-1").await;
    assert_eq!(tag.status, 200, "tags are created with the droplet");
    assert_eq!(tag.body["tag"]["resources"]["droplets"]["count"], 1);

    assert_eq!(client.delete("/v2/tags/web").await.status, 204);
    let listed = client.get("/v2/droplets?name=web-1").await;
    assert_eq!(listed.body["droplets"][0]["tags"], json!(["fitter:plan-1"]));
    assert_eq!(
        client.get("/v2/droplets?tag_name=x&name=y").await.status,
        422
    );

    assert_eq!(
        client
            .delete("/v2/droplets?tag_name=fitter:plan-1")
            .await
            .status,
        204
    );
    let left = client
        .until("/v2/droplets", "the tagged droplets gone", |a| {
            a.body["meta"]["total"] == 1
        })
        .await;
    assert_eq!(left.body["meta"]["total"], 1);
    assert_eq!(left.body["droplets"][0]["name"], "other");
}

#[tokio::test]
async fn the_droplet_limit_refuses_creates() {
    let config = Config {
        droplet_limit: Some(2),
        ..fast()
    };
    let sim = Simulator::start(any_port(), config).await.unwrap();
    let client = Client::new(&sim);
    assert_eq!(
        client.post("/v2/droplets", droplet("one")).await.status,
        202
    );
    let mut body = droplet("x");
    body.as_object_mut().unwrap().remove("name");
    body["names"] = json!(["two", "three"]);
    let refused = client.post("/v2/droplets", body).await;
    assert_eq!(refused.status, 422);
    assert_eq!(
        refused.body["message"],
        "creating this/these droplet(s) will exceed your droplet limit"
    );
    assert_eq!(sim.snapshot().droplets.len(), 1);
}

#[tokio::test]
async fn requests_need_a_bearer_token() {
    let config = Config {
        token: Some("secret".into()),
        ..fast()
    };
    let sim = Simulator::start(any_port(), config).await.unwrap();
    let wrong = Client::new(&sim);
    let refused = wrong.get("/v2/droplets").await;
    assert_eq!(refused.status, 401);
    assert_eq!(refused.body["id"], "unauthorized");
    assert_eq!(refused.body["message"], "Unable to authenticate you");
    let none = reqwest::get(format!("{}/v2/droplets", sim.url()))
        .await
        .unwrap();
    assert_eq!(none.status(), 401);
    let right = Client {
        token: "secret".into(),
        ..Client::new(&sim)
    };
    assert_eq!(right.get("/v2/droplets").await.status, 200);
}

#[tokio::test]
async fn status_faults_skip_then_fail_a_number_of_times() {
    let sim = Simulator::start(any_port(), fast()).await.unwrap();
    sim.inject(Fault::Status {
        matcher: Matcher::new(Some("POST"), "/v2/droplets").skip(1).times(2),
        status: 503,
    });
    let client = Client::new(&sim);
    let statuses = [
        client.post("/v2/droplets", droplet("a")).await.status,
        client.post("/v2/droplets", droplet("b")).await.status,
        client.post("/v2/droplets", droplet("c")).await.status,
        client.get("/v2/droplets").await.status,
        client.post("/v2/droplets", droplet("d")).await.status,
    ];
    assert_eq!(statuses, [202, 503, 503, 200, 202]);
    let names: Vec<Json> = sim
        .snapshot()
        .droplets
        .iter()
        .map(|d| d["name"].clone())
        .collect();
    assert_eq!(names, [json!("a"), json!("d")]);
    let recorded: Vec<u16> = sim.requests().iter().map(|r| r.status).collect();
    assert_eq!(recorded, statuses);

    sim.inject(Fault::Status {
        matcher: Matcher::new(None, "/v2/vpcs").times(1),
        status: 429,
    });
    let limited = client.get("/v2/vpcs").await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.headers["retry-after"], "1");
    assert!(limited.headers.contains_key("ratelimit-remaining"));
    assert_eq!(sim.snapshot().counts.rate_limited, 1);
}

#[test]
fn background_simulator_and_the_control_api() {
    let sim = Simulator::start_background(any_port(), fast()).unwrap();
    let addr = sim.addr();
    assert_ne!(addr.port(), 0);

    let fault = json!({
        "kind": "status",
        "matcher": {"method": "GET", "path_prefix": "/v2/droplets", "times": 1},
        "status": 500,
    });
    assert_eq!(
        raw_http(addr, "POST", "/_sim/faults", &fault.to_string()).0,
        204
    );
    assert_eq!(raw_http(addr, "GET", "/v2/droplets", "").0, 500);
    assert_eq!(raw_http(addr, "GET", "/v2/droplets", "").0, 200);
    let (status, _) = raw_http(addr, "POST", "/v2/droplets", &droplet("web").to_string());
    assert_eq!(status, 202);

    let (status, state) = raw_http(addr, "GET", "/_sim/state", "");
    assert_eq!(status, 200);
    let state: fitter_sim::Snapshot = serde_json::from_str(&state).unwrap();
    assert_eq!(state.droplets.len(), 1);
    assert_eq!(state.counts.get, 2);
    assert_eq!(state.counts.post, 1);
    assert_eq!(state.counts, sim.snapshot().counts);

    let (_, requests) = raw_http(addr, "GET", "/_sim/requests", "");
    let requests: Vec<fitter_sim::RecordedRequest> = serde_json::from_str(&requests).unwrap();
    assert_eq!(requests.len(), 3);
    assert_eq!(requests[0].status, 500);

    let config = json!({"active_delay_ms": 0, "droplet_limit": 1});
    assert_eq!(
        raw_http(addr, "PUT", "/_sim/config", &config.to_string()).0,
        204
    );
    assert_eq!(sim.config().droplet_limit, Some(1));
    assert_eq!(sim.config().rate_limit_per_minute, 250);
    assert_eq!(
        raw_http(addr, "PUT", "/_sim/config", r#"{"typo": 1}"#).0,
        400
    );
    let (status, _) = raw_http(addr, "POST", "/v2/droplets", &droplet("two").to_string());
    assert_eq!(status, 422);

    assert_eq!(raw_http(addr, "DELETE", "/_sim/faults", "").0, 204);
    assert_eq!(raw_http(addr, "POST", "/_sim/reset", "").0, 204);
    let snapshot = sim.snapshot();
    assert!(snapshot.droplets.is_empty() && snapshot.vpcs.is_empty());
    assert_eq!(snapshot.counts, fitter_sim::Counts::default());
    assert!(sim.requests().is_empty());
}

#[test]
fn faults_and_config_round_trip_through_json() {
    let fault = Fault::Slow {
        matcher: Matcher::new(None, "/v2/vpcs").skip(2),
        delay: Duration::from_millis(1500),
    };
    let text = serde_json::to_string(&fault).unwrap();
    assert_eq!(
        text,
        r#"{"kind":"slow","matcher":{"method":null,"path_prefix":"/v2/vpcs","skip":2,"times":0},"delay_ms":1500}"#
    );
    assert_eq!(serde_json::from_str::<Fault>(&text).unwrap(), fault);
    let config: Config = serde_json::from_str(r#"{"active_delay_ms": 10}"#).unwrap();
    assert_eq!(config.active_delay, Duration::from_millis(10));
    assert_eq!(config.delete_delay, Duration::from_secs(1));
    assert_eq!(config.action_delay, Duration::from_secs(1));
    let config: Config = serde_json::from_str(r#"{"action_delay_ms": 250}"#).unwrap();
    assert_eq!(config.action_delay, Duration::from_millis(250));
    assert!(
        serde_json::to_string(&config)
            .unwrap()
            .contains(r#""action_delay_ms":250"#)
    );
    let lost: Fault = serde_json::from_str(
        r#"{"kind":"lost_response","matcher":{"path_prefix":"/v2/droplets"}}"#,
    )
    .unwrap();
    assert_eq!(
        lost,
        Fault::LostResponse {
            matcher: Matcher::new(None, "/v2/droplets")
        }
    );
}

#[tokio::test]
async fn a_thousand_droplets_in_batches_list_in_pages() {
    let config = Config {
        rate_limit_per_minute: 10_000,
        ..fast()
    };
    let sim = Simulator::start(any_port(), config).await.unwrap();
    let client = Client::new(&sim);
    for batch in 0..100 {
        let mut body = droplet("x");
        body.as_object_mut().unwrap().remove("name");
        body["names"] = json!(
            (0..10)
                .map(|i| format!("n-{batch}-{i}"))
                .collect::<Vec<_>>()
        );
        body["tags"] = json!(["big"]);
        assert_eq!(client.post("/v2/droplets", body).await.status, 202);
    }
    let mut seen = 0;
    for page in 1..=5 {
        let answer = client
            .get(&format!(
                "/v2/droplets?tag_name=big&per_page=200&page={page}"
            ))
            .await;
        seen += answer.body["droplets"].as_array().unwrap().len();
    }
    assert_eq!(seen, 1000);
}

/// Droplets active at once; actions take [`DELAY`].
fn actions_config() -> Config {
    Config {
        active_delay: Duration::ZERO,
        action_delay: DELAY,
        ..fast()
    }
}

/// Creates an active droplet (with [`actions_config`]) and returns its id.
async fn active_droplet(client: &Client, name: &str) -> u64 {
    let created = client.post("/v2/droplets", droplet(name)).await;
    assert_eq!(created.status, 202);
    let id = created.body["droplet"]["id"].as_u64().unwrap();
    let got = client.get(&format!("/v2/droplets/{id}")).await;
    assert_eq!(got.body["droplet"]["status"], "active");
    assert_eq!(got.body["droplet"]["locked"], false);
    id
}

async fn act(client: &Client, id: u64, body: Json) -> Answer {
    client
        .post(&format!("/v2/droplets/{id}/actions"), body)
        .await
}

fn assert_unprocessable(answer: &Answer, message: &str) {
    assert_eq!(answer.status, 422, "{}", answer.body);
    assert_eq!(answer.body["id"], "unprocessable_entity");
    assert_eq!(answer.body["message"], message);
}

#[tokio::test]
async fn power_off_resize_power_on() {
    let sim = Simulator::start(any_port(), actions_config())
        .await
        .unwrap();
    let client = Client::new(&sim);
    let id = active_droplet(&client, "web-1").await;
    let droplet_path = format!("/v2/droplets/{id}");

    // Resizing a running droplet is refused, and nothing starts.
    let refused = act(
        &client,
        id,
        json!({"type": "resize", "size": "s-2vcpu-4gb"}),
    )
    .await;
    assert_unprocessable(&refused, "Droplet must be powered off to resize.");
    assert_eq!(
        client.get(&droplet_path).await.body["droplet"]["locked"],
        false
    );

    // power_off: in progress (droplet locked, still active), then completed (off).
    let off = act(&client, id, json!({"type": "power_off"})).await;
    assert_eq!(off.status, 201, "{}", off.body);
    let action = &off.body["action"];
    assert_eq!(action["status"], "in-progress");
    assert_eq!(action["type"], "power_off");
    assert_eq!(action["completed_at"], Json::Null);
    assert_eq!(action["resource_id"], id);
    assert_eq!(action["resource_type"], "droplet");
    assert_eq!(action["region_slug"], "nyc3");
    assert_eq!(action["region"]["slug"], "nyc3");
    assert!(action["started_at"].is_string());
    let off_id = action["id"].as_u64().unwrap();
    let busy = client.get(&droplet_path).await.body["droplet"].clone();
    assert_eq!(
        (busy["status"].clone(), busy["locked"].clone()),
        (json!("active"), json!(true))
    );
    let pending = act(&client, id, json!({"type": "power_on"})).await;
    assert_unprocessable(&pending, "Droplet already has a pending event.");
    let in_progress = client.get(&format!("/v2/actions/{off_id}")).await;
    assert_eq!(in_progress.body["action"]["status"], "in-progress");

    let done = client
        .until(&format!("/v2/actions/{off_id}"), "power_off done", |a| {
            a.body["action"]["status"] == "completed"
        })
        .await
        .body["action"]
        .clone();
    assert_eq!(done["status"], "completed");
    assert!(done["completed_at"].is_string());
    let off = client.get(&droplet_path).await.body["droplet"].clone();
    assert_eq!(
        (off["status"].clone(), off["locked"].clone()),
        (json!("off"), json!(false))
    );

    // resize without disk: CPU and RAM change, the disk stays.
    let resize = act(
        &client,
        id,
        json!({"type": "resize", "size": "s-2vcpu-4gb", "disk": false}),
    )
    .await;
    assert_eq!(resize.status, 201, "{}", resize.body);
    assert_eq!(resize.body["action"]["type"], "resize");
    let busy = client.get(&droplet_path).await.body["droplet"].clone();
    assert_eq!(busy["locked"], true);
    assert_eq!(busy["size_slug"], "s-1vcpu-1gb");
    let resized = client
        .until(&droplet_path, "the resize done", |a| {
            a.body["droplet"]["locked"] == false
        })
        .await
        .body["droplet"]
        .clone();
    assert_eq!(resized["status"], "off");
    assert_eq!(resized["locked"], false);
    assert_eq!(resized["size_slug"], "s-2vcpu-4gb");
    assert_eq!(resized["size"]["slug"], "s-2vcpu-4gb");
    assert_eq!(resized["memory"], 4096);
    assert_eq!(resized["vcpus"], 2);
    assert_eq!(resized["disk"], 25);

    // resize with disk: the disk grows too; a size with a smaller disk is then out of reach.
    let resize = act(
        &client,
        id,
        json!({"type": "resize", "size": "s-4vcpu-8gb", "disk": true}),
    )
    .await;
    assert_eq!(resize.status, 201, "{}", resize.body);
    let resized = client
        .until(&droplet_path, "the resize with disk done", |a| {
            a.body["droplet"]["locked"] == false
        })
        .await
        .body["droplet"]
        .clone();
    assert_eq!(
        (
            resized["vcpus"].clone(),
            resized["memory"].clone(),
            resized["disk"].clone()
        ),
        (json!(4), json!(8192), json!(200))
    );
    let smaller = act(
        &client,
        id,
        json!({"type": "resize", "size": "s-2vcpu-4gb"}),
    )
    .await;
    assert_eq!(smaller.status, 422);

    // power_on: active again, with the new size.
    let on = act(&client, id, json!({"type": "power_on"})).await;
    assert_eq!(on.status, 201, "{}", on.body);
    let on_id = on.body["action"]["id"].as_u64().unwrap();
    let on = client
        .until(&droplet_path, "power_on done", |a| {
            a.body["droplet"]["locked"] == false
        })
        .await
        .body["droplet"]
        .clone();
    assert_eq!(
        (on["status"].clone(), on["locked"].clone()),
        (json!("active"), json!(false))
    );
    assert_eq!(on["size_slug"], "s-4vcpu-8gb");

    // The droplet's actions, newest first, its create included.
    let list = client
        .get(&format!("/v2/droplets/{id}/actions?per_page=2"))
        .await;
    assert_eq!(list.status, 200);
    assert_eq!(list.body["meta"]["total"], 5);
    let types: Vec<&str> = list.body["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["power_on", "resize"]);
    assert!(list.body["links"]["pages"]["next"].is_string());
    let last = client
        .get(&format!("/v2/droplets/{id}/actions?per_page=2&page=3"))
        .await;
    assert_eq!(last.body["actions"][0]["type"], "create");
    let one = client
        .get(&format!("/v2/droplets/{id}/actions/{on_id}"))
        .await;
    assert_eq!(one.status, 200);
    assert_eq!(one.body["action"]["status"], "completed");
    // /v2/actions lists them too.
    let all = client.get("/v2/actions").await;
    assert_eq!(all.body["meta"]["total"], 5);
    assert_eq!(sim.snapshot().counts.post, 8);
}

#[tokio::test]
async fn shutdown_turns_a_droplet_off() {
    let sim = Simulator::start(any_port(), actions_config())
        .await
        .unwrap();
    let client = Client::new(&sim);
    let id = active_droplet(&client, "web-1").await;
    let shutdown = act(&client, id, json!({"type": "shutdown"})).await;
    assert_eq!(shutdown.status, 201, "{}", shutdown.body);
    assert_eq!(shutdown.body["action"]["type"], "shutdown");
    let got = client
        .until(&format!("/v2/droplets/{id}"), "shutdown done", |a| {
            a.body["droplet"]["locked"] == false
        })
        .await;
    assert_eq!(got.body["droplet"]["status"], "off");
}

#[tokio::test]
async fn actions_that_are_refused() {
    let sim = Simulator::start(any_port(), actions_config())
        .await
        .unwrap();
    let client = Client::new(&sim);
    let id = active_droplet(&client, "web-1").await;

    let unknown = act(&client, id, json!({"type": "explode"})).await;
    assert_unprocessable(&unknown, "`explode` is not a valid droplet action type.");
    let unsupported = act(&client, id, json!({"type": "reboot"})).await;
    assert_eq!(unsupported.status, 422);
    let untyped = act(&client, id, json!({})).await;
    assert_unprocessable(&untyped, "type is required.");
    let power_off = act(&client, id, json!({"type": "power_off"})).await;
    assert_eq!(power_off.status, 201);
    client
        .until(&format!("/v2/droplets/{id}"), "power_off done", |a| {
            a.body["droplet"]["locked"] == false
        })
        .await;
    let sizeless = act(&client, id, json!({"type": "resize", "disk": true})).await;
    assert_unprocessable(&sizeless, "size is required to resize a Droplet.");
    let bad_disk = act(
        &client,
        id,
        json!({"type": "resize", "size": "s-2vcpu-2gb", "disk": "yes"}),
    )
    .await;
    assert_eq!(bad_disk.status, 422);
    assert_eq!(
        act(&client, 1, json!({"type": "power_on"})).await.status,
        404
    );
    assert_eq!(
        act(&client, id, json!({"type": "power_on"})).await.status,
        201
    );

    // A droplet still being created is locked by its create action.
    sim.set_config(Config {
        active_delay: Duration::from_secs(60),
        ..actions_config()
    });
    let new = client.post("/v2/droplets", droplet("web-2")).await.body["droplet"]["id"]
        .as_u64()
        .unwrap();
    let pending = act(&client, new, json!({"type": "power_off"})).await;
    assert_unprocessable(&pending, "Droplet already has a pending event.");

    // A deleted droplet shows `off` until it is gone, but no action brings it back.
    assert_eq!(
        client.delete(&format!("/v2/droplets/{id}")).await.status,
        204
    );
    let deleted = client.get(&format!("/v2/droplets/{id}")).await;
    assert_eq!(deleted.body["droplet"]["status"], "off");
    assert_eq!(
        act(&client, id, json!({"type": "power_on"})).await.status,
        404
    );
    assert_eq!(
        client.get(&format!("/v2/droplets/{id}")).await.body["droplet"]["status"],
        "off"
    );
    client
        .until(
            &format!("/v2/droplets/{id}/actions"),
            "the droplet gone",
            |a| a.status == 404,
        )
        .await;

    // An action belongs to its droplet.
    let create_action = client
        .get(&format!("/v2/droplets/{new}/actions"))
        .await
        .body["actions"][0]["id"]
        .as_u64()
        .unwrap();
    assert_eq!(
        client
            .get(&format!("/v2/droplets/{new}/actions/{create_action}"))
            .await
            .status,
        200
    );
    assert_eq!(
        client
            .get(&format!("/v2/droplets/{id}/actions/{create_action}"))
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn faults_and_rate_limits_apply_to_actions() {
    let config = Config {
        rate_limit_per_minute: 5,
        ..actions_config()
    };
    let sim = Simulator::start(any_port(), config).await.unwrap();
    let client = Client::new(&sim);
    let id = active_droplet(&client, "web-1").await;
    sim.inject(Fault::Status {
        matcher: Matcher::new(Some("POST"), &format!("/v2/droplets/{id}/actions")).times(1),
        status: 503,
    });
    assert_eq!(
        act(&client, id, json!({"type": "power_off"})).await.status,
        503
    );
    // The injected failure changed nothing: the droplet is not locked.
    assert_eq!(
        act(&client, id, json!({"type": "power_off"})).await.status,
        201
    );
    // Five requests so far (create, get, 503, 201, this 422); the sixth is over the budget.
    assert_unprocessable(
        &act(&client, id, json!({"type": "power_on"})).await,
        "Droplet already has a pending event.",
    );
    let limited = act(&client, id, json!({"type": "power_on"})).await;
    assert_eq!(limited.status, 429);
    assert!(limited.headers.contains_key("retry-after"));
    let counts = sim.snapshot().counts;
    assert_eq!((counts.post, counts.rate_limited), (5, 1));
}

#[tokio::test]
async fn action_delays_follow_the_tokio_clock() {
    let config = Config {
        action_delay: Duration::from_secs(60),
        ..actions_config()
    };
    let sim = Simulator::start(any_port(), config).await.unwrap();
    let client = Client::new(&sim);
    let id = active_droplet(&client, "web-1").await;
    assert_eq!(
        act(&client, id, json!({"type": "power_off"})).await.status,
        201
    );
    tokio::time::pause();
    let status = |sim: &Simulator| sim.snapshot().droplets[0]["status"].clone();
    assert_eq!(status(&sim), "active");
    tokio::time::advance(Duration::from_secs(61)).await;
    assert_eq!(status(&sim), "off");
    assert_eq!(sim.snapshot().droplets[0]["locked"], false);
}
