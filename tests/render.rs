//! Every file bootstrap renders for a 3-master, 9-agent cluster with fixed addresses
//! (../shared/reference/mesos-stack.md §7: masters 10.0.0.11-13, agents 10.0.0.21-29,
//! rack-⌈j/3⌉), as insta snapshots, plus the checks that the reference table states.

use std::collections::BTreeMap;

use fitter::bootstrap::{self, Addresses, NodeConfig};
use fitter::components::Catalog;
use fitter::fittings::{self, LoadOptions};

const PLAN: &str = r#"---
deployment: mesos-cluster
defaults:
  provider: lxd
  ethernet: {name: mesos, subnet: 10.0.0.0/24}
  master: {roles: [zookeeper, mesos-master, marathon]}
  agent: {roles: [mesos-agent, docker]}
---
locationId: local
blueprints:
  - masters:
      nodes:
        - m[1..3]: {default: master}
  - agents:
      nodes:
        - s[1..3]: {default: agent, attributes: {rack: rack-1}}
        - s[4..6]: {default: agent, attributes: {rack: rack-2}}
        - s[7..9]: {default: agent, attributes: {rack: rack-3}}
"#;

/// A plan loaded with the built-in catalog, which must accept it.
fn load(name: &str, plan: &str, catalog: &Catalog) -> fittings::Fittings {
    let options = LoadOptions {
        parameters: BTreeMap::new(),
        provider: None,
        catalog,
    };
    let loaded = fittings::load(name, plan, &options);
    loaded
        .fittings
        .unwrap_or_else(|| panic!("{:?}", loaded.diagnostics))
}

fn configs() -> Vec<NodeConfig> {
    let catalog = Catalog::builtin().unwrap();
    let f = load("cluster.yaml", PLAN, &catalog);
    let mut addresses = BTreeMap::new();
    for i in 1..=3 {
        addresses.insert(
            format!("m{i}"),
            Addresses {
                private: Some(format!("10.0.0.1{i}")),
                public: None,
            },
        );
    }
    for j in 1..=9u32 {
        addresses.insert(
            format!("s{j}"),
            Addresses {
                private: Some(format!("10.0.0.2{j}")),
                public: None,
            },
        );
    }
    bootstrap::render(&f, &catalog, &addresses, &mut BTreeMap::new(), None).unwrap()
}

fn file<'a>(configs: &'a [NodeConfig], node: &str, path: &str) -> &'a str {
    let c = configs.iter().find(|c| c.node == node).unwrap();
    &c.files
        .iter()
        .find(|f| f.path == path)
        .unwrap_or_else(|| panic!("{node} has no {path}"))
        .content
}

#[test]
fn every_rendered_file_is_a_snapshot() {
    let configs = configs();
    for c in &configs {
        let mut text = String::new();
        for f in &c.files {
            text.push_str(&format!(
                "==> {} (mode {}, component {})\n{}",
                f.path, f.mode, f.component, f.content
            ));
        }
        text.push_str(&format!(
            "==> services to run: {:?}\n",
            c.services.iter().map(|s| &s.name).collect::<Vec<_>>()
        ));
        text.push_str(&format!("==> services to disable: {:?}\n", c.disable));
        insta::assert_snapshot!(format!("render-{}", c.node), text);
    }
}

