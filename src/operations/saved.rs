//! Saved plans: `fitter plan -o FILE` writes what deploy would do, and `fitter deploy FILE`
//! applies exactly that, or nothing (Terraform's `plan -out` / `apply PLANFILE`).
//!
//! The file is JSON: the plan's resource changes, the fittings file's path and SHA-256,
//! the `--provider`/`--region`/`--blueprint`/`--target`/`--replace` choices, and the state
//! it was made against
//! (lineage and serial). Applying it refuses, before anything is written:
//!
//! - when the fittings file changed since (its digest differs);
//! - when the state moved since: another lineage or serial. A plan made against no state
//!   carries a lineage of its own making, which the new state takes: applying the same
//!   file a second time finds a state, so it is refused;
//! - when the plan deploy computes now, after reading the resources back, is not the saved
//!   one (something changed at a provider in between).
//!
//! **No secret in the file.** The plan's changes hold no secret (the same data as `plan
//! --json`, tests/no_secret_printed.rs). Plan parameters may (a password passed with
//! `-p`), so the file keeps a salted SHA-256 of each value, not the value: `fitter deploy
//! FILE` is given the same `-p`/`--parameters` again and checks them against the digests.
//! That is one step more than Terraform's plan file, which stores variables in the clear;
//! a plan file here can be attached to a review without leaking a `-p` value (a weak one
//! can still be guessed from its digest, as from any unkeyed hash).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use sha2::{Digest as _, Sha256};

use super::{CheckOptions, Checked, OperationError};
use crate::plan::Plan;

/// The format's version, and the key that tells a saved plan from a fittings file.
pub const FORMAT: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedPlan {
    pub fitter_saved_plan: u32,
    /// The fitter that wrote it (`0.1.0 (4f2c1e9...)`), for whoever reads the file.
    pub written_by: String,
    pub deployment: String,
    /// The fittings file, absolute, and the SHA-256 of its bytes.
    pub fittings: PathBuf,
    pub fittings_sha256: String,
    /// Per parameter given (`-p`, `--parameters`): SHA-256 of salt, name and value.
    pub parameters: BTreeMap<String, String>,
    pub salt: String,
    pub provider: Option<String>,
    pub region: Option<String>,
    pub blueprints: Vec<String>,
    #[serde(default)]
    pub targets: Vec<String>,
    #[serde(default)]
    pub replace: Vec<String>,
    /// The state the plan was made against.
    pub lineage: String,
    /// 0: no state was stored; the deploy starts one with `lineage`.
    pub serial: u64,
    /// The plan's resource changes, as `plan --json` gives them.
    pub changes: Json,
    /// How many changes, for a reader of the file.
    pub summary: Json,
}

/// What a saved plan is checked against when applied.
#[derive(Debug, Clone)]
pub struct Expected {
    pub lineage: String,
    pub serial: u64,
    pub changes: Json,
    pub path: PathBuf,
}

/// Why a saved plan cannot be applied.
#[derive(Debug, thiserror::Error)]
pub enum Stale {
    #[error(
        "`{plan}` was saved against no state, but deployment `{deployment}` has one now (serial {serial}): was it applied already? Plan again"
    )]
    AppliedAlready {
        plan: PathBuf,
        deployment: String,
        serial: u64,
    },
    #[error(
        "the state moved since `{plan}` was saved: it was serial {saved} of lineage {saved_lineage}, it is serial {now} of lineage {now_lineage}. Plan again"
    )]
    StateMoved {
        plan: PathBuf,
        saved: u64,
        saved_lineage: String,
        now: u64,
        now_lineage: String,
    },
    #[error(
        "the infrastructure changed since `{plan}` was saved: deploy would now do something else. Plan again"
    )]
    PlanDiffers { plan: PathBuf },
}

impl SavedPlan {
    /// The saved form of `plan`, made from `checked` against the state `(lineage, serial)`
    /// (`None`: no state yet).
    pub fn new(checked: &Checked, the_plan: &Plan, state: Option<(String, u64)>) -> SavedPlan {
        let salt = crate::state::random_uuid();
        let parameters = checked
            .parameters
            .iter()
            .map(|(name, value)| (name.clone(), digest(&salt, name, value)))
            .collect();
        let (lineage, serial) = state.unwrap_or_else(|| (crate::state::random_uuid(), 0));
        let fittings = std::fs::canonicalize(&checked.options.path)
            .unwrap_or_else(|_| checked.options.path.clone());
        SavedPlan {
            fitter_saved_plan: FORMAT,
            written_by: crate::VERSION.to_string(),
            deployment: checked.fittings.deployment.clone(),
            fittings,
            fittings_sha256: hex(&Sha256::digest(checked.source.original.as_bytes())),
            parameters,
            salt,
            provider: checked.options.provider.map(|p| p.to_string()),
            region: checked.options.region.clone(),
            blueprints: checked.options.blueprints.clone(),
            targets: checked.options.targets.clone(),
            replace: checked.options.replace.clone(),
            lineage,
            serial,
            changes: serde_json::to_value(&the_plan.changes).expect("a plan serialises"),
            summary: serde_json::to_value(&the_plan.summary).expect("a plan serialises"),
        }
    }

