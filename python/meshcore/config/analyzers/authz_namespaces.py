"""IST0101: AuthorizationPolicy sources naming namespaces that do not exist.

`from.source.namespaces` / `notNamespaces` entries (`*`, `prefix*` and `*suffix` allowed)
must match a namespace. Checked only when the analyzed files declare Namespace objects.
"""

from __future__ import annotations

from collections.abc import Iterator

from meshcore.config.analyzers.index import ResourceIndex
from meshcore.config.analyzers.messages import REFERENCED_RESOURCE_NOT_FOUND, referenced_not_found
from meshcore.config.analyzers.namespaces import known_namespaces, namespace_matches
from meshcore.config.diagnostics import Diagnostic
from meshcore.config.security import AuthorizationPolicy


class AuthorizationPolicyNamespaceAnalyzer:
    """Checks the namespaces an AuthorizationPolicy's sources name."""

    name = "auth.AuthorizationPoliciesAnalyzer"
    description = "Checks the validity of authorization policies"
    codes = ("IST0101",)

    def analyze(self, index: ResourceIndex) -> Iterator[Diagnostic]:
        known = known_namespaces(index)
        if known is None:
            return
        for policy in index.of(AuthorizationPolicy):
            for rule_index, rule in enumerate(policy.spec.rules or []):
                for from_index, source_from in enumerate(rule.from_ or []):
                    source = source_from.source
                    if source is None:
                        continue
                    for field, values in (
                        ("namespaces", source.namespaces),
                        ("notNamespaces", source.not_namespaces),
                    ):
                        for position, pattern in enumerate(values or []):
                            if any(namespace_matches(ns, pattern) for ns in known):
                                continue
                            path = (
                                "spec", "rules", rule_index, "from", from_index,
                                "source", field, position,
                            )  # fmt: skip
                            message = referenced_not_found("namespace", pattern)
                            yield index.report(policy, REFERENCED_RESOURCE_NOT_FOUND, message, path)
