"""Watching, loading and compiling: debounce, keep-last-good, per-file cache, shared compiles."""

from __future__ import annotations

import asyncio
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from meshcore.control.protocol import ProxyInfo
from meshcore.control.server import Nack, ProxyStatus, SyncState
from meshcore.control.snapshots import CompiledProxy, SnapshotCache
from meshcore.control.source import FileSource
from meshcore.control.watch import Debounce, DebouncedWatcher, scan

SERVICE = """apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: {name}, namespace: default}}
spec:
  hosts: [{name}.mesh.local]
  ports: [{{number: {port}, name: tcp, protocol: TCP}}]
  resolution: STATIC
  endpoints: [{{address: 127.0.0.1}}]
"""


def _write(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def test_scan_sees_config_files_only_and_notices_replacement(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("x")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.json").write_text("{}")
    before = scan([tmp_path])
    assert sorted(p.name for p in before) == ["a.yaml", "b.json"]
    _write(tmp_path / "a.yaml", "x")  # same content and size, new inode
    assert scan([tmp_path]) != before


def test_a_burst_of_edits_is_one_change_after_the_quiet_period(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_text("0")
    watcher = DebouncedWatcher([tmp_path], Debounce(after=0.3, max=5.0, poll_interval=0.02))
    watcher.initial()

    async def go() -> tuple[float, float]:
        waiting = asyncio.create_task(watcher.changes())
        start = time.monotonic()
        for i in range(5):  # an edit every 0.1 s: never quiet for 0.3 s until they stop
            _write(path, str(i))
            await asyncio.sleep(0.1)
        last_edit = time.monotonic() - 0.1
        change = await waiting
        return change.first_seen - start, time.monotonic() - last_edit

    first_seen, after_last_edit = asyncio.run(go())
    assert first_seen < 0.1  # convergence time is measured from the first edit
    assert 0.3 <= after_last_edit < 1.0
    assert watcher.current == scan([tmp_path])


def test_edits_that_never_stop_are_loaded_after_the_max_delay(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_text("0")
    watcher = DebouncedWatcher([tmp_path], Debounce(after=0.2, max=0.5, poll_interval=0.02))
    watcher.initial()

    async def go() -> float:
        stop = asyncio.Event()

        async def edit() -> None:
            i = 0
            while not stop.is_set():
                i += 1
                _write(path, str(i))
                await asyncio.sleep(0.05)

        editor = asyncio.create_task(edit())
        start = time.monotonic()
        change = await watcher.changes()
        stop.set()
        await editor
        assert change.first_seen >= start
        return time.monotonic() - start

    elapsed = asyncio.run(go())
    assert 0.45 <= elapsed < 1.5


def test_a_broken_edit_is_rejected_whole_and_only_changed_files_are_reparsed(
    tmp_path: Path,
) -> None:
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(SERVICE.format(name="a", port=7000))
    b.write_text(SERVICE.format(name="b", port=7001))
    source = FileSource()
    first, rejection = source.load(scan([tmp_path]), time.monotonic())
    assert rejection is None
    assert first is not None
    assert first.generation == 1
    assert len(first.load.resources) == 2

    _write(b, SERVICE.format(name="b", port=0))
    state, rejection = source.load(scan([tmp_path]), time.monotonic())
    assert state is None
    assert rejection is not None
    (error,) = rejection.errors
    assert error.file == str(b)
    assert error.origin == "ServiceEntry default/b"
    assert error.path == "spec.ports[0].number"

    _write(b, SERVICE.format(name="b", port=7002))
    second, rejection = source.load(scan([tmp_path]), time.monotonic())
    assert second is not None
    assert second.generation == 2
    # a.yaml was not touched: its parsed object is the very same one.
    assert second.load.resources[0] is first.load.resources[0]
    assert second.load.resources[1] is not first.load.resources[1]


def test_a_broken_mesh_config_rejects_the_load_naming_its_field(tmp_path: Path) -> None:
    config, mesh = tmp_path / "config", tmp_path / "mesh.yaml"
    config.mkdir()
    (config / "a.yaml").write_text(SERVICE.format(name="a", port=7000))
    mesh.write_text("defaultConfig:\n  proxyHeaders: {preserveHttp1HeaderCase: 1}\n")
    source = FileSource(mesh)
    state, rejection = source.load(scan([config, mesh]), time.monotonic())
    assert state is None
    assert rejection is not None
    (error,) = rejection.errors
    assert (error.file, error.line, error.origin) == (str(mesh), 2, "MeshConfig")
    assert error.path == "defaultConfig.proxyHeaders.preserveHttp1HeaderCase"

    mesh.write_text("defaultConfig:\n  proxyHeaders: {preserveHttp1HeaderCase: true}\n")
    state, rejection = source.load(scan([config, mesh]), time.monotonic())
    assert rejection is None
    assert state is not None
    assert state.compiler.settings.preserve_header_case


def test_identical_proxies_share_one_compile(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(SERVICE.format(name="a", port=7000))
    state, _ = FileSource().load(scan([tmp_path]), time.monotonic())
    assert state is not None

    async def go() -> list[object]:
        with ThreadPoolExecutor(1) as pool:
            cache = SnapshotCache(pool)
            twins = [ProxyInfo(f"p{i}", "default", (("app", "x"),)) for i in range(20)]
            other = ProxyInfo("q", "default", (("app", "x"),), outbound_port=16001)
            results = await asyncio.gather(*(cache.get(state, p) for p in [*twins, other]))
            assert cache.compiles == 2
            return list(results)

    results = asyncio.run(go())
    assert all(isinstance(r, CompiledProxy) for r in results)
    versions = {r.version for r in results if isinstance(r, CompiledProxy)}
    assert len(versions) == 2


def test_proxies_no_selector_tells_apart_share_one_compile(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(SERVICE.format(name="a", port=7000))
    (tmp_path / "vs.yaml").write_text(
        """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: a, namespace: default}
spec:
  hosts: [a.mesh.local]
  tcp:
  - match: [{sourceLabels: {app: w0}}]
    route: [{destination: {host: a.mesh.local}}]
"""
    )
    state, _ = FileSource().load(scan([tmp_path]), time.monotonic())
    assert state is not None

    async def go() -> int:
        with ThreadPoolExecutor(1) as pool:
            cache = SnapshotCache(pool)
            # w1..w9 differ in labels no selector reads: one compile; w0 is selected.
            proxies = [ProxyInfo(f"p{i}", "default", (("app", f"w{i % 10}"),)) for i in range(50)]
            await asyncio.gather(*(cache.get(state, p) for p in proxies))
            return cache.compiles

    assert asyncio.run(go()) == 2


@pytest.mark.parametrize(
    ("status", "state"),
    [
        (ProxyStatus(ProxyInfo("a", "b"), "peer"), SyncState.NOT_SENT),
        (ProxyStatus(ProxyInfo("a", "b"), "peer", version="v1", target_version="v1"),
         SyncState.SYNCED),
        (ProxyStatus(ProxyInfo("a", "b"), "peer", version="v1", target_version="v2"),
         SyncState.STALE),
        (ProxyStatus(ProxyInfo("a", "b"), "peer", version="v1", target_version="v1", in_flight=3),
         SyncState.STALE),
        (ProxyStatus(ProxyInfo("a", "b"), "peer", version="v1", target_version="v2",
                     nack=Nack("v2", "listeners[0].port", "bind_failed", "in use", 0.0)),
         SyncState.NACKED),
    ],
)  # fmt: skip
def test_sync_state(status: ProxyStatus, state: SyncState) -> None:
    assert status.state is state
