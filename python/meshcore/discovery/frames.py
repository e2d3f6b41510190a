"""Frames: how one message travels over a persistent stream (TCP today, TLS later).

Each message is one frame::

    meta_len:u32be  payload_len:u32be  meta (UTF-8 JSON object with "type")  payload

The payload is opaque bytes (a PUSH's snapshot JSON, possibly zlib-compressed), so the agent
hands it to the data plane without parsing it in Python.
"""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

PROTOCOL_VERSION = 1
HEADER = struct.Struct(">II")
MAX_META = 1 << 20
MAX_PAYLOAD = 256 << 20

HELLO = "HELLO"
WELCOME = "WELCOME"
PUSH = "PUSH"
ACK = "ACK"
NACK = "NACK"
PING = "PING"
ERROR = "ERROR"


class ProtocolError(ValueError):
    """The peer sent something that is not a valid frame or message."""


@dataclass(frozen=True)
class Frame:
    """One message: its JSON meta (with `type`) and its opaque payload."""

    meta: Mapping[str, Any]
    payload: bytes = b""

    @property
    def type(self) -> str:
        return str(self.meta.get("type", ""))


def encode(meta: Mapping[str, Any], payload: bytes = b"") -> bytes:
    """One frame's bytes."""
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
