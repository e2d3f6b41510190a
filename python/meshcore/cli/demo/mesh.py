"""The mesh as the example declares it: its workloads (app and sidecar ports) and the steps
of ``steps/`` with the reviews split each one routes."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from meshcore.cli.demo.errors import DemoError
from meshcore.config import Sidecar, VirtualService, WorkloadEntry, load_paths

_REPO_EXAMPLES = Path(__file__).resolve().parents[4] / "examples" / "bookinfo"
_SERVICE_ORDER = {"productpage": 0, "reviews": 1, "ratings": 2}


def service_order(service: str, version: str) -> tuple[int, str]:
    """Sort key: the call chain's order (productpage, reviews, ratings), then version."""
    return _SERVICE_ORDER.get(service, 9), version


@dataclass(frozen=True)
class Workload:
    """One workload of the example: its app and the sidecar in front of it."""

    name: str
    service: str
    version: str
    service_account: str
    app_port: int
    """Where the app listens (the Sidecar's ingress ``defaultEndpoint``)."""
    inbound_port: int
    """The sidecar's inbound listener (the WorkloadEntry's port, the Sidecar's ingress port)."""

    @property
    def labels(self) -> str:
        return f"app={self.service},version={self.version}"


@dataclass(frozen=True)
class Step:
    number: int
    path: Path
    title: str
    text: str
    weights: dict[str, int]
    """The catch-all route's split of reviews, subset → weight."""
    header_routes: tuple[tuple[str, str, str], ...]
    """(header, exact value, subset) of the matching routes."""


@dataclass(frozen=True)
class Mesh:
    examples: Path
    base_files: tuple[Path, ...]
    workloads: tuple[Workload, ...]
    steps: tuple[Step, ...]

    @classmethod
    def load(cls, examples: Path) -> Mesh:
        base_files = tuple(sorted(p for p in examples.glob("*.yaml") if p.is_file()))
        loaded = load_paths(base_files)
        if loaded.errors:
            raise DemoError(
                f"{examples} does not load: "
                + "; ".join(str(d) for d in loaded.diagnostics if d.is_error)
            )
        workloads = _workloads(loaded.resources)
        if not any(w.service == "productpage" for w in workloads):
            raise DemoError(f"{examples} declares no productpage WorkloadEntry")
        steps = tuple(_step(i, p) for i, p in enumerate(sorted(examples.glob("steps/*.yaml")), 1))
        if not steps:
            raise DemoError(f"{examples}/steps has no step files")
        return cls(examples, base_files, tuple(workloads), steps)

    def step(self, number: int) -> Step:
        if not 1 <= number <= len(self.steps):
            raise DemoError(f"--step {number}: the example has steps 1 to {len(self.steps)}")
        return self.steps[number - 1]

    @property
    def entry(self) -> Workload:
        return next(w for w in self.workloads if w.service == "productpage")


def examples_dir(given: Path | None) -> Path:
    """`given`, or by default the repository's examples/bookinfo."""
    for candidate in [given] if given is not None else [_REPO_EXAMPLES, Path("examples/bookinfo")]:
        if candidate.is_dir():
            return candidate
    raise DemoError(f"no bookinfo example at {given or _REPO_EXAMPLES}; give one with --examples")


def _workloads(resources: Iterable[object]) -> list[Workload]:
    entries = [r for r in resources if isinstance(r, WorkloadEntry)]
    sidecars = [r for r in resources if isinstance(r, Sidecar)]
    workloads = []
    for entry in entries:
        labels = entry.spec.labels or {}
        where = f"WorkloadEntry {entry.metadata.namespace}/{entry.metadata.name}"
        if "app" not in labels or "version" not in labels:
            raise DemoError(f"{where} needs `app` and `version` labels")
        inbound = (entry.spec.ports or {}).get("http")
        if inbound is None:
            raise DemoError(f"{where} has no `http` port (its sidecar's inbound listener)")
        app_port = None
        for sidecar in sidecars:
            selector = sidecar.spec.workload_selector
            wanted = (selector.labels if selector else None) or {}
            if not wanted or not all(labels.get(k) == v for k, v in wanted.items()):
                continue
            for ingress in sidecar.spec.ingress or ():
                if ingress.port.number == inbound and ingress.default_endpoint:
                    app_port = int(ingress.default_endpoint.rpartition(":")[2])
        if app_port is None:
            raise DemoError(
                f"{where}: no Sidecar ingress on port {inbound} with a defaultEndpoint "
                "(where the app listens)"
            )
        workloads.append(
            Workload(
                name=entry.metadata.name,
                service=labels["app"],
                version=labels["version"],
                service_account=entry.spec.service_account or "default",
                app_port=app_port,
                inbound_port=inbound,
            )
        )
    return sorted(workloads, key=lambda w: service_order(w.service, w.version))


def _step(number: int, path: Path) -> Step:
    text = path.read_text(encoding="utf-8")
    loaded = load_paths([path])
    if loaded.errors:
        raise DemoError(f"{path} does not load")
    title = next((ln.lstrip("# ").strip() for ln in text.splitlines() if ln.startswith("#")), "")
    weights: dict[str, int] = {}
    headers: list[tuple[str, str, str]] = []
    for vs in (r for r in loaded.resources if isinstance(r, VirtualService)):
        for rule in vs.spec.http or ():
            route = rule.route or []
            subsets = [(d.destination.subset or "", d.weight) for d in route]
            if not rule.match:
                total = sum(w or 0 for _, w in subsets) or 100
                weights = {s: (w if w is not None else total) for s, w in subsets}
                break
            for match in rule.match:
                for header, value in (match.headers or {}).items():
                    if value.exact is not None and len(subsets) == 1:
                        headers.append((header, value.exact, subsets[0][0]))
    return Step(number, path, title, text, weights, tuple(headers))
