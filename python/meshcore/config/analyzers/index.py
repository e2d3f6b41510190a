"""The read-only view every analyzer works on: all loaded objects, indexed once.

`ResourceIndex` is built from a `LoadResult`. It holds the objects by kind and by
`(kind, namespace, name)`, the workloads (Pods, Deployment pod templates, WorkloadEntries)
with their labels, the service registry (Kubernetes Services and ServiceEntry hosts with
their visibility), and where each object came from, so an analyzer can place a finding on
the line of the field it is about (`report`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from meshcore.config.analyzers import hosts
from meshcore.config.base import IstioResource
from meshcore.config.diagnostics import Diagnostic, Level, MessageType
from meshcore.config.kube import Deployment, KubeResource, Namespace, Pod, Service
from meshcore.config.loader import LoadResult, Resource, Source
from meshcore.config.networking import ServiceEntry, WorkloadEntry
from meshcore.config.yaml12 import LineIndex, PathPart, format_path, parse_documents, path_parts

T = TypeVar("T", bound=IstioResource | KubeResource)
FieldPath = tuple[PathPart, ...]


@dataclass(frozen=True)
class Workload:
    """Something that runs and carries labels: a Pod, a Deployment's pods, a WorkloadEntry."""

    kind: str
    namespace: str
    name: str
    labels: Mapping[str, str]


@dataclass(frozen=True)
class ServicePort:
    """A port of a registry entry."""

    number: int
    name: str | None = None
    protocol: str | None = None
    app_protocol: str | None = None
    target_port: int | None = None


@dataclass(frozen=True)
class RegistryEntry:
    """One host of the service registry and where it is visible."""

    host: str
    namespace: str
    scopes: tuple[str, ...]
    ports: tuple[ServicePort, ...]
    selector: Mapping[str, str] | None
    owner: Service | ServiceEntry

    def visible_in(self, namespace: str, extra: tuple[str, ...] = ()) -> bool:
        """True if a config object in `namespace` (or one exported to `extra`) sees it."""
        return any(s in (hosts.ALL_NAMESPACES, namespace, *extra) for s in self.scopes)


def selects(selector: Mapping[str, str] | None, labels: Mapping[str, str]) -> bool:
    """Kubernetes equality-based selection; an empty selector selects everything."""
    return all(labels.get(key) == value for key, value in (selector or {}).items())


def format_selector(selector: Mapping[str, str] | None) -> str:
    """A selector as Kubernetes prints it: `app=x,version=v1` (keys sorted)."""
    return ",".join(f"{key}={value}" for key, value in sorted((selector or {}).items()))


