"""`compile`: resources + service registry + proxy identity → that proxy's Snapshot.

Pure and deterministic: the same resources (in any order), registry, proxy and DNS answers
give the same snapshot, byte for byte; `version` is a hash of its content. The steps, in
order (Istio's sidecar config generation, flattened):

    Sidecar scope ─► visible services and VirtualServices (exportTo, egress hosts)
      ─► clusters per service port and DestinationRule subset        (clusters.py)
      ─► virtual hosts per HTTP service port, routes per http[] rule  (routes.py)
      ─► listeners: outbound, inbound, Sidecar egress/ingress         (listeners.py)
      ─► settings from MeshConfig                                     (settings.py)
      ─► version hash ─► validate_snapshot

`Compiler` indexes the config once and compiles any number of proxies from it.
"""

from __future__ import annotations

import gc
import hashlib
import json
import threading
from collections.abc import Hashable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from meshcore.compile.clusters import (
    BLACKHOLE_CLUSTER,
    PASSTHROUGH_CLUSTER,
    ClusterBuilder,
    cluster_name,
    destination_rule_for,
    millis,
    parse_cluster_name,
    special_clusters,
)
from meshcore.compile.hosts import fqdn, host_matches, specificity, virtual_host_domains
from meshcore.compile.index import ConfigIndex
from meshcore.compile.listeners import (
    OUTBOUND_LISTENER,
    OUTBOUND_ROUTE_CONFIG,
    inbound_parts,
    listener_protocol,
)
from meshcore.compile.memo import Memo, Piece
from meshcore.compile.proxy import ProxyIdentity
from meshcore.compile.report import Report
from meshcore.compile.routes import ResolvedDestination, RouteBuilder, mesh_retry_policy
from meshcore.compile.scope import (
    EgressListener,
    SidecarScope,
    export_allows,
    labels_match,
    sidecar_scope,
)
from meshcore.compile.settings import (
    detect_timeout_ms,
    proxy_settings,
    unapplied_fields,
    with_detect_timeout,
)
from meshcore.compile.snapshot import (
    DEFAULT_CONNECT_TIMEOUT_MS,
    Cluster,
    DirectResponse,
    ForwardAction,
    HttpWeightedCluster,
    Listener,
    Origin,
    Route,
    RouteConfig,
    Snapshot,
    SnapshotInvalid,
    TcpRoute,
    VirtualHost,
    WeightedCluster,
    validate_snapshot,
)
from meshcore.config import DestinationRule, Diagnostic, MeshConfig, VirtualService
from meshcore.config.mesh import ORIGIN as MESH_ORIGIN
from meshcore.config.networking import L4MatchAttributes
from meshcore.registry import (
    PortProtocol,
    Resolution,
    Resolver,
    Service,
    ServicePort,
    ServiceRegistry,
    port_protocol,
    system_resolver,
)

DEFAULT_HTTP_PORT = 80
_PENDING = b'{"version":"pending"'
BLOCKED_STATUS = 502
"""Istio answers requests REGISTRY_ONLY refuses with 502 (its `block_all` virtual host)."""


class CompileError(ValueError):
    """The compiled snapshot broke the contract (e.g. a regex the data plane rejects)."""

    def __init__(self, proxy: str, invalid: SnapshotInvalid) -> None:
        self.errors = invalid.errors
        self.invalid = invalid
        super().__init__(f"snapshot for {proxy} is invalid: {invalid}")


@dataclass(frozen=True)
class Compiled:
    """A snapshot and what the compiler had to say about it."""

    snapshot: Snapshot
    diagnostics: list[Diagnostic] = field(default_factory=list)
    wire: bytes | None = None
    """`snapshot.to_json()`, made once while hashing (None: not made yet)."""

    @property
    def payload(self) -> bytes:
        """The wire form, serialised once."""
        return self.wire if self.wire is not None else self.snapshot.to_json()


@dataclass
class _VirtualServices:
    """The VirtualServices one proxy sees, indexed by the hosts they cover."""

    exact: dict[str, VirtualService]
    wildcard: list[tuple[str, VirtualService]]
    hosts: list[tuple[str, VirtualService]]

    def for_host(self, hostname: str) -> VirtualService | None:
        if hostname in self.exact:
            return self.exact[hostname]
        for pattern, vs in self.wildcard:
            if host_matches(pattern, hostname):
                return vs
        return None


