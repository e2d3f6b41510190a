"""The control-plane protocol, agent side: frames, and the messages an agent sends.

Frames come from `meshcore.discovery.frames`, shared with `meshcore.control.protocol`
(ARCHITECTURE.md, "Control-plane protocol").  The agent never parses
a pushed snapshot: the payload goes to the data plane's ``apply`` as bytes (inflated first
when the meta says ``"encoding": "zlib"``), which keeps pydantic and the compiler out of
the sidecar process.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass

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

MAX_SNAPSHOT = 256 << 20


def snapshot_bytes(frame: Frame, limit: int = MAX_SNAPSHOT) -> bytes:
    """A PUSH frame's snapshot JSON, inflated (to at most `limit` bytes) if compressed."""
    encoding = frame.meta.get("encoding", "identity")
    if encoding == "identity":
        return frame.payload
    if encoding == "zlib":
        inflater = zlib.decompressobj()
        try:
            data = inflater.decompress(frame.payload, limit)
        except zlib.error as error:
            raise ProtocolError(f"PUSH payload is not zlib: {error}") from None
        if inflater.unconsumed_tail:
            raise ProtocolError(f"PUSH payload inflates past {limit} bytes")
        return data
    raise ProtocolError(f"PUSH encoding {encoding!r} was not offered")


@dataclass(frozen=True)
class ProxyInfo:
    """Who this sidecar is, as its HELLO says (see `meshcore.control.protocol.ProxyInfo`)."""

    name: str
    namespace: str
    labels: Mapping[str, str] | None = None
    service_account: str | None = None
    outbound_port: int = 15001
    inbound_port: int = 15006

    @property
    def id(self) -> str:
        return f"{self.name}.{self.namespace}"


def hello(proxy: ProxyInfo, version: str | None) -> bytes:
    """The first frame of every connection: identity, the version served now, encodings."""
    return encode(
        {
            "type": HELLO,
            "protocol": PROTOCOL_VERSION,
            "proxy": {
                "name": proxy.name,
                "namespace": proxy.namespace,
                "labels": None if proxy.labels is None else dict(proxy.labels),
                "service_account": proxy.service_account,
                "outbound_port": proxy.outbound_port,
                "inbound_port": proxy.inbound_port,
            },
            "version": version,
            "accept_encoding": ["zlib"],
        }
    )


def ack(version: str, nonce: object) -> bytes:
    return encode({"type": ACK, "version": version, "nonce": nonce})


def nack(version: str, nonce: object, path: str, code: str, message: str) -> bytes:
    return encode(
        {"type": NACK, "version": version, "nonce": nonce, "path": path, "code": code,
         "message": message}
    )  # fmt: skip


__all__ = [
    "ACK",
    "ERROR",
    "HEADER",
    "HELLO",
    "MAX_META",
    "MAX_PAYLOAD",
    "MAX_SNAPSHOT",
    "NACK",
    "PING",
    "PROTOCOL_VERSION",
    "PUSH",
    "WELCOME",
    "Frame",
    "ProtocolError",
    "ProxyInfo",
    "ack",
    "encode",
    "hello",
    "nack",
    "read_frame",
    "snapshot_bytes",
]
