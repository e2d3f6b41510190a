//! Why a data plane could not start, or why a snapshot was not applied.

use std::fmt;
use std::net::SocketAddr;

use meshcore_snapshot::SnapshotError;

/// The data plane could not start; nothing is left running.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("worker_threads must be at least 1")]
    NoWorkerThreads,
    /// The admin API exposes configuration and must not be reachable from other hosts.
    #[error("admin_address {0} is not a loopback address")]
    AdminNotLoopback(SocketAddr),
    #[error("cannot bind admin address {address}: {source}")]
    AdminBind {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start the {runtime} runtime: {source}")]
    Runtime {
        runtime: &'static str,
        source: std::io::Error,
    },
}

/// A snapshot was not applied. The previously applied state keeps serving unchanged.
#[derive(Debug)]
pub enum ApplyError {
    /// The snapshot failed parsing or validation; every problem found, in document order.
    Invalid(Vec<SnapshotError>),
    /// A new listener's socket could not be bound, so none of the snapshot was applied.
    Bind {
        /// The listener's port field, e.g. `listeners[2].port`.
        path: String,
        address: SocketAddr,
        source: std::io::Error,
    },
    /// [`DataPlane::shutdown`](crate::DataPlane::shutdown) has been called.
    ShutDown,
}

impl ApplyError {
    /// The field the rejection points at (the first one for [`ApplyError::Invalid`]); empty
    /// when it concerns the whole document or the data plane itself.
    pub fn path(&self) -> &str {
        match self {
            Self::Invalid(errors) => errors.first().map_or("", |e| e.path.as_str()),
            Self::Bind { path, .. } => path,
            Self::ShutDown => "",
        }
    }

    /// A machine-readable class: a snapshot [`ErrorCode`](meshcore_snapshot::ErrorCode)
    /// string, `bind_failed` or `shut_down`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid(errors) => errors.first().map_or("invalid_value", |e| e.code.as_str()),
            Self::Bind { .. } => "bind_failed",
            Self::ShutDown => "shut_down",
        }
    }
}

impl fmt::Display for ApplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Invalid(errors) => match errors.split_first() {
                None => write!(f, "invalid snapshot"),
                Some((first, [])) => write!(f, "{first}"),
                Some((first, rest)) => write!(f, "{first} (and {} more)", rest.len()),
            },
            Self::Bind {
                path,
                address,
                source,
            } => write!(f, "{path}: cannot bind {address}: {source}"),
            Self::ShutDown => write!(f, "the data plane is shut down"),
        }
    }
}

impl std::error::Error for ApplyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Bind { source, .. } => Some(source),
            Self::Invalid(errors) => errors
                .first()
                .map(|e| e as &(dyn std::error::Error + 'static)),
            Self::ShutDown => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshcore_snapshot::ErrorCode;

    #[test]
    fn bind_error_names_the_listener_field_and_the_os_error() {
        let error = ApplyError::Bind {
            path: "listeners[2].port".into(),
            address: "127.0.0.1:9000".parse().unwrap(),
            source: std::io::Error::from(std::io::ErrorKind::AddrInUse),
        };
        assert_eq!(error.path(), "listeners[2].port");
        assert_eq!(error.code(), "bind_failed");
        assert!(
            error
                .to_string()
                .starts_with("listeners[2].port: cannot bind 127.0.0.1:9000: "),
            "{error}"
        );
    }

    #[test]
    fn invalid_reports_the_first_error_and_how_many_more() {
        let error = ApplyError::Invalid(vec![
            SnapshotError::new("version", ErrorCode::InvalidValue, "must not be empty"),
            SnapshotError::new("clusters[0].name", ErrorCode::Duplicate, "dup"),
        ]);
        assert_eq!(error.path(), "version");
        assert_eq!(error.code(), "invalid_value");
        assert_eq!(error.to_string(), "version: must not be empty (and 1 more)");
    }
}
