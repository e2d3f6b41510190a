"""``meshcore demo`` as a user runs it: a control plane, five apps with their sidecars and
traffic, all real processes; then nothing may be left behind.

Every run gets a unique environment variable, which every child inherits, so the test can
find whatever is left of it by scanning ``/proc`` (no psutil). Runs use a copy of
``examples/bookinfo`` with free ports in place of the example's fixed ones, so a demo (or
another test run) on the same machine cannot make them fail.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.integration.support import REPO

EXAMPLES = REPO / "examples" / "bookinfo"
TOKEN_VAR = "MESHCORE_DEMO_TEST_RUN"


def bookinfo_copy(into: Path) -> tuple[Path, dict[int, int]]:
    """examples/bookinfo with every port it declares (19xxx) replaced by a free one."""
    shutil.copytree(EXAMPLES, into)
    text = (into / "bookinfo.yaml").read_text()
    declared = sorted({int(p) for p in re.findall(r"\b(19\d{3})\b", text)})
    holders = [socket.socket() for _ in declared]
    for holder in holders:
        holder.bind(("127.0.0.1", 0))
    ports = {old: h.getsockname()[1] for old, h in zip(declared, holders, strict=True)}
    for holder in holders:
        holder.close()
    text = re.sub(r"\b19\d{3}\b", lambda m: str(ports[int(m.group())]), text)
    (into / "bookinfo.yaml").write_text(text)
    return into, ports


def _demo_argv(examples: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "meshcore.cli.main", "demo", "--examples", str(examples), *args]


def _leftovers(token: str, word: str = "") -> list[int]:
    """Live processes of the run `token` (whose command line contains `word`)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            cmdline = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        ours = f"{TOKEN_VAR}={token}".encode() in environ and word.encode() in cmdline
        if ours and state != "Z":  # a zombie is gone, only not yet reaped
            found.append(int(entry.name))
    return found


def _assert_nothing_left(token: str) -> None:
    deadline = time.monotonic() + 3
    while (left := _leftovers(token)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not left, f"processes left behind: {left}"


@dataclass
class Interactive:
    """A demo running as in a terminal (own session, like a shell's foreground job)."""

    process: subprocess.Popen[str]
    token: str
    output: list[str] = field(default_factory=list)

    def wait_for(self, text: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in line for line in self.output):
                return
            assert self.process.poll() is None, "".join(self.output[-40:])
            time.sleep(0.05)
        raise AssertionError(f"no {text!r} in the demo's output:\n{''.join(self.output[-40:])}")


@contextmanager
def interactive(examples: Path, *args: str) -> Iterator[Interactive]:
    token = uuid.uuid4().hex
    process = subprocess.Popen(
        _demo_argv(examples, *args),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
        env={**os.environ, TOKEN_VAR: token},
        start_new_session=True,
    )
    demo = Interactive(process, token)
    assert process.stdout is not None
    stdout = process.stdout
    reader = threading.Thread(target=lambda: demo.output.extend(iter(stdout.readline, "")))
    reader.start()
    try:
        yield demo
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)
        reader.join(5)
        for pid in _leftovers(token):  # only if the test failed: don't leak into later tests
            os.kill(pid, signal.SIGKILL)


