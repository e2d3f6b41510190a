"""Compile at scale: 1,000 services with a VirtualService and DestinationRule each, 100 proxies.

Generates the config as YAML text, parses it with the real loader, builds the registry,
then compiles a snapshot for each of 100 proxies (spread over 10 namespaces) with one
indexed `Compiler`. A `Compiler` shares pieces between proxies, so three cases are
reported apart: cold (the first proxy of a fresh `Compiler`, repeated), the first proxy
of each namespace, and the rest; the target is < 1 s for one proxy seeing 1,000 services,
cold. Then one VirtualService is edited and the next generation's compiler (given the
previous one) compiles a proxy again. Reports parse time and snapshot size too, and writes
bench/results/<date>-compile-scale.json (or --output).

    .venv/bin/python bench/compile_scale.py [--services 1000] [--proxies 100]
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import time
from pathlib import Path

from meshcore.compile import Compiler, ProxyIdentity
from meshcore.config import load_text
from meshcore.registry import registry_from_resources

NAMESPACES = 10


def generate(services: int) -> str:
    docs = []
    for i in range(services):
        ns = f"ns{i % NAMESPACES}"
        name = f"svc{i}"
        docs.append(f"""apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {ns}}}
spec:
  selector: {{app: {name}}}
  ports: [{{name: http, port: 8080}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: {name}-v1, namespace: {ns}, labels: {{app: {name}, version: v1}}}}
spec: {{containers: [{{name: app}}]}}
status: {{podIP: 10.{i // 250}.{i % 250}.1}}
---
apiVersion: v1
kind: Pod
metadata: {{name: {name}-v2, namespace: {ns}, labels: {{app: {name}, version: v2}}}}
spec: {{containers: [{{name: app}}]}}
status: {{podIP: 10.{i // 250}.{i % 250}.2}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: {name}, namespace: {ns}}}
spec:
  host: {name}
  trafficPolicy: {{loadBalancer: {{simple: ROUND_ROBIN}}}}
  subsets:
  - {{name: v1, labels: {{version: v1}}}}
  - {{name: v2, labels: {{version: v2}}}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {name}, namespace: {ns}}}
spec:
  hosts: [{name}]
  http:
  - match: [{{headers: {{end-user: {{exact: jason}}}}}}]
    route: [{{destination: {{host: {name}, subset: v2}}}}]
  - route:
    - {{destination: {{host: {name}, subset: v1}}, weight: 90}}
    - {{destination: {{host: {name}, subset: v2}}, weight: 10}}
    timeout: 5s
""")
    return "---\n".join(docs)


def _stats(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {
        "median": round(statistics.median(ordered), 4),
        "p90": round(ordered[max(0, int(len(ordered) * 0.9) - 1)], 4),
        "max": round(ordered[-1], 4),
    }


EDITED_VS = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: svc0, namespace: ns0}
spec:
  hosts: [svc0]
  http:
  - match: [{uri: {prefix: /v2}}]
    route: [{destination: {host: svc0, subset: v2}}]
  - route: [{destination: {host: svc0, subset: v1}}]
    timeout: 3s
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--proxies", type=int, default=100)
    parser.add_argument("--cold", type=int, default=5, help="fresh compilers to time")
    parser.add_argument("--output", type=Path, help="default: results/<date>-compile-scale.json")
    args = parser.parse_args()

    text = generate(args.services)
    start = time.perf_counter()
    result = load_text(text, "generated.yaml")
    parse_s = time.perf_counter() - start
    assert not result.errors, result.errors[:3]
    start = time.perf_counter()
    registry = registry_from_resources(result.resources)
    compiler = Compiler(result.resources, registry)
    index_s = time.perf_counter() - start

    times = []
    size = 0
    for p in range(args.proxies):
        proxy = ProxyIdentity(name=f"client{p}", namespace=f"ns{p % NAMESPACES}")
        start = time.perf_counter()
        compiled = compiler.compile_with_report(proxy)
        times.append(time.perf_counter() - start)
        size = len(compiled.payload)
    first_in_namespace = times[1:NAMESPACES]
    rest = times[NAMESPACES:]

    cold = []
    for i in range(args.cold):
        fresh = Compiler(result.resources, registry)
        proxy = ProxyIdentity(name=f"cold{i}", namespace=f"ns{i % NAMESPACES}")
        start = time.perf_counter()
        fresh.compile(proxy)
        cold.append(time.perf_counter() - start)

    edited = load_text(EDITED_VS, "edited.yaml").resources
    resources = [
        r
        for r in result.resources
        if not (r.kind == "VirtualService" and r.metadata.name == "svc0")
    ] + edited
    start = time.perf_counter()
    next_registry = registry_from_resources(resources)
    next_compiler = Compiler(resources, next_registry, previous=compiler)
    edit_index_s = time.perf_counter() - start
    start = time.perf_counter()
    next_compiler.compile(ProxyIdentity(name="client0", namespace="ns0"))
    edit_compile_s = time.perf_counter() - start
    times.sort()
    report = {
        "benchmark": "compile_scale",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "services": args.services,
        "virtual_services": args.services,
        "proxies": args.proxies,
        "parse_seconds": round(parse_s, 3),
        "registry_and_index_seconds": round(index_s, 3),
        "compile_seconds_per_proxy": _stats(times),
        "compile_seconds_cold": _stats(cold),
        "compile_seconds_first_in_namespace": _stats(first_in_namespace),
        "compile_seconds_shared": _stats(rest),
        "compile_seconds_all_proxies": round(sum(times), 3),
        "after_editing_one_virtual_service": {
            "registry_and_index_seconds": round(edit_index_s, 3),
            "compile_seconds": round(edit_compile_s, 4),
        },
        "snapshot_bytes": size,
        "target_seconds_per_proxy": 1.0,
        "meets_target": max(times[-1], *cold) < 1.0,
    }
    out = args.output or (
        Path(__file__).parent / "results" / f"{datetime.date.today()}-compile-scale.json"
    )
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
