"""``meshcore sidecar``: run one sidecar, fed by a snapshot file, a config directory or a
control plane.

- ``--snapshot FILE``: serve a compiled snapshot file (the form the control plane pushes).
  SIGHUP re-reads it; a broken edit is logged with the field at fault and the last good
  snapshot keeps serving.
- ``--config-dir DIR --namespace NS``: static mode. Watch Istio YAML, compile this proxy's
  snapshot in-process and apply it on every settled edit (debounced); a broken edit is
  logged with its diagnostics and the last good config keeps serving. SIGHUP reloads now.
- ``--control-plane HOST:PORT --namespace NS``: the agent. Receive snapshots from
  ``meshcore control``, ACK or NACK each, keep serving the last good one while the control
  plane is away and resync when it returns. SIGHUP is ignored. This mode never imports
  pydantic, the compiler or the config models, to keep the process small.

In the last two modes readiness (``/healthz/ready``) and merged metrics
(``/stats/prometheus``) are served on the status ports once the first snapshot applies.
SIGTERM or SIGINT drains (``--drain-seconds``) and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import socket
from pathlib import Path
from typing import TYPE_CHECKING

from meshcore.dataplane import DataPlane, DataPlaneOptions, SnapshotRejected

if TYPE_CHECKING:
    from meshcore.agent.sidecar import ConfigSource, SidecarOptions

log = logging.getLogger("meshcore.sidecar")

_STOP = {signal.SIGTERM, signal.SIGINT}
_RELOAD = signal.SIGHUP


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--snapshot", type=Path, metavar="FILE", help="snapshot JSON to serve")
    source.add_argument(
        "--config-dir", type=Path, metavar="DIR", help="Istio YAML to compile locally and watch"
    )
    source.add_argument(
        "--control-plane", metavar="HOST:PORT", help="receive snapshots from meshcore control"
    )
    identity = parser.add_argument_group("proxy identity (--config-dir, --control-plane)")
    identity.add_argument("--name", default=None, help="proxy name (default: the host name)")
    identity.add_argument("--namespace", default=None, help="the workload's namespace")
    identity.add_argument("--labels", default=None, metavar="K=V,...", help="workload labels")
    identity.add_argument("--service-account", default=None, metavar="SA")
    ports = parser.add_argument_group("ports")
    ports.add_argument("--inbound-port", type=int, default=15006, help="(default 15006)")
    ports.add_argument("--outbound-port", type=int, default=15001, help="(default 15001)")
    ports.add_argument(
        "--admin-port",
        type=int,
        default=15000,
        help="admin API port on 127.0.0.1 (default 15000; -1 disables)",
    )
    ports.add_argument(
        "--status-port", type=int, default=15021, help="readiness /healthz/ready (default 15021)"
    )
    ports.add_argument(
        "--metrics-port",
        type=int,
        default=15020,
        help="merged Prometheus metrics /stats/prometheus (default 15020; -1 disables)",
    )
    parser.add_argument(
        "--concurrency", type=int, default=2, help="data-plane worker threads (default 2)"
    )
    parser.add_argument(
        "--drain-seconds",
        type=float,
        default=5.0,
        help="on SIGTERM, how long in-flight connections may take to finish (default 5)",
    )
    static = parser.add_argument_group("static mode (--config-dir)")
    static.add_argument("--mesh", type=Path, default=None, metavar="FILE", help="MeshConfig YAML")
    static.add_argument("--debounce-after", type=float, default=0.1, metavar="SECONDS")
    static.add_argument("--debounce-max", type=float, default=10.0, metavar="SECONDS")
    static.add_argument("--poll-interval", type=float, default=0.2, metavar="SECONDS")


def run(args: argparse.Namespace) -> int:
    if args.snapshot is not None:
        return _run_snapshot_file(args)
    if args.namespace is None:
        log.error("--namespace is required with --config-dir and --control-plane")
        return 2
    try:
        labels = _parse_labels(args.labels)
    except ValueError as error:
        log.error("--labels: %s", error)
        return 2
    # Imported only now: --snapshot mode needs neither asyncio nor the agent.
    from meshcore.agent.sidecar import SidecarOptions  # noqa: PLC0415

    admin = None if args.admin_port < 0 else args.admin_port
    status_ports = [p for p in (args.status_port, args.metrics_port) if p >= 0]
    options = SidecarOptions(args.concurrency, admin, "0.0.0.0", status_ports, args.drain_seconds)  # noqa: S104
    name = args.name or socket.gethostname()
    if args.config_dir is not None:
        return _run_static(args, options, name, labels)
    return _run_agent(args, options, name, labels)


def _run_agent(
    args: argparse.Namespace,
    options: SidecarOptions,
    name: str,
    labels: dict[str, str] | None,
) -> int:
    from meshcore.agent.client import ControlPlaneClient  # noqa: PLC0415
    from meshcore.agent.protocol import ProxyInfo  # noqa: PLC0415
    from meshcore.agent.sidecar import run_sidecar  # noqa: PLC0415
    from meshcore.agent.state import AgentState  # noqa: PLC0415

    host, sep, port = args.control_plane.rpartition(":")
    if not sep or not host or not port.isdigit():
        log.error("--control-plane %r is not HOST:PORT", args.control_plane)
        return 2
    proxy = ProxyInfo(
        name, args.namespace, labels, args.service_account, args.outbound_port, args.inbound_port
    )

    def client(state: AgentState) -> ConfigSource:
        return ControlPlaneClient(host.strip("[]"), int(port), proxy, state).run

    return asyncio.run(run_sidecar(options, client))


def _run_static(
    args: argparse.Namespace,
    options: SidecarOptions,
    name: str,
    labels: dict[str, str] | None,
) -> int:
    # Imported here: the compiler and the config models are this mode's alone.
    from meshcore.agent.sidecar import run_sidecar  # noqa: PLC0415
    from meshcore.control.local import LocalControl  # noqa: PLC0415
    from meshcore.control.protocol import ProxyInfo  # noqa: PLC0415
    from meshcore.control.watch import Debounce  # noqa: PLC0415

    if not args.config_dir.is_dir():
        log.error("--config-dir %s is not a directory", args.config_dir)
        return 1
    proxy = ProxyInfo(
        name,
        args.namespace,
        None if labels is None else tuple(sorted(labels.items())),
        args.service_account,
        args.outbound_port,
        args.inbound_port,
    )
    local = LocalControl(
        args.config_dir,
        proxy,
        mesh_file=args.mesh,
        debounce=Debounce(args.debounce_after, args.debounce_max, args.poll_interval),
    )
    return asyncio.run(run_sidecar(options, lambda _state: local.run, on_hup=local.reload))


def _parse_labels(text: str | None) -> dict[str, str] | None:
    """`app=reviews,version=v1` → a dict; None when not given."""
    if text is None:
        return None
    labels = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"label {item!r} is not KEY=VALUE")
        labels[key.strip()] = value.strip()
    return labels


def _run_snapshot_file(args: argparse.Namespace) -> int:
    # Block the signals before the data plane's threads exist, so they inherit the mask
    # and only this thread receives them, synchronously, through sigwait.
    signal.pthread_sigmask(signal.SIG_BLOCK, {*_STOP, _RELOAD})
    admin_port = None if args.admin_port < 0 else args.admin_port
    dataplane = DataPlane.start(DataPlaneOptions(args.concurrency, admin_port))
    if not _apply_file(dataplane, args.snapshot):
        dataplane.shutdown(0.0)
        return 1
    while True:
        received = signal.sigwait({*_STOP, _RELOAD})
        if received == _RELOAD:
            log.info("SIGHUP: re-reading %s", args.snapshot)
            _apply_file(dataplane, args.snapshot)
            continue
        log.info("%s: draining for up to %.1fs", signal.Signals(received).name, args.drain_seconds)
        closed = dataplane.shutdown(args.drain_seconds)
        log.info("stopped (%d connections closed at the deadline)", closed)
        return 0


def _apply_file(dataplane: DataPlane, path: Path) -> bool:
    try:
        data = path.read_bytes()
    except OSError as e:
        log.error("cannot read snapshot %s: %s; keeping the last good snapshot", path, e)
        return False
    try:
        version = dataplane.apply(data)
    except SnapshotRejected as e:
        log.error("snapshot %s rejected: %s; keeping the last good snapshot", path, e)
        return False
    # The raw dump, not the pydantic models: this mode stays as small as the agent.
    dump = json.loads(dataplane.config_dump_json() or "{}")
    log.info("applied snapshot %s from %s", version, path)
    for listener in dump.get("listeners", []):
        bound = dataplane.local_addr(listener["name"])
        where = f"{bound[0]}:{bound[1]}" if bound else f"{listener['address']}:{listener['port']}"
        log.info("listener %s on %s (%s)", listener["name"], where, listener["protocol"])
    return True
