//! Networks and firewall rules: plumbery's `ethernet.subnet` and `glue: - internet 22 80`,
//! and fitter's explicit `firewall:` form, all turned into one normalised [`Rule`] type so
//! that the plan compares like with like (rule order and spelling never cause a diff).

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use serde::Serialize;
use thiserror::Error;

use crate::diagnostics::Report;
use crate::yaml::{Node, Span, Value};

use super::schema::{Text, check_keys, text, text_list, wrong_type};

/// Why a subnet or an address in it does not read. `text` is what the plan wrote.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SubnetError {
    #[error("`{prefix}` is not a prefix length")]
    BadPrefix { prefix: String },
    #[error("`{text}` is not an IPv4 subnet such as `10.0.0.0/24`")]
    NotASubnet { text: String },
    #[error("subnet `{text}` must have a prefix from /16 to /28, found /{prefix}")]
    PrefixOutOfRange { text: String, prefix: u8 },
    #[error("subnet `{text}` has host bits set; did you mean `{network}/{prefix}`?")]
    HostBits {
        text: String,
        network: Ipv4Addr,
        prefix: u8,
    },
    #[error("subnet `{text}` is not a private range (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16)")]
    NotPrivate { text: String },
    #[error("`{text}` is not an address such as `.11`")]
    NotAHostNumber { text: String },
    #[error("`{text}` is not an IPv4 address")]
    NotAnAddress { text: String },
    #[error("address {address} is outside the subnet {subnet}")]
    Outside { address: Ipv4Addr, subnet: Subnet },
    #[error("address {address} is the network, gateway or broadcast address of {subnet}")]
    Reserved { address: Ipv4Addr, subnet: Subnet },
}

/// Why a rule, a port range or a traffic source does not read. `text` is what was written.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RuleError {
    #[error("`{text}` is not a rule such as `tcp 22 from anywhere`")]
    NotARule { text: String },
    #[error("`{text}` names no protocol")]
    NoProtocol { text: String },
    #[error("`{text}`: ICMP has no ports")]
    IcmpPorts { text: String },
    #[error("`{text}` names no ports")]
    NoPorts { text: String },
    #[error("`{text}` is not a port number from 1 to 65535")]
    BadPort { text: String },
    #[error("port range `{text}` is empty")]
    EmptyPortRange { text: String },
    #[error("`{text}` has a bad prefix length")]
    BadPrefix { text: String },
    #[error(
        "unknown source `{text}`; expected anywhere, nodes, role:NAME or an address range such as 10.0.0.0/8"
    )]
    UnknownSource { text: String },
}

/// An IPv4 subnet such as `10.0.0.0/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Subnet {
    pub base: Ipv4Addr,
    pub prefix: u8,
}

impl Subnet {
    /// Reads `10.0.0.0/24`, or plumbery's `10.0.0.0` meaning a /24. Prefixes /16 to /28, as
    /// plumbery and DigitalOcean's VPCs accept, private (RFC 1918) ranges only.
    pub fn parse(s: &str) -> Result<Subnet, SubnetError> {
        let text = || s.to_string();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (
                a,
                p.parse::<u8>().map_err(|_| SubnetError::BadPrefix {
                    prefix: p.to_string(),
                })?,
            ),
            None => (s, 24),
        };
        let base: Ipv4Addr = addr
            .trim()
            .parse()
            .map_err(|_| SubnetError::NotASubnet { text: text() })?;
        if !(16..=28).contains(&prefix) {
            return Err(SubnetError::PrefixOutOfRange {
                text: text(),
                prefix,
            });
        }
        let subnet = Subnet { base, prefix };
        if u32::from(base) & !subnet.mask() != 0 {
            let network = Ipv4Addr::from(u32::from(base) & subnet.mask());
            return Err(SubnetError::HostBits {
                text: text(),
                network,
                prefix,
            });
        }
        if !base.is_private() {
            return Err(SubnetError::NotPrivate { text: text() });
        }
        Ok(subnet)
    }

    pub fn mask(&self) -> u32 {
        u32::MAX << (32 - u32::from(self.prefix))
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.base)
    }

    pub fn overlaps(&self, other: &Subnet) -> bool {
        let mask = self.mask() & other.mask();
        u32::from(self.base) & mask == u32::from(other.base) & mask
    }

    /// The address `.N` means in this subnet (plumbery's `glue: primary .11`), or a full
    /// address that must lie inside it.
    pub fn host(&self, spec: &str) -> Result<Ipv4Addr, SubnetError> {
        let ip = match host_spec(spec)? {
            HostSpec::Number(n) => Ipv4Addr::from(u32::from(self.base) | n),
            HostSpec::Address(ip) => ip,
        };
        let host = u32::from(ip) & !self.mask();
        if !self.contains(ip) {
            Err(SubnetError::Outside {
                address: ip,
                subnet: *self,
            })
        } else if host == 0 || host == !self.mask() || host == 1 {
            Err(SubnetError::Reserved {
                address: ip,
                subnet: *self,
            })
        } else {
            Ok(ip)
        }
    }
}

