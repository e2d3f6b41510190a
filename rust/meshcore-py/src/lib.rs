//! `meshcore._core`: the data plane as a Python extension. No logic lives here.
//!
//! A few coarse calls cross the boundary (`start`, `apply`, `stats`, `drain`, `shutdown`,
//! plus read-only helpers), each releasing the GIL for its whole duration. Traffic runs on the
//! data plane's own tokio threads and never touches Python.

use std::net::SocketAddr;
use std::time::Duration;

use meshcore_proxy::{ApplyError, DataPlane, Options};
use meshcore_snapshot::Direction;
use pyo3::create_exception;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;

// The allocator is the process's own (glibc's malloc), not jemalloc: see ARCHITECTURE.md,
// "Choices". In a dlopen'ed extension jemalloc reaches its thread cache through
// `__tls_get_addr` on every call; glibc's is loaded with the process (static TLS).

create_exception!(
    _core,
    SnapshotRejected,
    PyValueError,
    "apply() refused a snapshot; args are (message, path, code). The last good one keeps serving."
);
create_exception!(
    _core,
    DataPlaneError,
    PyRuntimeError,
    "The data plane could not start or is shut down."
);

/// A running data plane: worker threads for traffic and an admin thread.
#[pyclass(frozen, name = "DataPlane", module = "meshcore._core")]
struct PyDataPlane {
    inner: DataPlane,
}

#[pymethods]
impl PyDataPlane {
    #[staticmethod]
    #[pyo3(signature = (worker_threads = 2, admin_address = None))]
    fn start(py: Python<'_>, worker_threads: usize, admin_address: Option<&str>) -> PyResult<Self> {
        let admin_address = admin_address
            .map(|a| a.parse::<SocketAddr>())
            .transpose()
            .map_err(|e| PyValueError::new_err(format!("admin_address: {e}")))?;
        let options = Options {
            worker_threads,
            admin_address,
        };
        let inner = py
            .detach(|| DataPlane::start(options))
            .map_err(|e| DataPlaneError::new_err(e.to_string()))?;
        Ok(Self { inner })
    }

    /// Applies a JSON snapshot; returns its version.
    fn apply(&self, py: Python<'_>, snapshot: &[u8]) -> PyResult<String> {
        py.detach(|| self.inner.apply_json(snapshot))
            .map_err(|e| rejection(&e))
    }

    /// Counters as a JSON document.
    fn stats(&self, py: Python<'_>) -> PyResult<String> {
        let stats = py.detach(|| self.inner.stats());
        serde_json::to_string(&stats).map_err(|e| DataPlaneError::new_err(e.to_string()))
    }

    /// The last applied snapshot as JSON, or None before the first apply.
    fn config_dump(&self, py: Python<'_>) -> PyResult<Option<String>> {
        py.detach(|| self.inner.config_dump())
            .map(|s| serde_json::to_string(&s))
            .transpose()
            .map_err(|e| DataPlaneError::new_err(e.to_string()))
    }

    /// The bound address of a listener, by name.
    fn local_addr(&self, py: Python<'_>, listener: &str) -> Option<(String, u16)> {
        py.detach(|| self.inner.local_addr(listener))
            .map(|a| (a.ip().to_string(), a.port()))
    }

    /// Drains one direction ("inbound" or "outbound"): its listeners stop accepting, its
    /// HTTP connections finish their requests and close. Returns at once.
    fn drain(&self, py: Python<'_>, direction: &str) -> PyResult<()> {
        let direction = parse_direction(direction)?;
        py.detach(|| self.inner.drain(direction));
        Ok(())
    }

    /// Downstream connections plus HTTP requests in flight, of one direction or both.
    #[pyo3(signature = (direction = None))]
    fn active_connections(&self, py: Python<'_>, direction: Option<&str>) -> PyResult<u64> {
        let direction = direction.map(parse_direction).transpose()?;
        Ok(py.detach(|| self.inner.connections(direction)))
    }

    /// Whether the admin server received `POST /quitquitquit`.
    fn quit_requested(&self, py: Python<'_>) -> bool {
        py.detach(|| self.inner.quit_requested())
    }

    /// Stops accepting, waits up to `grace_seconds` for connections to finish, then closes
    /// the rest. Returns how many connections had to be closed.
    fn shutdown(&self, py: Python<'_>, grace_seconds: f64) -> PyResult<u64> {
        let grace = Duration::try_from_secs_f64(grace_seconds)
            .map_err(|e| PyValueError::new_err(format!("grace_seconds: {e}")))?;
        Ok(py.detach(|| self.inner.shutdown(grace)).force_closed)
    }
}

fn parse_direction(direction: &str) -> PyResult<Direction> {
    match direction {
        "inbound" => Ok(Direction::Inbound),
        "outbound" => Ok(Direction::Outbound),
        other => Err(PyValueError::new_err(format!(
            "direction must be 'inbound' or 'outbound', got {other:?}"
        ))),
    }
}

fn rejection(error: &ApplyError) -> PyErr {
    SnapshotRejected::new_err((error.to_string(), error.path().to_string(), error.code()))
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyDataPlane>()?;
    m.add("SnapshotRejected", m.py().get_type::<SnapshotRejected>())?;
    m.add("DataPlaneError", m.py().get_type::<DataPlaneError>())?;
    m.add("SCHEMA_VERSION", meshcore_snapshot::SCHEMA_VERSION)?;
    Ok(())
}
