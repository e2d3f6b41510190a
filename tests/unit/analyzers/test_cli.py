"""`meshcore analyze` as a user runs it: a subprocess from the repository root."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
FIXTURES = "tests/fixtures/analyze"


def meshcore_analyze(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "meshcore.cli.main", "analyze", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_text_output_in_istioctl_form_and_exit_status_1_on_errors() -> None:
    done = meshcore_analyze(f"{FIXTURES}/destination_subsets/bad.yaml")
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    assert (
        "Error [IST0101] (VirtualService default/reviews "
        f"{FIXTURES}/destination_subsets/bad.yaml:45) "
        'Referenced host+subset in destinationrule not found: "reviews+v2"'
    ) in lines


def test_json_output() -> None:
    done = meshcore_analyze("-o", "json", f"{FIXTURES}/destination_hosts/bad.yaml")
    assert done.returncode == 1
    found = json.loads(done.stdout)
    first = next(item for item in found if item["code"] == "IST0101")
    assert first == {
        "code": "IST0101",
        "level": "Error",
        "origin": "VirtualService default/reviews",
        "message": 'Referenced host not found: "reviews2"',
        "path": "spec.http[0].route[0].destination.host",
        "file": f"{FIXTURES}/destination_hosts/bad.yaml",
        "line": 49,
        "documentation_url": "https://istio.io/latest/docs/reference/config/analysis/ist0101/",
    }
    assert found == sorted(found, key=lambda item: (item["origin"], item["code"], item["line"]))


def test_warnings_pass_the_default_threshold_but_not_warning() -> None:
    path = f"{FIXTURES}/destination_rule_hosts/bad.yaml"
    done = meshcore_analyze(path)
    assert done.returncode == 0
    assert "Warning [IST0174]" in done.stdout
    assert meshcore_analyze("--failure-threshold", "Warning", path).returncode == 1
    assert meshcore_analyze("--failure-threshold", "Info", path).returncode == 1


def test_info_fails_only_at_the_info_threshold() -> None:
    path = f"{FIXTURES}/service_port_names/bad.yaml"
    assert meshcore_analyze(path).returncode == 0
    assert meshcore_analyze("--failure-threshold", "Warning", path).returncode == 0
    assert meshcore_analyze("--failure-threshold", "Info", path).returncode == 1


def test_clean_files_print_the_success_line() -> None:
    path = f"{FIXTURES}/destination_subsets/good.yaml"
    done = meshcore_analyze(path)
    assert done.returncode == 0
    assert done.stdout == ""
    assert done.stderr.strip() == f"\u2714 No validation issues found when analyzing {path}."


def test_bookinfo_passes_and_strict_fails_on_unimplemented_fields() -> None:
    path = f"{FIXTURES}/bookinfo"
    done = meshcore_analyze(path)
    assert done.returncode == 0, done.stdout
    assert {line.split()[1] for line in done.stdout.splitlines()} == {"[MC0003]"}
    strict = meshcore_analyze("--strict", path)
    assert strict.returncode == 1
    assert strict.stdout.startswith("Error [MC0003] (Gateway default/bookinfo-gateway ")
    quiet = meshcore_analyze("--output-threshold", "Error", path)
    assert quiet.returncode == 0
    assert "No validation issues found" in quiet.stderr


def test_namespace_filter_and_all_namespaces() -> None:
    bad = f"{FIXTURES}/virtualservice_gateways/bad.yaml"
    default = meshcore_analyze(bad)
    assert "(VirtualService default/reviews " in default.stdout
    assert "(Gateway istio-system/public " not in default.stdout
    other = meshcore_analyze("-n", "istio-system", bad)
    assert other.returncode == 0
    assert "(VirtualService default/reviews " not in other.stdout
    assert "(Gateway istio-system/public " in other.stdout
    everything = meshcore_analyze("-A", bad)
    assert "(VirtualService default/reviews " in everything.stdout
    assert "(Gateway istio-system/public " in everything.stdout


def test_schema_errors_are_reported() -> None:
    done = meshcore_analyze(f"{FIXTURES}/../config/invalid")
    assert done.returncode == 1
    assert "[IST0106]" in done.stdout