def _read_documents(file: str) -> tuple[LineIndex, ...]:
    try:
        text = Path(file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ()
    return tuple(document.lines for document in parse_documents(text))


class ResourceIndex:
    """All objects of one analysis, indexed by kind and name; built once, never changed."""

    def __init__(self, result: LoadResult) -> None:
        self.resources: tuple[Resource, ...] = tuple(result.resources)
        self._sources: dict[int, Source] = {
            id(resource): source
            for resource, source in zip(result.resources, result.sources, strict=False)
        }
        by_kind: dict[str, list[Resource]] = {}
        by_name: dict[tuple[str, str, str], Resource] = {}
        for resource in self.resources:
            by_kind.setdefault(resource.kind, []).append(resource)
            key = (resource.kind, resource.metadata.namespace, resource.metadata.name)
            by_name.setdefault(key, resource)
        self._by_kind = {kind: tuple(items) for kind, items in by_kind.items()}
        self._by_name = by_name
        self.namespaces: frozenset[str] = frozenset(n.metadata.name for n in self.of(Namespace))
        """Names of the Namespace objects loaded (empty if none were)."""
        self.workloads: tuple[Workload, ...] = self._workloads()
        self.registry: tuple[RegistryEntry, ...] = self._registry()
        self._lines: dict[str, tuple[LineIndex, ...]] = {}

    def of(self, kind: type[T]) -> tuple[T, ...]:
        """Objects of one kind, in load order."""
        return self._by_kind.get(kind.KIND, ())  # type: ignore[return-value]

    def get(self, kind: type[T], namespace: str, name: str) -> T | None:
        """One object by kind, namespace and name."""
        return self._by_name.get((kind.KIND, namespace, name))  # type: ignore[return-value]

    def workloads_in(self, namespace: str) -> tuple[Workload, ...]:
        """Workloads of one namespace."""
        return tuple(w for w in self.workloads if w.namespace == namespace)

    def _workloads(self) -> tuple[Workload, ...]:
        found: list[Workload] = []
        for pod in self.of(Pod):
            meta = pod.metadata
            found.append(Workload("Pod", meta.namespace, meta.name, meta.labels or {}))
        for deployment in self.of(Deployment):
            meta = deployment.metadata
            labels = deployment.spec.template.metadata.labels or {}
            found.append(Workload("Deployment", meta.namespace, meta.name, labels))
        for entry in self.of(WorkloadEntry):
            meta = entry.metadata
            found.append(
                Workload("WorkloadEntry", meta.namespace, meta.name, entry.spec.labels or {})
            )
        return tuple(found)

    def _registry(self) -> tuple[RegistryEntry, ...]:
        entries: list[RegistryEntry] = []
        for service in self.of(Service):
            meta = service.metadata
            export = (meta.annotations or {}).get("networking.istio.io/exportTo")
            scopes = hosts.export_scopes(
                [item.strip() for item in export.split(",")] if export else None, meta.namespace
            )
            ports = tuple(
                ServicePort(
                    p.port,
                    p.name,
                    p.protocol or "TCP",
                    p.app_protocol,
                    p.target_port if isinstance(p.target_port, int) else None,
                )
                for p in service.spec.ports or []
            )
            fqdn = hosts.to_fqdn(meta.namespace, meta.name)
            entries.append(
                RegistryEntry(fqdn, meta.namespace, scopes, ports, service.spec.selector, service)
            )
        for entry in self.of(ServiceEntry):
            meta = entry.metadata
            spec = entry.spec
            scopes = hosts.export_scopes(spec.export_to, meta.namespace)
            se_ports = tuple(
                ServicePort(p.number, p.name, p.protocol, None, p.target_port)
                for p in spec.ports or []
            )
            selector = spec.workload_selector.labels if spec.workload_selector else None
            for host in spec.hosts or []:
                entries.append(
                    RegistryEntry(
                        hosts.to_fqdn(meta.namespace, host),
                        meta.namespace,
                        scopes,
                        se_ports,
                        selector,
                        entry,
                    )
                )
        return tuple(entries)

    def lookup_host(
        self, host: str, namespace: str, export_to: list[str] | None = None
    ) -> RegistryEntry | None:
        """The registry entry a host refers to from `namespace` (Istio's GetDestinationHost).

        Exact hosts first (short names resolved in `namespace`), then wildcard ServiceEntry
        hosts (`*.example.com` serves `api.example.com`).
        """
        fqdn = hosts.to_fqdn(namespace, host)
        extra = tuple(namespace if e == "." else e for e in export_to or ())
        for entry in self.registry:
            if entry.host == fqdn and entry.visible_in(namespace, extra):
                return entry
        for entry in self.registry:
            if (
                entry.host.startswith("*")
                and entry.visible_in(namespace, extra)
                and hosts.wildcard_covers(entry.host, fqdn)
            ):
                return entry
        return None

    # Locating findings -----------------------------------------------------------------

    def source(self, resource: Resource) -> Source | None:
        """Where `resource` was read from."""
        return self._sources.get(id(resource))

    def line_of(self, resource: Resource, path: FieldPath | str | None) -> int | None:
        """The line of `path` inside `resource`'s document (or of the object itself)."""
        source = self.source(resource)
        if source is None:
            return None
        documents = self._lines.get(source.file)
        if documents is None:
            documents = self._lines[source.file] = _read_documents(source.file)
        if source.document >= len(documents):
            return source.line
        lines = documents[source.document]
        prefix = _list_prefix(lines, source.line)
        parts = path_parts(path) if isinstance(path, str) else (path or ())
        if not parts:
            return source.line
        return lines.line_of(prefix + parts)

    def locate(self, diagnostic: Diagnostic, resource: Resource) -> Diagnostic:
        """`diagnostic` placed at its path's line in `resource`'s file."""
        source = self.source(resource)
        if source is None:
            return diagnostic
        return diagnostic.located(
            file=source.file,
            document=source.document,
            line=diagnostic.line or self.line_of(resource, diagnostic.path),
        )

    def report(
        self,
        resource: Resource,
        kind: MessageType,
        message: str,
        path: FieldPath | None = None,
        *,
        level: Level | None = None,
    ) -> Diagnostic:
        """A finding about `resource`, with its origin, file and the line of `path`."""
        diagnostic = Diagnostic.of(
            kind,
            message,
            origin=resource.origin,
            path=format_path(path) if path else None,
            level=level,
        )
        return self.locate(diagnostic, resource)


def _list_prefix(lines: LineIndex, first_line: int | None) -> FieldPath:
    """The `("items", i)` prefix of an object that came from a `kind: List` document."""
    if first_line is None or lines.first_line == first_line:
        return ()
    for path, line in lines.lines.items():
        if len(path) == 2 and path[0] == "items" and line == first_line:
            return path
    return ()


METADATA_NAME: FieldPath = ("metadata", "name")
"""The path analyzers point at when a finding is about the whole object."""