@dataclass(frozen=True)
class _View:
    """What proxies of one namespace under one Sidecar see (shared by all of them)."""

    services: list[Service]
    by_host: dict[str, Service]
    virtual_services: _VirtualServices
    main: list[Service]
    """The services the catch-all outbound listener routes to."""


class Compiler:
    """Compiles per-proxy snapshots from one set of resources and one registry.

    Pieces many proxies share (a service's clusters, a VirtualService's routes for a port,
    what a namespace sees) are built once and reused (`meshcore.compile.memo`). Given
    `previous`, the compiler of the config generation before, pieces built from objects
    this generation still has are reused too, so an edit rebuilds only what it touched.
    """

    def __init__(
        self,
        resources: Iterable[object],
        registry: ServiceRegistry,
        *,
        mesh: MeshConfig | None = None,
        resolver: Resolver = system_resolver,
        previous: Compiler | None = None,
    ) -> None:
        self.index = ConfigIndex.build(resources, mesh)
        self.registry = registry
        self.resolver = resolver
        carry = (
            previous is not None
            and previous.resolver is resolver
            and previous.registry.domain_suffix == registry.domain_suffix
            and previous.index.mesh == self.index.mesh
        )
        self.memo: Memo = Memo(previous.memo if carry and previous is not None else None)
        self.default_retries = mesh_retry_policy(self.index.mesh)
        self.settings = proxy_settings(self.index.mesh)
        self.detect_timeout_ms = detect_timeout_ms(self.index.mesh)
        self._views: dict[tuple[str, int], _View] = {}
        self._service_keys: dict[int, tuple[Service, str]] = {}
        self._known_keys = previous._service_keys if carry and previous is not None else {}
        self._sources: dict[int, tuple[tuple[Mapping[str, str], ...], bool]] = {}
        self._domains: dict[tuple[str, int, str, bool], tuple[str, ...]] = {}
        self._selectors: dict[str, tuple[Mapping[str, str], ...]] = {}

    def compile(self, proxy: ProxyIdentity) -> Snapshot:
        """The snapshot for `proxy`; raises CompileError if it breaks the contract."""
        return self.compile_with_report(proxy).snapshot

    def compile_with_report(self, proxy: ProxyIdentity) -> Compiled:
        """The snapshot for `proxy` and the compiler's warnings."""
        with _gc_paused():
            return _ProxyCompilation(self, proxy).run()

    def proxy_key(self, proxy: ProxyIdentity) -> Hashable:
        """Everything about `proxy` its snapshot depends on: equal keys, equal snapshots.

        The namespace; of the labels, only whether each selector that can apply to a proxy
        of that namespace holds (its Sidecars' and DestinationRules' `workloadSelector`,
        every VirtualService's `sourceLabels`); the app ports, which is where the proxy's
        name counts (it finds the workload they come from); the proxy's own sockets. The
        service account is not read (yet); the name only names the proxy.
        """
        labels = proxy.labels
        return (
            proxy.namespace,
            tuple(labels_match(s, labels) for s in self._label_selectors(proxy.namespace)),
            proxy.ports,
            proxy.outbound_address,
            proxy.outbound_port,
            proxy.inbound_address,
            proxy.inbound_port,
        )

    def _label_selectors(self, namespace: str) -> tuple[Mapping[str, str], ...]:
        found = self._selectors.get(namespace)
        if found is None:
            selectors: list[Mapping[str, str]] = []
            for sidecar in self.index.sidecars_by_namespace.get(namespace, ()):
                if sidecar.spec.workload_selector is not None:
                    selectors.append(sidecar.spec.workload_selector.labels or {})
            for rule in self.index.rules_by_namespace.get(namespace, ()):
                if rule.spec.workload_selector is not None:
                    selectors.append(rule.spec.workload_selector.match_labels or {})
            for vs in self.index.virtual_services:
                for http in vs.spec.http or ():
                    selectors += [m.source_labels for m in http.match or () if m.source_labels]
                for tcp in vs.spec.tcp or ():
                    selectors += [m.source_labels for m in tcp.match or () if m.source_labels]
            unique = {tuple(sorted(s.items())): s for s in selectors if s}
            found = self._selectors[namespace] = tuple(unique[k] for k in sorted(unique))
        return found

    def service_key(self, service: Service) -> str:
        """A service's full value as text: equal services, equal keys, across generations."""
        found = self._service_keys.get(id(service))
        if found is None:
            # The registry may hand out the same Service object as the generation before.
            known = self._known_keys.get(id(service))
            key = known[1] if known is not None and known[0] is service else repr(service)
            found = self._service_keys[id(service)] = (service, key)
        return found[1]

    def source_matches(self, vs: VirtualService) -> tuple[tuple[Mapping[str, str], ...], bool]:
        """The `sourceLabels` of `vs`'s HTTP matches, and whether any names a namespace."""
        found = self._sources.get(id(vs))
        if found is None:
            matches = [m for rule in vs.spec.http or () for m in rule.match or ()]
            found = (
                tuple(m.source_labels for m in matches if m.source_labels),
                any(m.source_namespace for m in matches),
            )
            self._sources[id(vs)] = found
        return found

    def domains(self, hostname: str, port: int, namespace: str, bare: bool) -> tuple[str, ...]:
        """The authorities of a virtual host for `hostname:port` seen from `namespace`."""
        key = (hostname, port, namespace, bare)
        found = self._domains.get(key)
        if found is None:
            domains = virtual_host_domains(hostname, port, namespace, self.registry.domain_suffix)
            if not bare:
                domains = [d for d in domains if d.endswith(f":{port}")]
            found = self._domains[key] = tuple(domains)
        return found


