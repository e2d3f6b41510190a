"""What an analyzer is: a named check over the whole `ResourceIndex`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from meshcore.config.analyzers.index import FieldPath, ResourceIndex
from meshcore.config.diagnostics import Diagnostic
from meshcore.config.networking import (
    Destination,
    HTTPRoute,
    HTTPRouteDestination,
    TCPRoute,
    TLSRoute,
    VirtualService,
)
from meshcore.config.networking import RouteDestination as L4RouteDestination


class Analyzer(Protocol):
    """A cross-object check. `codes` lists the message codes it can report."""

    @property
    def name(self) -> str:
        """Istio's analyzer name where Istio has the check (`virtualservice.GatewayAnalyzer`)."""
        ...

    @property
    def description(self) -> str:
        """One line on what it checks."""
        ...

    @property
    def codes(self) -> tuple[str, ...]:
        """The message codes it can report."""
        ...

    def analyze(self, index: ResourceIndex) -> Iterable[Diagnostic]:
        """Every finding over `index`."""
        ...


@dataclass(frozen=True)
class RouteDestination:
    """One destination of a VirtualService, with where it sits."""

    destination: Destination
    path: FieldPath
    mirror: bool = False


def route_destinations(vs: VirtualService) -> Iterator[RouteDestination]:
    """The route (and mirror) destinations of a VirtualService's http, tcp and tls rules."""
    spec = vs.spec
    sections: tuple[tuple[str, Sequence[HTTPRoute | TCPRoute | TLSRoute]], ...] = (
        ("http", spec.http or []),
        ("tcp", spec.tcp or []),
        ("tls", spec.tls or []),
    )
    for section, rules in sections:
        for rule_index, rule in enumerate(rules):
            routes: Sequence[HTTPRouteDestination | L4RouteDestination] = rule.route or []
            for route_index, route in enumerate(routes):
                yield RouteDestination(
                    route.destination,
                    ("spec", section, rule_index, "route", route_index, "destination", "host"),
                )
    for rule_index, http in enumerate(spec.http or []):
        if http.mirror is not None:
            yield RouteDestination(
                http.mirror, ("spec", "http", rule_index, "mirror", "host"), mirror=True
            )
        for mirror_index, policy in enumerate(http.mirrors or []):
            path = ("spec", "http", rule_index, "mirrors", mirror_index, "destination", "host")
            yield RouteDestination(policy.destination, path, mirror=True)
