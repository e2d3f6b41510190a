"""The live view: once a second, the step's YAML, per service version requests/s, success
and p50/p99 over a sliding window, the reviews split the YAML asks for next to the one
observed, and the sidecars' own request rates. A full-screen ANSI redraw on a terminal;
plain frames otherwise."""

from __future__ import annotations

import argparse
import contextlib
import math
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from meshcore.cli.demo.launch import Run
from meshcore.cli.demo.mesh import Step, service_order
from meshcore.cli.demo.metrics import WINDOW_SECONDS, Metrics, percentile
from meshcore.cli.demo.probes import SidecarStats, snapshot_version
from meshcore.cli.demo.report import split_text

_BOLD, _DIM, _GREEN, _YELLOW, _RED, _RESET = (
    "\x1b[1m",
    "\x1b[2m",
    "\x1b[32m",
    "\x1b[33m",
    "\x1b[31m",
    "\x1b[0m",
)


@dataclass
class SidecarRates:
    """HTTP requests/s each sidecar's data plane handled, from its admin ``/stats``."""

    rates: dict[str, float | None] = field(default_factory=dict)
    _last: dict[str, tuple[float, int]] = field(default_factory=dict)

    def update(self, stats: SidecarStats, entry: str) -> str | None:
        """Takes a reading; returns the snapshot version `entry` serves."""
        now = time.monotonic()
        for name, reading in stats.items():
            if reading is None:
                self.rates[name] = None
                continue
            count = int(reading.get("totals", {}).get("http_requests", 0))
            last = self._last.get(name)
            self.rates[name] = (count - last[1]) / (now - last[0]) if last else 0.0
            self._last[name] = (now, count)
        return snapshot_version(stats.get(entry))


