"""The control plane's Prometheus metrics, on a registry of their own.

Names follow istiod's where it has one (`pilot_xds_pushes` → `meshcore_control_pushes_total`,
`pilot_proxy_convergence_time` → `meshcore_control_convergence_seconds`, `pilot_xds` →
`meshcore_control_connected_proxies`, `pilot_total_xds_rejects` → the `nack` result).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class ControlMetrics:
    """Every metric the control plane exports; one instance per control plane."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.pushes = Counter(
            "meshcore_control_pushes",
            "Snapshot pushes to proxies, by result (sent, ack, nack).",
            ["result"],
            registry=self.registry,
        )
        self.push_duration = Histogram(
            "meshcore_control_push_duration_seconds",
            "From sending a snapshot to a proxy to its ACK or NACK.",
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.compile_duration = Histogram(
            "meshcore_control_compile_duration_seconds",
            "Time to compile one distinct proxy snapshot.",
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.convergence = Histogram(
            "meshcore_control_convergence_seconds",
            "From a config change being noticed to the last connected proxy's ACK of it.",
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.connected = Gauge(
            "meshcore_control_connected_proxies",
            "Proxies connected now.",
            registry=self.registry,
        )
        self.config_errors = Gauge(
            "meshcore_control_config_errors",
            "Error diagnostics in the config on disk now (0 when the last edit was accepted).",
            registry=self.registry,
        )
        self.config_loads = Counter(
            "meshcore_control_config_loads",
            "Config reloads, by result (accepted, rejected).",
            ["result"],
            registry=self.registry,
        )
        self.compile_errors = Counter(
            "meshcore_control_compile_errors",
            "Per-proxy compiles the compiler refused (the proxy keeps its last snapshot).",
            registry=self.registry,
        )
        self.generation = Gauge(
            "meshcore_control_config_generation",
            "Generation of the config being served (increases on each accepted change).",
            registry=self.registry,
        )
