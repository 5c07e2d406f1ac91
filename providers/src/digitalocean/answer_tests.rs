//! Answers of the wrong type or shape: each an error naming the call and the field, with
//! nothing of the answer printed raw.

use reqwest::Method;
use serde_json::{Value as Json, json};

use super::*;
use crate::digitalocean::client::{self, Answer, Failure};

const LISTING: &str = "/v2/droplets?tag_name=fitter-d";

fn droplet(id: Json, name: &str, public: &str) -> Json {
    json!({
        "id": id, "name": name, "status": "active", "locked": false,
        "size_slug": "s-1vcpu-1gb", "tags": ["fitter-d", "fitter-d:role:agent"],
        "networks": {"v4": [
            {"ip_address": "10.10.0.2", "type": "private", "netmask": "255.255.0.0"},
            {"ip_address": public, "type": "public"}
        ], "v6": []},
        "image": {"id": 1, "name": "Ubuntu"}, "memory": 1024, "created_at": "2020-07-21T18:37:44Z"
    })
}

/// The message of parsing `key` of a 200 `body` to `method path` as `T`, which must fail.
fn refused<T: serde::de::DeserializeOwned + std::fmt::Debug>(
    method: Method,
    path: &str,
    body: Json,
    key: &str,
) -> String {
    let answer = Answer { status: 200, body };
    match client::parse::<T>(&method, path, &answer, key) {
        Err(Failure::Malformed { status, message }) => {
            assert_eq!(status, 200);
            assert!(
                message.starts_with(&format!("{method} {path}: the answer's `")),
                "the call is not named: {message}"
            );
            assert!(
                !message.chars().any(char::is_control),
                "a control character printed: {message:?}"
            );
            message
        }
        other => panic!("parsed or failed otherwise: {other:?}"),
    }
}

fn listing(droplets: Vec<Json>) -> Json {
    json!({"droplets": droplets, "links": {}, "meta": {"total": droplets.len()}})
}

#[test]
fn a_droplet_parses_with_only_what_fitter_reads_and_unknown_fields_ignored() {
    let answer = Answer {
        status: 200,
        body: listing(vec![droplet(json!(7), "agent1", "127.1.0.2")]),
    };
    let got: Vec<Droplet> = client::parse(&Method::GET, LISTING, &answer, "droplets").unwrap();
    assert_eq!(got[0].id, 7);
    assert_eq!(got[0].name, "agent1");
    assert_eq!(got[0].networks.v4[1].ip_address.to_string(), "127.1.0.2");
    assert_eq!(got[0].tags[1], "fitter-d:role:agent");
}

#[test]
fn a_droplet_id_of_the_wrong_type_is_an_error_not_an_entry_skipped() {
    let body = listing(vec![
        droplet(json!(7), "agent1", "127.1.0.2"),
        droplet(json!("abc"), "agent2", "127.1.0.3"),
    ]);
    let m = refused::<Vec<Droplet>>(Method::GET, LISTING, body, "droplets");
    assert!(m.contains("`droplets[1].id` does not parse"), "{m}");
    assert!(m.contains("expected u64"), "{m}");
}

#[test]
fn hostile_addresses_do_not_parse() {
    for hostile in ["*", "1.2.3.4\nevil", "host.example", ""] {
        let body = listing(vec![droplet(json!(7), "agent1", hostile)]);
        let m = refused::<Vec<Droplet>>(Method::GET, LISTING, body, "droplets");
        assert!(
            m.contains("`droplets[0].networks.v4[1].ip_address` does not parse"),
            "{hostile:?}: {m}"
        );
        assert!(m.contains("invalid IP address syntax"), "{m}");
    }
}