#[test]
fn rendered_files_match_the_reference_cluster() {
    let c = configs();
    let zk = "10.0.0.11:2181,10.0.0.12:2181,10.0.0.13:2181";
    // zoo.cfg: identical on all members, the §1 keys, servers in order.
    let zoo = file(&c, "m1", "/etc/zookeeper/conf/zoo.cfg");
    for line in [
        "tickTime=2000",
        "initLimit=10",
        "syncLimit=5",
        "dataDir=/var/lib/zookeeper",
        "clientPort=2181",
        "4lw.commands.whitelist=srvr,mntr,ruok",
        "admin.enableServer=false",
        "server.1=10.0.0.11:2888:3888\nserver.2=10.0.0.12:2888:3888\nserver.3=10.0.0.13:2888:3888",
    ] {
        assert!(zoo.contains(line), "zoo.cfg lacks {line}:\n{zoo}");
    }
    assert_eq!(zoo, file(&c, "m2", "/etc/zookeeper/conf/zoo.cfg"));
    assert_eq!(zoo, file(&c, "m3", "/etc/zookeeper/conf/zoo.cfg"));
    for i in 1..=3 {
        assert_eq!(
            file(&c, &format!("m{i}"), "/etc/zookeeper/conf/myid"),
            format!("{i}\n")
        );
        assert_eq!(
            file(&c, &format!("m{i}"), "/etc/mesos-master/quorum"),
            "2\n"
        );
        assert_eq!(
            file(&c, &format!("m{i}"), "/etc/mesos-master/ip"),
            format!("10.0.0.1{i}\n")
        );
        let marathon = file(&c, &format!("m{i}"), "/etc/default/marathon");
        assert!(marathon.contains(&format!("MARATHON_MASTER=zk://{zk}/mesos\n")));
        assert!(marathon.contains(&format!("MARATHON_ZK=zk://{zk}/marathon\n")));
        assert!(marathon.contains("MARATHON_MESOS_USER=root\n"));
    }
    for j in 1..=9u32 {
        let s = format!("s{j}");
        assert_eq!(file(&c, &s, "/etc/mesos/zk"), format!("zk://{zk}/mesos\n"));
        assert_eq!(
            file(&c, &s, "/etc/mesos-slave/containerizers"),
            "docker,mesos\n"
        );
        assert_eq!(
            file(&c, &s, "/etc/mesos-slave/executor_registration_timeout"),
            "5mins\n"
        );
        assert_eq!(
            file(&c, &s, "/etc/mesos-slave/attributes/rack"),
            format!("rack-{}\n", j.div_ceil(3))
        );
        let daemon: serde_json::Value =
            serde_json::from_str(file(&c, &s, "/etc/docker/daemon.json")).unwrap();
        assert_eq!(daemon["storage-driver"], "overlay2");
        assert_eq!(daemon["log-opts"]["max-size"], "10m");
    }
    // Every file ends in exactly one newline.
    for cfg in &c {
        for f in &cfg.files {
            assert!(
                f.content.ends_with('\n') && !f.content.ends_with("\n\n"),
                "{} {}",
                cfg.node,
                f.path
            );
        }
    }
    // Masters run ZooKeeper and disable the agent; agents disable master and ZooKeeper.
    let m1 = c.iter().find(|x| x.node == "m1").unwrap();
    assert!(m1.services.iter().any(|s| s.name == "zookeeper"));
    assert!(m1.disable.contains(&"mesos-slave".to_string()));
    let s1 = c.iter().find(|x| x.node == "s1").unwrap();
    assert!(
        s1.disable.contains(&"zookeeper".to_string())
            && s1.disable.contains(&"mesos-master".to_string())
    );
    // Mesos and Marathon have no package source any more: configuration only. Docker is
    // installed and run (Debian's docker.io).
    assert!(!s1.services.iter().any(|s| s.name == "mesos-slave"));
    assert!(s1.services.iter().any(|s| s.name == "docker"));
    assert!(s1.packages.contains(&"docker.io".to_string()));
}