/// `glue: primary`'s address as written: a host number `.N` or a whole address.
pub enum HostSpec {
    Number(u32),
    Address(Ipv4Addr),
}

/// The shape of `glue: primary`, checked where it is written, whatever the network: a
/// network with an error of its own must not hide this one.
pub fn host_spec(spec: &str) -> Result<HostSpec, SubnetError> {
    match spec.strip_prefix('.') {
        Some(n) => n
            .parse()
            .ok()
            .filter(|n| *n <= 255)
            .map(HostSpec::Number)
            .ok_or_else(|| SubnetError::NotAHostNumber {
                text: spec.to_string(),
            }),
        None => spec
            .parse()
            .map(HostSpec::Address)
            .map_err(|_| SubnetError::NotAnAddress {
                text: spec.to_string(),
            }),
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.base, self.prefix)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
    Icmp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Icmp => "icmp",
        })
    }
}

/// Where allowed traffic may come from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    /// Any address, IPv4 and IPv6.
    Anywhere,
    /// Every node of this deployment.
    Nodes,
    /// The nodes that have this role.
    Role(Text),
    /// An address range, normalised (`10.0.0.0/8`, `2001:db8::/32`).
    Cidr(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Anywhere => f.write_str("anywhere"),
            Source::Nodes => f.write_str("nodes"),
            Source::Role(r) => write!(f, "role:{}", r.value),
            Source::Cidr(c) => f.write_str(c),
        }
    }
}

/// One inbound allowance: a protocol, a port range (none for ICMP, `0..=0` meaning every
/// port), and a source.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rule {
    pub protocol: Protocol,
    pub ports: Option<(u16, u16)>,
    pub source: Source,
}

impl Rule {
    pub fn ports_text(&self) -> String {
        match self.ports {
            None => String::new(),
            Some((0, 0)) => "all".to_string(),
            Some((a, b)) if a == b => a.to_string(),
            Some((a, b)) => format!("{a}-{b}"),
        }
    }
}

impl std::str::FromStr for Rule {
    type Err = RuleError;

    /// Reads back what `Display` writes: `tcp 22 from anywhere`, `icmp from nodes`.
    fn from_str(s: &str) -> Result<Rule, RuleError> {
        let text = || s.to_string();
        let (head, source) = s
            .split_once(" from ")
            .ok_or_else(|| RuleError::NotARule { text: text() })?;
        let mut words = head.split_whitespace();
        let protocol = match words.next() {
            Some("tcp") => Protocol::Tcp,
            Some("udp") => Protocol::Udp,
            Some("icmp") => Protocol::Icmp,
            _ => return Err(RuleError::NoProtocol { text: text() }),
        };
        let ports = match (protocol, words.next()) {
            (Protocol::Icmp, None) => None,
            (Protocol::Icmp, Some(_)) => return Err(RuleError::IcmpPorts { text: text() }),
            (_, Some("all")) => Some((0, 0)),
            (_, Some(p)) => Some(parse_ports(p)?),
            (_, None) => return Err(RuleError::NoPorts { text: text() }),
        };
        let source = parse_source(&Text::new(source, Span::default()))?;
        Ok(Rule {
            protocol,
            ports,
            source,
        })
    }
}

impl fmt::Display for Rule {
    /// `tcp 22 from anywhere`, `udp all from nodes`, `icmp from role:zookeeper`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ports {
            None => write!(f, "{} from {}", self.protocol, self.source),
            Some(_) => write!(
                f,
                "{} {} from {}",
                self.protocol,
                self.ports_text(),
                self.source
            ),
        }
    }
}

/// A port or range: `22`, `8000-9000`, `8000..9000`.
fn parse_ports(s: &str) -> Result<(u16, u16), RuleError> {
    let port = |p: &str| -> Result<u16, RuleError> {
        match p.trim().parse::<u16>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(RuleError::BadPort {
                text: p.to_string(),
            }),
        }
    };
    let (a, b) = match s.split_once("..").or_else(|| s.split_once('-')) {
        Some((a, b)) => (port(a)?, port(b)?),
        None => {
            let p = port(s)?;
            (p, p)
        }
    };
    if a > b {
        return Err(RuleError::EmptyPortRange {
            text: s.to_string(),
        });
    }
    Ok((a, b))
}

