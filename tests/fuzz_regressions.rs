//! Replays the fuzz seeds and every reproducer the fuzzer ever found (`fuzz/seeds/`,
//! `fuzz/regressions/`) through the same calls as the fuzz targets, so that a fixed panic stays
//! fixed in the ordinary test run, without cargo-fuzz. Also every scenario plan of
//! `tests/cases/`, mutilated at every line boundary: truncation is the commonest broken plan.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use fitter::components::Catalog;
use fitter::fittings::{self, LoadOptions};

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// What the `load_with_parameters` target does: `name=value` lines, a NUL, then the plan.
fn split_parameters(data: &[u8]) -> (BTreeMap<String, String>, &[u8]) {
    match data.iter().position(|&b| b == 0) {
        None => (BTreeMap::new(), data),
        Some(nul) => {
            let params = String::from_utf8_lossy(&data[..nul])
                .lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            (params, &data[nul + 1..])
        }
    }
}

fn exercise(catalog: &Catalog, parameters: BTreeMap<String, String>, text: &str) {
    let options = LoadOptions {
        parameters,
        provider: None,
        catalog,
    };
    let loaded = fittings::load("replay.yaml", text, &options);
    let _ = loaded.source.render_all(&loaded.diagnostics);
    if let Some(f) = &loaded.fittings
        && let Ok(graph) = fitter::graph::build(f, catalog)
    {
        let _ = fitter::plan::diff(&graph, None).render();
        let _ = graph.to_dot();
    }
}

#[test]
fn fuzz_seeds_and_reproducers_load_without_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    files_under(&root.join("fuzz/seeds"), &mut files);
    files_under(&root.join("fuzz/regressions"), &mut files);
    files.sort();
    assert!(files.len() >= 5, "expected fuzz seeds, found {files:?}");
    let catalog = Catalog::builtin().unwrap();
    for file in &files {
        let data = std::fs::read(file).unwrap();
        let (parameters, plan) = split_parameters(&data);
        if let Ok(text) = std::str::from_utf8(plan) {
            exercise(&catalog, parameters, text);
        }
    }
}

#[test]
fn truncated_plans_load_without_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    files_under(&root.join("tests/cases"), &mut files);
    files_under(&root.join("fittings"), &mut files);
    files.retain(|f| f.extension().is_some_and(|e| e == "yaml"));
    assert!(files.len() >= 10);
    let catalog = Catalog::builtin().unwrap();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for (cut, _) in text.match_indices('\n') {
            exercise(&catalog, BTreeMap::new(), &text[..cut]);
            // Also drop one line from the middle: indentation errors.
            let rest = text[cut + 1..]
                .find('\n')
                .map_or(text.len(), |n| cut + 1 + n);
            let spliced = format!("{}{}", &text[..cut], &text[rest..]);
            exercise(&catalog, BTreeMap::new(), &spliced);
        }
    }
}
