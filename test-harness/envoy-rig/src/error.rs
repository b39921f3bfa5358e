//! The one error type of the rig.
//!
//! Every failure carries enough context to act on from a test log alone: which
//! file, which admin endpoint, and for Envoy failures the tail of Envoy's own log.

use std::path::PathBuf;
use std::time::Duration;

/// What went wrong while building, starting or talking to Envoy and the upstreams.
#[derive(Debug, thiserror::Error)]
pub enum RigError {
    /// The Envoy binary is not installed where the rig looks for it.
    #[error("Envoy not found at {}: run `make envoy` (or set ENVOY_BIN)", path.display())]
    EnvoyNotFound {
        /// The path that was tried.
        path: PathBuf,
    },

    /// A filesystem or socket operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What the rig was doing.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// Envoy exited before it became ready (usually a rejected bootstrap).
    #[error("Envoy exited early ({status}); log tail:\n{log_tail}")]
    EnvoyExited {
        /// The exit status as printed by the OS.
        status: String,
        /// The last lines Envoy wrote.
        log_tail: String,
    },

    /// Envoy did not report `LIVE` on `/ready` within the deadline.
    #[error("Envoy not ready after {timeout:?}; log tail:\n{log_tail}")]
    NotReady {
        /// How long the rig waited.
        timeout: Duration,
        /// The last lines Envoy wrote.
        log_tail: String,
    },

    /// `envoy --mode validate` rejected a bootstrap.
    #[error("Envoy rejected the bootstrap:\n{log_tail}")]
    InvalidBootstrap {
        /// What Envoy printed.
        log_tail: String,
    },

    /// An admin endpoint answered something the rig cannot use.
    #[error("admin {endpoint}: {reason}")]
    Admin {
        /// The admin path that was queried.
        endpoint: String,
        /// Why its answer was unusable.
        reason: String,
    },

    /// No listener with this name is up in Envoy.
    #[error("no listener named {0:?}")]
    NoListener(String),

    /// A URL given to the test client cannot be used.
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// Why it was refused.
        reason: String,
    },

    /// An HTTP exchange failed below the status-code level (connect, reset, protocol).
    #[error("HTTP {context}: {reason}")]
    Http {
        /// What the rig was doing.
        context: String,
        /// The underlying error, rendered.
        reason: String,
    },

    /// An HTTP exchange did not complete within its deadline.
    #[error("HTTP {context}: no answer within {timeout:?}")]
    Timeout {
        /// What the rig was doing.
        context: String,
        /// The deadline that passed.
        timeout: Duration,
    },

    /// JSON could not be produced or parsed.
    #[error("JSON {context}: {source}")]
    Json {
        /// What was being (de)serialised.
        context: String,
        /// The underlying error.
        #[source]
        source: serde_json::Error,
    },
}

impl RigError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn http(context: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        Self::Http {
            context: context.into(),
            reason: reason.to_string(),
        }
    }

    pub(crate) fn admin(endpoint: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        Self::Admin {
            endpoint: endpoint.into(),
            reason: reason.to_string(),
        }
    }
}

/// The rig's result type.
pub type Result<T, E = RigError> = std::result::Result<T, E>;
