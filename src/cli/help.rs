//! What `--help`, `--version`, `fitter completions` and `fitter man` say beyond the flags.
//!
//! Every command's help ends with the environment variables it reads, grouped as the
//! parts that read them (providers, the state store, SSH), so that an operator never has
//! to read the source to learn that `HCLOUD_TOKEN` or `PGPASSFILE` matters. The lists are
//! `concat!`ed constants because clap takes `after_help` as text known at compile time for
//! a derived command; docs/cli.md has the same table.
//!
//! Completions and the manual page come from the same clap definition as the parser:
//! `clap_complete` and `clap_mangen`, clap's own crates, so a new flag is in both with no
//! second list to keep in step.

use std::process::ExitCode;

use clap::CommandFactory as _;

pub use crate::VERSION;

macro_rules! env_global {
    () => {
        concat!(
            "  FITTER_LOG                  log filter instead of -v/-q (`debug`, `fitter=debug`)\n",
            "  NO_COLOR                    set, not empty: no colour with `--color auto`\n"
        )
    };
}

macro_rules! env_providers {
    () => {
        concat!(
            "  DIGITALOCEAN_TOKEN          DigitalOcean API token\n",
            "  DIGITALOCEAN_ACCESS_TOKEN   the same, if DIGITALOCEAN_TOKEN is unset\n",
            "  DIGITALOCEAN_API_URL        another DigitalOcean endpoint (a simulator)\n",
            "  HCLOUD_TOKEN                Hetzner Cloud API token of the project\n",
            "  HCLOUD_ENDPOINT             another Hetzner Cloud endpoint (a simulator)\n",
            "  LXD_SOCKET                  the LXD daemon's socket\n"
        )
    };
}

macro_rules! env_state {
    () => {
        concat!(
            "  FITTER_BACKEND              where the state is kept, as `--backend`\n",
            "  FITTER_STATE_KEY            key sealing the state's secrets (`--state-key-file`)\n",
            "  PGPASSWORD                  the PostgreSQL password, as libpq reads it\n",
            "  PGPASSFILE                  the password file (default `~/.pgpass`)\n"
        )
    };
}

macro_rules! env_ssh {
    () => {
        concat!(
            "  FITTER_SSH_KEY              the operator's SSH private key, as `--ssh-key`\n",
            "  SSH_AUTH_SOCK               an SSH agent holding the operator's key\n"
        )
    };
}

pub const ENV_GLOBAL: &str = concat!("Environment:\n", env_global!());
pub const ENV_OFFLINE: &str = concat!("Environment:\n", env_global!());
pub const ENV_PLAN: &str = concat!(
    "Environment:\n",
    env_providers!(),
    env_state!(),
    env_ssh!(),
    env_global!()
);
pub const ENV_CHANGE: &str = concat!(
    "Environment:\n",
    env_providers!(),
    env_state!(),
    env_ssh!(),
    "  and what a plan's cloud-config names with `{{ environment.NAME }}`\n",
    env_global!()
);
pub const ENV_READ: &str = concat!("Environment:\n", env_state!(), env_ssh!(), env_global!());
pub const ENV_STATE: &str = concat!("Environment:\n", env_state!(), env_global!());

/// `fitter completions SHELL`: the completion script on standard output.
pub fn completions(shell: clap_complete::Shell) -> ExitCode {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut super::Cli::command(), "fitter", &mut script);
    emit(&script)
}

/// `fitter man [COMMAND]`: the manual page (roff) of fitter, or of one command
/// (`fitter-deploy(1)`), on standard output: `fitter man deploy | man -l -`. With `--dir`,
/// every page goes to that directory as `fitter.1`, `fitter-deploy.1`, ... (for packagers).
pub fn man(command: Option<&str>, dir: Option<&std::path::Path>) -> ExitCode {
    let mut cli = super::Cli::command();
    cli.build();
    if let Some(dir) = dir {
        return match write_pages(&cli, dir) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                errln!(
                    "error: cannot write the manual pages to `{}`: {e}",
                    dir.display()
                );
                ExitCode::from(1)
            }
        };
    }
    let page = match command {
        None => cli,
        Some(name) => match cli.find_subcommand(name) {
            Some(sub) => {
                let full = format!("fitter-{}", sub.get_name());
                sub.clone().name(full.clone()).display_name(full)
            }
            None => {
                let names: Vec<&str> = cli.get_subcommands().map(|s| s.get_name()).collect();
                errln!(
                    "error: no command `{name}`; the commands: {}",
                    names.join(", ")
                );
                return ExitCode::from(1);
            }
        },
    };
    let mut roff = Vec::new();
    match clap_mangen::Man::new(page).render(&mut roff) {
        Ok(()) => emit(&roff),
        Err(e) => {
            errln!("error: cannot render the manual page: {e}");
            ExitCode::from(1)
        }
    }
}

/// `fitter.1` and one page per command (`fitter-deploy.1`, `fitter-state-push.1`), in
/// `dir`, made if missing; clap's own `help` command gets none.
fn write_pages(cli: &clap::Command, dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    fn write(command: clap::Command, name: String, dir: &std::path::Path) -> std::io::Result<()> {
        let subcommands: Vec<clap::Command> = command
            .get_subcommands()
            .filter(|s| s.get_name() != "help" && !s.is_hide_set())
            .cloned()
            .collect();
        let page = command.name(name.clone()).display_name(name.clone());
        let mut roff = Vec::new();
        clap_mangen::Man::new(page).render(&mut roff)?;
        std::fs::write(dir.join(format!("{name}.1")), roff)?;
        for sub in subcommands {
            let sub_name = format!("{name}-{}", sub.get_name());
            write(sub, sub_name, dir)?;
        }
        Ok(())
    }
    write(cli.clone(), "fitter".to_string(), dir)
}

fn emit(bytes: &[u8]) -> ExitCode {
    out!("{}", String::from_utf8_lossy(bytes));
    ExitCode::SUCCESS
}
