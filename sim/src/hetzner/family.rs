//! What the resource families (servers, networks, firewalls, SSH keys, placement groups) do
//! alike, written once. A [`Family`] says where its resources are kept, what its JSON keys
//! and its longest name are, and how one is rendered; the handlers here list a family
//! (`name`, `label_selector`, `sort`, pages), read one by id, check that a name is free, change
//! `name` and `labels`, and delete one by id. What is a family's own (what else a list filters
//! by, what else an update changes, what a delete refuses) is given to them by its file.

use std::collections::BTreeMap;

use serde_json::{Value as Json, json};
use tokio::time::Instant;

use super::body::{Filter, Object, labels, object, path_id, sort};
use super::labels::Labels;
use super::page::paginate;
use super::store::{Firewall, Ids, Network, PlacementGroup, Server, SshKey, Store};
use super::{HzError, reply};
use crate::api::{Call, Reply};
use crate::state::State;

/// A kind of resource with an id, a unique name and labels.
pub(crate) trait Family: Sized {
    /// The key of one in an answer (`network`); also its id sequence.
    const ONE: &'static str;
    /// The key of a list (`networks`); also where the store keeps them.
    const MANY: &'static str;
    /// What a refusal calls one.
    const NOUN: &'static str;
    /// The longest name a create or an update takes.
    const NAME_MAX: usize;
    fn all(store: &Store) -> &BTreeMap<u64, Self>;
    fn all_mut(store: &mut Store) -> &mut BTreeMap<u64, Self>;
    fn ids(ids: &mut Ids) -> &mut u64;
    fn id(&self) -> u64;
    fn name(&self) -> &str;
    fn labels(&self) -> &Labels;
    fn named_mut(&mut self) -> (&mut String, &mut Labels);
    /// The resource as `GET /<family>/{id}` shows it.
    fn json(&self, state: &State, now: Instant) -> Json;
}

/// One `impl Family` a line: `Type: store field / id sequence, noun, longest name, render`.
macro_rules! families {
    ($($ty:ident: $many:ident / $one:ident, $noun:literal, $max:literal,
       |$state:ident, $item:ident, $now:ident| $json:expr;)*) => {$(
        impl Family for $ty {
            const ONE: &'static str = stringify!($one);
            const MANY: &'static str = stringify!($many);
            const NOUN: &'static str = $noun;
            const NAME_MAX: usize = $max;
            fn all(store: &Store) -> &BTreeMap<u64, Self> {
                &store.$many
            }
            fn all_mut(store: &mut Store) -> &mut BTreeMap<u64, Self> {
                &mut store.$many
            }
            fn ids(ids: &mut Ids) -> &mut u64 {
                &mut ids.$one
            }
            fn id(&self) -> u64 {
                self.id
            }
            fn name(&self) -> &str {
                &self.name
            }
            fn labels(&self) -> &Labels {
                &self.labels
            }
            fn named_mut(&mut self) -> (&mut String, &mut Labels) {
                (&mut self.name, &mut self.labels)
            }
            fn json(&self, $state: &State, $now: Instant) -> Json {
                let $item = self;
                $json
            }
        }
    )*};
}

families! {
    Server: servers / server, "server", 253,
        |state, s, now| super::render::server_json(state, s, now);
    Network: networks / network, "network", 255,
        |state, n, _now| super::networks::network_json(&state.hetzner, n);
    Firewall: firewalls / firewall, "firewall", 128,
        |state, f, _now| super::firewalls::firewall_json(&state.hetzner, f);
    SshKey: ssh_keys / ssh_key, "SSH key", 255,
        |_state, k, _now| super::keys::ssh_key_json(k);
    PlacementGroup: placement_groups / placement_group, "placement group", 255,
        |state, g, _now| super::render::group_json(&state.hetzner, g);
}

/// `GET /<family>` with nothing but `name`, `label_selector`, `sort` and pages.
pub(super) fn list<T: Family>(state: &mut State, call: &Call) -> Result<Reply, HzError> {
    list_kept::<T>(state, call, &Filter::new(call)?, |_| true)
}

/// `GET /<family>`: the ones `filter` and `keep` keep, sorted, a page.
pub(super) fn list_kept<T: Family>(
    state: &State,
    call: &Call,
    filter: &Filter,
    keep: impl Fn(&T) -> bool,
) -> Result<Reply, HzError> {
    let mut items: Vec<&T> = T::all(&state.hetzner)
        .values()
        .filter(|r| filter.keeps(r.name(), r.labels()) && keep(r))
        .collect();
    sort(call, &mut items, |r| (r.id(), r.name()));
    paginate(call, T::MANY, &items, |r| r.json(state, call.now))
}

/// The resource `id` of a path; 404 when there is none.
pub(super) fn find<'s, T: Family>(state: &'s State, id: &str) -> Result<&'s T, HzError> {
    T::all(&state.hetzner)
        .get(&path_id(id)?)
        .ok_or_else(HzError::not_found)
}