/// What a `glue:` line asks for.
#[derive(Debug, Default)]
pub struct Glue {
    pub rules: Vec<Rule>,
    /// `primary .11`: a fixed address on the node's network.
    pub primary: Option<Text>,
}

/// Reads plumbery's glue lines: `internet 22 80 icmp udp:1000..2000`, `primary .11`.
pub fn parse_glue(report: &mut Report, node: &Node, glue: &mut Glue) {
    for line in text_list(report, node, "glue") {
        let mut words = line.value.split_whitespace();
        match words.next() {
            Some("internet") => {
                for word in words {
                    let (protocol, ports) = match word.split_once(':') {
                        Some(("tcp", p)) => (Protocol::Tcp, Some(p)),
                        Some(("udp", p)) => (Protocol::Udp, Some(p)),
                        None if word == "icmp" => (Protocol::Icmp, None),
                        None => (Protocol::Tcp, Some(word)),
                        Some((other, _)) => {
                            report.error(
                                line.span,
                                format!("unknown protocol `{other}` in glue `{}`; expected `tcp:` or `udp:`", line.value),
                            );
                            continue;
                        }
                    };
                    let ports = match ports.map(parse_ports).transpose() {
                        Ok(p) => p,
                        Err(why) => {
                            report.error(line.span, format!("in glue `{}`: {why}", line.value));
                            continue;
                        }
                    };
                    glue.rules.push(Rule {
                        protocol,
                        ports,
                        source: Source::Anywhere,
                    });
                }
            }
            Some("primary") => match words.next() {
                Some(addr) => match host_spec(addr) {
                    Ok(_) => glue.primary = Some(Text::new(addr, line.span)),
                    Err(why) => report.error(line.span, why.to_string()),
                },
                None => report.error(
                    line.span,
                    "`glue: primary` needs an address such as `.11`".to_string(),
                ),
            },
            Some(other) => report.error(
                line.span,
                format!(
                    "glue to another network (`{other}`) is not supported: fitter gives each node one private network; use `internet PORTS` or `primary .N`"
                ),
            ),
            None => report.error(line.span, "empty glue line".to_string()),
        }
    }
}

const FIREWALL_KEYS: &[&str] = &["name", "protocol", "ports", "sources", "description"];

/// Reads fitter's explicit form:
///
/// ```yaml
/// firewall:
///   - protocol: tcp            # tcp, udp, icmp or all
///     ports: [22, 8000-9000]   # omitted: every port
///     sources: [anywhere, nodes, "role:zookeeper", 10.0.0.0/8]
/// ```
pub fn parse_firewall(report: &mut Report, node: &Node, rules: &mut Vec<Rule>) {
    let Some(items) = node.as_seq() else {
        if !node.is_null() {
            wrong_type(report, node, "firewall", "a list of rules");
        }
        return;
    };
    for item in items {
        if item.as_map().is_none() {
            wrong_type(report, item, "firewall rule", "a mapping");
            continue;
        }
        check_keys(report, item, "firewall rule", FIREWALL_KEYS);
        let protocols: Vec<Protocol> = match item.get("protocol") {
            None => {
                report.error(
                    item.span,
                    "firewall rule needs a `protocol` (tcp, udp, icmp or all)",
                );
                continue;
            }
            Some(p) => match text(report, p, "protocol")
                .as_ref()
                .map(|t| t.value.as_str())
            {
                Some("tcp") => vec![Protocol::Tcp],
                Some("udp") => vec![Protocol::Udp],
                Some("icmp") => vec![Protocol::Icmp],
                Some("all") => vec![Protocol::Tcp, Protocol::Udp, Protocol::Icmp],
                Some(other) => {
                    report.error(
                        p.span,
                        format!("unknown protocol `{other}`; expected tcp, udp, icmp or all"),
                    );
                    continue;
                }
                None => continue,
            },
        };
        let mut ports: Vec<Option<(u16, u16)>> = Vec::new();
        match item.get("ports") {
            None => ports.push(Some((0, 0))),
            Some(p) => {
                if protocols == [Protocol::Icmp] {
                    report.error(p.span, "ICMP has no ports; remove `ports`");
                    continue;
                }
                let list: Vec<&Node> = match &p.value {
                    Value::Seq(items) => items.iter().collect(),
                    _ => vec![p],
                };
                for entry in list {
                    match entry.scalar_text() {
                        Some(s) if s == "all" => ports.push(Some((0, 0))),
                        Some(s) => match parse_ports(&s) {
                            Ok(range) => ports.push(Some(range)),
                            Err(why) => report.error(entry.span, why.to_string()),
                        },
                        None => wrong_type(report, entry, "ports", "a port or a range"),
                    }
                }
            }
        }
        let Some(sources_node) = item.get("sources") else {
            report.error(
                item.span,
                "firewall rule needs `sources` (anywhere, nodes, role:NAME or a CIDR)",
            );
            continue;
        };
        let mut sources = Vec::new();
        for s in text_list(report, sources_node, "sources") {
            match parse_source(&s) {
                Ok(source) => sources.push(source),
                Err(why) => report.error(s.span, why.to_string()),
            }
        }
        for protocol in &protocols {
            for range in &ports {
                for source in &sources {
                    rules.push(Rule {
                        protocol: *protocol,
                        ports: if *protocol == Protocol::Icmp {
                            None
                        } else {
                            *range
                        },
                        source: source.clone(),
                    });
                }
            }
        }
    }
}

