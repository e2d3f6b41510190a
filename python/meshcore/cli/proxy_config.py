"""``meshcore proxy-config listeners|routes|clusters|endpoints|all PROXY``: one sidecar's
config, in istioctl's tables.

The config comes from the sidecar's own admin API (``/config_dump`` on 127.0.0.1,
``--admin-port``; what the data plane serves now), or with ``--control-plane HOST:PORT``
from the control plane's ``/debug/configz?proxy=PROXY`` (what it would push). Each row
names the config object it came from where the snapshot records one (the ``origin`` of
routes and clusters: a VirtualService and its rule, a DestinationRule). ``-o json``
prints the selected part as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from meshcore.cli.proxy_status import fetch_json, format_table

_PARTS = ("listeners", "routes", "clusters", "endpoints", "all")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("part", choices=_PARTS, help="what to show")
    parser.add_argument("proxy", metavar="NAME.NAMESPACE", help="the proxy")
    parser.add_argument(
        "--admin-port",
        type=int,
        default=15000,
        help="the sidecar's admin port on 127.0.0.1 (default 15000)",
    )
    parser.add_argument(
        "--control-plane",
        default=None,
        metavar="HOST:PORT",
        help="read from the control plane's monitoring port instead of the sidecar",
    )
    parser.add_argument("-o", "--output", choices=["table", "json"], default="table")


def origin_text(origin: dict[str, Any] | None) -> str:
    """`VirtualService default/reviews http[1]` → `reviews.default http[1]` (istioctl's form)."""
    if not origin:
        return "-"
    text = f"{origin['kind']} {origin['name']}.{origin['namespace']}"
    return f"{text} {origin['rule']}" if origin.get("rule") else text


def _string_match(match: dict[str, Any] | None) -> str | None:
    if not match:
        return None
    for kind, prefix in (("exact", ""), ("prefix", ""), ("regex", "~")):
        if match.get(kind) is not None:
            suffix = "*" if kind == "prefix" else ""
            return f"{prefix}{match[kind]}{suffix}"
    return None


def match_text(matches: list[dict[str, Any]]) -> str:
    """Route matches in one cell: `/reviews*, GET`; `/*` for match-all."""
    if not matches:
        return "/*"
    cells = []
    for match in matches:
        parts = [_string_match(match.get("uri")) or "/*"]
        method = _string_match(match.get("method"))
        if method:
            parts.append(method)
        parts += [
            f"{h['name']}:{_string_match(h.get('value')) or '*'}" for h in match.get("headers", [])
        ]
        if match.get("port") is not None:
            parts.append(f"port {match['port']}")
        cells.append(" ".join(parts))
    return ", ".join(cells)


def listeners_table(snapshot: dict[str, Any]) -> list[list[str]]:
    rows = [["NAME", "ADDRESS", "PORT", "PROTOCOL", "DIRECTION", "DESTINATION", "FROM"]]
    for listener in snapshot["listeners"]:
        if listener.get("route_config"):
            destination = f"Route: {listener['route_config']}"
        elif listener.get("tcp_route"):
            names = [c["name"] for c in listener["tcp_route"]["clusters"]]
            destination = "Cluster: " + ", ".join(names)
        else:
            destination = "-"
        protocol = listener["protocol"].upper() + (
            " (http proxy)" if listener.get("http_proxy") else ""
        )
        rows.append(
            [
                listener["name"],
                listener["address"],
                str(listener["port"]),
                protocol,
                listener.get("direction", "outbound").upper(),
                destination,
                origin_text(listener.get("origin")),
            ]
        )
    return rows


def routes_table(snapshot: dict[str, Any]) -> list[list[str]]:
    rows = [["NAME", "VHOST NAME", "DOMAINS", "MATCH", "ACTION", "VIRTUAL SERVICE"]]
    for config in snapshot.get("route_configs", []):
        for vhost in config["virtual_hosts"]:
            domains = vhost["domains"]
            more = f" + {len(domains) - 2} more" if len(domains) > 2 else ""
            shown = ", ".join(domains[:2]) + more
            for route in vhost.get("routes", []):
                rows.append(
                    [
                        config["name"],
                        vhost["name"],
                        shown,
                        match_text(route.get("matches", [])),
                        _action(route),
                        origin_text(route.get("origin")),
                    ]
                )
    return rows


def _action(route: dict[str, Any]) -> str:
    if route.get("route"):
        clusters = route["route"]["clusters"]
        if len(clusters) == 1:
            return str(clusters[0]["name"])
        return ", ".join(f"{c['name']} ({c['weight']})" for c in clusters)
    if route.get("redirect"):
        return f"redirect {route['redirect']['response_code']}"
    if route.get("direct_response"):
        return f"direct {route['direct_response']['status']}"
    return "-"


def clusters_table(snapshot: dict[str, Any]) -> list[list[str]]:
    rows = [["SERVICE FQDN", "PORT", "SUBSET", "DIRECTION", "TYPE", "DESTINATION RULE"]]
    for cluster in snapshot["clusters"]:
        parts = cluster["name"].split("|")
        if len(parts) == 4:
            direction, port, subset, host = parts
        else:
            direction, port, subset, host = "", "-", "", cluster["name"]
        origin = cluster.get("origin")
        rule = origin_text(origin) if origin and origin["kind"] == "DestinationRule" else "-"
        rows.append(
            [
                host,
                port or "-",
                subset or "-",
                direction.upper() or "-",
                cluster.get("kind", "static").upper(),
                rule,
            ]
        )
    return rows


def endpoints_table(snapshot: dict[str, Any]) -> list[list[str]]:
    rows = [["ENDPOINT", "WEIGHT", "CLUSTER", "SERVICE"]]
    for cluster in snapshot["clusters"]:
        origin = cluster.get("origin")
        service = origin_text(origin) if origin and origin["kind"] != "DestinationRule" else "-"
        for endpoint in cluster["endpoints"]:
            rows.append(
                [
                    f"{endpoint['address']}:{endpoint['port']}",
                    str(endpoint.get("weight", 1)),
                    cluster["name"],
                    service,
                ]
            )
    return rows


_TABLES = {
    "listeners": listeners_table,
    "routes": routes_table,
    "clusters": clusters_table,
    "endpoints": endpoints_table,
}


def _json_part(snapshot: dict[str, Any], part: str) -> Any:
    if part == "all":
        return snapshot
    if part == "routes":
        return snapshot.get("route_configs", [])
    if part == "endpoints":
        return [{"cluster": c["name"], "endpoints": c["endpoints"]} for c in snapshot["clusters"]]
    return snapshot[part]


def fetch_snapshot(args: argparse.Namespace) -> dict[str, Any]:
    """The proxy's snapshot, with every field present (both sources send the wire form)."""
    if args.control_plane:
        url = f"http://{args.control_plane}/debug/configz?proxy={args.proxy}"
    else:
        url = f"http://127.0.0.1:{args.admin_port}/config_dump"
    snapshot: dict[str, Any] = fetch_json(url)
    if snapshot is None:
        raise OSError(f"{url}: the proxy has no snapshot yet")
    return snapshot


def run(args: argparse.Namespace) -> int:
    try:
        snapshot = fetch_snapshot(args)
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if args.output == "json":
        print(json.dumps(_json_part(snapshot, args.part), indent=2))
        return 0
    parts = list(_TABLES) if args.part == "all" else [args.part]
    for i, part in enumerate(parts):
        if i:
            print()
        sys.stdout.write(format_table(_TABLES[part](snapshot)))
    return 0
