//! Like `load`, with command-line parameters: the input is split at its first NUL byte.
//! Before it, one `name=value` per line, read as `fitter -p name=value` would read them;
//! after it, the plan text (no NUL: no parameters, all plan). This fuzzes `{{ parameter.x }}` substitution and the mapping of
//! positions in the substituted text back to the original (diagnostics are rendered against
//! the original text).
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

/// Same rule as the CLI's `-p`: split at the first `=`, the name trimmed and not empty.
fn parameters(lines: &str) -> BTreeMap<String, String> {
    lines
        .lines()
        .filter_map(|line| line.split_once('='))
        .filter(|(name, _)| !name.trim().is_empty())
        .map(|(name, value)| (name.trim().to_string(), value.to_string()))
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let (params, plan) = match data.iter().position(|&b| b == 0) {
        Some(nul) => (&data[..nul], &data[nul + 1..]),
        None => (&[][..], data),
    };
    let (Ok(params), Ok(text)) = (std::str::from_utf8(params), std::str::from_utf8(plan)) else {
        return;
    };
    let catalog = catalog();
    let options = LoadOptions {
        parameters: parameters(params),
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
