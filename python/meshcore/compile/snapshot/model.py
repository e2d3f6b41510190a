"""The Snapshot's types: listeners with their L4 routes, and clusters with endpoints.

Field names, defaults and ranges match ``rust/meshcore-snapshot`` exactly. Models are strict
(no coercion of ``"9000"`` to ``9000``) and reject unknown fields, as serde does there.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_IDLE_TIMEOUT_MS = 3_600_000
"""Envoy's tcp_proxy default: an hour without bytes either way closes the connection."""

DEFAULT_CONNECT_TIMEOUT_MS = 10_000
"""Istio's default ``connectTimeout``."""

U16 = Annotated[int, Field(ge=0, le=0xFFFF)]
U32 = Annotated[int, Field(ge=0, le=0xFFFF_FFFF)]
U64 = Annotated[int, Field(ge=0, le=0xFFFF_FFFF_FFFF_FFFF)]

Protocol = Literal["tcp"]
LbPolicy = Literal["round_robin", "random"]


class _Contract(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class WeightedCluster(_Contract):
    """One target of an L4 route; new connections are spread by weight."""

    name: str
    weight: U32 = 1


class TcpRoute(_Contract):
    """Where a TCP listener sends each new connection."""

    clusters: list[WeightedCluster]


class Listener(_Contract):
    """A bound socket, reconciled by (address, port) so a rename keeps its connections."""

    name: str
    address: str
    port: U16
    protocol: Protocol
    idle_timeout_ms: U64 = DEFAULT_IDLE_TIMEOUT_MS
    tcp_route: TcpRoute | None = None


class Endpoint(_Contract):
    """One upstream address; the compiler resolves names, so ``address`` is an IP literal."""

    address: str
    port: U16
    weight: U32 = 1
    labels: dict[str, str] = Field(default_factory=dict)


class Cluster(_Contract):
    """A named set of endpoints and the policy that picks one for a new connection."""

    name: str
    lb_policy: LbPolicy = "round_robin"
    connect_timeout_ms: U64 = DEFAULT_CONNECT_TIMEOUT_MS
    endpoints: list[Endpoint] = Field(default_factory=list)


class Snapshot(_Contract):
    """One proxy's complete configuration at one version."""

    version: str
    listeners: list[Listener] = Field(default_factory=list)
    clusters: list[Cluster] = Field(default_factory=list)

    def to_json(self) -> bytes:
        """The wire form the data plane's ``apply`` takes: compact, every field present."""
        return self.model_dump_json().encode()

    def cluster(self, name: str) -> Cluster | None:
        """Looks a cluster up by name."""
        return next((c for c in self.clusters if c.name == name), None)
