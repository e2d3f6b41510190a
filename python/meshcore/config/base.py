"""The foundations every meshcore config model stands on.

This module owns the pydantic base class (`IstioModel`: strict, unknown fields rejected,
camelCase aliases), Kubernetes `ObjectMeta`, and `IstioResource`, the envelope
(`apiVersion`, `kind`, `metadata`, `spec`, `status`) shared by every Istio kind. The kind
specific spec models are generated into `networking`, `security` and `telemetry`.
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict


def to_camel(name: str) -> str:
    """The JSON name of a snake_case attribute: `max_retries` → `maxRetries`."""
    head, *rest = name.rstrip("_").split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


class IstioModel(BaseModel):
    """Base of every Istio spec model.

    Parsing is strict in the way the Kubernetes API server is: unknown fields are rejected,
    a string is never accepted where an integer or boolean is expected, and enums accept
    only the values the CRD lists. Attributes are snake_case; the camelCase JSON names are
    aliases, and both are accepted when building objects from Python.
    """

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        populate_by_name=True,
        use_attribute_docstrings=True,
        validate_assignment=True,
        alias_generator=to_camel,
    )

    def to_dict(self) -> dict[str, Any]:
        """Return the object as Istio YAML/JSON would spell it: camelCase, unset fields left out."""
        return self.model_dump(by_alias=True, exclude_unset=True, mode="json")


class ObjectMeta(IstioModel):
    """Kubernetes object metadata.

    `name`, `namespace`, `labels` and `annotations` are what meshcore uses. The other fields
    a Kubernetes object carries (`uid`, `resourceVersion`, ...) are accepted so that output
    of `kubectl get -o yaml` loads unchanged, and otherwise ignored.
    """

    name: str
    """Name of the object, unique within its namespace and kind."""
    namespace: str = "default"
    """Namespace of the object; `default` when the file does not say."""
    labels: dict[str, str] | None = None
    """Labels: identifying key/value pairs."""
    annotations: dict[str, str] | None = None
    """Annotations: non-identifying key/value pairs."""
    generate_name: str | None = None
    """Prefix the API server uses to generate a name (ignored)."""
    uid: str | None = None
    """Unique id assigned by the API server (ignored)."""
    resource_version: str | None = None
    """Opaque version assigned by the API server (ignored)."""
    generation: int | None = None
    """Generation of the desired state (ignored)."""
    creation_timestamp: str | None = None
    """RFC 3339 creation time (ignored)."""
    deletion_timestamp: str | None = None
    """RFC 3339 time of requested deletion (ignored)."""
    deletion_grace_period_seconds: int | None = None
    """Grace period before deletion (ignored)."""
    owner_references: list[dict[str, Any]] | None = None
    """Objects this object depends on (ignored)."""
    finalizers: list[str] | None = None
    """Finalizers that must run before deletion (ignored)."""
    managed_fields: list[dict[str, Any]] | None = None
    """Server-side apply field ownership (ignored)."""
    self_link: str | None = None
    """Deprecated self link (ignored)."""


class IstioResource(IstioModel):
    """The envelope shared by every Istio kind: apiVersion, kind, metadata, spec, status.

    Subclasses set `GROUP`, `KIND` and `VERSIONS` and narrow `api_version`, `kind` and
    `spec`. `status` is written by controllers; it is accepted and kept as it is.
    """

    GROUP: ClassVar[str]
    KIND: ClassVar[str]
    VERSIONS: ClassVar[tuple[str, ...]]

    api_version: str
    """`<group>/<version>`, e.g. `networking.istio.io/v1`; every served version is accepted."""
    kind: str
    """The kind, e.g. `VirtualService`."""
    metadata: ObjectMeta
    """Name, namespace, labels and annotations."""
    status: dict[str, Any] | None = None
    """Status written by controllers (accepted, kept, never interpreted)."""

    @classmethod
    def api_versions(cls) -> tuple[str, ...]:
        """All `apiVersion` values this kind is served under."""
        return tuple(f"{cls.GROUP}/{version}" for version in cls.VERSIONS)

    @property
    def origin(self) -> str:
        """`Kind namespace/name`, the way diagnostics name an object."""
        return f"{self.kind} {self.metadata.namespace}/{self.metadata.name}"

    def to_dict(self) -> dict[str, Any]:
        """Return the object as YAML/JSON would spell it; apiVersion and kind always included."""
        data = self.model_dump(by_alias=True, exclude_unset=True, mode="json")
        return {"apiVersion": self.api_version, "kind": self.kind, **data}

    @classmethod
    def build(cls, name: str, namespace: str = "default", **spec: Any) -> Self:
        """Convenience constructor: `VirtualService.build("reviews", hosts=["reviews"])`."""
        return cls.model_validate(
            {
                "apiVersion": f"{cls.GROUP}/{cls.VERSIONS[0]}",
                "kind": cls.KIND,
                "metadata": {"name": name, "namespace": namespace},
                "spec": spec,
            }
        )
