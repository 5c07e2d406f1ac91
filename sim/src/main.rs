//! `fitter-sim`: serves the fake DigitalOcean (or, with `--api hetzner`, Hetzner Cloud) API on
//! a loopback address until interrupted.

use std::io::{IsTerminal as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use fitter_sim::{Api, Config, Simulator};

/// The API to serve.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum ApiArg {
    /// DigitalOcean's API v2, under /v2.
    Digitalocean,
    /// Hetzner Cloud's API v1, under /v1.
    Hetzner,
}

/// A stateful fake of the DigitalOcean API v2 or the Hetzner Cloud API v1, for tests. Control
/// API under /_sim.
#[derive(Parser, Debug)]
#[command(name = "fitter-sim", version)]
struct Args {
    /// The API to serve.
    #[arg(long, value_enum, default_value = "digitalocean")]
    api: ApiArg,
    /// Address to listen on; must be loopback (port 0 picks a free port).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0", value_parser = loopback)]
    listen: SocketAddr,
    /// Milliseconds a droplet stays `new` before it is `active` (Hetzner: a server is
    /// `initializing`, then `starting`, for this long before it is `running`).
    #[arg(long, value_name = "N", default_value_t = 2000)]
    active_delay_ms: u64,
    /// Milliseconds a deleted droplet (Hetzner: server) stays visible after the delete.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    delete_delay_ms: u64,
    /// Milliseconds a droplet action (power_off, power_on, shutdown, resize) takes.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    action_delay_ms: u64,
    /// Requests per token in any rolling minute.
    #[arg(long, value_name = "N", default_value_t = 250)]
    rate_limit_per_minute: u32,
    /// Requests per token in any rolling hour [default: 5000]. Hetzner: the size of each
    /// token's bucket, refilled at N per hour [default: 3600].
    #[arg(long, value_name = "N")]
    rate_limit_per_hour: Option<u32>,
    /// SSH key listings per token in any rolling minute.
    #[arg(long, value_name = "N", default_value_t = 10)]
    key_list_per_minute: u32,
    /// Accept only this bearer token (default: any non-empty token).
    #[arg(long, value_name = "T")]
    token: Option<String>,
    /// Refuse (422) creates that would make more droplets than this (Hetzner: refuse
    /// server creates past this many servers, 403 resource_limit_exceeded).
    #[arg(long, value_name = "N", alias = "server-limit")]
    droplet_limit: Option<usize>,
}

/// `--listen`: a socket address (or `localhost:PORT`) on a loopback interface.
fn loopback(text: &str) -> Result<SocketAddr, String> {
    let addr: SocketAddr = match text.strip_prefix("localhost:") {
        Some(port) => SocketAddr::from((
            Ipv4Addr::LOCALHOST,
            port.parse::<u16>().map_err(|e| format!("bad port: {e}"))?,
        )),
        None => text
            .parse()
            .map_err(|e| format!("expected IP:PORT such as 127.0.0.1:8080 ({e})"))?,
    };
    if addr.ip().is_loopback() {
        Ok(addr)
    } else {
        Err(format!(
            "`{}` is not a loopback address; fitter-sim only listens on loopback (127.0.0.0/8 or ::1)",
            addr.ip()
        ))
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let api = match args.api {
        ApiArg::Digitalocean => Api::DigitalOcean,
        ApiArg::Hetzner => Api::Hetzner,
    };
    let defaults = match api {
        Api::DigitalOcean => Config::default(),
        Api::Hetzner => Config::hetzner(),
    };
    let config = Config {
        api,
        active_delay: Duration::from_millis(args.active_delay_ms),
        delete_delay: Duration::from_millis(args.delete_delay_ms),
        action_delay: Duration::from_millis(args.action_delay_ms),
        rate_limit_per_minute: args.rate_limit_per_minute,
        rate_limit_per_hour: args
            .rate_limit_per_hour
            .unwrap_or(defaults.rate_limit_per_hour),
        key_list_per_minute: args.key_list_per_minute,
        token: args.token,
        droplet_limit: args.droplet_limit,
    };
    let simulator = match Simulator::start(args.listen, config).await {
        Ok(simulator) => simulator,
        Err(error) => {
            eprintln!("fitter-sim: cannot listen on {}: {error}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    let mut stdout = std::io::stdout();
    let url = match api {
        Api::DigitalOcean => simulator.url(),
        Api::Hetzner => simulator.hetzner_url(),
    };
    let _ = writeln!(stdout, "fitter-sim listening on {url}");
    let _ = stdout.flush();
    if let Err(error) = tokio::signal::ctrl_c().await {
        eprintln!("fitter-sim: cannot wait for Ctrl-C: {error}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
