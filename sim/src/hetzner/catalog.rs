//! The read-only catalogue: locations (each with its one datacenter), server types and images,
//! small built-in tables in the shapes of the spec, and their list endpoints (`GET
//! /locations`, `/server_types`, `/images`, each also by id).
//!
//! Every server type is offered in every location (the real catalogue varies by location and
//! over the years). An image name (`debian-12`) stands for two images, one per architecture;
//! a server gets the one of its type's architecture.

use serde_json::{Value as Json, json};

use super::HzError;
use super::body::path_id;
use super::page::paginate;
use crate::api::{Call, Reply};

pub(crate) struct Location {
    pub(crate) id: u64,
    pub(crate) name: &'static str,
    description: &'static str,
    country: &'static str,
    city: &'static str,
    latitude: f64,
    longitude: f64,
    pub(crate) zone: &'static str,
    datacenter: (u64, &'static str, &'static str),
}

#[rustfmt::skip]
pub(crate) const LOCATIONS: &[Location] = &[
    Location { id: 1, name: "fsn1", description: "Falkenstein DC Park 1", country: "DE", city: "Falkenstein", latitude: 50.47612, longitude: 12.370071, zone: "eu-central", datacenter: (4, "fsn1-dc14", "Falkenstein 1 virtual DC 14") },
    Location { id: 2, name: "nbg1", description: "Nuremberg DC Park 1", country: "DE", city: "Nuremberg", latitude: 49.452102, longitude: 11.076665, zone: "eu-central", datacenter: (2, "nbg1-dc3", "Nuremberg 1 virtual DC 3") },
    Location { id: 3, name: "hel1", description: "Helsinki DC Park 1", country: "FI", city: "Helsinki", latitude: 60.169855, longitude: 24.938379, zone: "eu-central", datacenter: (3, "hel1-dc2", "Helsinki 1 virtual DC 2") },
    Location { id: 4, name: "ash", description: "Ashburn, VA", country: "US", city: "Ashburn, VA", latitude: 39.045821, longitude: -77.487073, zone: "us-east", datacenter: (5, "ash-dc1", "Ashburn virtual DC 1") },
    Location { id: 5, name: "hil", description: "Hillsboro, OR", country: "US", city: "Hillsboro, OR", latitude: 45.54222, longitude: -122.95194, zone: "us-west", datacenter: (6, "hil-dc1", "Hillsboro virtual DC 1") },
    Location { id: 6, name: "sin", description: "Singapore", country: "SG", city: "Singapore", latitude: 1.283333, longitude: 103.833333, zone: "ap-southeast", datacenter: (7, "sin-dc1", "Singapore virtual DC 1") },
];

/// Network zones, as locations name them.
pub(crate) const ZONES: &[&str] = &["eu-central", "us-east", "us-west", "ap-southeast"];

pub(crate) struct ServerType {
    pub(crate) id: u64,
    pub(crate) name: &'static str,
    cores: u64,
    memory_gb: f64,
    pub(crate) disk_gb: u64,
    dedicated: bool,
    pub(crate) arm: bool,
    category: &'static str,
    /// Net euros a month.
    monthly: f64,
}