class _GcPause:
    """Cyclic GC off while any thread compiles.

    A compile allocates ~10^5 objects that live on, which triggers full collections that
    walk the whole parsed config (a third of the compile time at 1,000 services). The
    compiler makes no cycles worth collecting early; the collector runs after.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth = 0
        self._was_enabled = False

    @contextmanager
    def __call__(self) -> Iterator[None]:
        with self._lock:
            if self._depth == 0:
                self._was_enabled = gc.isenabled()
                gc.disable()
            self._depth += 1
        try:
            yield
        finally:
            with self._lock:
                self._depth -= 1
                if self._depth == 0 and self._was_enabled:
                    gc.enable()


_gc_paused = _GcPause()


def compile(
    resources: Iterable[object],
    registry: ServiceRegistry,
    proxy: ProxyIdentity,
    *,
    mesh: MeshConfig | None = None,
    resolver: Resolver = system_resolver,
) -> Snapshot:
    """Compile one proxy's snapshot (see the module docstring)."""
    return Compiler(resources, registry, mesh=mesh, resolver=resolver).compile(proxy)


class _ProxyCompilation:
    """The state of compiling one proxy; used once."""

    def __init__(self, compiler: Compiler, proxy: ProxyIdentity) -> None:
        self.compiler = compiler
        self.memo = compiler.memo
        self.index = compiler.index
        self.registry = compiler.registry
        self.proxy = proxy
        self.mesh = compiler.index.mesh
        self.suffix = compiler.registry.domain_suffix
        self.report = Report()
        connect = millis(self.mesh.connect_timeout) or DEFAULT_CONNECT_TIMEOUT_MS
        self.clusters = ClusterBuilder(self.index, compiler.resolver, self.report, connect)
        self.scope: SidecarScope = sidecar_scope(self.index, proxy)
        view = self._view()
        self.services = view.services
        self.by_host = view.by_host
        self.virtual_services = view.virtual_services
        self.main_services = view.main
        self._deps: list[tuple[tuple[str, int | None, int], ResolvedDestination | None]] | None
        self._deps = None
        self.routes = RouteBuilder(
            proxy,
            self.mesh,
            self.suffix,
            self._destination,
            self.report,
            default_retries=compiler.default_retries,
        )
        self.out_clusters: dict[str, Cluster] = {c.name: c for c in special_clusters()}
        self.route_configs: list[RouteConfig] = []
        self.listeners: list[Listener] = []

    def run(self) -> Compiled:
        for service in self.services:
            self._service_clusters(service)
        self.listeners.append(self._outbound_listener())
        self.route_configs.append(self._outbound_route_config())
        self._egress_listeners()
        self._inbound()
        self._fill_missing_clusters()
        for path, message in unapplied_fields(self.compiler.index.mesh):
            self.report.warn(MESH_ORIGIN, message, path)
        body = Snapshot(
            version="pending",
            settings=self.compiler.settings,
            listeners=with_detect_timeout(self.listeners, self.compiler.detect_timeout_ms),
            route_configs=self.route_configs,
            clusters=[self.out_clusters[name] for name in sorted(self.out_clusters)],
        )
        pending = body.to_json()
        version = f"sha256:{hashlib.sha256(pending).hexdigest()[:16]}"
        snapshot = body.model_copy(update={"version": version})
        errors = validate_snapshot(snapshot)
        if errors:
            raise CompileError(self.proxy.id, SnapshotInvalid(errors))
        # `version` is the first field, so the wire form is the hashed bytes with it filled
        # in: serialised once, not twice.
        wire = None
        if pending.startswith(_PENDING):
            wire = b'{"version":' + json.dumps(version).encode() + pending[len(_PENDING) :]
        return Compiled(snapshot, self.report.diagnostics, wire)

    # -- visibility -------------------------------------------------------------------------

    def _view(self) -> _View:
        sidecar = self.scope.sidecar
        key = (self.proxy.namespace, 0 if sidecar is None else id(sidecar))
        view = self.compiler._views.get(key)
        if view is None:
            services = self._visible_services()
            main = [s for s in services if self.scope.visible_on_main(s.namespace, (s.hostname,))]
            view = _View(
                services,
                {s.hostname: s for s in services},
                self._visible_virtual_services(),
                main,
            )
            self.compiler._views[key] = view
        return view

    def _visible_services(self) -> list[Service]:
        chosen: dict[str, Service] = {}
        for service in self.registry.visible_services(self.proxy.namespace):
            if not self.scope.visible(service.namespace, (service.hostname,)):
                continue
            current = chosen.get(service.hostname)
            # One service per hostname: the proxy's own namespace wins, then the first.
            if current is None or (
                service.namespace == self.proxy.namespace
                and current.namespace != self.proxy.namespace
            ):
                chosen[service.hostname] = service
        return [chosen[h] for h in sorted(chosen)]

    def _visible_virtual_services(self) -> _VirtualServices:
        exact: dict[str, VirtualService] = {}
        wildcard: list[tuple[str, VirtualService]] = []
        hosts: list[tuple[str, VirtualService]] = []
        for vs in self.index.virtual_services:
            namespace = vs.metadata.namespace
            if vs.spec.gateways and "mesh" not in vs.spec.gateways:
                continue
            if not export_allows(vs.spec.export_to, namespace, self.proxy.namespace):
                continue
            resolved = [fqdn(h, namespace, self.suffix) for h in vs.spec.hosts or ()]
            if not self.scope.visible(namespace, resolved):
                continue
            for host in resolved:
                hosts.append((host, vs))
                if host.startswith("*"):
                    wildcard.append((host, vs))
                else:
                    exact.setdefault(host, vs)
        wildcard.sort(key=lambda item: specificity(item[0]))
        return _VirtualServices(exact, wildcard, hosts)

    # -- clusters ---------------------------------------------------------------------------

    def _service_clusters(self, service: Service) -> None:
        rule = destination_rule_for(self.index, self.proxy, service, self.suffix)
        for cluster in self._port_clusters(service, rule):
            self.out_clusters.setdefault(cluster.name, cluster)

    def _port_clusters(self, service: Service, rule: DestinationRule | None) -> Sequence[Cluster]:
        """The clusters of every port of `service` under `rule`, shared unless DNS answers."""
        if service.resolution is Resolution.DNS:
            return self._build_port_clusters(service, rule)
        key = ("clusters", self.compiler.service_key(service), id(rule))
        piece = self.memo.find(key, (rule,))
        if piece is not None:
            self.report.extend(piece.warnings)
            return piece.value  # type: ignore[no-any-return]
        with self.report.capture() as warnings:
            clusters = self._build_port_clusters(service, rule)
        return self.memo.add(key, Piece(clusters, tuple(warnings), (rule,))).value

    def _build_port_clusters(
        self, service: Service, rule: DestinationRule | None
    ) -> tuple[Cluster, ...]:
        return tuple(
            cluster
            for port in service.ports
            if port.protocol is not PortProtocol.UDP
            for cluster in self.clusters.for_port(service, port, rule)
        )

    def _destination(
        self, host: str, wanted: int | None, vhost_port: int
    ) -> ResolvedDestination | None:
        answer = self._resolve_destination(host, wanted, vhost_port)
        if self._deps is not None:
            self._deps.append(((host, wanted, vhost_port), answer))
        return answer

    def _deps_hold(self, piece: Piece[object]) -> bool:
        return all(self._resolve_destination(*asked) == answer for asked, answer in piece.deps)

    def _resolve_destination(
        self, host: str, wanted: int | None, vhost_port: int
    ) -> ResolvedDestination | None:
        service = self.by_host.get(host)
        if wanted is not None:
            return ResolvedDestination(host, wanted)
        if service is None:
            return ResolvedDestination(host, vhost_port)
        usable = [p for p in service.ports if p.protocol is not PortProtocol.UDP]
        if len(usable) == 1:
            return ResolvedDestination(host, usable[0].number)
        if service.port(vhost_port) is not None:
            return ResolvedDestination(host, vhost_port)
        return None

    def _fill_missing_clusters(self) -> None:
        """Routes to hosts, ports or subsets nobody defined get empty clusters (503, as Istio)."""
        referenced: list[str] = []
        for config in self.route_configs:
            for vhost in config.virtual_hosts:
                for route in vhost.routes:
                    if route.route is not None:
                        referenced += [c.name for c in route.route.clusters]
        for listener in self.listeners:
            if listener.tcp_route is not None:
                referenced += [c.name for c in listener.tcp_route.clusters]
        for name in referenced:
            if name in self.out_clusters:
                continue
            parts = parse_cluster_name(name)
            what = name
            if parts is not None:
                _, port, subset, host = parts
                service = self.by_host.get(host)
                if service is None:
                    what = f"host {host} is not in the registry (or not visible to this proxy)"
                elif service.port(port) is None:
                    what = f"service {host} has no port {port}"
                else:
                    what = f"subset {subset!r} of {host} is not defined by a DestinationRule"
            self.report.warn(None, f"{what}; requests routed to {name} will fail with 503")
            self.out_clusters[name] = Cluster(name=name)

    # -- HTTP routes ------------------------------------------------------------------------

    def _http_ports(self, service: Service) -> list[ServicePort]:
        return [p for p in service.ports if p.protocol.is_http or p.protocol.is_sniffed]

    def _virtual_host(
        self, service_host: str, port: int, domains: Sequence[str], vs: VirtualService | None
    ) -> VirtualHost:
        routes = self._default_routes(service_host, port) if vs is None else self._routes(vs, port)
        return VirtualHost(name=f"{service_host}:{port}", domains=list(domains), routes=routes)

    def _default_routes(self, host: str, port: int) -> list[Route]:
        key = ("default-route", host, port)
        piece = self.memo.find(key)
        if piece is None:
            piece = self.memo.add(key, Piece([self.routes.default_route(host, port)]))
        return piece.value  # type: ignore[no-any-return]

    def _routes(self, vs: VirtualService, port: int) -> list[Route]:
        """`vs`'s routes for `port`, shared by proxies that its source matches treat alike
        and whose view resolves its destinations alike."""
        selectors, by_namespace = self.compiler.source_matches(vs)
        labels = self.proxy.labels
        key = (
            "routes",
            id(vs),
            port,
            self.proxy.namespace if by_namespace else None,
            tuple(labels_match(selector, labels) for selector in selectors),
        )
        piece = self.memo.find(key, (vs,), self._deps_hold)
        if piece is not None:
            self.report.extend(piece.warnings)
            return piece.value  # type: ignore[no-any-return]
        deps: list[tuple[tuple[str, int | None, int], ResolvedDestination | None]] = []
        self._deps = deps
        try:
            with self.report.capture() as warnings:
                routes = self.routes.routes(vs, port)
        finally:
            self._deps = None
        return self.memo.add(key, Piece(routes, tuple(warnings), (vs,), tuple(deps))).value

    def _service_virtual_hosts(
        self, services: Sequence[Service], only_port: int | None = None
    ) -> list[VirtualHost]:
        vhosts = []
        for service in services:
            ports = self._http_ports(service)
            if only_port is not None:
                ports = [p for p in ports if p.number == only_port]
            if not ports:
                continue
            numbers = [p.number for p in ports]
            bare = DEFAULT_HTTP_PORT if DEFAULT_HTTP_PORT in numbers else min(numbers)
            vs = self.virtual_services.for_host(service.hostname)
            for port in ports:
                domains = self.compiler.domains(
                    service.hostname, port.number, self.proxy.namespace, port.number == bare
                )
                vhosts.append(self._virtual_host(service.hostname, port.number, domains, vs))
        return vhosts

    def _outbound_route_config(self) -> RouteConfig:
        vhosts = self._service_virtual_hosts(self.main_services)
        # VirtualService hosts with no service behind them are served on port 80 (Istio).
        for host, vs in self.virtual_services.hosts:
            if host.startswith("*") or host in self.by_host:
                continue
            if self.virtual_services.for_host(host) is not vs:
                continue
            domains = [host, f"{host}:{DEFAULT_HTTP_PORT}"]
            vhosts.append(self._virtual_host(host, DEFAULT_HTTP_PORT, domains, vs))
        vhosts.append(self._catch_all())
        return RouteConfig(name=OUTBOUND_ROUTE_CONFIG, virtual_hosts=_dedupe_domains(vhosts))

    def _catch_all(self) -> VirtualHost:
        if self.scope.outbound_mode == "REGISTRY_ONLY":
            sidecar = self.scope.sidecar
            policy = sidecar.spec.outbound_traffic_policy if sidecar else None
            origin = (
                Origin(
                    kind="Sidecar",
                    namespace=sidecar.metadata.namespace,
                    name=sidecar.metadata.name,
                    rule="outboundTrafficPolicy",
                )
                if sidecar is not None and policy is not None and policy.mode
                else Origin(
                    kind="MeshConfig",
                    namespace=self.mesh.root_namespace,
                    name="mesh",
                    rule="outboundTrafficPolicy",
                )
            )
            route = Route(
                origin=origin,
                direct_response=DirectResponse(
                    status=BLOCKED_STATUS,
                    body="host is not in the service registry (REGISTRY_ONLY)\n",
                ),
            )
            return VirtualHost(name="block_all", domains=["*"], routes=[route])
        route = Route(route=ForwardAction(clusters=[HttpWeightedCluster(name=PASSTHROUGH_CLUSTER)]))
        return VirtualHost(name="allow_any", domains=["*"], routes=[route])

    # -- listeners --------------------------------------------------------------------------

    def _fallback_cluster(self) -> str:
        return (
            BLACKHOLE_CLUSTER
            if self.scope.outbound_mode == "REGISTRY_ONLY"
            else PASSTHROUGH_CLUSTER
        )

    def _outbound_listener(self) -> Listener:
        return Listener(
            name=OUTBOUND_LISTENER,
            address=self.proxy.outbound_address,
            port=self.proxy.outbound_port,
            protocol="auto",
            direction="outbound",
            http_proxy=True,
            route_config=OUTBOUND_ROUTE_CONFIG,
            tcp_route=TcpRoute(clusters=[WeightedCluster(name=self._fallback_cluster())]),
            opaque_ports=self._opaque_ports(),
        )

    def _opaque_ports(self) -> list[int]:
        """Ports the visible services declare opaque TCP (`tcp`, `mysql`, `mongo`, `tls`,
        ...): captured connections to them are not detected, so a server-first protocol
        (MySQL, SMTP) is not kept waiting for bytes it never sends. A port that some service
        declares HTTP or leaves undeclared stays detected."""
        opaque: set[int] = set()
        detected: set[int] = set()
        for service in self.services:
            for port in service.ports:
                if port.protocol is PortProtocol.UDP:
                    continue
                (opaque if port.protocol.is_tcp else detected).add(port.number)
        return sorted(opaque - detected)

    def _egress_listeners(self) -> None:
        for egress in self.scope.egress:
            spec = egress.spec
            if spec.capture_mode != "NONE" or spec.port is None or not spec.port.number:
                continue
            bind = spec.bind or "127.0.0.1"
            origin = self.scope.sidecar.origin if self.scope.sidecar else None
            if bind.startswith("unix://"):
                self.report.warn(
                    origin,
                    "Unix domain socket listeners are not supported yet",
                    f"spec.egress[{egress.index}].bind",
                )
                continue
            self._egress_listener(egress, bind, spec.port.number)

    def _egress_listener(self, egress: EgressListener, bind: str, number: int) -> None:
        spec = egress.spec
        assert spec.port is not None
        services = [
            s
            for s in self.services
            if s.port(number) is not None and egress.hosts.allows(s.namespace, (s.hostname,))
        ]
        protocol = port_protocol(name=spec.port.name, explicit=spec.port.protocol)
        if protocol.is_sniffed and services:
            found = {s.port(number).protocol for s in services}  # type: ignore[union-attr]
            if all(p.is_http for p in found):
                protocol = PortProtocol.HTTP
            elif all(p.is_tcp for p in found):
                protocol = PortProtocol.TCP
        kind = listener_protocol(protocol)
        name = f"{bind}_{number}"
        route_config = None
        if kind != "tcp":
            vhosts = _dedupe_domains(self._service_virtual_hosts(services, only_port=number))
            if len(vhosts) == 1:
                # One service behind a local port: any Host header reaches it.
                only = vhosts[0]
                vhosts = [only.model_copy(update={"domains": [*only.domains, "*"]})]
            self.route_configs.append(RouteConfig(name=name, virtual_hosts=vhosts))
            route_config = name
        tcp_route = None
        if kind != "http":
            tcp_route = (
                self._tcp_route(services[0], number)
                if services
                else TcpRoute(clusters=[WeightedCluster(name=BLACKHOLE_CLUSTER)])
            )
            if len(services) > 1:
                self.report.warn(
                    self.scope.sidecar.origin if self.scope.sidecar else None,
                    f"several services on TCP port {number}; connections go to "
                    f"{services[0].hostname}",
                    f"spec.egress[{egress.index}]",
                )
        self.listeners.append(
            Listener(
                name=name,
                address=bind,
                port=number,
                protocol=kind,
                direction="outbound",
                route_config=route_config,
                tcp_route=tcp_route,
                origin=self._sidecar_origin(f"egress[{egress.index}]"),
            )
        )

    def _sidecar_origin(self, rule: str) -> Origin | None:
        """The Sidecar entry a listener was built from, for `proxy-config listeners`."""
        sidecar = self.scope.sidecar
        if sidecar is None:
            return None
        return Origin(
            kind="Sidecar",
            namespace=sidecar.metadata.namespace,
            name=sidecar.metadata.name,
            rule=rule,
        )

    def _tcp_route(self, service: Service, port: int) -> TcpRoute:
        """VirtualService `tcp[]`: the first rule whose match holds for this proxy and port."""
        vs = self.virtual_services.for_host(service.hostname)
        for rule in (vs.spec.tcp or ()) if vs else ():
            if rule.match and not any(self._l4_applies(m, port) for m in rule.match):
                continue
            assert vs is not None
            destinations = rule.route or []
            explicit = any(d.weight is not None for d in destinations)
            clusters = []
            for dest in destinations:
                weight = 100 if len(destinations) == 1 else (dest.weight or 0) if explicit else 1
                host = fqdn(dest.destination.host, vs.metadata.namespace, self.suffix)
                wanted = dest.destination.port.number if dest.destination.port else None
                target = self._destination(host, wanted, port)
                if weight > 0 and target is not None:
                    clusters.append(
                        WeightedCluster(
                            name=cluster_name(
                                "outbound", target.port, dest.destination.subset or "", target.host
                            ),
                            weight=weight,
                        )
                    )
            if clusters:
                return TcpRoute(clusters=clusters)
        return TcpRoute(
            clusters=[WeightedCluster(name=cluster_name("outbound", port, "", service.hostname))]
        )

    def _l4_applies(self, match: L4MatchAttributes, port: int) -> bool:
        if match.port is not None and match.port != port:
            return False
        if match.source_labels and not labels_match(match.source_labels, self.proxy.labels):
            return False
        if match.source_namespace and match.source_namespace != self.proxy.namespace:
            return False
        return not (match.gateways and "mesh" not in match.gateways)

    def _inbound(self) -> None:
        origin = self.scope.sidecar.origin if self.scope.sidecar else None
        captured: list[tuple[int, PortProtocol, tuple[str, int]]] = []
        if self.scope.ingress:
            for i, ingress in enumerate(self.scope.ingress):
                number = ingress.port.number or 0
                protocol = port_protocol(name=ingress.port.name, explicit=ingress.port.protocol)
                endpoint = _endpoint(ingress.default_endpoint, number)
                if endpoint is None or not number:
                    self.report.warn(
                        origin,
                        "defaultEndpoint must be IP:port or 0.0.0.0:port "
                        "(Unix sockets are not supported yet); listener skipped",
                        f"spec.ingress[{i}].defaultEndpoint",
                    )
                    continue
                if ingress.capture_mode == "NONE":
                    bind = ingress.bind or "0.0.0.0"  # noqa: S104 - reachable from the mesh
                    self._add_inbound(
                        f"inbound|{number}",
                        (bind, number),
                        protocol,
                        endpoint,
                        origin=self._sidecar_origin(f"ingress[{i}]"),
                    )
                else:
                    captured.append((number, protocol, endpoint))
        else:
            captured = [(p.number, p.protocol, ("127.0.0.1", p.number)) for p in self.proxy.ports]
        if not captured:
            return
        number, protocol, endpoint = captured[0]
        socket = (self.proxy.inbound_address, self.proxy.inbound_port)
        self._add_inbound(f"inbound-{number}", socket, protocol, endpoint, app_port=number)
        for other, _, _ in captured[1:]:
            self.report.warn(
                origin,
                f"inbound port {other} is not served: the inbound listener "
                f"carries one app port ({number}) until the data plane matches by "
                "original destination; use a Sidecar ingress listener with "
                "captureMode NONE",
            )

    def _add_inbound(
        self,
        name: str,
        socket: tuple[str, int],
        protocol: PortProtocol,
        endpoint: tuple[str, int],
        *,
        app_port: int | None = None,
        origin: Origin | None = None,
    ) -> None:
        listener, route_config, cluster = inbound_parts(
            name=name,
            address=socket[0],
            port=socket[1],
            app_port=app_port or socket[1],
            protocol=protocol,
            endpoint=endpoint,
            origin=origin,
        )
        self.listeners.append(listener)
        if route_config is not None:
            self.route_configs.append(route_config)
        self.out_clusters[cluster.name] = cluster


