"""Hostnames as Istio reads them: short names, wildcards and the domains a virtual host serves.

- A host without dots in config of namespace `ns` means `<host>.<ns>.svc.<domain>`
  (`reviews` → `reviews.default.svc.cluster.local`); anything else is taken as written.
- `*.example.com` matches `a.example.com` and `a.b.example.com`; `*` matches everything.
- A Kubernetes-style service `name.ns.svc.<domain>` is reachable from its own namespace as
  `name`, from everywhere as `name.ns` and the FQDN, each with and without `:port`.
"""

from __future__ import annotations


def fqdn(host: str, namespace: str, domain_suffix: str) -> str:
    """Istio's `ResolveShortnameToFQDN`: only dotless, non-wildcard names are expanded."""
    if "." in host or host.startswith("*"):
        return host
    return f"{host}.{namespace}.svc.{domain_suffix}"


def host_matches(pattern: str, hostname: str) -> bool:
    """Whether a (possibly wildcard) config host covers a concrete hostname."""
    if pattern == "*":
        return True
    if pattern.startswith("*"):
        return hostname.endswith(pattern[1:])
    return pattern == hostname


def specificity(pattern: str) -> tuple[int, int]:
    """Sort key: exact hosts first, then longer wildcard suffixes."""
    return (1, -len(pattern)) if pattern.startswith("*") else (0, 0)


def kube_name(hostname: str, domain_suffix: str) -> tuple[str, str] | None:
    """`(name, namespace)` of a `name.ns.svc.<domain>` hostname, else None."""
    tail = f".svc.{domain_suffix}"
    if not hostname.endswith(tail):
        return None
    parts = hostname[: -len(tail)].split(".")
    if len(parts) != 2 or not all(parts):
        return None
    return parts[0], parts[1]


def virtual_host_domains(
    hostname: str, port: int, proxy_namespace: str, domain_suffix: str
) -> list[str]:
    """The authorities a service port answers to, each bare and with `:port`."""
    names = [hostname]
    kube = kube_name(hostname, domain_suffix)
    if kube is not None:
        name, namespace = kube
        names = [f"{name}.{namespace}", hostname]
        if namespace == proxy_namespace:
            names.insert(0, name)
    domains: list[str] = []
    for name in names:
        domains += [name, f"{name}:{port}"]
    return domains