fn parse_source(s: &Text) -> Result<Source, RuleError> {
    let v = s.value.trim();
    match v {
        "anywhere" | "internet" => return Ok(Source::Anywhere),
        "nodes" => return Ok(Source::Nodes),
        _ => {}
    }
    if let Some(role) = v.strip_prefix("role:") {
        return Ok(Source::Role(Text::new(role.trim(), s.span)));
    }
    let (addr, prefix) = v.split_once('/').unwrap_or((v, ""));
    if let Ok(ip) = addr.parse::<Ipv4Addr>() {
        let prefix: u8 = if prefix.is_empty() {
            32
        } else {
            prefix
                .parse()
                .ok()
                .filter(|p| *p <= 32)
                .ok_or_else(|| RuleError::BadPrefix {
                    text: v.to_string(),
                })?
        };
        let mask = if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(prefix))
        };
        return Ok(Source::Cidr(format!(
            "{}/{prefix}",
            Ipv4Addr::from(u32::from(ip) & mask)
        )));
    }
    if let Ok(ip) = addr.parse::<Ipv6Addr>() {
        let prefix: u8 = if prefix.is_empty() {
            128
        } else {
            prefix
                .parse()
                .ok()
                .filter(|p| *p <= 128)
                .ok_or_else(|| RuleError::BadPrefix {
                    text: v.to_string(),
                })?
        };
        let mask = if prefix == 0 {
            0
        } else {
            u128::MAX << (128 - u32::from(prefix))
        };
        return Ok(Source::Cidr(format!(
            "{}/{prefix}",
            Ipv6Addr::from(u128::from(ip) & mask)
        )));
    }
    Err(RuleError::UnknownSource {
        text: v.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets() {
        assert_eq!(
            Subnet::parse("10.0.0.0").unwrap().to_string(),
            "10.0.0.0/24"
        );
        assert_eq!(
            Subnet::parse("10.0.0.1/24").unwrap_err().to_string(),
            "subnet `10.0.0.1/24` has host bits set; did you mean `10.0.0.0/24`?"
        );
        assert!(Subnet::parse("8.8.8.0/24").is_err());
        assert!(Subnet::parse("10.0.0.0/8").is_err());
        let s = Subnet::parse("10.1.0.0/24").unwrap();
        assert_eq!(s.host(".11").unwrap(), Ipv4Addr::new(10, 1, 0, 11));
        assert_eq!(
            s.host(".1").unwrap_err().to_string(),
            "address 10.1.0.1 is the network, gateway or broadcast address of 10.1.0.0/24"
        );
        assert!(s.host(".300").is_err());
        assert!(s.host("10.2.0.5").is_err());
        assert!(s.overlaps(&Subnet::parse("10.1.0.0/16").unwrap()));
        assert!(!s.overlaps(&Subnet::parse("10.2.0.0/24").unwrap()));
    }

    #[test]
    fn rules_print_normalised() {
        let r = Rule {
            protocol: Protocol::Tcp,
            ports: Some((8000, 9000)),
            source: Source::Cidr("10.0.0.0/8".into()),
        };
        assert_eq!(r.to_string(), "tcp 8000-9000 from 10.0.0.0/8");
        assert_eq!(parse_ports("22"), Ok((22, 22)));
        assert_eq!(parse_ports("1000..2000"), Ok((1000, 2000)));
        assert!(parse_ports("0").is_err());
        assert_eq!(
            parse_ports("9-1").unwrap_err().to_string(),
            "port range `9-1` is empty"
        );
        for text in [
            "tcp 22 from anywhere",
            "udp all from nodes",
            "icmp from role:zookeeper",
            "tcp 8000-9000 from 10.0.0.0/8",
        ] {
            assert_eq!(text.parse::<Rule>().unwrap().to_string(), text);
        }
        assert!("sctp 1 from anywhere".parse::<Rule>().is_err());
        let src = parse_source(&Text::new("10.1.2.3/8", Default::default())).unwrap();
        assert_eq!(src, Source::Cidr("10.0.0.0/8".into()));
    }
}
