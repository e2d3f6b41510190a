"""The control-plane protocol, server side: frames, messages and the proxy's hello.

Wire format (ARCHITECTURE.md, "Control-plane protocol"): over one persistent stream (TCP
today, TLS later: only an `asyncio` stream is assumed), each message is one frame::

    meta_len:u32be  payload_len:u32be  meta (UTF-8 JSON object with "type")  payload

The payload is opaque bytes: the snapshot JSON of a PUSH (zlib-compressed when the agent
accepts it), so the agent hands it to the data plane without parsing it in Python. The
agent's side is `meshcore.agent.protocol`; the frames both use are
`meshcore.discovery.frames`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from meshcore.discovery.frames import (
    ACK,
    ERROR,
    HEADER,
    HELLO,
    MAX_META,
    MAX_PAYLOAD,
    NACK,
    PING,
    PROTOCOL_VERSION,
    PUSH,
    WELCOME,
    Frame,
    ProtocolError,
    encode,
    read_frame,
)


def encode_head(meta: Mapping[str, Any], payload_len: int) -> bytes:
    """A frame without its payload: `encode_head(m, len(p)) + p == encode(m, p)`, so a
    snapshot pushed to many proxies is written as it is, never copied into each frame."""
    body = json.dumps(meta, separators=(",", ":")).encode()
    return HEADER.pack(len(body), payload_len) + body


@dataclass(frozen=True)
class ProxyInfo:
    """Who a proxy says it is (HELLO `proxy`): what its snapshot is compiled from.

    `labels` and `service_account` are None when the agent was given none; the control
    plane then takes them from the proxy's pod or WorkloadEntry, as `meshcore compile` does.
    """

    name: str
    namespace: str
    labels: tuple[tuple[str, str], ...] | None = None
    service_account: str | None = None
    outbound_port: int = 15001
    inbound_port: int = 15006

    @property
    def id(self) -> str:
        """`name.namespace`, as istioctl names a proxy."""
        return f"{self.name}.{self.namespace}"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "namespace": self.namespace,
            "labels": None if self.labels is None else dict(self.labels),
            "service_account": self.service_account,
            "outbound_port": self.outbound_port,
            "inbound_port": self.inbound_port,
        }


@dataclass(frozen=True)
class Hello:
    """The first message of a connection: identity, the version it serves, what it accepts."""

    proxy: ProxyInfo
    version: str | None
    encodings: tuple[str, ...]


def parse_hello(frame: Frame) -> Hello:
    """A HELLO frame's content, checked; raises `ProtocolError` naming the bad field."""
    meta = frame.meta
    if frame.type != HELLO:
        raise ProtocolError(f"expected HELLO, got {frame.type}")
    if meta.get("protocol") != PROTOCOL_VERSION:
        raise ProtocolError(f"protocol {meta.get('protocol')!r} is not {PROTOCOL_VERSION}")
    proxy = meta.get("proxy")
    if not isinstance(proxy, dict):
        raise ProtocolError("proxy: must be an object")
    for key in ("name", "namespace"):
        if not isinstance(proxy.get(key), str) or not proxy[key]:
            raise ProtocolError(f"proxy.{key}: must be a non-empty string")
    labels = proxy.get("labels")
    if labels is not None and not (
        isinstance(labels, dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items())
    ):
        raise ProtocolError("proxy.labels: must be an object of strings")
    account = proxy.get("service_account")
    if account is not None and not isinstance(account, str):
        raise ProtocolError("proxy.service_account: must be a string")
    ports = {}
    for key, default in (("outbound_port", 15001), ("inbound_port", 15006)):
        value = proxy.get(key, default)
        if not isinstance(value, int) or not 1 <= value <= 65535:
            raise ProtocolError(f"proxy.{key}: must be a port number")
        ports[key] = value
    version = meta.get("version")
    if version is not None and not isinstance(version, str):
        raise ProtocolError("version: must be a string or null")
    encodings = meta.get("accept_encoding", [])
    if not isinstance(encodings, list):
        raise ProtocolError("accept_encoding: must be a list")
    info = ProxyInfo(
        name=proxy["name"],
        namespace=proxy["namespace"],
        labels=None if labels is None else tuple(sorted(labels.items())),
        service_account=account,
        **ports,
    )
    return Hello(info, version or None, tuple(str(e) for e in encodings))


__all__ = [
    "ACK",
    "ERROR",
    "HEADER",
    "HELLO",
    "MAX_META",
    "MAX_PAYLOAD",
    "NACK",
    "PING",
    "PROTOCOL_VERSION",
    "PUSH",
    "WELCOME",
    "Frame",
    "Hello",
    "ProtocolError",
    "ProxyInfo",
    "encode",
    "encode_head",
    "parse_hello",
    "read_frame",
]