/// 200 `{ONE: …}`.
fn answer<T: Family>(state: &State, call: &Call, item: &T) -> Result<Reply, HzError> {
    reply(200, json!({T::ONE: item.json(state, call.now)}))
}

/// `GET /<family>/{id}`.
pub(super) fn get<T: Family>(state: &State, call: &Call, id: &str) -> Result<Reply, HzError> {
    answer(state, call, find::<T>(state, id)?)
}

/// 409 `uniqueness_error` when another resource of the family (than `except`) has `name`.
pub(super) fn check_name<T: Family>(
    state: &State,
    name: &str,
    except: Option<u64>,
) -> Result<(), HzError> {
    if T::all(&state.hetzner)
        .values()
        .any(|r| r.name() == name && Some(r.id()) != except)
    {
        return Err(HzError::uniqueness(
            "name",
            format!("{} name is already used", T::NOUN),
        ));
    }
    Ok(())
}

/// The `name` of a create: required, at most `NAME_MAX` characters (whether it is free is
/// checked last, with [`check_name`]).
pub(super) fn new_name<T: Family>(body: &Object) -> Result<String, HzError> {
    Ok(super::body::name(body, T::NAME_MAX)?
        .ok_or_else(|| HzError::invalid("name", "is required"))?
        .to_owned())
}

/// What every `PUT` changes: `name` (checked) and `labels` (which replace the old ones).
pub(super) struct Changes {
    name: Option<String>,
    labels: Option<Labels>,
}

impl Changes {
    /// Reads and checks the changes; `check` checks a new name.
    pub(super) fn read(
        body: &Object,
        max: usize,
        check: impl FnOnce(&str) -> Result<(), HzError>,
    ) -> Result<Changes, HzError> {
        let name = super::body::name(body, max)?;
        if let Some(name) = name {
            check(name)?;
        }
        let labels = body
            .contains_key("labels")
            .then(|| labels(body))
            .transpose()?;
        Ok(Changes {
            name: name.map(str::to_owned),
            labels,
        })
    }

    pub(super) fn apply<T: Family>(self, item: &mut T) {
        let (name, labels) = item.named_mut();
        if let Some(new) = self.name {
            *name = new;
        }
        if let Some(new) = self.labels {
            *labels = new;
        }
    }
}

/// `PUT /<family>/{id}`: `name`, `labels`, and what `more` reads of the body: it checks its
/// fields before anything changes and returns what applies them.
pub(super) fn update<T: Family, F: FnOnce(&mut T)>(
    state: &mut State,
    call: &Call,
    id: &str,
    more: impl FnOnce(&Object) -> Result<F, HzError>,
) -> Result<Reply, HzError> {
    let body = object(call)?;
    let id = find::<T>(state, id)?.id();
    let changes = Changes::read(&body, T::NAME_MAX, |name| {
        check_name::<T>(state, name, Some(id))
    })?;
    let more = more(&body)?;
    let item = T::all_mut(&mut state.hetzner)
        .get_mut(&id)
        .ok_or_else(HzError::not_found)?;
    changes.apply(item);
    more(item);
    answer(state, call, &T::all(&state.hetzner)[&id])
}

/// `PUT /<family>/{id}` of `name` and `labels` only.
pub(super) fn rename<T: Family>(
    state: &mut State,
    call: &Call,
    id: &str,
) -> Result<Reply, HzError> {
    update::<T, _>(state, call, id, |_| Ok(|_: &mut T| {}))
}

/// `DELETE /<family>/{id}`: 204. `before` may refuse (422 `resource_in_use`, say) or tidy
/// up what refers to the resource; it is given the store and the id.
pub(super) fn delete<T: Family>(
    state: &mut State,
    id: &str,
    before: impl FnOnce(&mut Store, u64) -> Result<(), HzError>,
) -> Result<Reply, HzError> {
    let id = find::<T>(state, id)?.id();
    before(&mut state.hetzner, id)?;
    T::all_mut(&mut state.hetzner).remove(&id);
    Ok(Reply {
        status: 204,
        body: None,
    })
}

/// For [`delete`]: 422 `resource_in_use` with `message` when `used`.
pub(super) fn in_use(used: bool, message: &str) -> Result<(), HzError> {
    match used {
        true => Err(HzError::unprocessable("resource_in_use", message)),
        false => Ok(()),
    }
}

/// Keeps a new resource that `make` builds with the next id of its family; returns the id and
/// the resource as a create answers it.
pub(super) fn insert<T: Family>(
    state: &mut State,
    call: &Call,
    make: impl FnOnce(u64) -> T,
) -> (u64, Json) {
    let id = state.hetzner.next_id::<T>();
    T::all_mut(&mut state.hetzner).insert(id, make(id));
    (id, T::all(&state.hetzner)[&id].json(state, call.now))
}
