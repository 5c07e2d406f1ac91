//! The state in memory: a store that keeps every version it was given, for tests of the
//! stages above the seam (apply reads and writes through [`StateStore`] and never learns
//! which store it has) and for tools that want a deployment's state without a file.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use super::{Holder, Snapshot, State, StateError, StateStore, StateWriter};

/// Deployments' states by name, with every version written, and the lock.
#[derive(Debug, Default, Clone)]
pub struct MemoryStore {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Every version written, oldest first, by deployment.
    versions: BTreeMap<String, Vec<State>>,
    locked: BTreeMap<String, Holder>,
}

impl MemoryStore {
    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every version of `deployment`'s state written so far, oldest first.
    pub fn versions(&self, deployment: &str) -> Vec<State> {
        self.inner()
            .versions
            .get(deployment)
            .cloned()
            .unwrap_or_default()
    }
}

impl StateStore for MemoryStore {
    fn location(&self) -> String {
        "memory".to_string()
    }

    fn holder(&self, deployment: &str) -> Result<Option<Holder>, StateError> {
        Ok(self.inner().locked.get(deployment).cloned())
    }

    fn force_unlock(&self, deployment: &str, expected: &Holder) -> Result<(), StateError> {
        let mut inner = self.inner();
        if inner.locked.get(deployment) == Some(expected) {
            inner.locked.remove(deployment);
        }
        Ok(())
    }

    fn read(&self, deployment: &str) -> Result<Option<State>, StateError> {
        Ok(self
            .inner()
            .versions
            .get(deployment)
            .and_then(|v| v.last().cloned()))
    }

    fn lock(
        &self,
        deployment: &str,
        holder: &Holder,
    ) -> Result<(Option<State>, Arc<dyn StateWriter>), StateError> {
        let mut inner = self.inner();
        if let Some(h) = inner.locked.get(deployment) {
            return Err(StateError::Locked {
                location: "memory".into(),
                holder: Some(h.clone()),
                waited: false,
            });
        }
        inner.locked.insert(deployment.to_string(), holder.clone());
        let state = inner
            .versions
            .get(deployment)
            .and_then(|v| v.last().cloned());
        drop(inner);
        let writer = MemoryWriter {
            store: self.clone(),
            deployment: deployment.to_string(),
        };
        Ok((state, Arc::new(writer)))
    }
}

struct MemoryWriter {
    store: MemoryStore,
    deployment: String,
}

impl StateWriter for MemoryWriter {
    fn write(&self, snapshot: &Snapshot) -> Result<(), StateError> {
        let state: State =
            serde_json::from_str(&snapshot.text).map_err(|source| StateError::Parse {
                location: "memory".into(),
                source,
            })?;
        let mut inner = self.store.inner();
        let versions = inner.versions.entry(self.deployment.clone()).or_default();
        if let Some(last) = versions.last()
            && (last.serial != snapshot.previous || last.lineage != snapshot.previous_lineage)
        {
            return Err(StateError::Conflict {
                location: "memory".into(),
                found: last.serial,
                expected: snapshot.previous,
            });
        }
        versions.push(state);
        Ok(())
    }
}

impl Drop for MemoryWriter {
    fn drop(&mut self) {
        self.store.inner().locked.remove(&self.deployment);
    }
}
