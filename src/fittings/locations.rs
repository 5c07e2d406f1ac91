//! Location documents: one per region of a provider (`locationId`, `regionId`,
//! `provider:`, the provider's own settings block such as `lxd: {socket: ...}`), each with
//! its `blueprints` and plumbery's `basement` (blueprints built first, destroyed last).

use std::collections::BTreeMap;

use fitter_providers::{ProviderKind, registry};

use crate::yaml::Node;

use super::schema::{Text, check_keys, text, text_list, wrong_type};
use super::{Fittings, Loader, Location, not_found};

const LOCATION_KEYS: &[&str] = &[
    "locationId",
    "regionId",
    "provider",
    "information",
    "blueprints",
    "basement",
    "prepare",
    "apiHost",
];

/// The keys of a location document: fitter's and plumbery's, then one per provider that
/// takes settings from the plan (`lxd: {socket: ...}`).
fn location_keys() -> Vec<&'static str> {
    let providers = registry::all()
        .iter()
        .filter(|kind| !kind.cloud().location_settings().is_empty())
        .map(|kind| kind.name());
    LOCATION_KEYS.iter().copied().chain(providers).collect()
}

impl Loader<'_> {
    pub(super) fn location(
        &mut self,
        fittings: &mut Fittings,
        doc: &Node,
        defaults_provider: Option<ProviderKind>,
        defaults_cloud_config: Option<&Node>,
        defaults_ethernet: Option<&Node>,
    ) {
        if doc.as_map().is_none() {
            self.report.error(
                doc.span,
                format!(
                    "a location document must be a mapping, found {}",
                    doc.kind()
                ),
            );
            return;
        }
        check_keys(
            &mut self.report,
            doc,
            "a location document",
            &location_keys(),
        );
        let id = match doc.get("locationId") {
            Some(n) => text(&mut self.report, n, "locationId"),
            None => {
                self.report
                    .error(doc.span, "location document has no `locationId`");
                None
            }
        }
        .unwrap_or_else(|| Text::new("", doc.span));
        let own_provider = doc.get("provider").and_then(|p| self.provider(p));
        let provider = self
            .cli_provider
            .or(own_provider)
            .or(defaults_provider)
            .unwrap_or_else(registry::default_kind);
        let cloud = provider.cloud();
        let region = if cloud.has_regions() {
            let r = doc
                .get("regionId")
                .and_then(|n| text(&mut self.report, n, "regionId"))
                .unwrap_or_else(|| id.clone());
            match cloud.check_region(&r.value) {
                Ok(()) => Some(r.value),
                // A plumbery plan's Dimension Data data centre: the nearest region, said.
                Err(why) => match cloud.region_for_location(&r.value) {
                    Some((city, region)) => {
                        self.report.warning(
                            r.span,
                            format!(
                                "`{}` is a Dimension Data data centre ({city}); on {} it is region `{region}` (set `regionId` to choose another)",
                                r.value,
                                provider.name()
                            ),
                        );
                        Some(region.to_string())
                    }
                    // `--provider` moved the plan to this cloud: its own region means nothing
                    // here, so the cloud's default stands in, said.
                    None => match cloud
                        .default_region()
                        .filter(|_| self.cli_provider.is_some())
                    {
                        Some(region) => {
                            self.report.warning(
                                r.span,
                                format!(
                                    "`{}` is not a region of {}; --provider puts it in `{region}`, the default (set `regionId` or pass --region to choose another)",
                                    r.value,
                                    provider.name()
                                ),
                            );
                            Some(region.to_string())
                        }
                        None => {
                            self.report.error(r.span, why);
                            Some(r.value)
                        }
                    },
                },
            }
        } else {
            None
        };
        if let Some(api) = doc.get("apiHost") {
            self.report.error(api.span, "`apiHost` (a private Dimension Data cloud) is not supported; set `provider:` instead");
        }
        if let Some(prepare) = doc.get("prepare") {
            self.report.warning(prepare.span, "`prepare` (beachhead) is not supported and is ignored: fitter reaches nodes directly");
        }
        let mut settings = BTreeMap::new();
        for kind in registry::all() {
            let keys = kind.cloud().location_settings();
            let Some(block) = doc.get(kind.name()).filter(|_| !keys.is_empty()) else {
                continue;
            };
            check_keys(&mut self.report, block, kind.name(), keys);
            let values: BTreeMap<String, String> = keys
                .iter()
                .filter_map(|key| {
                    let value = text(&mut self.report, block.get(key)?, key)?;
                    Some((key.to_string(), value.value))
                })
                .collect();
            settings.insert(*kind, values);
        }
        let location_index = fittings.locations.len();
        let information = match doc.get("information") {
            Some(info) => self.information(info, None),
            None => Vec::new(),
        };
        fittings.locations.push(Location {
            id,
            provider,
            region,
            information,
            settings,
        });

        let basement: Vec<Text> = doc
            .get("basement")
            .map(|b| text_list(&mut self.report, b, "basement"))
            .unwrap_or_default();
        let Some(blueprints) = doc.get("blueprints") else {
            self.report.warning(
                doc.span,
                "location document has no `blueprints`: nothing to deploy there",
            );
            return;
        };
        let Some(items) = blueprints.as_seq() else {
            wrong_type(
                &mut self.report,
                blueprints,
                "blueprints",
                "a list of `- name: {...}` entries",
            );
            return;
        };
        let first_blueprint = fittings.blueprints.len();
        let mut groups = Vec::new();
        for item in items {
            match item.as_map() {
                Some([(key, value)]) => {
                    let Some(name) = text(&mut self.report, key, "blueprint name") else {
                        continue;
                    };
                    // plumbery's group, `- swarm: queen bees`: a name for the blueprints
                    // it lists, for `--blueprint swarm`; checked once all are read.
                    if let Some(members) = value.as_str() {
                        let members: Vec<Text> = members
                            .split_whitespace()
                            .map(|m| Text::new(m.to_string(), value.span))
                            .collect();
                        groups.push((name, members));
                        continue;
                    }
                    self.blueprint(
                        fittings,
                        location_index,
                        name,
                        value,
                        defaults_cloud_config,
                        defaults_ethernet,
                    );
                }
                _ => wrong_type(
                    &mut self.report,
                    item,
                    "blueprint",
                    "a mapping with one key, the blueprint's name",
                ),
            }
        }
        for (name, members) in groups {
            let names: Vec<&str> = fittings.blueprints[first_blueprint..]
                .iter()
                .map(|bp| bp.name.value.as_str())
                .collect();
            if names.contains(&name.value.as_str()) {
                self.report.error(
                    name.span,
                    format!("`{}` is a blueprint and a group of blueprints", name.value),
                );
                continue;
            }
            for m in members
                .iter()
                .filter(|m| !names.contains(&m.value.as_str()))
            {
                self.report
                    .push(not_found(m, "blueprint", &names, "this location"));
            }
            fittings.groups.insert(name.value, members);
        }
        // plumbery's basement: built first, destroyed last.
        for b in &basement {
            if !fittings.blueprints[first_blueprint..]
                .iter()
                .any(|bp| bp.name.value == b.value)
            {
                let names: Vec<&str> = fittings.blueprints[first_blueprint..]
                    .iter()
                    .map(|bp| bp.name.value.as_str())
                    .collect();
                self.report
                    .push(not_found(b, "blueprint", &names, "basement"));
            }
        }
        for bp in &mut fittings.blueprints[first_blueprint..] {
            if !basement.iter().any(|b| b.value == bp.name.value) {
                bp.depends_on.extend(basement.iter().cloned());
            }
        }
    }
}