    /// Reads `path` as a saved plan; `None` when it is not one (a fittings file).
    pub fn read(path: &Path) -> Result<Option<SavedPlan>, OperationError> {
        let Ok(text) = std::fs::read_to_string(path) else {
            return Ok(None);
        };
        if !text.trim_start().starts_with('{') {
            return Ok(None);
        }
        let Ok(value) = serde_json::from_str::<Json>(&text) else {
            return Ok(None);
        };
        if value.get("fitter_saved_plan").is_none() {
            return Ok(None);
        }
        let saved: SavedPlan = serde_json::from_value(value).map_err(|e| {
            OperationError::Usage(format!(
                "`{}` is not a saved plan fitter can read: {e}",
                path.display()
            ))
        })?;
        if saved.fitter_saved_plan != FORMAT {
            return Err(OperationError::Usage(format!(
                "`{}` is a saved plan of format {}; this fitter reads format {FORMAT}",
                path.display(),
                saved.fitter_saved_plan
            )));
        }
        Ok(Some(saved))
    }

    /// Writes it to `path`, readable by its owner only (it names hosts and addresses).
    pub fn write(&self, path: &Path) -> Result<(), OperationError> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let text = serde_json::to_string_pretty(self).expect("a saved plan serialises") + "\n";
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(path)?;
            file.write_all(text.as_bytes())?;
            file.sync_all()
        };
        write().map_err(|source| OperationError::Write {
            path: path.to_path_buf(),
            source,
        })
    }

    /// The options that load the fittings the plan was made from, with the parameters given
    /// now; each must match its digest, and none may be missing or new.
    pub fn check_options(
        &self,
        given: &BTreeMap<String, String>,
        parameter_files: Vec<PathBuf>,
    ) -> Result<CheckOptions, OperationError> {
        let provider = match &self.provider {
            Some(p) => Some(
                fitter_providers::registry::lookup(p)
                    .map_err(|e| OperationError::Usage(e.to_string()))?,
            ),
            None => None,
        };
        Ok(CheckOptions {
            path: self.fittings.clone(),
            parameters: given.clone(),
            parameter_files,
            provider,
            blueprints: self.blueprints.clone(),
            region: self.region.clone(),
            targets: self.targets.clone(),
            replace: self.replace.clone(),
        })
    }

    /// Checks what was loaded now against what the plan was made from.
    pub fn check_inputs(&self, checked: &Checked, path: &Path) -> Result<Expected, OperationError> {
        let now = hex(&Sha256::digest(checked.source.original.as_bytes()));
        if now != self.fittings_sha256 {
            return Err(OperationError::Usage(format!(
                "`{}` changed since `{}` was saved; plan again",
                self.fittings.display(),
                path.display()
            )));
        }
        for (name, value) in &checked.parameters {
            match self.parameters.get(name) {
                None => {
                    return Err(OperationError::Usage(format!(
                        "parameter `{name}` was not given when `{}` was saved; apply it with the same parameters",
                        path.display()
                    )));
                }
                Some(d) if *d != digest(&self.salt, name, value) => {
                    return Err(OperationError::Usage(format!(
                        "parameter `{name}` differs from the value `{}` was saved with",
                        path.display()
                    )));
                }
                Some(_) => {}
            }
        }
        if let Some(name) = self
            .parameters
            .keys()
            .find(|n| !checked.parameters.contains_key(*n))
        {
            return Err(OperationError::Usage(format!(
                "`{}` was saved with parameter `{name}`: give it again (`-p {name}=...` or `--parameters FILE`); the file keeps its digest, not its value",
                path.display()
            )));
        }
        Ok(Expected {
            lineage: self.lineage.clone(),
            serial: self.serial,
            changes: self.changes.clone(),
            path: path.to_path_buf(),
        })
    }
}

impl Expected {
    /// The state found under the lock must be the one the plan was made against.
    pub fn check_state(&self, deployment: &str, lineage: &str, serial: u64) -> Result<(), Stale> {
        if self.serial == 0 {
            return if serial == 0 {
                Ok(())
            } else {
                Err(Stale::AppliedAlready {
                    plan: self.path.clone(),
                    deployment: deployment.to_string(),
                    serial,
                })
            };
        }
        if serial != self.serial || lineage != self.lineage {
            return Err(Stale::StateMoved {
                plan: self.path.clone(),
                saved: self.serial,
                saved_lineage: self.lineage.clone(),
                now: serial,
                now_lineage: lineage.to_string(),
            });
        }
        Ok(())
    }

    /// The plan computed now must be the saved one.
    pub fn check_plan(&self, the_plan: &Plan) -> Result<(), Stale> {
        let now = serde_json::to_value(&the_plan.changes).expect("a plan serialises");
        if now == self.changes {
            Ok(())
        } else {
            Err(Stale::PlanDiffers {
                plan: self.path.clone(),
            })
        }
    }
}

fn digest(salt: &str, name: &str, value: &str) -> String {
    let mut h = Sha256::new();
    for part in [salt, name, value] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    hex(&h.finalize())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
