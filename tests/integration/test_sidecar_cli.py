"""``meshcore sidecar --snapshot FILE`` as a real process: serve, reload on SIGHUP, keep the
last good snapshot on a broken edit, drain and exit on SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.integration.support import REPO, echo_server, free_port, greeting, snapshot


def _get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _wait_for(predicate: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():  # type: ignore[operator]
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


@contextmanager
def sidecar(path: Path, admin: int) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "meshcore.cli.main",
            "sidecar",
            "--snapshot",
            str(path),
            "--admin-port",
            str(admin),
            "--concurrency",
            "1",
            "--drain-seconds",
            "2",
        ],
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def test_sidecar_serves_reloads_and_drains(tmp_path: Path) -> None:
    port, admin = free_port(), free_port()
    path = tmp_path / "snapshot.json"
    with echo_server("v1") as a, echo_server("v2") as b:
        clusters = {"v1": [a], "v2": [b]}
        path.write_text(json.dumps(snapshot("s1", [("l", port, {"v1": 1})], clusters)))
        with sidecar(path, admin) as proc:
            _wait_for(lambda: _get(admin, "/ready")[0] == 200)
            assert greeting(port) == "v1"

            path.write_text(json.dumps(snapshot("s2", [("l", port, {"v2": 1})], clusters)))
            proc.send_signal(signal.SIGHUP)
            _wait_for(lambda: json.loads(_get(admin, "/stats")[1])["version"] == "s2")
            assert greeting(port) == "v2"

            # A broken edit: reported with the field at fault, s2 keeps serving.
            path.write_text(json.dumps(snapshot("s3", [("l", port, {"nope": 1})], clusters)))
            proc.send_signal(signal.SIGHUP)
            _wait_for(lambda: json.loads(_get(admin, "/stats")[1])["applies_rejected"] == 1)
            assert greeting(port) == "v2"

            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 0
            assert proc.stderr is not None
            log = proc.stderr.read()
    assert "listeners[0].tcp_route.clusters[0].name" in log
    assert 'unknown cluster "nope"' in log
    assert "keeping the last good snapshot" in log


def test_sidecar_refuses_to_start_on_a_bad_snapshot(tmp_path: Path) -> None:
    path = tmp_path / "snapshot.json"
    path.write_text('{"version": "x", "listners": []}')
    with sidecar(path, free_port()) as proc:
        assert proc.wait(timeout=20) == 1
        assert proc.stderr is not None
        log = proc.stderr.read()
    assert str(path) in log
    assert "listners" in log


def test_snapshot_mode_loads_no_models(tmp_path: Path) -> None:
    """`--snapshot` serves bytes as they are: no pydantic, compiler, config models, YAML or
    asyncio agent in the process (its idle RSS is a design target)."""
    port, admin = free_port(), free_port()
    path = tmp_path / "snapshot.json"
    modules = tmp_path / "modules.txt"
    with echo_server("v1") as upstream:
        path.write_text(json.dumps(snapshot("s1", [("l", port, {"v1": 1})], {"v1": [upstream]})))
        script = f"""
import sys, threading, time, urllib.request
def watch():
    while True:
        try:
            if urllib.request.urlopen("http://127.0.0.1:{admin}/ready", timeout=1).status == 200:
                break
        except OSError:
            time.sleep(0.05)
    with open({str(modules)!r}, "w") as f:
        f.write("\\n".join(sorted(sys.modules)))
threading.Thread(target=watch, daemon=True).start()
from meshcore.cli.main import main
main(["sidecar", "--snapshot", {str(path)!r}, "--admin-port", "{admin}"])
"""
        proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO)
        try:
            _wait_for(modules.exists)
            assert greeting(port) == "v1"
        finally:
            proc.kill()
            proc.wait()
    loaded = set(modules.read_text().split())
    assert "meshcore._core" in loaded
    forbidden = ("pydantic", "meshcore.compile", "meshcore.config", "meshcore.agent", "yaml")
    assert sorted(m for m in loaded if m.startswith(forbidden)) == []
