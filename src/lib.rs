//! fitter: a declarative infrastructure provisioner in the spirit of plumbery.
//!
//! The pipeline, one module per stage (see ../shared/DESIGN.md and README.md):
//!
//! ```text
//! YAML text --fittings::load--> Fittings --graph::build--> ResourceGraph
//!    --plan::diff against state::State--> Plan
//! ```
//!
//! `cli` is a thin layer over these stages.

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
