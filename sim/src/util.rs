//! Small pure helpers: time formatting, identifiers, URL decoding, IPv4 arithmetic, SSH key
//! fingerprints and the name rules the API enforces.

use std::net::Ipv4Addr;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;

/// `2026-08-07T12:34:56Z`, the form the API uses.
pub(crate) fn rfc3339(time: SystemTime) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil_from_days, for days since 1970-01-01 (never negative here).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

pub(crate) fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A version-4-shaped UUID derived from a sequence number: unique per number, and the same on
/// every run, so test output is reproducible.
pub(crate) fn uuid(n: u64) -> String {
    let hi = splitmix64(n);
    let lo = splitmix64(hi ^ n.rotate_left(17));
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        hi >> 32,
        (hi >> 16) & 0xffff,
        hi & 0x0fff,
        ((lo >> 48) & 0x3fff) | 0x8000,
        lo & 0xffff_ffff_ffff
    )
}

/// Decodes `%XX` escapes (and `+` as a space when `plus_is_space`); bad escapes stay as written.
pub(crate) fn percent_decode(input: &str, plus_is_space: bool) -> String {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' if plus_is_space => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `a=1&b=x%20y` as decoded pairs, in order.
pub(crate) fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key, true), percent_decode(value, true))
        })
        .collect()
}

/// An IPv4 network, `addr/prefix`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Cidr {
    pub(crate) network: u32,
    pub(crate) prefix: u8,
}

impl Cidr {
    pub(crate) fn parse(text: &str) -> Option<Cidr> {
        let (addr, prefix) = text.split_once('/')?;
        let addr: Ipv4Addr = addr.parse().ok()?;
        let prefix: u8 = prefix.parse().ok()?;
        if prefix > 32 {
            return None;
        }
        Some(Cidr {
            network: u32::from(addr),
            prefix,
        })
    }

    pub(crate) fn mask(self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.prefix))
        }
    }

    pub(crate) fn size(self) -> u64 {
        1u64 << (32 - u32::from(self.prefix))
    }

    pub(crate) fn last(self) -> u32 {
        self.network | !self.mask()
    }

    pub(crate) fn is_aligned(self) -> bool {
        self.network & !self.mask() == 0
    }

    pub(crate) fn within(self, outer: Cidr) -> bool {
        self.prefix >= outer.prefix && self.network & outer.mask() == outer.network
    }

    pub(crate) fn overlaps(self, other: Cidr) -> bool {
        self.network <= other.last() && other.network <= self.last()
    }

    pub(crate) fn is_rfc1918(self) -> bool {
        ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]
            .iter()
            .filter_map(|r| Cidr::parse(r))
            .any(|range| self.within(range))
    }

    pub(crate) fn netmask(self) -> String {
        Ipv4Addr::from(self.mask()).to_string()
    }

    /// The `n`th address of the network (0 is the network address itself).
    pub(crate) fn host(self, n: u32) -> String {
        Ipv4Addr::from(self.network.wrapping_add(n)).to_string()
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.network), self.prefix)
    }
}

/// The MD5 fingerprint of an OpenSSH public key line (`type base64 [comment]`), as
/// `ssh-keygen -E md5 -l` prints it without the `MD5:` prefix: `aa:bb:…`.
pub(crate) fn ssh_fingerprint(public_key: &str) -> Option<String> {
    let mut fields = public_key.split_whitespace();
    let kind = fields.next()?;
    let blob = fields.next()?;
    let blob = base64::engine::general_purpose::STANDARD
        .decode(blob)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(blob))
        .ok()?;
    // The blob starts with its own key type as an SSH string; it must agree with the text.
    let len = u32::from_be_bytes(blob.get(..4)?.try_into().ok()?) as usize;
    if blob.get(4..4 + len)? != kind.as_bytes() {
        return None;
    }
    let digest = md5::compute(&blob);
    Some(
        digest
            .0
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":"),
    )
}

/// Droplet names: the spec's `^[a-zA-Z0-9]?[a-z0-9A-Z.\-]*[a-z0-9A-Z]$`, at most 255.
pub(crate) fn valid_droplet_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 255
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'.' || *b == b'-')
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
}

/// Host names as RFC 1123 has them (Hetzner's server names): dot-separated labels of 1 to 63
/// letters, digits and dashes, no label starting or ending with a dash, at most 253 in all.
pub(crate) fn valid_hostname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            let bytes = label.as_bytes();
            !bytes.is_empty()
                && bytes.len() <= 63
                && bytes[0] != b'-'
                && bytes[bytes.len() - 1] != b'-'
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
        })
}

