//! One node: its settings once merged (size, image, region per provider, roles, glue and
//! firewall, the rules its roles need, a fixed address, cloud-config, plumbery's
//! `running`/`destroy` words, agent attributes), checked against its provider's catalogue.

use std::collections::BTreeMap;

use fitter_providers::{ProviderKind, registry};

use crate::components::COMMON;
use crate::diagnostics::Diagnostic;
use crate::yaml::{Node, Span, Value};

use super::rules::{self, Glue, Rule, Source};
use super::schema::{Text, boolean, check_keys, map, number, text, text_list, wrong_type};
use super::{Fittings, Loader, NodeSpec, not_found, tokens, valid_hostname};

pub(super) const NODE_KEYS: &[&str] = &[
    "default",
    "roles",
    "size",
    "image",
    "region",
    "cpu",
    "memory",
    "appliance",
    "glue",
    "firewall",
    "cloud-config",
    "information",
    "description",
    "monitoring",
    "running",
    "destroy",
    "depends_on",
    "attributes",
    "derive_firewall",
    "disks",
    "backup",
    "prepare",
    "windows",
];
/// plumbery keys fitter reads but does not act on yet: a warning, not an error.
const NODE_KEYS_IGNORED: &[&str] = &["disks", "backup", "prepare"];

impl Loader<'_> {
    pub(super) fn node(
        &mut self,
        fittings: &Fittings,
        blueprint: usize,
        name: Text,
        settings: &Node,
    ) -> NodeSpec {
        let location = fittings.blueprints[blueprint].location;
        let loc = &fittings.locations[location];
        let provider = loc.provider;
        let cloud = provider.cloud();
        let index = fittings.nodes.len();
        if !valid_hostname(&name.value) {
            self.report.error(name.span, format!("node name `{}` is not a valid host name: use letters, digits and dashes, start with a letter, at most 63 characters", name.value));
        } else if tokens::RESERVED_NAMES.contains(&name.value.as_str()) {
            self.report.error(
                name.span,
                format!(
                    "`{}` cannot name a node: `{{{{ {}.x }}}}` already means something else",
                    name.value, name.value
                ),
            );
        }

        let size = match settings.get("size") {
            Some(s) => self.per_provider(s, "size", provider),
            None => None,
        };
        let size = match size {
            Some(s) => {
                if let Err(why) = cloud.check_size(&s.value) {
                    self.report.error(s.span, why);
                }
                s.value
            }
            None => self.size_from_cpu_memory(settings, provider),
        };
        let image = match settings.get("image") {
            Some(i) => self.per_provider(i, "image", provider),
            None => None,
        };
        let image = match image {
            Some(i) => {
                if let Err(why) = cloud.check_image(&i.value) {
                    self.report.error(i.span, why);
                }
                i.value
            }
            None => match settings
                .get("appliance")
                .and_then(|a| text(&mut self.report, a, "appliance"))
            {
                Some(a) => match cloud.image_for_appliance(&a.value) {
                    Ok(found) => {
                        if let Some(note) = found.note {
                            self.report.warning(a.span, note);
                        }
                        found.image.to_string()
                    }
                    Err(why) => {
                        self.report.error(a.span, why);
                        String::new()
                    }
                },
                None => cloud.default_image().to_string(),
            },
        };
        let region = match settings.get("region") {
            Some(r) => match self.per_provider(r, "region", provider) {
                Some(r) if cloud.has_regions() => {
                    if let Err(why) = cloud.check_region(&r.value) {
                        self.report.error(r.span, why);
                    }
                    let network = fittings.blueprints[blueprint].network;
                    if let Some(n) = network.map(|n| &fittings.networks[n])
                        && n.region.as_deref() != Some(r.value.as_str())
                    {
                        self.report.error(
                            r.span,
                            format!(
                                "node `{}` is in region `{}` but its network `{}` is in `{}`",
                                name.value,
                                r.value,
                                n.name.value,
                                n.region.as_deref().unwrap_or("")
                            ),
                        );
                    }
                    Some(r.value)
                }
                _ => loc.region.clone(),
            },
            None => loc.region.clone(),
        };

        let mut roles = Vec::new();
        if let Some(r) = settings.get("roles") {
            for role in text_list(&mut self.report, r, "roles") {
                if role.value == COMMON {
                    continue;
                }
                if self.catalog.get(&role.value).is_none() {
                    self.report.push(self.unknown_role(&role));
                } else if roles.iter().any(|r: &Text| r.value == role.value) {
                    continue;
                } else {
                    roles.push(role);
                }
            }
        }

        let mut glue = Glue::default();
        if let Some(g) = settings.get("glue") {
            rules::parse_glue(&mut self.report, g, &mut glue);
        }
        let mut rules = glue.rules;
        if let Some(fw) = settings.get("firewall") {
            rules::parse_firewall(&mut self.report, fw, &mut rules);
        }
        let derive = match settings.get("derive_firewall") {
            Some(d) => boolean(&mut self.report, d, "derive_firewall").unwrap_or(true),
            None => true,
        };
        if derive {
            rules.extend(self.derived_rules(&roles));
        }
        rules.sort();
        rules.dedup();

        let network = fittings.blueprints[blueprint].network;
        let private_ip = match (&glue.primary, network) {
            (Some(p), Some(n)) => match fittings.networks[n].subnet.host(&p.value) {
                Ok(ip) => Some(ip),
                Err(why) => {
                    self.report.error(p.span, why.to_string());
                    None
                }
            },
            (Some(p), None) => {
                if !fittings.blueprints[blueprint].ethernet_declared {
                    self.report.error(
                        p.span,
                        "`glue: primary` needs the blueprint to have an `ethernet`",
                    );
                }
                None
            }
            (None, _) => None,
        };
        if network.is_none()
            && cloud.requires_network()
            && !fittings.blueprints[blueprint].ethernet_declared
        {
            self.report.error(name.span, format!("node `{}` has no network: {provider} nodes need their blueprint to have an `ethernet` with a `subnet`", name.value));
        }

        let cloud_config = settings
            .get("cloud-config")
            .and_then(|cc| self.cloud_config(cc, index));
        let information = settings
            .get("information")
            .map(|i| self.information(i, Some(index)))
            .unwrap_or_default();
        let description = settings
            .get("description")
            .and_then(|d| text(&mut self.report, d, "description"))
            .map(|t| t.value);
        let monitoring = match settings.get("monitoring") {
            None => false,
            Some(m) => match &m.value {
                Value::Bool(b) => *b,
                Value::Str(s) if s == "essentials" || s == "advanced" => true,
                _ => {
                    wrong_type(
                        &mut self.report,
                        m,
                        "monitoring",
                        "`true`, `false`, `essentials` or `advanced`",
                    );
                    false
                }
            },
        };
        if let Some(m) = settings.get("monitoring").filter(|_| monitoring)
            && !provider.cloud().has_monitoring()
        {
            self.report.warning(
                m.span,
                format!(
                    "`monitoring` has no meaning on {} and is ignored",
                    provider.name()
                ),
            );
        }
        let running_always = self.word(settings, "running", "always");
        let destroy_never = self.word(settings, "destroy", "never");
        if let Some(w) = settings.get("windows") {
            self.report.error(w.span, "Windows nodes are not supported");
        }
        for key in NODE_KEYS_IGNORED {
            if let Some(n) = settings.get(key) {
                self.report.warning(
                    n.span,
                    format!("`{key}` is not supported yet and is ignored"),
                );
            }
        }
        let mut attributes = BTreeMap::new();
        if let Some(a) = settings.get("attributes") {
            for (k, v) in map(&mut self.report, a, "attributes").unwrap_or_default() {
                let (Some(k), Some(v)) = (k.scalar_text(), text(&mut self.report, v, "attribute"))
                else {
                    continue;
                };
                if k.is_empty()
                    || !k
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                {
                    self.report.error(
                        a.span,
                        format!("attribute name `{k}` must be letters, digits, `_` and `-`"),
                    );
                    continue;
                }
                attributes.insert(k, v.value);
            }
        }
        let mut depends_on = settings
            .get("depends_on")
            .map(|d| text_list(&mut self.report, d, "depends_on"))
            .unwrap_or_default();
        depends_on.extend(fittings.blueprints[blueprint].depends_on.iter().cloned());

        NodeSpec {
            name,
            blueprint,
            location,
            provider,
            region,
            size,
            image,
            roles,
            network,
            private_ip,
            rules,
            cloud_config,
            information,
            description,
            monitoring,
            running_always,
            destroy_never,
            depends_on,
            references: Vec::new(),
            attributes,
        }
    }

    /// plumbery's `running: always` / `destroy: never`: one accepted word.
    pub(super) fn word(&mut self, settings: &Node, key: &str, word: &str) -> bool {
        match settings.get(key) {
            None => false,
            Some(n) => match n.as_str() {
                Some(w) if w == word => true,
                _ => {
                    wrong_type(&mut self.report, n, key, &format!("`{word}`"));
                    false
                }
            },
        }
    }

    /// `size: s-1vcpu-1gb`, or one value per provider: `size: {digitalocean: ..., lxd: ...}`.
    fn per_provider(&mut self, node: &Node, what: &str, provider: ProviderKind) -> Option<Text> {
        match &node.value {
            Value::Map(entries) => {
                let names = registry::names();
                check_keys(&mut self.report, node, &format!("`{what}`"), &names);
                let (_, v) = entries
                    .iter()
                    .find(|(k, _)| k.as_str() == Some(provider.name()))?;
                text(&mut self.report, v, what)
            }
            _ => text(&mut self.report, node, what),
        }
    }

    fn size_from_cpu_memory(&mut self, settings: &Node, provider: ProviderKind) -> String {
        let cpu = settings.get("cpu").and_then(|c| {
            // plumbery: "8 [1|2] [standard|highperformance]": the first word is the count.
            let first = c.scalar_text()?.split_whitespace().next()?.to_string();
            match first.parse::<u32>() {
                Ok(n) if (1..=64).contains(&n) => Some(n),
                _ => {
                    self.report.error(
                        c.span,
                        format!(
                            "`cpu` must start with a number of CPUs from 1 to 64, found `{first}`"
                        ),
                    );
                    None
                }
            }
        });
        let memory = settings
            .get("memory")
            .and_then(|m| number(&mut self.report, m, "memory", 1, 512))
            .map(|m| m as u32);
        if cpu.is_none() && memory.is_none() {
            return provider.cloud().default_size().to_string();
        }
        let (cpu, memory) = (cpu.unwrap_or(1), memory.unwrap_or(1));
        let span = settings
            .get("cpu")
            .or(settings.get("memory"))
            .map(|n| n.span);
        match provider.cloud().size_for(cpu, memory) {
            Ok(s) => s.to_string(),
            Err(why) => match provider.cloud().size_stand_in(cpu, memory) {
                Some((size, note)) => {
                    self.report.warning(span, note);
                    size.to_string()
                }
                None => {
                    self.report.error(span, why);
                    String::new()
                }
            },
        }
    }

    /// The inbound rules the node's components need (their `ports:`): ZooKeeper's among
    /// its members, Mesos between masters and agents, SSH for fitter itself.
    fn derived_rules(&self, roles: &[Text]) -> Vec<Rule> {
        let mut out = Vec::new();
        let names = std::iter::once(COMMON).chain(roles.iter().map(|r| r.value.as_str()));
        for component in names.filter_map(|n| self.catalog.get(n)) {
            for port in &component.ports {
                let protocol = match port.protocol.as_str() {
                    "udp" => rules::Protocol::Udp,
                    "icmp" => rules::Protocol::Icmp,
                    _ => rules::Protocol::Tcp,
                };
                let range = match &port.port {
                    crate::components::PortSpec::One(p) => Some((*p, *p)),
                    crate::components::PortSpec::Range(r) => r
                        .split_once('-')
                        .and_then(|(a, b)| Some((a.trim().parse().ok()?, b.trim().parse().ok()?))),
                };
                let Some(range) = range else { continue };
                for from in &port.from {
                    let source = if from == "anywhere" {
                        Source::Anywhere
                    } else {
                        Source::Role(Text::new(from.clone(), Span::default()))
                    };
                    out.push(Rule {
                        protocol,
                        ports: (protocol != rules::Protocol::Icmp).then_some(range),
                        source,
                    });
                }
            }
        }
        out
    }

    pub(super) fn unknown_role(&self, role: &Text) -> Diagnostic {
        if let Some(new_name) = self.catalog.renamed(&role.value) {
            return Diagnostic::error(role.span, format!("unknown role `{}`", role.value))
                .with_help(format!("`{}` is now called `{new_name}`", role.value));
        }
        let known: Vec<&str> = self.catalog.role_names().collect();
        not_found(role, "role", &known, "templates/")
    }
}
