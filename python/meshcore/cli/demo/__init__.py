"""``meshcore demo``: a bookinfo-like mesh on this machine, no root, no Kubernetes.

One command starts, from ``examples/bookinfo`` (copied to a temp directory that the demo
edits step by step):

- ``meshcore control`` watching that copy;
- the sample app (:mod:`meshcore.cli.samples.bookinfo`): ``productpage``, ``reviews`` v1,
  v2, v3 and ``ratings``, one process each, on the ports the example's Sidecars declare;
- one ``meshcore sidecar --control-plane`` per workload, with free ports for its outbound
  listener (the app's HTTP proxy), admin and status; its inbound listener is the one the
  example's Sidecar declares, so every call passes through both sidecars;
- a traffic generator (asyncio, keep-alive connections) calling productpage through its
  sidecar, a share of the requests as ``end-user: jason``.

Then it walks through ``examples/bookinfo/steps/`` (all to reviews v1, the 90/10 canary,
jason to v2), showing each step's YAML and, once a second, requests/s, success rate and
p50/p99 per service and version. ``--headless --duration S -o json`` runs one step (the
canary unless ``--step``) and prints one JSON report. Every child runs in one process group
of its own, so Ctrl-C reaches only the demo, which then stops them all (SIGTERM, then
SIGKILL after a grace period); they also get SIGTERM if the demo itself is killed. If the
control plane, a sidecar or an app exits, the demo says which, shows its log's tail and
exits 1.

The package, one concept a module: `mesh` (the example read: workloads, ports, steps),
`ports` (free ports, the declared ones checked), `processes` (children in one process
group, dead-child detection, stopping), `probes` (readiness, ``/stats``, sync problems),
`launch` (the `Run` and bringing the mesh up), `traffic` (the generator), `metrics` (what
it saw), `view` (the live view), `report` (the final JSON or text), `session` (one run,
start to exit status).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from meshcore.cli.demo.errors import DemoError
from meshcore.cli.demo.mesh import Mesh, examples_dir
from meshcore.cli.demo.session import run_demo

DEFAULT_STEP_SECONDS = 20.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--examples",
        type=Path,
        default=None,
        metavar="DIR",
        help="the mesh to run (default: the repository's examples/bookinfo)",
    )
    parser.add_argument(
        "--step-seconds",
        type=float,
        default=DEFAULT_STEP_SECONDS,
        metavar="S",
        help=f"how long each step runs (default {DEFAULT_STEP_SECONDS:g})",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=None,
        metavar="S",
        help="stop after this many seconds (default: run until Ctrl-C; headless: 10)",
    )
    parser.add_argument(
        "--headless",
        action="store_true",
        help="no live view: run one step (--step) for --duration, then print a report",
    )
    parser.add_argument(
        "--step", type=int, default=2, help="the step --headless runs (default 2, the canary)"
    )
    parser.add_argument("--rate", type=float, default=100.0, help="requests/s (default 100)")
    parser.add_argument(
        "--connections", type=int, default=8, help="generator connections (default 8)"
    )
    parser.add_argument(
        "--jason-share",
        type=float,
        default=0.2,
        metavar="FRACTION",
        help="share of requests sent with `end-user: jason` (default 0.2)",
    )
    parser.add_argument(
        "-o", "--output", choices=["text", "json"], default="text", help="final report format"
    )
    parser.add_argument(
        "--keep-temp", action="store_true", help="keep the temp directory (config and logs)"
    )


def run(args: argparse.Namespace) -> int:
    if args.headless and args.duration is None:
        args.duration = 10.0
    try:
        mesh = Mesh.load(examples_dir(args.examples))
        return asyncio.run(run_demo(args, mesh))
    except DemoError as error:
        print(f"meshcore demo: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
