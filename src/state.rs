//! The state file: what a deployment has created, as last recorded.
//!
//! One JSON file per deployment, beside the plan (`<plan>.state.json`) unless `--state` says
//! otherwise. Maps are sorted so that the file diffs well. `serial` grows with every write and
//! `lineage` names the deployment's history, so two writers cannot silently overwrite each
//! other. This module reads it; the apply stage writes it (atomically, with a backup and a
//! lock) after every change.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use fitter_providers::{ProviderKind, ResourceKind};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use thiserror::Error;

/// The state format this build reads and writes.
pub const STATE_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    pub version: u32,
    pub serial: u64,
    pub lineage: String,
    pub deployment: String,
    /// By address (`node.master1`).
    #[serde(default)]
    pub resources: BTreeMap<String, ResourceState>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceState {
    pub kind: ResourceKind,
    pub provider: ProviderKind,
    /// The provider's id, recorded as soon as the provider accepted the create.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The desired attributes this resource was created or last updated with.
    #[serde(default)]
    pub attributes: BTreeMap<String, Json>,
    /// What the provider reported: addresses, fingerprints.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub outputs: BTreeMap<String, Json>,
}

#[derive(Debug, Error)]
pub enum StateError {
    #[error("cannot read the state file `{path}`")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the state file `{path}` is not valid: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "the state file `{path}` has format version {found}; this fitter reads version {STATE_VERSION}"
    )]
    Version { path: PathBuf, found: u32 },
    #[error(
        "the state file `{path}` belongs to deployment `{found}`, not `{expected}`; pass `--state` to choose another file"
    )]
    Deployment {
        path: PathBuf,
        found: String,
        expected: String,
    },
}

/// Where the state of a plan lives when `--state` is not given: beside the plan,
/// `fittings/web.yaml` -> `fittings/web.state.json`.
pub fn default_path(fittings: &Path) -> PathBuf {
    fittings.with_extension("state.json")
}

/// Reads the state file; `Ok(None)` when there is none yet.
pub fn read(path: &Path, deployment: &str) -> Result<Option<State>, StateError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StateError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let state: State = serde_json::from_str(&text).map_err(|source| StateError::Parse {
        path: path.to_path_buf(),
        source,
    })?;
    if state.version != STATE_VERSION {
        return Err(StateError::Version {
            path: path.to_path_buf(),
            found: state.version,
        });
    }
    if state.deployment != deployment {
        return Err(StateError::Deployment {
            path: path.to_path_buf(),
            found: state.deployment,
            expected: deployment.to_string(),
        });
    }
    Ok(Some(state))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_file_is_no_state_and_mismatches_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.state.json");
        assert!(read(&path, "x").unwrap().is_none());
        std::fs::write(
            &path,
            r#"{"version":1,"serial":3,"lineage":"l","deployment":"other","resources":{}}"#,
        )
        .unwrap();
        assert!(matches!(
            read(&path, "x"),
            Err(StateError::Deployment { .. })
        ));
        std::fs::write(&path, "{").unwrap();
        assert!(matches!(read(&path, "x"), Err(StateError::Parse { .. })));
        assert_eq!(
            default_path(Path::new("fittings/web.yaml")),
            Path::new("fittings/web.state.json")
        );
    }
}