def test_headless_canary_reports_the_90_10_split_and_leaves_nothing_behind(
    tmp_path: Path,
) -> None:
    examples, _ = bookinfo_copy(tmp_path / "bookinfo")
    token = uuid.uuid4().hex
    started = time.monotonic()
    out = subprocess.run(
        _demo_argv(examples, "--headless", "--duration", "8", "-o", "json"),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={**os.environ, TOKEN_VAR: token},
        check=False,
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["step"]["number"] == 2
    assert report["step"]["weights"] == {"v1": 90, "v3": 10}
    assert report["errors"] == 0, report["last_error"]
    assert report["requests"] >= 300  # 100/s for 8 s, with room for a slow machine
    by_version = report["by_version"]
    assert set(by_version) <= {"v1", "v3"}
    answered = sum(by_version.values())
    assert answered == report["requests"]
    share = by_version.get("v3", 0) / answered
    tolerance = 4 * math.sqrt(0.1 * 0.9 / answered)  # four standard deviations
    assert abs(share - 0.10) <= tolerance, by_version
    # The data plane's own count (productpage's sidecar, per subset cluster) agrees.
    mesh = {v: n for v, n in report["mesh_by_version"].items() if n}
    assert set(mesh) == set(by_version)
    for version, n in by_version.items():
        assert abs(mesh[version] - n) <= 8, (mesh, by_version)
    # Every hop went through a sidecar: reviews v3 calls ratings through its own.
    sidecars = report["sidecars"]
    assert sidecars["reviews-v2"]["http_requests"] == 0
    assert sidecars["ratings-v1"]["http_requests"] == by_version.get("v3", 0)
    assert all(not s["response_flags"] for s in sidecars.values())
    assert report["services"]["ratings"]["v1"]["errors"] == 0
    _assert_nothing_left(token)
    assert time.monotonic() - started < 30


def test_ctrl_c_ends_the_interactive_demo_and_every_process(tmp_path: Path) -> None:
    examples, _ = bookinfo_copy(tmp_path / "bookinfo")
    with interactive(examples, "--step-seconds", "30") as demo:
        demo.wait_for("Step 1/3: All traffic to reviews v1")
        demo.wait_for("productpage  v1")  # traffic flows
        assert len(_leftovers(demo.token)) == 12  # the demo, a control plane, 5 apps, 5 sidecars
        sent = time.monotonic()
        os.killpg(demo.process.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        assert demo.process.wait(10) == 0
        assert time.monotonic() - sent < 5
        _assert_nothing_left(demo.token)


def test_a_dead_sidecar_is_named_and_ends_the_demo(tmp_path: Path) -> None:
    examples, _ = bookinfo_copy(tmp_path / "bookinfo")
    with interactive(examples, "--step-seconds", "30") as demo:
        demo.wait_for("productpage  v1")
        [sidecar] = _leftovers(demo.token, "--name\0reviews-v2\0")
        os.kill(sidecar, signal.SIGKILL)
        assert demo.process.wait(10) == 1
        time.sleep(0.2)
        output = "".join(demo.output)
        assert f"sidecar reviews-v2 (pid {sidecar}) was killed by SIGKILL" in output
        kept = re.search(r"config and logs kept in (\S+)", output)
        assert kept is not None, output  # the logs stay for the user to read; not for us
        assert (Path(kept.group(1)) / "sidecar-reviews-v2.log").is_file()
        shutil.rmtree(kept.group(1))
        _assert_nothing_left(demo.token)


def test_a_taken_port_is_named_before_anything_starts(tmp_path: Path) -> None:
    examples, ports = bookinfo_copy(tmp_path / "bookinfo")
    taken = ports[19083]  # the reviews v2 app's
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", taken))
        holder.listen()
        out = subprocess.run(
            _demo_argv(examples, "--headless", "--duration", "1"),
            capture_output=True,
            text=True,
            timeout=30,
            cwd=REPO,
            check=False,
        )
    assert out.returncode == 1
    assert f"port {taken} (the reviews-v2 app" in out.stderr
    assert "is taken" in out.stderr
    assert "kept in" not in out.stderr  # nothing started, nothing to keep


@pytest.mark.parametrize("step", sorted(p.name for p in EXAMPLES.glob("steps/*.yaml")))
def test_the_example_analyzes_clean_at_every_step(step: str) -> None:
    """The mesh the demo runs at each step: the example's files plus that step's route."""
    files = [str(p) for p in sorted(EXAMPLES.glob("*.yaml"))] + [str(EXAMPLES / "steps" / step)]
    out = subprocess.run(
        [sys.executable, "-m", "meshcore.cli.main", "analyze", *files],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO,
        check=False,
    )
    said = out.stdout + out.stderr
    assert out.returncode == 0, said
    assert "No validation issues found" in said, said


def test_the_default_example_is_found_and_its_steps_checked() -> None:
    """Without --examples the repository's examples/bookinfo is used, from any directory."""
    out = subprocess.run(
        [sys.executable, "-m", "meshcore.cli.main", "demo", "--headless", "--step", "9"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd="/",
        check=False,
    )
    assert out.returncode == 1
    assert "--step 9: the example has steps 1 to 3" in out.stderr
