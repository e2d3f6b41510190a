"""``meshcore demo`` end to end: sample services, a sidecar process and traffic."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.integration.support import REPO, free_port


def test_demo_headless_reports_the_canary_split() -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "meshcore.cli.main",
            "demo",
            "--duration",
            "3",
            "--admin-port",
            str(free_port()),
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        check=True,
    )
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["errors"] == 0
    assert report["requests"] > 100
    by_version = report["by_version"]
    assert set(by_version) == {"v1", "v2"}
    assert by_version["v1"] > by_version["v2"]
    assert report["sidecar"]["connections_opened"] == report["requests"]