#[test]
fn cloud_config_is_rendered_with_tokens_and_stable_secrets() {
    let plan = r#"---
defaults:
  provider: lxd
  ethernet: {name: cc, subnet: 10.0.0.0/24}
  cloud-config:
    runcmd:
      - echo defaults-first
---
locationId: local
blueprints:
  - cc:
      nodes:
        - db1: {roles: [zookeeper]}
        - web1:
            cloud-config:
              hostname: web-one
              write_files:
                - path: /etc/web.conf
                  permissions: '0600'
                  content: "db={{ db1.private }} me={{ node.private }} pw={{ web.secret }} other={{ something.else }}"
              ssh_authorized_keys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTests user@host"]
              runcmd:
                - [touch, /tmp/it worked]
                - echo "{{ db1.private }}"
"#;
    let catalog = Catalog::builtin().unwrap();
    let f = load("cc.yaml", plan, &catalog);
    let mut addresses = BTreeMap::new();
    addresses.insert(
        "db1".to_string(),
        Addresses {
            private: Some("10.0.0.10".into()),
            public: None,
        },
    );
    addresses.insert(
        "web1".to_string(),
        Addresses {
            private: Some("10.0.0.11".into()),
            public: None,
        },
    );
    let mut secrets = BTreeMap::new();
    let first = bootstrap::render(&f, &catalog, &addresses, &mut secrets, None).unwrap();
    let web = first.iter().find(|c| c.node == "web1").unwrap();
    let conf = web
        .files
        .iter()
        .find(|x| x.path == "/etc/web.conf")
        .unwrap();
    let pw = &secrets["secret.web"];
    assert_eq!(pw.len(), 9);
    assert_eq!(
        conf.content,
        format!("db=10.0.0.10 me=10.0.0.11 pw={pw} other={{{{ something.else }}}}")
    );
    assert_eq!(conf.mode, "0600");
    let script = &web
        .files
        .iter()
        .find(|x| x.path == bootstrap::CLOUD_CONFIG_SCRIPT)
        .unwrap()
        .content;
    // defaults' runcmd first (lists concatenate), then the node's; argv lists are quoted.
    let defaults_at = script.find("echo defaults-first").unwrap();
    assert!(
        script[defaults_at..].contains("'touch' '/tmp/it worked'"),
        "{script}"
    );
    assert!(script.contains("echo \"10.0.0.10\""), "{script}");
    assert!(script.contains("hostname 'web-one'"), "{script}");
    assert!(script.contains("FakeKeyForTests"), "{script}");
    assert_eq!(web.run_on_change, [bootstrap::CLOUD_CONFIG_SCRIPT]);
    // The same secrets give the same files: a second run changes nothing.
    let again = bootstrap::render(&f, &catalog, &addresses, &mut secrets, None).unwrap();
    assert_eq!(first, again);
}

#[test]
fn sshd_hardening_is_added_when_the_plan_asks() {
    let catalog = Catalog::builtin().unwrap();
    let options = LoadOptions {
        parameters: BTreeMap::new(),
        provider: None,
        catalog: &catalog,
    };
    let plan = "---\nssh: {harden: true}\ndefaults: {provider: lxd, ethernet: {name: h, subnet: 10.0.0.0/24}}\n---\nlocationId: local\nblueprints:\n  - h:\n      nodes: [n1]\n";
    let f = fittings::load("h.yaml", plan, &options).fittings.unwrap();
    let mut addresses = BTreeMap::new();
    addresses.insert(
        "n1".to_string(),
        Addresses {
            private: Some("10.0.0.10".into()),
            public: None,
        },
    );
    let c = bootstrap::render(&f, &catalog, &addresses, &mut BTreeMap::new(), None).unwrap();
    let conf = c[0]
        .files
        .iter()
        .find(|f| f.path == "/etc/ssh/sshd_config.d/50-fitter.conf")
        .unwrap();
    assert!(conf.content.contains("PasswordAuthentication no\n"));
    assert!(conf.content.contains("PermitRootLogin prohibit-password\n"));
    assert!(c[0].services.iter().any(|s| s.name == "ssh"));
}

