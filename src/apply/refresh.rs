//! Reading the recorded resources back from their providers (refresh), and taking in what
//! carries the deployment's mark but the state does not know (dispose without a state).

use std::collections::BTreeMap;

use fitter_providers::ProviderKind;
use fitter_providers::api::Outputs;

use super::{ApplyError, Providers};
use crate::state::{LockedState, ResourceState, State, Status};

/// Reads every recorded resource from its provider and forgets those that are gone.
///
/// When every resource that was read back reads as gone (two or more), nothing is
/// forgotten unless `accept_vanished`: a wrong or lying endpoint answers exactly like that,
/// and forgetting would leave everything running and unknown to fitter.
pub async fn refresh(
    state: &mut LockedState,
    providers: &Providers,
    accept_vanished: bool,
) -> Result<Vec<String>, ApplyError> {
    let gone = gone(state.state(), providers).await?;
    let read = state
        .state()
        .resources
        .values()
        .filter(|r| r.id.is_some() && r.status != Status::Creating)
        .count();
    if !accept_vanished && read >= 2 && gone.len() == read {
        return Err(ApplyError::Vanished { count: read });
    }
    if !gone.is_empty() {
        state.update(|s| {
            for a in &gone {
                s.resources.remove(a);
            }
        })?;
    }
    Ok(gone)
}

/// The recorded resources their provider no longer has; reads only (`plan` uses it).
pub async fn gone(state: &State, providers: &Providers) -> Result<Vec<String>, ApplyError> {
    let mut gone = Vec::new();
    let recorded: Vec<(String, ResourceState)> = state
        .resources
        .iter()
        .map(|(a, r)| (a.clone(), r.clone()))
        .collect();
    for (address, r) in recorded {
        let exists = match &r.id {
            // A resource still being created may not be visible yet (DigitalOcean lists a
            // new droplet late): kept, and the create waits for it.
            Some(_) if r.status == Status::Creating => true,
            Some(id) => {
                let provider = providers.get(r.provider, &address)?;
                provider.read(r.kind, id).await?.is_some()
            }
            // A create interrupted before the provider named the resource: kept, with the
            // host key it generated, for the next create, which adopts what the provider
            // finds by name and tag before creating anything.
            None => true,
        };
        if !exists {
            gone.push(address);
        }
    }
    believable(state, providers, &gone).await?;
    Ok(gone)
}

/// What was changed outside fitter in the recorded resources that still exist, by address:
/// each provider's own reading ([`Provider::drift`]); reads only. `skip`: the addresses
/// already known to be gone.
///
/// [`Provider::drift`]: fitter_providers::api::Provider::drift
pub async fn drifted(
    state: &State,
    providers: &Providers,
    skip: &[String],
) -> Result<BTreeMap<String, Vec<String>>, ApplyError> {
    let mut drifted = BTreeMap::new();
    for (address, r) in &state.resources {
        if skip.contains(address) || r.status == Status::Creating {
            continue;
        }
        let Some(id) = &r.id else { continue };
        let provider = providers.get(r.provider, address)?;
        let found = provider.drift(r.kind, id, &r.outputs).await?;
        if !found.is_empty() {
            drifted.insert(address.clone(), found);
        }
    }
    Ok(drifted)
}

/// Checks "gone" against a second answer: the listing of what carries the deployment's mark.
/// A resource that reads as gone by its id but is still listed is a contradiction (a wrong
/// endpoint, a proxy answering for some paths): nothing is forgotten, and the command stops
/// naming it. One listing per provider, and only when something reads as gone.
async fn believable(
    state: &State,
    providers: &Providers,
    gone: &[String],
) -> Result<(), ApplyError> {
    let mut by_provider: BTreeMap<ProviderKind, Vec<(&str, &str)>> = BTreeMap::new();
    for address in gone {
        if let Some(r) = state.resources.get(address)
            && let Some(id) = &r.id
        {
            by_provider
                .entry(r.provider)
                .or_default()
                .push((address, id));
        }
    }
    for (kind, candidates) in by_provider {
        let provider = providers.get(kind, candidates[0].0)?;
        let listed = provider.owned(&state.deployment).await?;
        if let Some((address, id)) = candidates
            .iter()
            .find(|(_, id)| listed.iter().any(|o| o.id == *id))
        {
            return Err(ApplyError::Contradiction {
                resource: address.to_string(),
                id: id.to_string(),
            });
        }
    }
    Ok(())
}

/// What the providers find carrying the deployment's mark but the state does not know (a
/// lost or stale state file), each with the address it would be recorded under. Reads only.
pub async fn orphans(
    state: &State,
    providers: &Providers,
    kinds: &[ProviderKind],
) -> Result<Vec<(String, ResourceState)>, ApplyError> {
    let mut found: Vec<(String, ResourceState)> = Vec::new();
    for kind in kinds {
        let provider = providers.get(*kind, "the deployment")?;
        for o in provider.owned(&state.deployment).await? {
            let known = state
                .resources
                .values()
                .any(|r| r.provider == *kind && r.id.as_deref() == Some(o.id.as_str()));
            if known {
                continue;
            }
            let name = if o.name.is_empty() { &o.id } else { &o.name };
            let mut address = format!("{}.{name}", o.kind);
            let taken = |a: &str| state.resources.contains_key(a) || found.iter().any(|f| f.0 == a);
            if taken(&address) {
                address = format!("{address}#{}", o.id);
            }
            let record = ResourceState {
                kind: o.kind,
                provider: *kind,
                id: Some(o.id.clone()),
                attributes: BTreeMap::new(),
                outputs: Outputs::default(),
                status: Status::Ready,
            };
            found.push((address, record));
        }
    }
    Ok(found)
}

/// Takes the [`orphans`] into the state, so that dispose deletes them too.
pub async fn adopt_orphans(
    state: &mut LockedState,
    providers: &Providers,
    kinds: &[ProviderKind],
) -> Result<Vec<String>, ApplyError> {
    let found = orphans(state.state(), providers, kinds).await?;
    let mut adopted = Vec::new();
    for (address, record) in found {
        state.update(|s| {
            s.resources.insert(address.clone(), record);
        })?;
        adopted.push(address);
    }
    Ok(adopted)
}
