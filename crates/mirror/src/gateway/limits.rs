//! The limits on what a client may hold: connections, how slowly it may send a request, and how
//! many request-body bytes may be in memory at once. See `docs/security.md`.

use std::time::Duration;

use mirror_router::{check_size, SecondsRule, SHUTDOWN_SECONDS};
use serde::Deserialize;

/// The client-facing limits, read from `mirror_settings` (flattened: these are its keys).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ClientLimits {
    /// Open client connections at most; beyond it the gateway stops accepting until one closes
    /// (new connections wait in the kernel's backlog).
    #[serde(default = "default_max_client_connections")]
    pub max_client_connections: usize,
    /// Seconds a connection may take to send a request's head, counted from when it became ready
    /// for one: when it was accepted, or when the previous response ended on a kept-alive
    /// connection. So it is also the idle keep-alive timeout.
    #[serde(default = "default_client_header_timeout")]
    pub client_header_timeout: f64,
    /// Bytes per second a request body must average once the grace period is over; a slower body
    /// is refused with 408 and its connection closed.
    #[serde(default = "default_client_body_min_rate")]
    pub client_body_min_rate: u64,
    /// Seconds a request body may take before `client_body_min_rate` applies.
    #[serde(default = "default_client_body_grace")]
    pub client_body_grace: f64,
    /// Request-body bytes held by all requests at once; a body that would go past it is refused
    /// with 503 (`Retry-After: 1`).
    #[serde(default = "default_max_body_bytes_in_flight")]
    pub max_body_bytes_in_flight: u64,
}

/// The keys of `mirror_settings` that [`ClientLimits`] reads.
pub const CLIENT_LIMIT_KEYS: [&str; 5] = [
    "max_client_connections",
    "client_header_timeout",
    "client_body_min_rate",
    "client_body_grace",
    "max_body_bytes_in_flight",
];

/// Header and grace timeouts: greater than 0, at most one hour (as `shutdown_timeout`).
const CLIENT_SECONDS: SecondsRule = SHUTDOWN_SECONDS;

fn default_max_client_connections() -> usize {
    4096
}
fn default_client_header_timeout() -> f64 {
    30.0
}
fn default_client_body_min_rate() -> u64 {
    1024
}
fn default_client_body_grace() -> f64 {
    10.0
}
fn default_max_body_bytes_in_flight() -> u64 {
    128 * 1024 * 1024
}

impl Default for ClientLimits {
    fn default() -> Self {
        ClientLimits {
            max_client_connections: default_max_client_connections(),
            client_header_timeout: default_client_header_timeout(),
            client_body_min_rate: default_client_body_min_rate(),
            client_body_grace: default_client_body_grace(),
            max_body_bytes_in_flight: default_max_body_bytes_in_flight(),
        }
    }
}

/// [`ClientLimits`] checked, as the accept loop uses them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CheckedLimits {
    pub(crate) max_connections: usize,
    pub(crate) header_timeout: Duration,
    pub(crate) body_min_rate: u64,
    pub(crate) body_grace: Duration,
    pub(crate) body_bytes_in_flight: u64,
}

impl ClientLimits {
    /// Checks every value: each is greater than 0, timeouts at most 1 hour.
    ///
    /// # Errors
    ///
    /// The key's path under `mirror_settings` and what is wrong with it.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        self.checked().map(|_| ())
    }

    pub(crate) fn checked(&self) -> Result<CheckedLimits, (&'static str, String)> {
        check_size(
            self.max_client_connections as u64,
            "a number of connections",
        )
        .map_err(|message| ("mirror_settings.max_client_connections", message))?;
        let header_timeout = CLIENT_SECONDS
            .check(self.client_header_timeout)
            .map_err(|message| ("mirror_settings.client_header_timeout", message))?;
        check_size(self.client_body_min_rate, "a number of bytes per second")
            .map_err(|message| ("mirror_settings.client_body_min_rate", message))?;
        let body_grace = CLIENT_SECONDS
            .check(self.client_body_grace)
            .map_err(|message| ("mirror_settings.client_body_grace", message))?;
        check_size(self.max_body_bytes_in_flight, "a number of bytes")
            .map_err(|message| ("mirror_settings.max_body_bytes_in_flight", message))?;
        Ok(CheckedLimits {
            max_connections: self.max_client_connections,
            header_timeout,
            body_min_rate: self.client_body_min_rate,
            body_grace,
            body_bytes_in_flight: self.max_body_bytes_in_flight,
        })
    }
}