class LiveView:
    """A full-screen ANSI redraw once a second on a terminal; plain frames otherwise."""

    def __init__(self, out: TextIO, args: argparse.Namespace) -> None:
        self.out = out
        self.args = args
        self.tty = out.isatty()
        self._note: str | None = None
        self._pending: list[str] = []
        if self.tty:
            out.write("\x1b[?25l")  # hide the cursor while redrawing

    def close(self) -> None:
        if self.tty:
            self.out.write("\x1b[?25h\n")
            self.out.flush()

    def note(self, text: str) -> None:
        self._note = text

    def starting(self, run: Run) -> None:
        self._emit(
            [
                f"meshcore demo: starting the control plane, {len(run.mesh.workloads)} apps and "
                f"their sidecars from {run.mesh.examples} (logs in {run.temp}) ..."
            ]
        )

    def draw(
        self,
        run: Run,
        step: Step,
        metrics: Metrics,
        history: list[dict[str, Any]],
        in_step: float,
    ) -> None:
        width = shutil.get_terminal_size((100, 40)).columns if self.tty else 120
        now = time.monotonic()
        timing = f"   {in_step:.0f}s"
        if step.number < len(run.mesh.steps):
            timing += f" of {run.args.step_seconds:g}s"
        lines = [
            self._c(_BOLD, "meshcore demo")
            + f" · bookinfo on 127.0.0.1 · control plane :{run.control_port}"
            + f" · {len(run.processes.children)} processes · Ctrl-C to stop",
            self._c(
                _DIM,
                f"try: curl -x http://127.0.0.1:{run.entry_ports.outbound} "
                "-H 'end-user: jason' http://reviews:9080/",
            ),
            "",
            self._c(_BOLD, f"Step {step.number}/{len(run.mesh.steps)}: {step.title}")
            + self._c(_DIM, timing),
            self._c(_DIM, f"── {_relative(step.path)} " + "─" * 30),
        ]
        for line in step.text.splitlines()[1:]:
            if line.startswith("#"):
                if line.strip("# "):
                    lines.append(self._c(_DIM, line[: width - 1]))
            else:
                lines.append(line[: width - 1])
        lines.append(self._c(_DIM, "─" * min(width - 1, 80)))
        lines.append(
            f"{'service':<12} {'version':<8} {'req/s':>7} {'success':>8} {'p50 ms':>8} "
            f"{'p99 ms':>8} {'requests':>9}  share of reviews"
        )
        reviews_total = sum(metrics.by_version("reviews").values())
        for (service, version), series in sorted(
            metrics.series.items(), key=lambda kv: service_order(*kv[0])
        ):
            series.trim(now)
            window = list(series.window)
            span = min(WINDOW_SECONDS, max(now - metrics.started, 1e-3))
            ok = sum(1 for _, good, _ in window if good)
            success = 100.0 * ok / len(window) if window else 100.0
            lat = [ms for _, _, ms in window]
            share = ""
            if service == "reviews" and reviews_total:
                fraction = series.requests / reviews_total
                share = f"{100 * fraction:5.1f}% {'█' * round(fraction * 30)}"
            colour = _GREEN if success >= 99.9 else _YELLOW if success >= 95 else _RED
            lines.append(
                f"{service:<12} {version:<8} {len(window) / span:>7.1f} "
                + self._c(colour, f"{success:>7.1f}%")
                + f" {percentile(lat, 0.5):>8.2f} {percentile(lat, 0.99):>8.2f}"
                f" {series.requests:>9}  {share}"
            )
        weights = "  ".join(f"{s} {w}%" for s, w in step.weights.items()) or "-"
        jason_route = next(
            (subset for h, v, subset in step.header_routes if (h, v) == ("end-user", "jason")),
            None,
        )
        lines.append("")
        lines.append(f"{'reviews routes':<34} {'the YAML says':<22} observed this step")
        lines.append(
            f"{'  with end-user: jason':<34} {jason_route or weights:<22} "
            f"{split_text(dict(metrics.jason))}"
        )
        lines.append(f"{'  everyone else':<34} {weights:<22} {split_text(dict(metrics.others))}")
        if converging := _convergence(step.weights, metrics.others):
            lines.append(f"{'':<57} {converging}")
        lines.append(
            f"generator: {metrics.requests} requests, {metrics.errors} errors, "
            f"{100 * self.args.jason_share:.0f}% as jason"
            + (f"   last error: {metrics.last_error}" if metrics.last_error else "")
        )
        if history:
            done = "   ".join(f"step {h['number']}: {split_text(h['by_version'])}" for h in history)
            lines.append(self._c(_DIM, f"earlier: {done}"))
        if self._note:
            lines.append(self._c(_DIM, self._note))
            self._note = None
        self._pending = lines

    def draw_sidecars(self, rates: SidecarRates) -> None:
        """The sidecars' own count of requests/s (both directions), then shows the frame."""
        parts = [
            f"{name} {'down' if rate is None else f'{rate:.0f}'}"
            for name, rate in sorted(rates.rates.items())
        ]
        self._emit([*self._pending, self._c(_DIM, "sidecars, req/s: " + "  ".join(parts))])
        self._pending = []

    def _c(self, code: str, text: str) -> str:
        return f"{code}{text}{_RESET}" if self.tty else text

    def _emit(self, lines: list[str]) -> None:
        if self.tty:  # home, each line cleared to its end, then clear below: no flicker
            self.out.write("\x1b[H" + "".join(f"{ln}\x1b[K\n" for ln in lines) + "\x1b[J")
        else:
            self.out.write("\n".join(lines) + "\n\n")
        self.out.flush()


def _convergence(weights: dict[str, int], observed: Counter[str]) -> str:
    """For a weighted split: the smallest subset's observed share with its 95% interval,
    which narrows as requests add up (1.96 standard errors of a proportion)."""
    total = sum(observed.values())
    if len(weights) < 2 or not total:
        return ""
    subset = min(weights, key=lambda s: weights[s])
    share = observed[subset] / total
    margin = 1.96 * math.sqrt(max(share * (1 - share), 1e-9) / total)
    expected = 100 * weights[subset] / sum(weights.values())
    return (
        f"{subset} {100 * share:.1f}% ±{100 * margin:.1f} (95%, n={total}; "
        f"the YAML says {expected:g}%)"
    )


def _relative(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(path.resolve().relative_to(Path.cwd()))
    return str(path)
