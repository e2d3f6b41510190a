"""IST0173: a DestinationRule subset whose labels select no workload of its host.

The workloads of a host are those its Service (or ServiceEntry workloadSelector) selects in
the service's namespace: Pods, Deployment pod templates and WorkloadEntries. A subset must
select at least one of them with its own labels. Skipped for hosts not in the registry, for
ServiceEntries without a workload selector, and for namespaces without any workload in the
analyzed files (nothing to judge).
"""

from __future__ import annotations

from collections.abc import Iterator

from meshcore.config.analyzers.index import ResourceIndex, selects
from meshcore.config.analyzers.messages import DESTINATION_RULE_SUBSET_NOT_SELECT_PODS
from meshcore.config.diagnostics import Diagnostic
from meshcore.config.networking import DestinationRule


class SubsetSelectPodAnalyzer:
    """Checks if pods are selected by subsets in destination rules."""

    name = "destinationrule.SubsetSelectPodAnalyzer"
    description = "Checks if pods are selected by subsets in destination rules"
    codes = ("IST0173",)

    def analyze(self, index: ResourceIndex) -> Iterator[Diagnostic]:
        for dr in index.of(DestinationRule):
            if not dr.spec.subsets:
                continue
            entry = index.lookup_host(dr.spec.host, dr.metadata.namespace, dr.spec.export_to)
            if entry is None or entry.selector is None:
                continue
            workloads = [
                w for w in index.workloads_in(entry.namespace) if selects(entry.selector, w.labels)
            ]
            if not index.workloads_in(entry.namespace):
                continue
            for position, subset in enumerate(dr.spec.subsets):
                if any(selects(subset.labels, w.labels) for w in workloads):
                    continue
                message = (
                    f"The Subset {subset.name} defined in the DestinationRule does not select any "
                    "pods. Which may lead to 503 UH (NoHealthyUpstream)."
                )
                path = ("spec", "subsets", position, "name")
                yield index.report(dr, DESTINATION_RULE_SUBSET_NOT_SELECT_PODS, message, path)