#[test]
fn a_name_with_a_line_break_does_not_parse_and_is_not_printed_raw() {
    let body = json!({"droplet": droplet(json!(7), "agent1\nevil", "127.1.0.2")});
    let m = refused::<Droplet>(Method::GET, "/v2/droplets/7", body, "droplet");
    assert!(m.contains("`droplet.name` does not parse"), "{m}");
    assert!(
        m.contains(r#""agent1\nevil" is not a DigitalOcean name"#),
        "{m}"
    );
    for bad in ["", "a b", "x/../y", &"n".repeat(256)] {
        assert!(Name::try_from(bad.to_string()).is_err(), "{bad:?}");
    }
}

#[test]
fn a_fingerprint_of_the_wrong_shape_does_not_parse() {
    let key = |fingerprint: &str| {
        json!({"ssh_key": {
            "id": 512189, "name": "My SSH Public Key", "fingerprint": fingerprint,
            "public_key": "ssh-ed25519 AAAA test"
        }})
    };
    let path = "/v2/account/keys/56:a0:fe:79:7b:ea:46:33:1a:ad:d9:ad:e2:90:fd:9e";
    let answer = Answer {
        status: 200,
        body: key("56:a0:fe:79:7b:ea:46:33:1a:ad:d9:ad:e2:90:fd:9e"),
    };
    let good: SshKey = client::parse(&Method::GET, path, &answer, "ssh_key").unwrap();
    assert_eq!((good.id, &*good.name), (512189, "My SSH Public Key"));
    for bad in [
        "56a0fe797bea46331aadd9ade290fd9e",
        "56:a0:fe:79:7b:ea:46:33:1a:ad:d9:ad:e2:90:fd",
        "56:a0:fe:79:7b:ea:46:33:1a:ad:d9:ad:e2:90:fd:zz",
        "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s",
    ] {
        let m = refused::<SshKey>(Method::GET, path, key(bad), "ssh_key");
        assert!(m.contains("`ssh_key.fingerprint` does not parse"), "{m}");
        assert!(m.contains("is not an MD5 fingerprint"), "{m}");
    }
}

#[test]
fn a_vpc_id_that_is_not_a_uuid_does_not_parse() {
    let vpc =
        |id: &str| json!({"id": id, "name": "fitter-d-net", "description": "fitter deployment d"});
    let path = "/v2/vpcs?page=1&per_page=200";
    let answer = Answer {
        status: 200,
        body: json!({"vpcs": [vpc("5a4981aa-9653-4bd1-bef5-d6bff52042e4")]}),
    };
    let good: Vec<Vpc> = client::parse(&Method::GET, path, &answer, "vpcs").unwrap();
    assert_eq!(good[0].description.as_deref(), Some("fitter deployment d"));
    for bad in [
        "5a4981aa96534bd1bef5d6bff52042e4",
        "5a4981aa-9653-4bd1-bef5-d6bff52042e",
        "../../v2/droplets/5a4981aa-9653-4bd1",
        "5a4981aa-9653-4bd1-bef5-d6bff52042eg",
    ] {
        let body = json!({"vpcs": [vpc("5a4981aa-9653-4bd1-bef5-d6bff52042e4"), vpc(bad)]});
        let m = refused::<Vec<Vpc>>(Method::GET, path, body, "vpcs");
        assert!(m.contains("`vpcs[1].id` does not parse"), "{m}");
        assert!(m.contains("is not a UUID"), "{m}");
    }
}

#[test]
fn a_missing_answer_or_field_names_where_it_is_missing() {
    let m = refused::<Vpc>(Method::POST, "/v2/vpcs", json!({"links": {}}), "vpc");
    assert!(m.contains("`vpc` does not parse"), "{m}");
    let body = json!({"action": {"id": 3, "type": "resize"}});
    let m = refused::<Action>(Method::GET, "/v2/actions/3", body, "action");
    assert!(
        m.contains("`action` does not parse: missing field `status`"),
        "{m}"
    );
}

#[test]
fn what_an_error_quotes_of_the_answer_is_cut_short() {
    let long = format!("{}\u{1b}[2J", "x".repeat(10_000));
    let body = json!({"tag": {"name": long}});
    let m = refused::<Tag>(Method::GET, "/v2/tags/fitter-d", body, "tag");
    assert!(m.len() < 300, "{} characters: {m}", m.len());
    assert!(m.contains("`tag.name` does not parse"), "{m}");
    // A number where a string belongs: serde quotes the number, nothing else.
    let body = json!({"firewall": {"id": 12, "name": "fw", "tags": null}});
    let m = refused::<Firewall>(Method::GET, "/v2/firewalls/x", body, "firewall");
    assert!(m.contains("`firewall.id` does not parse"), "{m}");
}

#[test]
fn the_shapes_take_what_the_api_sends() {
    assert!(Uuid::try_from("bb4b2611-3d72-467b-8602-280330ecd65c".to_string()).is_ok());
    assert!(Uuid::try_from("BB4B2611-3D72-467B-8602-280330ECD65C".to_string()).is_ok());
    assert!(TagName::try_from("fitter-d:fw:masters".to_string()).is_ok());
    assert!(TagName::try_from("k8s_worker".to_string()).is_ok());
    assert!(TagName::try_from("fitter-d:..".to_string()).is_err());
    assert!(TagName::try_from("a/b".to_string()).is_err());
    assert!(Name::try_from("env.prod-vpc".to_string()).is_ok());
    assert!(Word::try_from("in-progress".to_string()).is_ok());
    assert!(Text::try_from(String::new()).is_ok());
    assert!(Text::try_from("fitter deployment d".to_string()).is_ok());
    assert!(Text::try_from("two\nlines".to_string()).is_err());
    let firewall: Firewall = serde_json::from_value(json!({
        "id": "bb4b2611-3d72-467b-8602-280330ecd65c", "name": "fitter-d-masters",
        "tags": null, "inbound_rules": [], "status": "succeeded"
    }))
    .unwrap();
    assert_eq!(firewall.tags, None);
}
