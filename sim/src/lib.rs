//! `fitter-sim`: a stateful fake of the DigitalOcean API v2 or of the Hetzner Cloud API v1,
//! for fitter's tests.
//!
//! It serves the part of an API a provisioner needs over real HTTP on loopback: under
//! DigitalOcean ([`Api::DigitalOcean`], the default, under `/v2`) droplets, droplet actions,
//! SSH keys, tags, VPCs and firewalls; under Hetzner ([`Api::Hetzner`], under `/v1`, see
//! [`Simulator::hetzner_url`]) servers, actions, networks, firewalls, SSH keys, placement
//! groups and the catalogue. It keeps what was created and answers with the shapes the
//! official OpenAPI spec declares, so `prism proxy --errors` in front of it finds nothing to
//! object to. On top of the API it can misbehave on purpose ([`Fault`]) and lets a test look
//! inside ([`Simulator::snapshot`], [`Simulator::requests`]), in process or through the
//! control API under `/_sim` (see `sim/README.md`).
//!
//! Time: delays (new to active, droplet actions, delete to gone, rate-limit windows and
//! buckets) are measured with [`tokio::time::Instant`] and computed lazily from timestamps
//! when a request looks, so there is no timer per droplet or server and a paused tokio clock
//! drives them too. `created_at` (Hetzner: `created`) strings are real UTC wall-clock times.
//!
//! Lifecycle: [`Simulator::start`] or [`Simulator::start_background`] binds, serves until the
//! last [`Simulator`] handle is dropped, then closes its listener and connections.

mod api;
mod hetzner;
mod hostile;
mod ratelimit;
mod server;
mod state;
mod types;
mod util;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

pub use types::{Api, Config, Counts, Fault, HetznerSnapshot, Matcher, RecordedRequest, Snapshot};

use state::State;

/// A running fake cloud API (DigitalOcean's or Hetzner's, as [`Config::api`] says). Cheap to clone; every clone is a handle on the same server.
#[derive(Clone)]
pub struct Simulator {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The last handle is gone: stop accepting and close every connection.
        let _ = self.shutdown.send(true);
    }
}

/// What the server tasks and the handles share.
pub(crate) struct Shared {
    pub(crate) addr: SocketAddr,
    state: Mutex<State>,
}

impl Shared {
    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the state as consistent as any handler left
        // it (handlers validate before they mutate), so keep serving rather than poisoning
        // every later test.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Simulator {
    /// Binds `listen` (port 0 picks a free port) and serves on the current tokio runtime.
    pub async fn start(listen: SocketAddr, config: Config) -> std::io::Result<Simulator> {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let (simulator, shared, shutdown) = Self::new(listener.local_addr()?, config);
        tokio::spawn(server::accept_loop(listener, shared, shutdown));
        Ok(simulator)
    }

    /// Binds `listen` and serves from a thread of its own with its own runtime, for tests that
    /// are not async. Returns once the socket is listening.
    pub fn start_background(listen: SocketAddr, config: Config) -> std::io::Result<Simulator> {
        let listener = std::net::TcpListener::bind(listen)?;
        listener.set_nonblocking(true)?;
        let (simulator, shared, shutdown) = Self::new(listener.local_addr()?, config);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name(format!("fitter-sim {}", shared.addr))
            .spawn(move || {
                runtime.block_on(async move {
                    match tokio::net::TcpListener::from_std(listener) {
                        Ok(listener) => server::accept_loop(listener, shared, shutdown).await,
                        Err(error) => tracing::error!(%error, "fitter-sim cannot serve"),
                    }
                })
            })?;
        Ok(simulator)
    }

    fn new(addr: SocketAddr, config: Config) -> (Simulator, Arc<Shared>, watch::Receiver<bool>) {
        let shared = Arc::new(Shared {
            addr,
            state: Mutex::new(State::new(config)),
        });
        let (shutdown, receiver) = watch::channel(false);
        let simulator = Simulator {
            inner: Arc::new(Inner {
                shared: shared.clone(),
                shutdown,
            }),
        };
        (simulator, shared, receiver)
    }

    /// The address the server is bound to (the real port when `listen` asked for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.inner.shared.addr
    }

    /// `http://ADDR`, the base URL to give a DigitalOcean client (paths start with `/v2`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// `http://ADDR/v1`, the base URL to give a Hetzner client (paths such as `/servers`
    /// follow it), as `https://api.hetzner.cloud/v1` is for the real API.
    pub fn hetzner_url(&self) -> String {
        format!("http://{}/v1", self.addr())
    }

    /// Every resource as the API would render it now, and the request counters.
    pub fn snapshot(&self) -> Snapshot {
        let base = self.url();
        self.inner.shared.state().snapshot(&base)
    }

    /// Adds a fault; faults apply in the order they were injected.
    pub fn inject(&self, fault: Fault) {
        self.inner.shared.state().faults.inject(fault);
    }

    /// Removes every fault (droplets held by [`Fault::StuckNew`] then move on).
    pub fn clear_faults(&self) {
        self.inner.shared.state().faults.clear();
    }

    /// Forgets every resource, fault, counter, recorded request and rate-limit window. The
    /// configuration stays, and identifiers keep counting up, so an id from before the reset
    /// never names a resource created after it.
    pub fn reset(&self) {
        self.inner.shared.state().reset();
    }

    /// Replaces the configuration. Delays apply to existing resources too (they are computed
    /// from timestamps when asked).
    pub fn set_config(&self, config: Config) {
        self.inner.shared.state().config = config;
    }

    /// The current configuration.
    pub fn config(&self) -> Config {
        self.inner.shared.state().config.clone()
    }

    /// Every API request (`/v2` or `/v1`) so far, in arrival order. `status` is 0 while a request is still
    /// being handled; for [`Fault::LostResponse`] it is the status that was never sent.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.inner.shared.state().requests.clone()
    }
}
