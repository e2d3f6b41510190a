"""`meshcore compile`: print the snapshot the control plane would push to one proxy.

Reads config files (Istio resources, Kubernetes Services/Pods, MeshConfig with `--mesh`),
builds the registry, identifies the proxy (`--proxy NAME.NAMESPACE`, labels and service
account from its pod or WorkloadEntry unless given) and prints the compiled snapshot as
JSON. Config errors and compiler warnings go to stderr as diagnostics; errors exit 1.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

from meshcore.compile import (
    Compiled,
    CompileError,
    Compiler,
    ProxyIdentity,
    identify_proxy,
    snapshot_json,
)
from meshcore.config import (
    Diagnostic,
    IstioResource,
    Level,
    MeshConfig,
    MeshConfigError,
    MessageType,
    load_mesh_config,
    load_paths,
    unimplemented_fields,
)
from meshcore.registry import registry_from_resources

INVALID_INPUT = MessageType("MC0201", "InvalidInput", Level.ERROR, "Cannot compile")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, proxy_flag="--proxy")
    parser.add_argument("--full", action="store_true", help="print every field, defaults too")


def add_config_arguments(parser: argparse.ArgumentParser, *, proxy_flag: str) -> None:
    """The flags `compile` and `simulate` share: files, mesh config and the proxy."""
    parser.add_argument(
        "-f",
        "--filename",
        dest="files",
        action="append",
        required=True,
        metavar="PATH",
        help="config file or directory (repeatable)",
    )
    parser.add_argument(
        proxy_flag,
        dest="proxy",
        required=True,
        metavar="NAME.NAMESPACE",
        help="the proxy (its pod or WorkloadEntry, if loaded, supplies labels and ports)",
    )
    parser.add_argument("--labels", default=None, metavar="K=V,...", help="workload labels")
    parser.add_argument("--service-account", default=None, metavar="SA")
    parser.add_argument("--mesh", default=None, metavar="FILE", help="MeshConfig YAML")


@dataclass
class Loaded:
    """Everything a subcommand needs after reading config: compiled output and findings."""

    compiled: Compiled | None
    diagnostics: list[Diagnostic]


def parse_labels(text: str | None) -> dict[str, str] | None:
    """`app=reviews,version=v1` → a dict; None when not given."""
    if text is None:
        return None
    labels = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"label {item!r} is not KEY=VALUE")
        labels[key.strip()] = value.strip()
    return labels


def load_and_compile(args: argparse.Namespace) -> Loaded:
    """Load `-f` files, compile for `--proxy`/`--from`; errors come back as diagnostics."""
    result = load_paths(args.files)
    diagnostics = list(result.diagnostics)
    for resource in result.resources:
        if isinstance(resource, IstioResource):
            diagnostics += unimplemented_fields(resource)
    if result.errors:
        return Loaded(None, diagnostics)
    name, dot, namespace = args.proxy.partition(".")
    if not dot or not name or not namespace:
        return Loaded(None, [*diagnostics, _error(f"proxy {args.proxy!r} is not NAME.NAMESPACE")])
    try:
        labels = parse_labels(args.labels)
        mesh = load_mesh_config(args.mesh) if args.mesh else MeshConfig()
    except MeshConfigError as error:
        return Loaded(None, [*diagnostics, *error.diagnostics])
    except (OSError, ValueError) as error:
        return Loaded(None, [*diagnostics, _error(str(error))])
    registry = registry_from_resources(result.resources)
    proxy: ProxyIdentity = identify_proxy(
        registry, name, namespace, labels=labels, service_account=args.service_account
    )
    try:
        compiled = Compiler(result.resources, registry, mesh=mesh).compile_with_report(proxy)
    except CompileError as error:
        return Loaded(None, [*diagnostics, _error(str(error))])
    return Loaded(compiled, diagnostics + compiled.diagnostics)


def _error(message: str) -> Diagnostic:
    return Diagnostic.of(INVALID_INPUT, message)


def print_diagnostics(diagnostics: list[Diagnostic]) -> None:
    for diagnostic in diagnostics:
        print(diagnostic.format_text(), file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    loaded = load_and_compile(args)
    print_diagnostics(loaded.diagnostics)
    if loaded.compiled is None:
        return 1
    sys.stdout.write(snapshot_json(loaded.compiled.snapshot, full=args.full))
    return 0
