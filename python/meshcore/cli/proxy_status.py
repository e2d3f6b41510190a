"""``meshcore proxy-status``: each connected sidecar's sync status, like istioctl's.

Reads the control plane's ``/debug/syncz`` (monitoring port, 15014). One snapshot carries
a proxy's clusters, listeners and routes together, so the three columns agree, except
after a NACK: the column of the part the data plane refused (from the NACK's field path)
reads NACKED and the others STALE, since nothing of that snapshot was applied.
"""

from __future__ import annotations

import argparse
import calendar
import json
import sys
import time
import urllib.error
import urllib.request
from typing import Any

_PARTS = {"clusters": "CLUSTERS", "listeners": "LISTENERS", "route_configs": "ROUTES"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("proxy", nargs="?", metavar="NAME.NAMESPACE", help="only this proxy")
    parser.add_argument(
        "--control-plane",
        default="127.0.0.1:15014",
        metavar="HOST:PORT",
        help="the control plane's monitoring address (default 127.0.0.1:15014)",
    )
    parser.add_argument("-o", "--output", choices=["table", "json"], default="table")


def fetch_json(url: str) -> Any:
    """GET a JSON document; raises OSError with a readable message when it cannot."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (http only)
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        detail = error.read().decode(errors="replace").strip()
        raise OSError(f"{url}: HTTP {error.code}: {detail}") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
        raise OSError(f"{url}: {getattr(error, 'reason', error)}") from None


def part_states(proxy: dict[str, Any]) -> dict[str, str]:
    """CLUSTERS / LISTENERS / ROUTES state of one syncz entry."""
    state = proxy["state"]
    if state != "NACKED":
        return dict.fromkeys(_PARTS.values(), state)
    path = (proxy.get("nack") or {}).get("path") or ""
    refused = next((col for key, col in _PARTS.items() if path.startswith(key)), None)
    if refused is None:
        return dict.fromkeys(_PARTS.values(), "NACKED")
    return {col: "NACKED" if col == refused else "STALE" for col in _PARTS.values()}


def _ago(iso: str | None) -> str:
    if not iso:
        return "-"
    then = calendar.timegm(time.strptime(iso[:19], "%Y-%m-%dT%H:%M:%S"))
    seconds = max(0, int(time.time() - then))
    if seconds < 120:
        return f"{seconds}s"
    return f"{seconds // 60}m" if seconds < 7200 else f"{seconds // 3600}h"


def format_table(rows: list[list[str]]) -> str:
    """Columns padded like kubectl's and istioctl's tables (three spaces between)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["   ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(line.rstrip() for line in lines) + "\n"


def run(args: argparse.Namespace) -> int:
    try:
        syncz = fetch_json(f"http://{args.control_plane}/debug/syncz")
    except OSError as error:
        print(f"error: cannot reach the control plane: {error}", file=sys.stderr)
        return 1
    proxies = [p for p in syncz["proxies"] if args.proxy in (None, p["proxy"])]
    if args.proxy is not None and not proxies:
        print(f"error: proxy {args.proxy} is not connected", file=sys.stderr)
        return 1
    if args.output == "json":
        print(json.dumps(proxies, indent=2))
        return 0
    rows = [["NAME", "CLUSTERS", "LISTENERS", "ROUTES", "VERSION", "LAST PUSH", "CONTROL PLANE"]]
    for proxy in proxies:
        states = part_states(proxy)
        rows.append(
            [
                proxy["proxy"],
                states["CLUSTERS"],
                states["LISTENERS"],
                states["ROUTES"],
                proxy["version"] or "-",
                _ago(proxy["last_push"]),
                f"generation {syncz['generation']}",
            ]
        )
    sys.stdout.write(format_table(rows))
    for proxy in proxies:
        nack = proxy.get("nack")
        if proxy["state"] == "NACKED" and nack:
            print(
                f"{proxy['proxy']}: NACK of {nack['version']} at {nack['path']} "
                f"({nack['code']}): {nack['message']}"
            )
        if proxy.get("compile_error"):
            print(f"{proxy['proxy']}: cannot compile: {proxy['compile_error']}")
    rejected = syncz.get("rejected")
    if rejected:
        print(
            f"config edit rejected ({len(rejected['errors'])} errors); "
            f"serving generation {syncz['generation']}; see /debug/analyze"
        )
    return 0
