"""The wire format: each side reads what the other writes; bad hellos name the bad field."""

from __future__ import annotations

import asyncio
import zlib

import pytest

from meshcore.agent import protocol as agent
from meshcore.control import protocol as control


def _read(data: bytes, read: object) -> object:
    async def go() -> object:
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        return await read(reader)  # type: ignore[operator]

    return asyncio.run(go())


def test_agent_hello_is_what_the_control_plane_parses() -> None:
    proxy = agent.ProxyInfo("a1", "ns", {"app": "a1"}, None, 16001, 16006)
    frame = _read(agent.hello(proxy, "sha256:ab"), control.read_frame)
    assert isinstance(frame, control.Frame)
    hello = control.parse_hello(frame)
    assert hello.proxy == control.ProxyInfo("a1", "ns", (("app", "a1"),), None, 16001, 16006)
    assert hello.proxy.id == "a1.ns"
    assert hello.version == "sha256:ab"
    assert hello.encodings == ("zlib",)


def test_a_push_reaches_the_agent_byte_for_byte_compressed_or_not() -> None:
    snapshot = b'{"version":"v1","listeners":[]}' * 100
    plain = _read(control.encode({"type": "PUSH", "version": "v1", "nonce": 3}, snapshot),
                  agent.read_frame)  # fmt: skip
    assert isinstance(plain, agent.Frame)
    assert plain.meta["nonce"] == 3
    assert agent.snapshot_bytes(plain) == snapshot
    packed = control.encode({"type": "PUSH", "encoding": "zlib"}, zlib.compress(snapshot))
    frame = _read(packed, agent.read_frame)
    assert isinstance(frame, agent.Frame)
    assert agent.snapshot_bytes(frame) == snapshot


def test_a_frame_head_then_its_payload_is_the_whole_frame() -> None:
    meta = {"type": "PUSH", "version": "v1", "nonce": 7, "encoding": "zlib"}
    payload = zlib.compress(b"{}" * 50_000)
    assert control.encode_head(meta, len(payload)) + payload == control.encode(meta, payload)


def test_nack_carries_the_data_plane_reason() -> None:
    frame = _read(agent.nack("v2", 7, "listeners[1].port", "bind_failed", "in use"),
                  control.read_frame)  # fmt: skip
    assert isinstance(frame, control.Frame)
    assert dict(frame.meta) == {
        "type": "NACK",
        "version": "v2",
        "nonce": 7,
        "path": "listeners[1].port",
        "code": "bind_failed",
        "message": "in use",
    }


@pytest.mark.parametrize(
    ("meta", "error"),
    [
        ({"type": "PING"}, "expected HELLO"),
        ({"type": "HELLO", "protocol": 2}, "protocol 2"),
        ({"type": "HELLO", "protocol": 1, "proxy": {"name": "a"}}, "proxy.namespace"),
        (
            {"type": "HELLO", "protocol": 1, "proxy": {"name": "a", "namespace": "b",
                                                     "labels": {"x": 1}}},
            "proxy.labels",
        ),
        (
            {"type": "HELLO", "protocol": 1, "proxy": {"name": "a", "namespace": "b",
                                                     "outbound_port": 70000}},
            "proxy.outbound_port",
        ),
    ],
)  # fmt: skip
def test_bad_hellos_are_refused_naming_the_field(meta: dict[str, object], error: str) -> None:
    with pytest.raises(control.ProtocolError, match=error):
        control.parse_hello(control.Frame(meta))


@pytest.mark.parametrize("read", [control.read_frame, agent.read_frame])
def test_oversized_and_garbage_frames_are_protocol_errors(read: object) -> None:
    with pytest.raises(ValueError, match="too large"):
        _read(control.HEADER.pack(1 << 30, 0), read)
    with pytest.raises(ValueError, match="not JSON"):
        _read(control.HEADER.pack(3, 0) + b"{{{", read)
    with pytest.raises(ValueError, match="with a type"):
        _read(control.HEADER.pack(2, 0) + b"[]", read)


def test_a_zlib_bomb_is_refused() -> None:
    bomb = zlib.compress(b"\0" * 1_000_000)
    with pytest.raises(agent.ProtocolError, match="inflates past 4096 bytes"):
        agent.snapshot_bytes(agent.Frame({"type": "PUSH", "encoding": "zlib"}, bomb), 4096)
    with pytest.raises(agent.ProtocolError, match="not offered"):
        agent.snapshot_bytes(agent.Frame({"type": "PUSH", "encoding": "br"}, b""))