#[test]
fn every_generated_token_of_plumbery_renders_and_stays_the_same() {
    let plan = r#"---
defaults:
  provider: lxd
  ethernet: {name: gen, subnet: 10.0.0.0/24}
---
locationId: local
blueprints:
  - gen:
      nodes:
        - box1:
            cloud-config:
              write_files:
                - path: /etc/generated
                  content: |
                    secret={{ random.secret }}
                    md5={{ random.secret.md5 }}
                    sha1={{ random.secret.sha1 }}
                    sha256={{ random.secret.sha256 }}
                    uuid={{ uuid.u1 }}
                    ipv6=[{{ node.ipv6 }}]
                    local={{ rsa_public.local }}
                    env={{ environment.FITTER_RENDER_TOKEN_TEST }}
                - path: /root/.ssh/id_rsa
                  permissions: '0600'
                  content: "{{ rsa_private.key1 }}"
              ssh_authorized_keys:
                - "{{ rsa_public.key1 }}"
"#;
    // SAFETY: set before any thread of this test reads the environment.
    unsafe { std::env::set_var("FITTER_RENDER_TOKEN_TEST", "from-env") };
    let catalog = Catalog::builtin().unwrap();
    let f = load("gen.yaml", plan, &catalog);
    let mut secrets = BTreeMap::new();
    let local = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOperatorKeyForTests operator@host";
    let render = |secrets: &mut BTreeMap<String, String>| {
        bootstrap::render(&f, &catalog, &BTreeMap::new(), secrets, Some(local)).unwrap()
    };
    let first = render(&mut secrets);
    let file = |path: &str| {
        first[0]
            .files
            .iter()
            .find(|x| x.path == path)
            .unwrap_or_else(|| panic!("no {path}"))
            .content
            .clone()
    };
    let generated = file("/etc/generated");
    let secret = &secrets["secret.random"];
    let hex = |d: &[u8]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
    use sha2::Digest as _;
    for line in [
        format!("secret={secret}"),
        format!("md5={}", hex(&md5::Md5::digest(secret.as_bytes()))),
        format!("sha1={}", hex(&sha1::Sha1::digest(secret.as_bytes()))),
        format!("sha256={}", hex(&sha2::Sha256::digest(secret.as_bytes()))),
        format!("uuid={}", secrets["uuid.u1"]),
        "ipv6=[]".to_string(),
        format!("local={local}"),
        "env=from-env".to_string(),
    ] {
        assert!(
            generated.lines().any(|l| l == line),
            "{line} in:\n{generated}"
        );
    }
    assert!(!generated.contains("{{"), "{generated}");
    // One RSA pair per name: the private half in the file, the public one authorised.
    assert!(file("/root/.ssh/id_rsa").starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"));
    let public = &secrets["rsa_public.key1"];
    assert!(public.starts_with("ssh-rsa "), "{public}");
    let script = file(bootstrap::CLOUD_CONFIG_SCRIPT);
    assert!(script.contains(public.as_str()), "{script}");
    // Kept in the state's secrets: the next run renders the same, no new key.
    let kept = secrets.clone();
    assert_eq!(render(&mut secrets), first);
    assert_eq!(secrets, kept);
}

/// What `plan` says bootstrap will place ("mesos-agent 2 nodes: 6 to 7 files") is what it
/// renders: per component, the fewest and the most files any of its nodes gets (an `each:`
/// entry is a file per attribute, none for a node without).
#[test]
fn the_plan_counts_the_files_bootstrap_renders() {
    let catalog = Catalog::builtin().unwrap();
    let plan = PLAN.replace(
        "        - s[7..9]: {default: agent, attributes: {rack: rack-3}}",
        "        - s[7..9]: {default: agent}",
    );
    let f = load("cluster.yaml", &plan, &catalog);
    let addresses: BTreeMap<String, Addresses> = f
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let address = Addresses {
                private: Some(format!("10.0.0.{}", 20 + i)),
                public: None,
            };
            (n.name.value.clone(), address)
        })
        .collect();
    let configs = bootstrap::render(&f, &catalog, &addresses, &mut BTreeMap::new(), None).unwrap();
    let planned = fitter::plan::bootstrap_plan(&f, &catalog);
    let agent = planned
        .iter()
        .find(|c| c.component == "mesos-agent")
        .unwrap();
    assert!(agent.files_min < agent.files, "{agent:?}");
    for component in &planned {
        let counts: Vec<usize> = component
            .nodes
            .iter()
            .map(|node| {
                let c = configs.iter().find(|c| &c.node == node).unwrap();
                c.files
                    .iter()
                    .filter(|f| f.component == component.component)
                    .count()
            })
            .collect();
        assert_eq!(
            (component.files_min, component.files),
            (*counts.iter().min().unwrap(), *counts.iter().max().unwrap()),
            "{}: rendered {counts:?}",
            component.component
        );
    }
}
