"""One demo session, start to exit status: signals and the temp directory, the mesh
brought up, then the walkthrough of the steps (live view) or the headless step, and
whatever happens, every child stopped and the result or the failure printed."""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from meshcore.cli.demo import probes
from meshcore.cli.demo.errors import DemoError, Interrupted
from meshcore.cli.demo.launch import Run, launch
from meshcore.cli.demo.mesh import Mesh, Step
from meshcore.cli.demo.ports import check_ports_free
from meshcore.cli.demo.processes import Processes
from meshcore.cli.demo.report import headless_report, print_result, step_result
from meshcore.cli.demo.traffic import TrafficGenerator
from meshcore.cli.demo.view import LiveView, SidecarRates


async def run_demo(args: argparse.Namespace, mesh: Mesh) -> int:
    """The whole demo; its exit status (0, 1 on a failure, 130 when interrupted early)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(signum, stop.set)
    temp = Path(tempfile.mkdtemp(prefix="meshcore-demo-"))
    config_dir = temp / "config"
    processes = Processes(temp)
    atexit.register(processes.stop)
    run = Run(args, mesh, temp, config_dir, processes, stop)
    view = LiveView(sys.stdout, args) if not args.headless else None
    failed: DemoError | None = None
    result: dict[str, Any] | None = None
    try:
        result = await _run(run, view)
    except Interrupted:
        result = None
    except DemoError as error:
        failed = error
    finally:
        if view is not None:
            view.close()
        processes.stop()
        if failed is not None:
            print(f"meshcore demo: {failed}", file=sys.stderr)
        if args.keep_temp or (failed is not None and processes.children):  # logs to read
            print(f"meshcore demo: config and logs kept in {temp}", file=sys.stderr)
        else:
            shutil.rmtree(temp, ignore_errors=True)
    if failed is not None:
        return 1
    if result is None:
        return 130
    print_result(args.output, result, headless=args.headless)
    return 0


async def _run(run: Run, view: LiveView | None) -> dict[str, Any]:
    """Starts everything, then runs the steps (or the headless one); the result."""
    first = run.mesh.step(run.args.step if run.args.headless else 1)
    check_ports_free(run.mesh)
    run.write_config(first)
    if view is not None:
        view.starting(run)
    await launch(run)
    args = run.args
    generator = TrafficGenerator(
        run.mesh.entry.inbound_port, args.rate, args.connections, args.jason_share
    )
    generator.start()
    try:
        if view is None:
            return await _headless(run, generator, first)
        return await _walkthrough(run, generator, view)
    finally:
        await generator.stop()


async def _headless(run: Run, generator: TrafficGenerator, step: Step) -> dict[str, Any]:
    """Runs `step` for ``--duration``; the report."""
    before = await asyncio.to_thread(run.sidecar_stats)
    generator.reset()
    deadline = time.monotonic() + run.args.duration
    while time.monotonic() < deadline:
        if await _sleep_or_stop(run, min(0.5, max(0.0, deadline - time.monotonic()))):
            break
    await generator.stop()
    after = await asyncio.to_thread(run.sidecar_stats)
    return headless_report(run.mesh, step, generator.metrics, before, after)


async def _walkthrough(run: Run, generator: TrafficGenerator, view: LiveView) -> dict[str, Any]:
    """Walks through the steps until the last one's time is up or Ctrl-C; a summary."""
    started = time.monotonic()
    steps = run.mesh.steps
    history: list[dict[str, Any]] = []
    index = 0
    step_started = time.monotonic()
    rates = SidecarRates()
    applied = rates.update(await asyncio.to_thread(run.sidecar_stats), run.mesh.entry.name)
    generator.reset()
    while True:
        elapsed = time.monotonic() - started
        if run.args.duration is not None and elapsed >= run.args.duration:
            break
        in_step = time.monotonic() - step_started
        if index + 1 < len(steps) and in_step >= run.args.step_seconds:
            history.append(step_result(run.mesh, steps[index], generator.metrics))
            index += 1
            run.apply_step(steps[index])
            view.note(f"applied {steps[index].path.name}")
            applied = await _wait_applied(run, applied)
            generator.reset()
            step_started = time.monotonic()
        rates.update(await asyncio.to_thread(run.sidecar_stats), run.mesh.entry.name)
        view.draw(run, steps[index], generator.metrics, history, time.monotonic() - step_started)
        view.draw_sidecars(rates)
        if await _sleep_or_stop(run, 1.0):
            break
    history.append(step_result(run.mesh, steps[index], generator.metrics))
    return {"steps": history}


async def _wait_applied(run: Run, before: str | None, timeout: float = 10.0) -> str | None:
    """Until productpage's sidecar serves a snapshot other than `before`; its version."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run.processes.check()
        stats = await asyncio.to_thread(probes.stats, run.entry_ports.admin)
        version = probes.snapshot_version(stats)
        if version is not None and version != before:
            return version
        await asyncio.sleep(0.05)
    problem = await asyncio.to_thread(probes.sync_problem, run.monitoring_port)
    raise DemoError(
        problem or f"productpage's sidecar did not get the new route within {timeout:g}s"
    )


async def _sleep_or_stop(run: Run, seconds: float) -> bool:
    """Sleeps, checking the children; True when asked to stop."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(run.stop.wait(), timeout=seconds)
    run.processes.check()
    return run.stop.is_set()
