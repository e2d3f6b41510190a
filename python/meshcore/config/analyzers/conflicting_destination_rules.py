"""MC0101: DestinationRules for the same host whose settings Istio cannot both apply.

Istio merges the DestinationRules (without workloadSelector) of one namespace for one host
without a message: the first rule's traffic policy wins and a subset name defined again is
dropped. Both silently lose configuration, so meshcore reports them (Istio has no code).
"""

from __future__ import annotations

from collections.abc import Iterator

from meshcore.config.analyzers import hosts
from meshcore.config.analyzers.index import ResourceIndex
from meshcore.config.analyzers.messages import CONFLICTING_DESTINATION_RULES
from meshcore.config.diagnostics import Diagnostic
from meshcore.config.networking import DestinationRule


def _name(dr: DestinationRule) -> str:
    return f"{dr.metadata.namespace}/{dr.metadata.name}"


class ConflictingDestinationRulesAnalyzer:
    """Checks DestinationRules of one host for traffic policies or subsets defined twice."""

    name = "destinationrule.ConflictingDestinationRulesAnalyzer"
    description = "Checks DestinationRules for the same host that Istio merges lossily"
    codes = ("MC0101",)

    def analyze(self, index: ResourceIndex) -> Iterator[Diagnostic]:
        groups: dict[tuple[str, str], list[DestinationRule]] = {}
        for dr in index.of(DestinationRule):
            if dr.spec.workload_selector is not None:
                continue
            namespace = dr.metadata.namespace
            groups.setdefault((namespace, hosts.to_fqdn(namespace, dr.spec.host)), []).append(dr)
        for (_, host), rules in sorted(groups.items()):
            if len(rules) < 2:
                continue
            policy_owner: DestinationRule | None = None
            subset_owner: dict[str, DestinationRule] = {}
            for dr in rules:
                if dr.spec.traffic_policy is not None:
                    if policy_owner is None:
                        policy_owner = dr
                    else:
                        message = (
                            f"DestinationRules {_name(policy_owner)} and {_name(dr)} both set a "
                            f"traffic policy for host {host}; Istio merges them and keeps only "
                            f"the one of {_name(policy_owner)}"
                        )
                        yield index.report(
                            dr, CONFLICTING_DESTINATION_RULES, message, ("spec", "trafficPolicy")
                        )
                for position, subset in enumerate(dr.spec.subsets or []):
                    first = subset_owner.setdefault(subset.name, dr)
                    if first is dr:
                        continue
                    message = (
                        f"subset {subset.name!r} of host {host} is already defined by "
                        f"DestinationRule {_name(first)}; Istio merges the rules and ignores "
                        "this definition"
                    )
                    path = ("spec", "subsets", position, "name")
                    yield index.report(dr, CONFLICTING_DESTINATION_RULES, message, path)
