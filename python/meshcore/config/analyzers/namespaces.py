"""Which namespaces exist, for the analyzers that check namespace references.

Local files rarely declare every namespace, so references are checked only when the files
hold at least one Namespace object; then a namespace exists if it is declared or if any
loaded object lives in it.
"""

from __future__ import annotations

from meshcore.config.analyzers.index import ResourceIndex


def known_namespaces(index: ResourceIndex) -> frozenset[str] | None:
    """The namespaces known to exist, or None when the files declare none (do not check)."""
    if not index.namespaces:
        return None
    return index.namespaces | {
        r.metadata.namespace for r in index.resources if r.kind != "Namespace"
    }


def namespace_matches(namespace: str, pattern: str) -> bool:
    """AuthorizationPolicy namespace matching: exact, `*`, `prefix*` or `*suffix`."""
    if pattern == "*":
        return True
    if pattern.startswith("*"):
        return namespace.endswith(pattern[1:])
    if pattern.endswith("*"):
        return namespace.startswith(pattern[:-1])
    return namespace.lower() == pattern.lower()
