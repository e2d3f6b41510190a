"""``meshcore control``: the file-backed control plane (istiod's role).

Watches ``--config-dir`` (Istio and Kubernetes YAML, as ``meshcore analyze`` reads it),
compiles a snapshot per connected sidecar and pushes it when it changes. A broken edit is
logged with its diagnostics and never reaches a proxy. Config port ``--port`` (15010),
monitoring ``--monitoring-port`` (15014): ``/metrics``, ``/debug/syncz``,
``/debug/configz``, ``/debug/analyze``. SIGTERM or SIGINT stops it; the sidecars keep
serving their last snapshot and reconnect when it comes back.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from pathlib import Path

from meshcore.control.plane import ControlOptions, ControlPlane
from meshcore.control.watch import Debounce

log = logging.getLogger("meshcore.control")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config-dir", type=Path, required=True, metavar="DIR")
    parser.add_argument("--mesh", type=Path, default=None, metavar="FILE", help="MeshConfig YAML")
    parser.add_argument("--address", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=15010, help="config port (default 15010)")
    parser.add_argument(
        "--monitoring-port", type=int, default=15014, help="metrics and debug API (default 15014)"
    )
    add_debounce_arguments(parser)
    parser.add_argument(
        "--keepalive-seconds",
        type=float,
        default=15.0,
        help="keepalive interval; a proxy silent for 3 intervals is dropped (default 15)",
    )


def add_debounce_arguments(parser: argparse.ArgumentParser) -> None:
    """istiod's PILOT_DEBOUNCE_AFTER / PILOT_DEBOUNCE_MAX, and how often files are polled."""
    parser.add_argument(
        "--debounce-after",
        type=float,
        default=0.1,
        metavar="SECONDS",
        help="quiet period after the last edit before reloading (default 0.1)",
    )
    parser.add_argument(
        "--debounce-max",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="longest delay after the first edit of a burst (default 10)",
    )
    parser.add_argument(
        "--poll-interval",
        type=float,
        default=0.1,
        metavar="SECONDS",
        help="how often config files are checked for edits (default 0.1)",
    )


def debounce_of(args: argparse.Namespace) -> Debounce:
    return Debounce(args.debounce_after, args.debounce_max, args.poll_interval)


def run(args: argparse.Namespace) -> int:
    if not args.config_dir.is_dir():
        log.error("--config-dir %s is not a directory", args.config_dir)
        return 1
    options = ControlOptions(
        config_dir=args.config_dir,
        mesh_file=args.mesh,
        address=args.address,
        port=args.port,
        monitoring_port=args.monitoring_port,
        debounce=debounce_of(args),
        keepalive=args.keepalive_seconds,
    )
    return asyncio.run(_serve(options))


async def _serve(options: ControlOptions) -> int:
    plane = ControlPlane(options)
    try:
        await plane.start()
    except OSError as error:
        log.error("cannot listen: %s", error)
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    log.info("stopping")
    await plane.stop()
    return 0