const fn st(
    id: u64,
    name: &'static str,
    (cores, memory_gb, disk_gb): (u64, f64, u64),
    (dedicated, arm, category): (bool, bool, &'static str),
    monthly: f64,
) -> ServerType {
    ServerType {
        id,
        name,
        cores,
        memory_gb,
        disk_gb,
        dedicated,
        arm,
        category,
        monthly,
    }
}

const SHARED: (bool, bool, &str) = (false, false, "shared");
const COST: (bool, bool, &str) = (false, false, "cost_optimized");
const ARM: (bool, bool, &str) = (false, true, "cost_optimized");
const DEDICATED: (bool, bool, &str) = (true, false, "dedicated");

pub(crate) const SERVER_TYPES: &[ServerType] = &[
    st(22, "cpx11", (2, 2.0, 40), SHARED, 4.35),
    st(23, "cpx21", (3, 4.0, 80), SHARED, 7.55),
    st(24, "cpx31", (4, 8.0, 160), SHARED, 13.60),
    st(25, "cpx41", (8, 16.0, 240), SHARED, 25.20),
    st(26, "cpx51", (16, 32.0, 360), SHARED, 54.90),
    st(45, "cax11", (2, 4.0, 40), ARM, 3.79),
    st(93, "cax21", (4, 8.0, 80), ARM, 6.49),
    st(94, "cax31", (8, 16.0, 160), ARM, 12.49),
    st(95, "cax41", (16, 32.0, 320), ARM, 24.49),
    st(96, "ccx13", (2, 8.0, 80), DEDICATED, 12.49),
    st(97, "ccx23", (4, 16.0, 160), DEDICATED, 24.49),
    st(98, "ccx33", (8, 32.0, 240), DEDICATED, 48.49),
    st(104, "cx22", (2, 4.0, 40), COST, 3.79),
    st(105, "cx32", (4, 8.0, 80), COST, 6.80),
    st(106, "cx42", (8, 16.0, 160), COST, 16.40),
    st(107, "cx52", (16, 32.0, 320), COST, 32.40),
];

pub(crate) struct Image {
    pub(crate) name: &'static str,
    description: &'static str,
    flavor: &'static str,
    version: &'static str,
    /// The ids of the x86 and the arm image.
    ids: (u64, u64),
}

const fn image(
    name: &'static str,
    description: &'static str,
    (flavor, version): (&'static str, &'static str),
    ids: (u64, u64),
) -> Image {
    Image {
        name,
        description,
        flavor,
        version,
        ids,
    }
}

#[rustfmt::skip]
pub(crate) const IMAGES: &[Image] = &[
    image("alma-9", "AlmaLinux 9", ("alma", "9"), (76_180_454, 103_907_373)),
    image("centos-stream-9", "CentOS Stream 9", ("centos", "stream-9"), (59_752_342, 103_907_374)),
    image("debian-11", "Debian 11", ("debian", "11"), (45_557_056, 103_907_375)),
    image("debian-12", "Debian 12", ("debian", "12"), (114_690_387, 114_690_389)),
    image("fedora-41", "Fedora 41", ("fedora", "41"), (205_434_893, 205_434_894)),
    image("rocky-9", "Rocky Linux 9", ("rocky", "9"), (76_766_499, 103_907_376)),
    image("ubuntu-22.04", "Ubuntu 22.04", ("ubuntu", "22.04"), (67_794_396, 103_908_070)),
    image("ubuntu-24.04", "Ubuntu 24.04", ("ubuntu", "24.04"), (161_547_269, 161_547_270)),
];

/// By name or id (as a string of digits).
pub(crate) fn location(text: &str) -> Option<&'static Location> {
    LOCATIONS
        .iter()
        .find(|l| l.name == text || l.id.to_string() == text)
}

/// The location of a datacenter, by the datacenter's name or id.
pub(crate) fn location_of_datacenter(text: &str) -> Option<&'static Location> {
    LOCATIONS
        .iter()
        .find(|l| l.datacenter.1 == text || l.datacenter.0.to_string() == text)
}

/// By name or id (as a string of digits).
pub(crate) fn server_type(text: &str) -> Option<&'static ServerType> {
    SERVER_TYPES
        .iter()
        .find(|t| t.name == text || t.id.to_string() == text)
}

/// By name (the one for `arm` or x86) or by the id of either architecture's image. The id is
/// `Err` when it names the other architecture's image.
pub(crate) fn image_for(text: &str, arm: bool) -> Option<Result<(&'static Image, u64), u64>> {
    IMAGES.iter().find_map(|i| {
        let wanted = if arm { i.ids.1 } else { i.ids.0 };
        let other = if arm { i.ids.0 } else { i.ids.1 };
        if i.name == text || wanted.to_string() == text {
            Some(Ok((i, wanted)))
        } else if other.to_string() == text {
            Some(Err(other))
        } else {
            None
        }
    })
}

pub(crate) fn location_json(l: &Location) -> Json {
    json!({
        "id": l.id,
        "name": l.name,
        "description": l.description,
        "country": l.country,
        "city": l.city,
        "latitude": l.latitude,
        "longitude": l.longitude,
        "network_zone": l.zone,
    })
}

pub(crate) fn datacenter_json(l: &Location) -> Json {
    let ids: Vec<u64> = SERVER_TYPES.iter().map(|t| t.id).collect();
    json!({
        "id": l.datacenter.0,
        "name": l.datacenter.1,
        "description": l.datacenter.2,
        "location": location_json(l),
        "server_types": {"available": ids, "available_for_migration": ids, "supported": ids},
    })
}

/// A price as the API writes it: a decimal string with ten places.
fn price(net: f64) -> Json {
    json!({"net": format!("{net:.10}"), "gross": format!("{:.10}", net * 1.19)})
}

pub(crate) fn server_type_json(t: &ServerType) -> Json {
    let locations: Vec<Json> = LOCATIONS
        .iter()
        .map(|l| json!({"id": l.id, "name": l.name, "deprecation": null}))
        .collect();
    let prices: Vec<Json> = LOCATIONS
        .iter()
        .map(|l| {
            json!({
                "location": l.name,
                "price_hourly": price(t.monthly / 730.0),
                "price_monthly": price(t.monthly),
                "included_traffic": 21_990_232_555_520u64,
                "price_per_tb_traffic": price(1.0),
            })
        })
        .collect();
    json!({
        "id": t.id,
        "name": t.name,
        "description": t.name.to_uppercase(),
        "category": t.category,
        "cores": t.cores,
        "memory": t.memory_gb,
        "disk": t.disk_gb,
        "cpu_type": if t.dedicated { "dedicated" } else { "shared" },
        "architecture": if t.arm { "arm" } else { "x86" },
        "storage_type": "local",
        "deprecated": false,
        "deprecation": null,
        "locations": locations,
        "prices": prices,
    })
}

