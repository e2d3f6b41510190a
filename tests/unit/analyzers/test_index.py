"""The index the analyzers share: host resolution, visibility, workloads and line look-ups."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshcore.config import load_paths, load_text
from meshcore.config.analyzers import analyze, format_text, hosts
from meshcore.config.analyzers.index import ResourceIndex, format_selector, selects

SERVICES = """\
apiVersion: v1
kind: Service
metadata:
  name: reviews
  namespace: shop
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080}]
---
apiVersion: v1
kind: Service
metadata:
  name: private
  namespace: shop
  annotations:
    networking.istio.io/exportTo: "."
spec:
  ports: [{name: http, port: 80}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: external
  namespace: shop
spec:
  hosts: ["*.example.com"]
  exportTo: ["."]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: NONE
"""


@pytest.mark.parametrize(
    ("namespace", "host", "fqdn"),
    [
        ("default", "reviews", "reviews.default.svc.cluster.local"),
        ("shop", "reviews.shop.svc.cluster.local", "reviews.shop.svc.cluster.local"),
        ("shop", "api.example.com", "api.example.com"),
        ("shop", "*.example.com", "*.example.com"),
    ],
)
def test_short_names_resolve_in_the_namespace(namespace: str, host: str, fqdn: str) -> None:
    assert hosts.to_fqdn(namespace, host) == fqdn


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("*", "anything.com", True),
        ("*.example.com", "api.example.com", True),
        ("api.example.com", "*.example.com", True),
        ("*.example.com", "*.api.example.com", True),
        ("*.example.com", "example.org", False),
        ("a.com", "b.com", False),
    ],
)
def test_host_matching_with_wildcards(a: str, b: str, expected: bool) -> None:
    assert hosts.matches(a, b) is expected


def test_lookup_honours_short_names_export_and_wildcards() -> None:
    index = ResourceIndex(load_text(SERVICES, "s.yaml"))
    assert index.lookup_host("reviews", "shop") is not None
    assert index.lookup_host("reviews", "default") is None  # reviews.default does not exist
    assert index.lookup_host("reviews.shop.svc.cluster.local", "default") is not None
    assert index.lookup_host("private.shop.svc.cluster.local", "shop") is not None
    assert index.lookup_host("private.shop.svc.cluster.local", "default") is None
    found = index.lookup_host("api.example.com", "shop")
    assert found is not None
    assert found.host == "*.example.com"
    assert index.lookup_host("api.example.com", "default") is None


def test_selectors() -> None:
    assert selects({"app": "a"}, {"app": "a", "version": "v1"})
    assert not selects({"app": "a", "version": "v2"}, {"app": "a", "version": "v1"})
    assert selects(None, {"x": "y"})
    assert format_selector({"b": "2", "a": "1"}) == "a=1,b=2"


def test_findings_inside_a_list_point_at_the_right_line(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text(
        """\
apiVersion: v1
kind: List
items:
  - apiVersion: networking.istio.io/v1
    kind: VirtualService
    metadata:
      name: a
    spec:
      hosts: [a]
      http:
        - route:
            - destination:
                host: missing
"""
    )
    (finding,) = [d for d in analyze(load_paths([path])) if d.code == "IST0101"]
    assert finding.line == 13
    assert format_text(finding) == (
        f'Error [IST0101] (VirtualService default/a {path}:13) Referenced host not found: "missing"'
    )


def test_unimplemented_fields_are_located_and_strict_makes_them_errors(tmp_path: Path) -> None:
    path = tmp_path / "vs.yaml"
    path.write_text(
        """\
apiVersion: v1
kind: Service
metadata: {name: a}
spec: {ports: [{name: http, port: 80}]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: a
spec:
  hosts: [a]
  http:
    - fault:
        abort: {httpStatus: 500, percentage: {value: 1}}
      route:
        - destination: {host: a}
"""
    )
    (warning,) = analyze(load_paths([path]))
    assert (warning.code, warning.level.value, warning.line) == ("MC0003", "Warning", 13)
    assert warning.path == "spec.http[0].fault"
    (error,) = analyze(load_paths([path]), strict=True)
    assert error.level.value == "Error"


def test_a_crashing_analyzer_is_an_internal_error() -> None:
    class Broken:
        name = "broken"
        description = "always fails"
        codes = ("IST0001",)

        def analyze(self, index: ResourceIndex) -> list[object]:
            raise RuntimeError("boom")

    found = analyze(load_text(SERVICES, "s.yaml"), analyzers=[Broken()])  # type: ignore[list-item]
    (internal,) = [d for d in found if d.code == "IST0001"]
    assert "broken failed: RuntimeError('boom')" in internal.message
    assert format_text(internal).startswith("Error [IST0001] Internal error: analyzer broken")
