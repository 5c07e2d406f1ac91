//! Hetzner Cloud's dialect of the shared HTTP client ([`crate::http`]): a token bucket a
//! little under the project's budget of 3,600 requests an hour (refilled at one a second),
//! following the `RateLimit-Remaining`/`RateLimit-Reset` headers, and pages of 50 items,
//! the API's maximum.

pub use crate::http::{Answer, Call, Client, Failure, Retries, parse};
use crate::http::{Budget, Dialect};

/// Requests a full bucket holds and gains an hour (Hetzner allows 3,600).
pub const PER_HOUR: usize = 3_500;
/// Items per page when listing: the API's maximum.
pub const PER_PAGE: usize = 50;

pub static DIALECT: Dialect = Dialect {
    cloud: "Hetzner",
    endpoint_var: "HCLOUD_ENDPOINT",
    budget: Budget::Bucket {
        capacity: PER_HOUR,
        per_hour: PER_HOUR,
    },
    per_page: PER_PAGE,
};

/// A client for Hetzner Cloud's API at `base` (the path `/v1` included).
pub fn client(base: &str, token: &str, retries: Retries) -> Result<Client, String> {
    Client::new(&DIALECT, base, token, retries)
}
