"""What a run reports when it ends: the headless step's report (the generator's counts, the
sidecars' own counts and the entry sidecar's split of reviews by subset) or each
walkthrough step's counts, printed as one JSON object or as text."""

from __future__ import annotations

import json
from typing import Any

from meshcore.cli.demo.mesh import Mesh, Step
from meshcore.cli.demo.metrics import Metrics
from meshcore.cli.demo.probes import SidecarStats


def step_result(mesh: Mesh, step: Step, metrics: Metrics) -> dict[str, Any]:
    """A walkthrough step: which one, and what the generator saw during it."""
    return {**_step_info(mesh, step), **metrics.report()}


def headless_report(
    mesh: Mesh, step: Step, metrics: Metrics, before: SidecarStats, after: SidecarStats
) -> dict[str, Any]:
    """The headless step: what the generator saw, and the sidecars' counts from `before` to
    `after`."""
    report = metrics.report()
    report["step"] = _step_info(mesh, step)
    report["sidecars"] = _sidecar_report(before, after)
    report["mesh_by_version"] = _cluster_split(before, after, mesh.entry.name, "reviews")
    return report


def print_result(output: str, result: dict[str, Any], *, headless: bool) -> None:
    if output == "json":
        print(json.dumps(result, sort_keys=True))
    elif headless:
        step = result["step"]
        print(f"step {step['number']}: {step['title']}")
        print(
            f"{result['requests']} requests in {result['seconds']}s, {result['errors']} "
            f"errors; reviews by version: {split_text(result['by_version'])}"
        )
        for line in _table(result["services"]):
            print(line)
    else:
        for step in result["steps"]:
            print(
                f"step {step['number']} ({step['title']}): {step['requests']} requests, "
                f"{step['errors']} errors; reviews {split_text(step['by_version'])}"
            )


def split_text(counts: dict[str, int]) -> str:
    """``v1 90.0% (90)  v3 10.0% (10)``, or ``-`` for no requests."""
    total = sum(counts.values())
    if not total:
        return "-"
    return "  ".join(f"{v} {100 * n / total:.1f}% ({n})" for v, n in sorted(counts.items()))


def _step_info(mesh: Mesh, step: Step) -> dict[str, Any]:
    return {
        "number": step.number,
        "of": len(mesh.steps),
        "file": str(step.path),
        "title": step.title,
        "weights": step.weights,
    }


def _sidecar_report(before: SidecarStats, after: SidecarStats) -> dict[str, Any]:
    """Per sidecar: its snapshot version and what its data plane counted during the run."""
    report: dict[str, Any] = {}
    for name, now in after.items():
        if now is None:
            report[name] = None
            continue
        was = (before.get(name) or {}).get("totals", {})
        totals = now.get("totals", {})
        flags = {
            flag: n - was.get("response_flags", {}).get(flag, 0)
            for flag, n in totals.get("response_flags", {}).items()
        }
        report[name] = {
            "version": now.get("version"),
            "http_requests": totals.get("http_requests", 0) - was.get("http_requests", 0),
            "response_flags": {f: n for f, n in flags.items() if n},
        }
    return report


def _cluster_split(
    before: SidecarStats, after: SidecarStats, sidecar: str, service: str
) -> dict[str, int]:
    """Requests the sidecar routed to each subset cluster of `service` during the run."""

    def counts(stats: dict[str, Any] | None) -> dict[str, int]:
        result = {}
        for cluster in (stats or {}).get("clusters", []):
            parts = str(cluster.get("name", "")).split("|")
            outbound = len(parts) == 4 and parts[0] == "outbound" and parts[2]
            if outbound and parts[3].split(".")[0] == service:
                result[parts[2]] = int(cluster.get("http_requests", 0))
        return result

    was, now = counts(before.get(sidecar)), counts(after.get(sidecar))
    return {subset: n - was.get(subset, 0) for subset, n in sorted(now.items())}


def _table(services: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    lines = [
        f"{'service':<12} {'version':<8} {'requests':>9} {'errors':>7} {'p50 ms':>8} {'p99 ms':>8}"
    ]
    for service, versions in services.items():
        for version, s in versions.items():
            lines.append(
                f"{service:<12} {version:<8} {s['requests']:>9} {s['errors']:>7} "
                f"{s['p50_ms']:>8.2f} {s['p99_ms']:>8.2f}"
            )
    return lines
