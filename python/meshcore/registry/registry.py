"""The `ServiceRegistry` interface and its in-memory, immutable implementation.

The compiler asks a registry for services by hostname, for the services visible from a
namespace, and for workloads by name or by the services that select them. `MemoryRegistry`
answers from indexes built once; file loading (`meshcore.registry.files`) builds one today,
and Kubernetes informers will build the same thing from the API server later.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import groupby
from typing import Protocol, TypeVar

from meshcore.registry.model import Service, Workload

T = TypeVar("T")

DEFAULT_DOMAIN_SUFFIX = "cluster.local"
"""Kubernetes' cluster domain: `reviews` in `default` is `reviews.default.svc.cluster.local`."""


class ServiceRegistry(Protocol):
    """What the compiler needs to know about services and workloads."""

    @property
    def domain_suffix(self) -> str:
        """The cluster domain used to expand short hostnames."""
        ...

    def services(self) -> Sequence[Service]:
        """Every service, ordered by hostname then namespace."""
        ...

    def services_for_host(self, hostname: str) -> Sequence[Service]:
        """Services with exactly this hostname (one per namespace that defines it)."""
        ...

    def visible_services(self, namespace: str) -> Sequence[Service]:
        """Services a proxy in `namespace` may reach (`exportTo`), ordered as `services()`."""
        ...

    def workloads(self) -> Sequence[Workload]:
        """Every pod and WorkloadEntry, ordered by namespace then name."""
        ...

    def workload(self, namespace: str, name: str) -> Workload | None:
        """The pod or WorkloadEntry of this name (a pod wins over a WorkloadEntry)."""
        ...

    def services_of(self, workload: Workload) -> Sequence[Service]:
        """Services that have `workload` among their endpoints (its inbound services)."""
        ...


class MemoryRegistry:
    """An immutable registry indexed for the compiler's lookups."""

    __slots__ = (
        "_by_host",
        "_by_name",
        "_by_workload",
        "_domain_suffix",
        "_services",
        "_workloads",
        "derived",
    )

    def __init__(
        self,
        services: Iterable[Service],
        workloads: Iterable[Workload] = (),
        *,
        domain_suffix: str = DEFAULT_DOMAIN_SUFFIX,
        derived: Mapping[int, tuple[object, tuple[Service, ...]]] | None = None,
    ) -> None:
        self._domain_suffix = domain_suffix
        self.derived: Mapping[int, tuple[object, tuple[Service, ...]]] = derived or {}
        """Services by the `id()` of the config object they came from alone (with it), for
        the next registry built from the same objects to reuse."""
        self._services: tuple[Service, ...] = _sorted(
            services, lambda s: (s.hostname, s.namespace, s.origin)
        )
        self._workloads: tuple[Workload, ...] = _sorted(
            workloads, lambda w: (w.namespace, w.name, w.kind != "Pod")
        )
        by_host: dict[str, list[Service]] = defaultdict(list)
        by_workload: dict[tuple[str, str, str], list[Service]] = defaultdict(list)
        for service in self._services:
            by_host[service.hostname].append(service)
            for endpoint in service.endpoints:
                by_workload[(endpoint.kind, endpoint.namespace, endpoint.name)].append(service)
        self._by_host = {host: tuple(found) for host, found in by_host.items()}
        self._by_workload = {key: tuple(found) for key, found in by_workload.items()}
        wl: dict[tuple[str, str], Workload] = {}
        for workload in self._workloads:
            wl.setdefault((workload.namespace, workload.name), workload)
        self._by_name = wl

    @property
    def domain_suffix(self) -> str:
        return self._domain_suffix

    def services(self) -> Sequence[Service]:
        return self._services

    def services_for_host(self, hostname: str) -> Sequence[Service]:
        return self._by_host.get(hostname, ())

    def visible_services(self, namespace: str) -> Sequence[Service]:
        return tuple(s for s in self._services if s.visible_from(namespace))

    def workloads(self) -> Sequence[Workload]:
        return self._workloads

    def workload(self, namespace: str, name: str) -> Workload | None:
        return self._by_name.get((namespace, name))

    def services_of(self, workload: Workload) -> Sequence[Service]:
        return self._by_workload.get((workload.kind, workload.namespace, workload.name), ())

    def __repr__(self) -> str:
        return f"MemoryRegistry({len(self._services)} services, {len(self._workloads)} workloads)"


def _sorted(items: Iterable[T], key: Callable[[T], tuple[object, ...]]) -> tuple[T, ...]:
    """Sorted by `key`, then by `repr` (the whole value), made only to break a tie."""
    out: list[T] = []
    for _, group in groupby(sorted(items, key=key), key=key):
        same = list(group)
        out += same if len(same) == 1 else sorted(same, key=repr)
    return tuple(out)
