"""IST0101: Sidecar egress hosts (`namespace/host`) naming a namespace that does not exist.

`*`, `.` (the Sidecar's own namespace) and `~` (none) are always valid. Checked only when
the analyzed files declare Namespace objects.
"""

from __future__ import annotations

from collections.abc import Iterator

from meshcore.config.analyzers.index import ResourceIndex
from meshcore.config.analyzers.messages import REFERENCED_RESOURCE_NOT_FOUND, referenced_not_found
from meshcore.config.analyzers.namespaces import known_namespaces
from meshcore.config.diagnostics import Diagnostic
from meshcore.config.networking import Sidecar

_SPECIAL = ("*", ".", "~")


class SidecarEgressNamespaceAnalyzer:
    """Checks the namespaces of each Sidecar's egress hosts."""

    name = "sidecar.EgressNamespaceAnalyzer"
    description = "Checks that the namespaces of Sidecar egress hosts exist"
    codes = ("IST0101",)

    def analyze(self, index: ResourceIndex) -> Iterator[Diagnostic]:
        known = known_namespaces(index)
        if known is None:
            return
        for sidecar in index.of(Sidecar):
            for listener_index, listener in enumerate(sidecar.spec.egress or []):
                for host_index, value in enumerate(listener.hosts):
                    namespace = value.split("/", 1)[0] if "/" in value else None
                    if namespace is None or namespace in _SPECIAL or namespace in known:
                        continue
                    path = ("spec", "egress", listener_index, "hosts", host_index)
                    message = referenced_not_found("namespace", namespace)
                    yield index.report(sidecar, REFERENCED_RESOURCE_NOT_FOUND, message, path)
