"""`meshcore simulate`: what the mesh does with one request, answered from config alone.

Compiles the source proxy's snapshot (as `meshcore compile` does), then evaluates the
request against it with the data plane's route semantics (`meshcore.compile.simulate`):
the VirtualService and rule that decide, the destinations with their weights, endpoints
and load balancer, timeout and retries, or the redirect, direct response or denial.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from meshcore.cli.compile import add_config_arguments, load_and_compile, print_diagnostics
from meshcore.compile.simulate import Outcome, Request, simulate


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, proxy_flag="--from")
    parser.add_argument("--url", required=True, help="e.g. http://reviews:9080/reviews/0")
    parser.add_argument("-X", "--request", dest="method", default="GET", metavar="METHOD")
    parser.add_argument(
        "-H", "--header", dest="headers", action="append", default=[], metavar="'K: V'"
    )
    parser.add_argument("-o", "--output", choices=["text", "json"], default="text")
    parser.add_argument(
        "--listener", default=None, help="listener the request arrives on (default: outbound)"
    )


def parse_headers(values: list[str]) -> dict[str, str]:
    headers = {}
    for value in values:
        name, sep, content = value.partition(":")
        if not sep or not name.strip():
            raise ValueError(f"header {value!r} is not 'Name: value'")
        headers[name.strip().lower()] = content.strip()
    return headers


def run(args: argparse.Namespace) -> int:
    try:
        headers = parse_headers(args.headers)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    loaded = load_and_compile(args)
    print_diagnostics(loaded.diagnostics)
    if loaded.compiled is None:
        return 1
    request = Request.from_url(args.url, args.method, headers)
    snapshot = loaded.compiled.snapshot
    outcome = (
        simulate(snapshot, request, args.listener) if args.listener else simulate(snapshot, request)
    )
    if args.output == "json":
        print(json.dumps(outcome.to_dict(), indent=2))
    else:
        print(format_outcome(outcome, request, args.proxy))
    return 0


def format_outcome(outcome: Outcome, request: Request, proxy: str) -> str:
    """The human-readable answer."""
    url = f"{request.scheme}://{request.authority}{request.path}"
    lines = [f"{request.method} {url} from {proxy}"]

    def row(label: str, value: Any) -> None:
        lines.append(f"  {label:<14}{value}")

    row("decision", outcome.decision)
    row("listener", outcome.listener)
    if outcome.virtual_host:
        row("virtual host", outcome.virtual_host)
    if outcome.virtual_service is not None:
        row(
            "decided by",
            f"VirtualService {outcome.virtual_service} rule http[{outcome.rule_index}]",
        )
    elif outcome.origin:
        row("decided by", outcome.origin)
    elif outcome.decision == "route":
        row("decided by", "default route (no VirtualService)")
    if outcome.reason:
        row("reason", outcome.reason)
    for i, dest in enumerate(outcome.destinations):
        subset = f" subset {dest.subset}" if dest.subset else ""
        target = "original destination" if dest.passthrough else f"{dest.host}:{dest.port}{subset}"
        row("destination" if i == 0 else "", f"{target}  weight {dest.weight}")
        endpoints = ", ".join(dest.endpoints) or ("(passthrough)" if dest.passthrough else "none")
        row("", f"  cluster {dest.cluster}  lb {dest.lb_policy}  endpoints {endpoints}")
    if outcome.decision == "route":
        row("timeout", f"{outcome.timeout_ms} ms" if outcome.timeout_ms else "none")
        retries = outcome.retries
        if retries:
            per_try = retries.get("per_try_timeout_ms")
            detail = f", {per_try} ms per try" if per_try else ""
            row("retries", f"{retries['attempts']} on {','.join(retries['retry_on'])}{detail}")
        else:
            row("retries", "none")
        if outcome.rewrite:
            row("rewrite", outcome.rewrite)
    if outcome.redirect:
        row("redirect", outcome.redirect)
    if outcome.direct_response:
        row("response", outcome.direct_response)
    return "\n".join(lines)
