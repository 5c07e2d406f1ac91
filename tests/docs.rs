//! The documentation keeps up with the code: every command and flag the command line
//! defines, and every environment variable its help lists, is in docs/cli.md; every
//! relative link of README.md and docs/ points at a file of the repository (issue 13).

use std::path::{Path, PathBuf};

use clap::CommandFactory as _;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every command, as `fitter state push`, with its long flags.
fn commands(command: &clap::Command, path: &str, out: &mut Vec<(String, Vec<String>)>) {
    let flags = command
        .get_arguments()
        .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
        .collect();
    out.push((path.to_string(), flags));
    for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
        commands(sub, &format!("{path} {}", sub.get_name()), out);
    }
}

#[test]
fn docs_cli_names_every_command_flag_variable_and_exit_code() {
    let mut cli = fitter::cli::Cli::command();
    cli.build();
    let doc = read(&root().join("docs/cli.md"));
    let mut all = Vec::new();
    commands(&cli, "fitter", &mut all);
    let mut missing = Vec::new();
    for (command, flags) in &all {
        if !doc.contains(command.as_str()) {
            missing.push(command.clone());
        }
        for flag in flags {
            if !doc.contains(&format!("`{flag}`")) {
                missing.push(format!("{command} {flag}"));
            }
        }
    }
    // The variables each command's --help lists.
    let mut help = Vec::new();
    cli.write_long_help(&mut help).unwrap();
    for sub in cli.get_subcommands_mut() {
        sub.write_long_help(&mut help).unwrap();
    }
    let help = String::from_utf8(help).unwrap();
    for line in help.lines().map(str::trim_start) {
        let word = line.split_whitespace().next().unwrap_or("");
        let variable = word.len() > 3
            && word.chars().all(|c| c.is_ascii_uppercase() || c == '_')
            && line.len() > word.len() + 2;
        if variable && !doc.contains(&format!("`{word}`")) {
            missing.push(word.to_string());
        }
    }
    for code in ["`0`", "`1`", "`2`", "`130`"] {
        if !doc.contains(code) {
            missing.push(format!("exit code {code}"));
        }
    }
    missing.sort();
    missing.dedup();
    assert!(missing.is_empty(), "docs/cli.md lacks: {missing:?}");
}

#[test]
fn every_relative_link_of_the_readme_and_docs_resolves_inside_the_repository() {
    let mut files = vec![root().join("README.md")];
    for entry in std::fs::read_dir(root().join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            files.push(path);
        }
    }
    let mut broken = Vec::new();
    for file in &files {
        let text = read(file);
        assert!(
            !text.contains("../shared"),
            "{} points outside the repository (../shared)",
            file.display()
        );
        // `[text](target)`: the target up to `)`, without its `#anchor`.
        for (i, _) in text.match_indices("](") {
            let rest = &text[i + 2..];
            let Some(end) = rest.find(')') else { continue };
            let target = rest[..end].split('#').next().unwrap_or("");
            if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let resolved = file.parent().unwrap().join(target);
            if !resolved.exists() {
                broken.push(format!("{}: {target}", file.display()));
            }
            if !std::fs::canonicalize(&resolved)
                .map(|p| p.starts_with(root()))
                .unwrap_or(true)
            {
                broken.push(format!("{}: {target} is outside", file.display()));
            }
        }
    }
    assert!(broken.is_empty(), "{broken:?}");
}
