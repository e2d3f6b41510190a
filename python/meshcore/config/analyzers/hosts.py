"""Istio's host names: short-name resolution, wildcards and namespace scopes.

`reviews` seen from namespace `default` is `reviews.default.svc.cluster.local`; a host with
a dot or a leading `*` is taken as written. `*.example.com` matches `a.example.com` (and
`*.a.example.com`); `*` matches everything.
"""

from __future__ import annotations

import re

DOMAIN = "svc.cluster.local"
ALL_NAMESPACES = "*"
_KUBE_FQDN = re.compile(r"^([^.]+)\.([^.]+)\.svc\.cluster\.local$")


def to_fqdn(namespace: str, host: str) -> str:
    """A short name qualified with `namespace`; wildcards and dotted names as they are."""
    if host.startswith("*") or "." in host:
        return host
    return f"{host}.{namespace}.{DOMAIN}"


def kube_service_name(fqdn: str) -> tuple[str, str] | None:
    """`(namespace, name)` of a `name.namespace.svc.cluster.local` host, else None."""
    found = _KUBE_FQDN.match(fqdn)
    return (found.group(2), found.group(1)) if found else None


def resource_key(namespace: str, host: str) -> str:
    """A host as one comparable key: the FQDN a short name stands for, else the host."""
    return to_fqdn(namespace, host)


def matches(a: str, b: str) -> bool:
    """True if the hosts overlap, either side possibly a wildcard (Istio's `host.Name.Matches`)."""
    if a in (b, "*") or b == "*":
        return True
    if a.startswith("*") and b.startswith("*"):
        return a[1:].endswith(b[1:]) or b[1:].endswith(a[1:])
    if a.startswith("*"):
        return b.endswith(a[1:])
    if b.startswith("*"):
        return a.endswith(b[1:])
    return False


def wildcard_covers(pattern: str, host: str) -> bool:
    """True if wildcard `pattern` (`*.x.com`) covers `host` (`a.x.com` or `*.a.x.com`)."""
    if not pattern.startswith("*"):
        return pattern == host
    return host.removeprefix("*").endswith(pattern[1:])


def export_scopes(export_to: list[str] | None, namespace: str) -> tuple[str, ...]:
    """Namespaces an object is visible in: `*` for everywhere, `.` resolved to its own."""
    if not export_to or "*" in export_to:
        return (ALL_NAMESPACES,)
    return tuple(sorted({namespace if item == "." else item for item in export_to}))


def split_namespaced_host(value: str, namespace: str) -> tuple[str, str]:
    """`ns/host` (Gateway and Sidecar hosts) → `(ns, host)`; `./host` uses `namespace`."""
    if "/" not in value:
        return "*", value
    scope, host = value.split("/", 1)
    return (namespace if scope == "." else scope), host
