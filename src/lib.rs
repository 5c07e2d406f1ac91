//! fitter: a declarative infrastructure provisioner in the spirit of plumbery.
//!
//! The pipeline, one module per stage (see docs/architecture.md and README.md):
//!
//! ```text
//! YAML text --fittings::load--> Fittings --graph::build--> ResourceGraph
//!    --plan::diff against state::State--> Plan
//! ```
//!
//! `cli` is a thin layer over these stages.

/// `fitter --version`: the package version and, when built from a git checkout, the commit
/// (build.rs), so that a bug report or a saved plan says exactly which build made it.
pub const VERSION: &str = env!("FITTER_VERSION");

pub mod apply;
pub mod bootstrap;
pub mod cli;
pub mod components;
pub mod diagnostics;
pub mod engine;
pub mod fittings;
pub mod graph;
pub mod information;
pub mod inventory;
pub mod operations;
pub mod plan;
pub mod report;
pub mod ssh;
pub mod state;
pub mod yaml;
