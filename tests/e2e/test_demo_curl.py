"""The running demo seen from a real HTTP client: curl through productpage's sidecar, as
the live view's "try:" line suggests, while the demo walks from step 1 to step 3."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.integration.support import REPO
from tests.integration.test_demo import bookinfo_copy

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")


def _curl(*args: str) -> dict[str, object]:
    out = subprocess.run(
        ["curl", "-sS", "--fail-with-body", "--max-time", "5", *args],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    )
    body: dict[str, object] = json.loads(out.stdout)
    return body


def _wait_for(output: list[str], pattern: str, process: subprocess.Popen[str]) -> re.Match[str]:
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        for line in list(output):
            if match := re.search(pattern, line):
                return match
        assert process.poll() is None, "".join(output[-40:])
        time.sleep(0.05)
    raise AssertionError(f"no {pattern!r} in:\n{''.join(output[-40:])}")


def test_curl_through_the_sidecars_follows_each_step(tmp_path: Path) -> None:
    examples, ports = bookinfo_copy(tmp_path / "bookinfo")
    argv = [sys.executable, "-m", "meshcore.cli.main", "demo", "--examples", str(examples)]
    process = subprocess.Popen(
        [*argv, "--step-seconds", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
        env=dict(os.environ),
        start_new_session=True,
    )
    output: list[str] = []
    assert process.stdout is not None
    stdout = process.stdout
    reader = threading.Thread(target=lambda: output.extend(iter(stdout.readline, "")))
    reader.start()
    try:
        proxy = _wait_for(output, r"try: curl -x (http://127\.0\.0\.1:\d+)", process).group(1)
        # Step 1: reviews v1 for everyone, jason included, straight through the sidecar...
        for _ in range(5):
            reply = _curl("-x", proxy, "-H", "end-user: jason", "http://reviews:9080/")
            assert reply == {"service": "reviews", "version": "v1"}
        # ... and the whole chain, entering productpage through its sidecar's inbound port.
        page = _curl(f"http://127.0.0.1:{ports[19181]}/")  # productpage's sidecar, inbound
        assert page["service"] == "productpage"
        assert page["call"]["body"]["version"] == "v1"  # type: ignore[index]
        # Step 3: jason's requests go to v2, and v2 calls ratings through its own sidecar.
        _wait_for(output, r"Step 3/3", process)
        time.sleep(0.3)
        for _ in range(5):
            reply = _curl("-x", proxy, "-H", "end-user: jason", "http://reviews:9080/")
            assert reply["version"] == "v2"
            assert reply["call"]["status"] == 200  # type: ignore[index]
            assert reply["call"]["body"] == {  # type: ignore[index]
                "service": "ratings",
                "version": "v1",
                "stars": 5,
            }
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
        assert process.wait(15) == 0
        reader.join(5)
    assert "step 3 (" in "".join(output[-5:])
