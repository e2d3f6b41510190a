"""Cross-object analyzers: what `istioctl analyze` finds beyond one object's schema.

`analyze(result)` builds one `ResourceIndex` over everything `load_paths` read and runs
every analyzer in `ALL_ANALYZERS` on it, returning the loader's own diagnostics (YAML and
schema errors, IST0106), meshcore's unimplemented-field warnings (MC0003) and every
analyzer finding, sorted and deduplicated::

    from meshcore.config import load_paths
    from meshcore.config.analyzers import analyze, format_text

    for diagnostic in analyze(load_paths(["bookinfo/"])):
        print(format_text(diagnostic))

Each analyzer lives in its own module, reports with Istio's code and wording where Istio has
the check (IST0101, IST0109, IST0162, ...) and with meshcore's `MC01xx` codes otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from meshcore.config.analyzers.analyzer import Analyzer
from meshcore.config.analyzers.authz_conditions import AuthorizationConditionAnalyzer
from meshcore.config.analyzers.authz_namespaces import AuthorizationPolicyNamespaceAnalyzer
from meshcore.config.analyzers.conflicting_destination_rules import (
    ConflictingDestinationRulesAnalyzer,
)
from meshcore.config.analyzers.destination_hosts import DestinationHostAnalyzer
from meshcore.config.analyzers.destination_rule_hosts import UnknownDestinationRuleHostAnalyzer
from meshcore.config.analyzers.destination_rule_tls import CaCertificateAnalyzer
from meshcore.config.analyzers.destination_subsets import DestinationSubsetAnalyzer
from meshcore.config.analyzers.gateway_ports import IngressGatewayPortAnalyzer
from meshcore.config.analyzers.index import ResourceIndex
from meshcore.config.analyzers.mesh_gateway_hosts import ConflictingMeshGatewayHostsAnalyzer
from meshcore.config.analyzers.messages import ANALYZER_MESSAGE_TYPES, documentation_url
from meshcore.config.analyzers.service_port_names import PortNameAnalyzer
from meshcore.config.analyzers.sidecar_egress import SidecarEgressNamespaceAnalyzer
from meshcore.config.analyzers.subset_workloads import SubsetSelectPodAnalyzer
from meshcore.config.analyzers.virtualservice_gateways import GatewayAnalyzer
from meshcore.config.analyzers.virtualservice_rules import MatchesAnalyzer
from meshcore.config.base import IstioResource
from meshcore.config.diagnostics import (
    INTERNAL_ERROR,
    MESSAGE_TYPES,
    UNIMPLEMENTED_FIELD,
    Diagnostic,
    Level,
)
from meshcore.config.loader import LoadResult
from meshcore.config.unimplemented import unimplemented_fields

ALL_ANALYZERS: tuple[Analyzer, ...] = (
    DestinationHostAnalyzer(),
    DestinationSubsetAnalyzer(),
    GatewayAnalyzer(),
    ConflictingMeshGatewayHostsAnalyzer(),
    MatchesAnalyzer(),
    IngressGatewayPortAnalyzer(),
    UnknownDestinationRuleHostAnalyzer(),
    SubsetSelectPodAnalyzer(),
    ConflictingDestinationRulesAnalyzer(),
    CaCertificateAnalyzer(),
    SidecarEgressNamespaceAnalyzer(),
    AuthorizationPolicyNamespaceAnalyzer(),
    AuthorizationConditionAnalyzer(),
    PortNameAnalyzer(),
)

_SEVERITY = {Level.ERROR: 0, Level.WARNING: 1, Level.INFO: 2}


def run_analyzers(
    index: ResourceIndex, analyzers: Iterable[Analyzer] = ALL_ANALYZERS
) -> list[Diagnostic]:
    """The findings of `analyzers` over `index`; a crashing analyzer becomes IST0001."""
    found: list[Diagnostic] = []
    for analyzer in analyzers:
        try:
            found.extend(analyzer.analyze(index))
        except Exception as bug:
            message = f"analyzer {analyzer.name} failed: {bug!r}"
            found.append(Diagnostic.of(INTERNAL_ERROR, message))
    return found


def analyze(
    result: LoadResult,
    *,
    strict: bool = False,
    analyzers: Iterable[Analyzer] = ALL_ANALYZERS,
) -> list[Diagnostic]:
    """Everything `meshcore analyze` reports about the loaded objects, sorted.

    `strict` turns the unimplemented-field warnings (MC0003) into errors.
    """
    index = ResourceIndex(result)
    found = list(result.diagnostics)
    for resource in index.resources:
        if isinstance(resource, IstioResource):
            for diagnostic in unimplemented_fields(resource):
                located = index.locate(diagnostic, resource)
                found.append(replace(located, level=Level.ERROR) if strict else located)
    found.extend(run_analyzers(index, analyzers))
    return sort_diagnostics(found)


def sort_diagnostics(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    """Deduplicated, ordered by origin, code, file, line and text (stable across runs)."""
    unique = set(diagnostics)
    return sorted(
        unique,
        key=lambda d: (
            d.origin or "",
            d.code,
            d.file or "",
            d.line or 0,
            d.path or "",
            d.message,
            _SEVERITY[d.level],
        ),
    )


def message_text(diagnostic: Diagnostic) -> str:
    """The text istioctl prints after the origin: `Referenced host not found: "x"`."""
    if diagnostic.code in ANALYZER_MESSAGE_TYPES or diagnostic.code not in MESSAGE_TYPES:
        return diagnostic.message
    title = MESSAGE_TYPES[diagnostic.code].title
    detail = f"{diagnostic.path}: {diagnostic.message}" if diagnostic.path else diagnostic.message
    return f"{title}: {detail}"


def format_text(diagnostic: Diagnostic) -> str:
    """istioctl's line: `Error [IST0101] (VirtualService ns/name file:line) <message>`."""
    where = [part for part in (diagnostic.origin,) if part]
    if diagnostic.file:
        where.append(f"{diagnostic.file}:{diagnostic.line}" if diagnostic.line else diagnostic.file)
    located = f" ({' '.join(where)})" if where else ""
    return f"{diagnostic.level} [{diagnostic.code}]{located} {message_text(diagnostic)}"


def at_or_above(diagnostic: Diagnostic, threshold: Level) -> bool:
    """True if `diagnostic` is as severe as `threshold` or more."""
    return _SEVERITY[diagnostic.level] <= _SEVERITY[threshold]


__all__ = [
    "ALL_ANALYZERS",
    "UNIMPLEMENTED_FIELD",
    "Analyzer",
    "ResourceIndex",
    "analyze",
    "at_or_above",
    "documentation_url",
    "format_text",
    "message_text",
    "run_analyzers",
    "sort_diagnostics",
]