/// Tag names: `^[a-zA-Z0-9_\-:]+$`, at most 255.
pub(crate) fn valid_tag_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b':'))
}

/// VPC names: `^[a-zA-Z0-9\-\.]+$`, at most 255.
pub(crate) fn valid_vpc_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.'))
}

/// Firewall names: `^[a-zA-Z0-9][a-zA-Z0-9\.-]+$`, at most 255.
pub(crate) fn valid_firewall_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    bytes.len() >= 2
        && bytes.len() <= 255
        && bytes[0].is_ascii_alphanumeric()
        && bytes[1..]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_rfc3339() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_709_251_199); // 2024-02-29T23:59:59Z
        assert_eq!(rfc3339(t), "2024-02-29T23:59:59Z");
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339(t), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn uuids_are_distinct_and_shaped() {
        let a = uuid(1);
        assert_ne!(a, uuid(2));
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"));
    }

    #[test]
    fn decodes_percent_and_query() {
        assert_eq!(percent_decode("a%3Ab%2", false), "a:b%2");
        assert_eq!(
            parse_query("tag_name=web%3A1&page=2&x"),
            vec![
                ("tag_name".into(), "web:1".into()),
                ("page".into(), "2".into()),
                ("x".into(), String::new())
            ]
        );
    }

    #[test]
    fn cidr_rules() {
        let c = Cidr::parse("10.10.0.0/20").unwrap();
        assert!(c.is_rfc1918() && c.is_aligned());
        assert_eq!(c.host(2), "10.10.0.2");
        assert_eq!(c.netmask(), "255.255.240.0");
        assert!(!Cidr::parse("8.8.0.0/16").unwrap().is_rfc1918());
        assert!(!Cidr::parse("10.10.0.1/20").unwrap().is_aligned());
        assert!(c.overlaps(Cidr::parse("10.10.15.0/24").unwrap()));
        assert!(!c.overlaps(Cidr::parse("10.10.16.0/24").unwrap()));
    }

    #[test]
    fn fingerprints_like_ssh_keygen() {
        // Keys made with ssh-keygen; the expected values are what `ssh-keygen -E md5 -lf` printed.
        let ed25519 =
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILw76nu6NpiHy3pAOArdGgiX5+TE2cO9yzJD313hGwgu test";
        assert_eq!(
            ssh_fingerprint(ed25519).as_deref(),
            Some("9f:31:63:42:07:bb:71:e3:ca:ed:45:a4:e9:2e:54:1b")
        );
        let rsa = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQDYptsvw5dl8gWdZSxhImPgryrOWNqvQnE0cVQzwPogOAPjGJsELmhwznU21KnNAJ47ntENv2xHj/1R3tgSneA7gzqI2jvDx7zq74X7KL8QxknUem/gN+27YxFrWspyStD6OJsoicw0GqqC2XqWD2dPiAja2KpAfH3+3l/IBLcRDrb9tyWy+gV0KkIEFWju+YYxar3afWqJniit5AuOObHMc2O29gG1eVr9PnkEFkt4U9nsGFe6JFsJRSadX1GzZqSLIRnvL8I5J8ObAZAGN80xgfyTMF4PL6+3H/28TUzHKIbojcP8q33REMpQNioN7f0bMBxIJjtUUCx/3eg7tPxj rsa";
        assert_eq!(
            ssh_fingerprint(rsa).as_deref(),
            Some("02:0a:6c:18:e3:ad:46:ff:e2:32:9e:34:dd:c4:c7:71")
        );
        assert!(ssh_fingerprint("ssh-ed25519 !!!").is_none());
        assert!(
            ssh_fingerprint(
                "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAILw76nu6NpiHy3pAOArdGgiX5+TE2cO9yzJD313hGwgu"
            )
            .is_none()
        );
    }

    #[test]
    fn names() {
        assert!(valid_droplet_name("web-1.example"));
        assert!(!valid_droplet_name("web_1"));
        assert!(!valid_droplet_name("web-"));
        assert!(valid_tag_name("fitter:plan-1_a"));
        assert!(!valid_tag_name("a b"));
        assert!(valid_firewall_name("fw-1"));
        assert!(valid_hostname("web-1.example.com") && valid_hostname("Master1"));
        for bad in ["web_1", "-web", "web-", "a..b", "", ".a", &"a".repeat(64)] {
            assert!(!valid_hostname(bad), "{bad}");
        }
        assert!(!valid_firewall_name("-fw"));
    }
}
