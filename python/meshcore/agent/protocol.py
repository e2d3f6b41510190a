"""The control-plane protocol, agent side: frames, and the messages an agent sends.

Same wire format as `meshcore.control.protocol` (ARCHITECTURE.md, "Control-plane
protocol"): ``meta_len:u32be payload_len:u32be meta-JSON payload``. The agent never parses
a pushed snapshot: the payload goes to the data plane's ``apply`` as bytes (inflated first
when the meta says ``"encoding": "zlib"``), which keeps pydantic and the compiler out of
the sidecar process.
"""

from __future__ import annotations

import asyncio
import json
import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

PROTOCOL_VERSION = 1
HEADER = struct.Struct(">II")
MAX_META = 1 << 20
MAX_PAYLOAD = 256 << 20
MAX_SNAPSHOT = 256 << 20

HELLO = "HELLO"
WELCOME = "WELCOME"
PUSH = "PUSH"
ACK = "ACK"
NACK = "NACK"
PING = "PING"
ERROR = "ERROR"


class ProtocolError(ValueError):
    """The control plane sent something that is not a valid frame or message."""


@dataclass(frozen=True)
class Frame:
    meta: Mapping[str, Any]
    payload: bytes = b""

    @property
    def type(self) -> str:
        return str(self.meta.get("type", ""))


def encode(meta: Mapping[str, Any], payload: bytes = b"") -> bytes:
    body = json.dumps(meta, separators=(",", ":")).encode()
    return HEADER.pack(len(body), len(payload)) + body + payload


async def read_frame(reader: asyncio.StreamReader) -> Frame:
    """The next frame; raises `asyncio.IncompleteReadError` at end of stream."""
    meta_len, payload_len = HEADER.unpack(await reader.readexactly(HEADER.size))
    if meta_len > MAX_META or payload_len > MAX_PAYLOAD:
        raise ProtocolError(f"frame too large (meta {meta_len}, payload {payload_len} bytes)")
    try:
        meta = json.loads(await reader.readexactly(meta_len))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ProtocolError(f"frame meta is not JSON: {error}") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("type"), str):
        raise ProtocolError("frame meta is not an object with a type")
    payload = await reader.readexactly(payload_len) if payload_len else b""
    return Frame(meta, payload)


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
