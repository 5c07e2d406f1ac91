//! DigitalOcean's dialect of the shared HTTP client ([`crate::http`]): rolling windows of
//! [`PER_MINUTE`] requests in any 60 s and [`PER_HOUR`] in any hour, a little under
//! DigitalOcean's 250 and 5,000, and pages of [`PER_PAGE`] items.

pub use crate::http::{Answer, Call, Client, Failure, Retries, parse};
use crate::http::{Budget, Dialect};

/// Requests allowed in any 60 s (DigitalOcean allows 250).
pub const PER_MINUTE: usize = 240;
/// Requests allowed in any hour (DigitalOcean allows 5,000).
pub const PER_HOUR: usize = 4_900;
/// Items per page when listing: the API's maximum.
pub const PER_PAGE: usize = 200;

pub static DIALECT: Dialect = Dialect {
    cloud: "DigitalOcean",
    endpoint_var: "DIGITALOCEAN_API_URL",
    budget: Budget::Windows {
        per_minute: PER_MINUTE,
        per_hour: PER_HOUR,
    },
    per_page: PER_PAGE,
};

/// A client for DigitalOcean's API at `base`.
pub fn client(base: &str, token: &str, retries: Retries) -> Result<Client, String> {
    Client::new(&DIALECT, base, token, retries)
}
