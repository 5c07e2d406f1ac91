//! Fuzzes the whole front of the pipeline on arbitrary text: `fittings::load`, then, when the
//! plan is accepted, `graph::build` and `plan::diff(..).render()` and `ResourceGraph::to_dot`. Rendering the diagnostics
//! is exercised on every input, since their spans must map back into the original text.
#![no_main]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use fitter::components::Catalog;
use fitter::fittings::{self, LoadOptions};
use libfuzzer_sys::fuzz_target;

fn catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| Catalog::builtin().expect("the built-in catalog loads"))
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let catalog = catalog();
    let options = LoadOptions {
        parameters: BTreeMap::new(),
        provider: None,
        catalog,
    };
    let loaded = fittings::load("fuzz.yaml", text, &options);
    let _ = loaded.source.render_all(&loaded.diagnostics);
    if let Some(fittings) = &loaded.fittings {
        if let Ok(graph) = fitter::graph::build(fittings, catalog) {
            let _ = fitter::plan::diff(&graph, None).render();
            let _ = graph.to_dot();
        }
    }
});