def _endpoint(default_endpoint: str | None, port: int) -> tuple[str, int] | None:
    """`127.0.0.1:8080` or `0.0.0.0:8080` (the workload's own address: loopback here)."""
    if not default_endpoint:
        return ("127.0.0.1", port)
    host, sep, number = default_endpoint.rpartition(":")
    if not sep or not number.isdigit() or default_endpoint.startswith("unix://"):
        return None
    host = host.strip("[]")
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 - Istio's spelling of the instance's own IP
        host = "127.0.0.1"
    return (host, int(number))


def _dedupe_domains(vhosts: list[VirtualHost]) -> list[VirtualHost]:
    """A domain belongs to the first virtual host that claims it; empty hosts are dropped."""
    seen: set[str] = set()
    kept = []
    for vhost in vhosts:
        domains = [d for d in dict.fromkeys(vhost.domains) if d not in seen]
        seen.update(domains)
        if domains:
            kept.append(
                vhost if domains == vhost.domains else vhost.model_copy(update={"domains": domains})
            )
    return kept


def snapshot_json(snapshot: Snapshot, *, full: bool = False) -> str:
    """Indented JSON of a snapshot: fields at their default left out unless `full`.

    Both forms parse to the same snapshot; the short one is what people read (and goldens
    hold), the full one is the wire form spelled out.
    """
    data = snapshot.model_dump(mode="json", exclude_defaults=not full)
    data["version"] = snapshot.version
    return json.dumps(data, indent=2) + "\n"
