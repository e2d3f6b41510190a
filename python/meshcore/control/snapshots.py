"""Per-proxy snapshots of one `ConfigState`, compiled once per distinct set of inputs.

Compiling is pure and takes 0.1-0.5 s for a thousand services, so it runs on one worker
thread, off the event loop, and proxies whose snapshots are bound to be equal share the
work: the cache key is `Compiler.proxy_key`, what of a proxy the compiler actually reads
(its namespace; of its labels, only which applicable selectors hold; its app ports and
sockets), for one config generation. Ten replicas of ten deployments that no selector
tells apart are one compile. A proxy that connects while its twin's compile is in flight
waits for that same compile. The wire bytes (and their zlib form) are made once per
snapshot, not once per proxy.
"""

from __future__ import annotations

import asyncio
import time
import zlib
from collections.abc import Callable, Hashable
from concurrent.futures import Executor
from dataclasses import dataclass, replace

from meshcore.compile import Compiled, CompileError, ProxyIdentity, identify_proxy
from meshcore.compile.snapshot import Snapshot
from meshcore.config import Diagnostic
from meshcore.control.protocol import ProxyInfo
from meshcore.control.source import ConfigState

COMPRESS_ABOVE = 64 * 1024
"""Payloads smaller than this are sent as they are (compressing would not pay)."""


@dataclass(frozen=True)
class CompiledProxy:
    """One snapshot, ready to push."""

    snapshot: Snapshot
    payload: bytes
    """The wire form, what the data plane's `apply` takes."""
    compressed: bytes | None
    diagnostics: tuple[Diagnostic, ...]
    compile_seconds: float

    @property
    def version(self) -> str:
        return self.snapshot.version


@dataclass(frozen=True)
class CompileFailure:
    """The compiler refused this proxy; its last snapshot keeps serving."""

    message: str


Outcome = CompiledProxy | CompileFailure


def identity_of(state: ConfigState, info: ProxyInfo) -> ProxyIdentity:
    """What the compiler knows about a proxy: its hello, completed from the registry."""
    identity = identify_proxy(
        state.compiler.registry,
        info.name,
        info.namespace,
        labels=None if info.labels is None else dict(info.labels),
        service_account=info.service_account,
    )
    return replace(identity, outbound_port=info.outbound_port, inbound_port=info.inbound_port)


def cache_key(state: ConfigState, identity: ProxyIdentity) -> Hashable:
    """The compile inputs that come from the proxy (see `Compiler.proxy_key`)."""
    return state.compiler.proxy_key(identity)


def compile_proxy(state: ConfigState, identity: ProxyIdentity) -> Outcome:
    started = time.perf_counter()
    try:
        compiled: Compiled = state.compiler.compile_with_report(identity)
    except CompileError as error:
        # Shared by every proxy with this key: the message names none of them.
        return CompileFailure(f"the compiled snapshot is invalid: {error.invalid}")
    payload = compiled.payload
    compressed = zlib.compress(payload, 1) if len(payload) > COMPRESS_ABOVE else None
    return CompiledProxy(
        compiled.snapshot,
        payload,
        compressed,
        tuple(compiled.diagnostics),
        time.perf_counter() - started,
    )


class SnapshotCache:
    """Compiled snapshots of the current generation, by `cache_key`."""

    def __init__(
        self, executor: Executor, on_compiled: Callable[[float], None] | None = None
    ) -> None:
        self._executor = executor
        self._on_compiled = on_compiled
        self._generation = 0
        self._entries: dict[Hashable, asyncio.Future[Outcome]] = {}
        self.compiles = 0
        """How many compiles ran (the rest were shared)."""

    async def get(self, state: ConfigState, info: ProxyInfo) -> Outcome:
        """The snapshot of `info` under `state`, compiled at most once per distinct key."""
        if state.generation != self._generation:
            self._generation = state.generation
            self._entries = {}
        identity = identity_of(state, info)
        key = cache_key(state, identity)
        future = self._entries.get(key)
        if future is None:
            self.compiles += 1
            loop = asyncio.get_running_loop()
            future = loop.run_in_executor(self._executor, compile_proxy, state, identity)
            future.add_done_callback(self._compiled)
            self._entries[key] = future
        # shield: one waiter being cancelled (its proxy left) must not cancel the others'.
        return await asyncio.shield(future)

    def _compiled(self, future: asyncio.Future[Outcome]) -> None:
        if self._on_compiled is None or future.cancelled() or future.exception() is not None:
            return
        outcome = future.result()
        if isinstance(outcome, CompiledProxy):
            self._on_compiled(outcome.compile_seconds)
