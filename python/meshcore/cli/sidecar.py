"""``meshcore sidecar``: run one data plane from a static snapshot file.

The file is the static source that feeds the same ``apply`` path as the control plane
will (as ztunnel's ``examples/localhost.yaml`` does). SIGHUP re-reads it; a broken edit is
logged with the field at fault and the last good snapshot keeps serving. SIGTERM or SIGINT
drains and exits.
"""

from __future__ import annotations

import argparse
import logging
import signal
from pathlib import Path

from meshcore.dataplane import DataPlane, DataPlaneOptions, SnapshotRejected

log = logging.getLogger("meshcore.sidecar")

_STOP = {signal.SIGTERM, signal.SIGINT}
_RELOAD = signal.SIGHUP


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--snapshot", type=Path, required=True, metavar="FILE", help="snapshot JSON to serve"
    )
    parser.add_argument(
        "--concurrency", type=int, default=2, help="data-plane worker threads (default 2)"
    )
    parser.add_argument(
        "--admin-port",
        type=int,
        default=15000,
        help="admin API port on 127.0.0.1 (default 15000; -1 disables)",
    )
    parser.add_argument(
        "--drain-seconds",
        type=float,
        default=5.0,
        help="on SIGTERM, how long in-flight connections may take to finish (default 5)",
    )


def run(args: argparse.Namespace) -> int:
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
    dump = dataplane.config_dump()
    listeners = [] if dump is None else dump.listeners
    log.info("applied snapshot %s from %s", version, path)
    for listener in listeners:
        bound = dataplane.local_addr(listener.name)
        where = f"{bound[0]}:{bound[1]}" if bound else f"{listener.address}:{listener.port}"
        log.info("listener %s on %s (%s)", listener.name, where, listener.protocol)
    return True