pub(crate) fn image_json(i: &Image, id: u64) -> Json {
    json!({
        "id": id,
        "name": i.name,
        "description": i.description,
        "type": "system",
        "status": "available",
        "os_flavor": i.flavor,
        "os_version": i.version,
        "architecture": if id == i.ids.1 { "arm" } else { "x86" },
        "created": "2024-01-01T00:00:00Z",
        "created_from": null,
        "bound_to": null,
        "deleted": null,
        "deprecated": null,
        "disk_size": 5,
        "image_size": null,
        "labels": {},
        "protection": {"delete": false},
        "rapid_deploy": true,
    })
}

/// `GET /<kind>/{id}`: `{one: …}` of the entry with that id; `GET /<kind>`: a page of `many`,
/// the entries of the `name` asked for (if any). `id_name` gives an entry's id and name,
/// `render` its JSON.
fn lookup<T>(
    call: &Call,
    id: Option<&str>,
    (one, many): (&str, &str),
    entries: &[T],
    id_name: impl Fn(&T) -> (u64, &'static str),
    render: impl Fn(&T) -> Json,
) -> Result<Reply, HzError> {
    if let Some(id) = id {
        let id = path_id(id)?;
        let entry = entries
            .iter()
            .find(|e| id_name(e).0 == id)
            .ok_or_else(HzError::not_found)?;
        return super::reply(200, json!({one: render(entry)}));
    }
    let name = call.param("name");
    let found: Vec<&T> = entries
        .iter()
        .filter(|e| name.is_none_or(|n| n == id_name(e).1))
        .collect();
    paginate(call, many, &found, |e| render(e))
}

/// `GET /locations`, `GET /locations/{id}`.
pub(super) fn locations(call: &Call, id: Option<&str>) -> Result<Reply, HzError> {
    let keys = ("location", "locations");
    lookup(call, id, keys, LOCATIONS, |l| (l.id, l.name), location_json)
}

/// `GET /server_types`, `GET /server_types/{id}`.
pub(super) fn server_types(call: &Call, id: Option<&str>) -> Result<Reply, HzError> {
    let keys = ("server_type", "server_types");
    lookup(
        call,
        id,
        keys,
        SERVER_TYPES,
        |t| (t.id, t.name),
        server_type_json,
    )
}

/// `GET /images` (`name`, `architecture`, `type`, `status`; every image is a system image,
/// available), `GET /images/{id}`.
pub(super) fn images(call: &Call, id: Option<&str>) -> Result<Reply, HzError> {
    let mut all: Vec<(&Image, u64)> = IMAGES
        .iter()
        .flat_map(|i| [(i, i.ids.0), (i, i.ids.1)])
        .collect();
    all.sort_by_key(|(_, id)| *id);
    if id.is_none() {
        let architecture = call.param("architecture");
        let types: Vec<&str> = call.params("type").collect();
        let statuses: Vec<&str> = call.params("status").collect();
        all.retain(|(i, id)| {
            architecture.is_none_or(|a| (a == "arm") == (*id == i.ids.1))
                && (types.is_empty() || types.contains(&"system"))
                && (statuses.is_empty() || statuses.contains(&"available"))
        });
    }
    let keys = ("image", "images");
    lookup(
        call,
        id,
        keys,
        &all,
        |(i, id)| (*id, i.name),
        |(i, id)| image_json(i, *id),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups() {
        assert_eq!(server_type("cx22").unwrap().disk_gb, 40);
        assert_eq!(server_type("96").unwrap().name, "ccx13");
        assert!(server_type("cx99").is_none());
        assert_eq!(location("hel1").unwrap().zone, "eu-central");
        assert_eq!(location_of_datacenter("ash-dc1").unwrap().name, "ash");
        let (debian, x86) = image_for("debian-12", false).unwrap().unwrap();
        assert_eq!(
            (debian.flavor, debian.version, x86),
            ("debian", "12", 114_690_387)
        );
        assert_eq!(
            image_for("debian-12", true).unwrap().unwrap().1,
            114_690_389
        );
        assert!(matches!(
            image_for("114690387", true),
            Some(Err(114_690_387))
        ));
        let ubuntu = image_for("ubuntu-24.04", false).unwrap().unwrap().0;
        assert_eq!((ubuntu.flavor, ubuntu.version), ("ubuntu", "24.04"));
        assert!(image_for("windows-11", false).is_none());
    }
}
