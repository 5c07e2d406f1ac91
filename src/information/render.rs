//! The text form of `information`.

use std::fmt::Write as _;

use super::{ComponentInfo, Information, NodeInfo};

impl Information {
    pub fn render(&self) -> String {
        let mut out = String::new();
        let ready = self.nodes.iter().filter(|n| n.status == "ready").count();
        let _ = writeln!(
            out,
            "Deployment `{}`: {ready} of {} nodes ready\n",
            self.deployment,
            self.nodes.len()
        );
        let width = |f: &dyn Fn(&NodeInfo) -> String, head: &str| {
            self.nodes
                .iter()
                .map(|n| f(n).len())
                .max()
                .unwrap_or(0)
                .max(head.len())
        };
        let name = |n: &NodeInfo| n.name.clone();
        let roles = |n: &NodeInfo| n.roles.join(",");
        let private = |n: &NodeInfo| n.private_ip.clone().unwrap_or_else(|| "-".into());
        let public = |n: &NodeInfo| n.public_ip.clone().unwrap_or_else(|| "-".into());
        let (w1, w2, w3, w4) = (
            width(&name, "NODE"),
            width(&roles, "ROLES"),
            width(&private, "PRIVATE"),
            width(&public, "PUBLIC"),
        );
        let _ = writeln!(
            out,
            "{:w1$}  {:w2$}  {:w3$}  {:w4$}  STATUS",
            "NODE", "ROLES", "PRIVATE", "PUBLIC"
        );
        for n in &self.nodes {
            let _ = writeln!(
                out,
                "{:w1$}  {:w2$}  {:w3$}  {:w4$}  {}",
                name(n),
                roles(n),
                private(n),
                public(n),
                n.status
            );
        }
        self.render_services(&mut out, w1);
        if !self.endpoints.is_empty() || !self.not_served.is_empty() {
            let _ = writeln!(out, "\nEndpoints:");
            for (k, v) in &self.endpoints {
                let _ = writeln!(out, "  {k:<10} {v}");
            }
            for (k, why) in &self.not_served {
                let _ = writeln!(out, "  {k:<10} ({why}: no endpoint)");
            }
        }
        if !self.information.is_empty() {
            let _ = writeln!(out, "\nInformation:");
            for line in &self.information {
                let _ = writeln!(out, "  {line}");
            }
        }
        let ssh: Vec<&NodeInfo> = self.nodes.iter().filter(|n| n.ssh.is_some()).collect();
        if !ssh.is_empty() {
            let _ = writeln!(out, "\nSSH (host keys pinned):");
            for n in ssh {
                let _ = writeln!(out, "  {}   # {}", n.ssh.as_deref().unwrap_or(""), n.name);
            }
        }
        out
    }

    /// One line per node: each component with what is known of it.
    fn render_services(&self, out: &mut String, w1: usize) {
        if self.nodes.iter().all(|n| n.components.is_empty()) {
            return;
        }
        let _ = writeln!(
            out,
            "\nServices ({}):",
            if self.live {
                "asked over SSH just now"
            } else {
                "from the plan and the state; not asked"
            }
        );
        for n in &self.nodes {
            let line = match &n.not_asked {
                Some(why) => why.clone(),
                None => n
                    .components
                    .iter()
                    .map(|c| format!("{}: {}", c.component, state_of(c)))
                    .collect::<Vec<_>>()
                    .join(", "),
            };
            let _ = writeln!(out, "  {:w1$}  {line}", n.name);
        }
    }
}

/// What is known of a component on a node, in a few words.
fn state_of(c: &ComponentInfo) -> String {
    if !c.installed {
        return "configured, not installed".into();
    }
    if let Some(mode) = &c.mode {
        return mode.clone();
    }
    match c.running() {
        None => "installed".into(),
        Some(false) => {
            let states: Vec<String> = c
                .services
                .iter()
                .filter(|s| s.state.as_deref() != Some("active"))
                .map(|s| format!("{} {}", s.name, s.state.as_deref().unwrap_or("unknown")))
                .collect();
            states.join(", ")
        }
        Some(true) => match c.checks.iter().find(|k| !k.healthy) {
            Some(bad) => format!("unhealthy ({}: {})", bad.name, bad.answer),
            None if c.checks.is_empty() => "active".into(),
            None => "healthy".into(),
        },
    }
}
