"""What one proxy may see: the `Sidecar` that applies to it and `exportTo` visibility.

The Sidecar for a proxy is, in Istio's order: one in the proxy's namespace whose
`workloadSelector` matches the proxy's labels; else the one in its namespace without a
selector; else the root namespace's one without a selector; else none (everything visible).
`egress[].hosts` entries are `namespace/dnsName`, with `*` (any namespace), `.` (the
proxy's namespace, also for a root-namespace Sidecar) and `~` (none); a service or
VirtualService is visible through an entry when its namespace and one of its hosts match.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from meshcore.compile.hosts import host_matches
from meshcore.compile.index import ConfigIndex
from meshcore.compile.proxy import ProxyIdentity
from meshcore.config import Sidecar
from meshcore.config.networking import IstioEgressListener, IstioIngressListener


def labels_match(selector: Mapping[str, str] | None, labels: Mapping[str, str]) -> bool:
    """All of the selector's labels are on the workload (an empty selector matches all)."""
    return all(labels.get(k) == v for k, v in (selector or {}).items())


def export_allows(export_to: Iterable[str] | None, owner: str, namespace: str) -> bool:
    """Whether config of namespace `owner` with this `exportTo` is visible from `namespace`."""
    values = list(export_to or ())
    if not values:
        return True
    return any(v in ("*", namespace) or (v == "." and owner == namespace) for v in values)


@dataclass(frozen=True)
class HostFilter:
    """`egress[].hosts` of one egress listener, as (namespace, dnsName) pairs."""

    entries: tuple[tuple[str, str], ...]

    @classmethod
    def parse(cls, hosts: Iterable[str], proxy_namespace: str) -> HostFilter:
        entries = []
        for host in hosts:
            namespace, _, name = host.partition("/") if "/" in host else ("*", "", host)
            if namespace == ".":
                namespace = proxy_namespace
            entries.append((namespace, name))
        return cls(tuple(entries))

    def allows(self, namespace: str, hostnames: Iterable[str]) -> bool:
        """Whether an object of `namespace` with any of `hostnames` passes."""
        names = list(hostnames)
        for entry_ns, entry_host in self.entries:
            if entry_ns == "~" or (entry_ns not in ("*", namespace)):
                continue
            if any(host_matches(entry_host, h) or host_matches(h, entry_host) for h in names):
                return True
        return False


@dataclass(frozen=True)
class EgressListener:
    """One `egress[]` entry of the applied Sidecar, with its index for diagnostics."""

    index: int
    spec: IstioEgressListener
    hosts: HostFilter


@dataclass(frozen=True)
class SidecarScope:
    """The Sidecar applied to a proxy, reduced to what the compiler asks of it."""

    sidecar: Sidecar | None
    egress: tuple[EgressListener, ...]
    main: HostFilter | None
    """What the catch-all outbound listener sees; None means everything."""
    ingress: tuple[IstioIngressListener, ...]
    outbound_mode: str

    def visible(self, namespace: str, hostnames: Iterable[str]) -> bool:
        """Visible through any egress listener (or everything without a Sidecar)."""
        if self.sidecar is None or not self.egress:
            return True
        names = list(hostnames)
        return any(e.hosts.allows(namespace, names) for e in self.egress)

    def visible_on_main(self, namespace: str, hostnames: Iterable[str]) -> bool:
        """Visible through the catch-all outbound listener."""
        return self.main is None or self.main.allows(namespace, hostnames)


def sidecar_for(index: ConfigIndex, proxy: ProxyIdentity) -> Sidecar | None:
    """The Sidecar that applies to `proxy`, in Istio's order."""
    local = index.sidecars_by_namespace.get(proxy.namespace, ())
    for sidecar in local:
        selector = sidecar.spec.workload_selector
        if selector is not None and selector.labels and labels_match(selector.labels, proxy.labels):
            return sidecar
    for sidecar in local:
        if sidecar.spec.workload_selector is None or not sidecar.spec.workload_selector.labels:
            return sidecar
    for sidecar in index.sidecars_by_namespace.get(index.mesh.root_namespace, ()):
        if sidecar.spec.workload_selector is None or not sidecar.spec.workload_selector.labels:
            return sidecar
    return None


def sidecar_scope(index: ConfigIndex, proxy: ProxyIdentity) -> SidecarScope:
    """The scope of `proxy`: its Sidecar's listeners, visibility and outbound policy."""
    sidecar = sidecar_for(index, proxy)
    mode = index.mesh.outbound_traffic_policy.mode
    if sidecar is None:
        return SidecarScope(None, (), None, (), mode)
    spec = sidecar.spec
    if spec.outbound_traffic_policy is not None and spec.outbound_traffic_policy.mode:
        mode = spec.outbound_traffic_policy.mode
    egress = tuple(
        EgressListener(i, e, HostFilter.parse(e.hosts, proxy.namespace))
        for i, e in enumerate(spec.egress or ())
    )
    catch_all = [e for e in egress if e.spec.port is None or not e.spec.port.number]
    main: HostFilter | None = None
    if egress:
        chosen = catch_all or list(egress)
        main = HostFilter(tuple(entry for e in chosen for entry in e.hosts.entries))
    return SidecarScope(sidecar, egress, main, tuple(spec.ingress or ()), mode)
