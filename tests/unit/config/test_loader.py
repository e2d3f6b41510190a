"""Loading files: documentation examples load clean; broken ones fail at the right field."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshcore.config import (
    Deployment,
    DestinationRule,
    Diagnostic,
    Level,
    Namespace,
    PeerAuthentication,
    Service,
    ServiceEntry,
    VirtualService,
    load_paths,
    load_text,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "config"


def test_documentation_examples_load_without_errors() -> None:
    result = load_paths([FIXTURES / "valid"])
    assert [d.format_text() for d in result.errors] == []
    kinds = sorted({r.kind for r in result.resources})
    assert kinds == sorted(
        {
            "AuthorizationPolicy",
            "Deployment",
            "DestinationRule",
            "Gateway",
            "Namespace",
            "PeerAuthentication",
            "RequestAuthentication",
            "Service",
            "ServiceEntry",
            "Sidecar",
            "VirtualService",
        }
    )


def test_canary_split_and_header_match_are_typed() -> None:
    result = load_paths([FIXTURES / "valid" / "bookinfo-routing.yaml"])
    reviews = next(r for r in result.resources if isinstance(r, VirtualService))
    assert reviews.spec.http is not None
    jason = reviews.spec.http[0].match[0].headers["end-user"]  # type: ignore[index]
    assert jason.exact == "jason"
    weights = [d.weight for d in reviews.spec.http[1].route or []]
    assert weights == [90, 10]
    subsets = [
        s.name
        for r in result.resources
        if isinstance(r, DestinationRule)
        for s in r.spec.subsets or []
    ]
    assert subsets == ["v1", "v2", "v3"]


def test_ipv6_in_flow_sequence_is_a_string() -> None:
    result = load_paths([FIXTURES / "valid" / "service-entries.yaml"])
    entry = [r for r in result.resources if isinstance(r, ServiceEntry)][-1]
    assert entry.spec.addresses == ["1.2.3.4", "2001:db8::"]


def test_port_keys_and_kubernetes_lists() -> None:
    result = load_paths([FIXTURES / "valid"])
    finance = next(
        r
        for r in result.resources
        if isinstance(r, PeerAuthentication) and r.metadata.name == "finance"
    )
    assert finance.spec.port_level_mtls is not None
    assert list(finance.spec.port_level_mtls) == ["8080"]
    namespace = next(r for r in result.resources if isinstance(r, Namespace))
    assert namespace.metadata.labels == {"istio-injection": "enabled"}
    service = next(r for r in result.resources if isinstance(r, Service))
    assert service.spec.ports is not None
    assert service.spec.ports[0].target_port == 9080
    deployment = next(r for r in result.resources if isinstance(r, Deployment))
    assert deployment.spec.template.metadata.labels == {"app": "reviews", "version": "v1"}


@pytest.mark.parametrize(
    ("fixture", "path", "line", "text"),
    [
        ("bad-weight.yaml", "spec.http[0].route[1].weight", 12, "weight -10 < 0"),
        (
            "exact-and-prefix.yaml",
            "spec.http[0].match[0].uri",
            9,
            "only one of exact, prefix, regex",
        ),
        ("no-routes.yaml", "spec", 5, "http, tcp or tls must be provided"),
        ("bad-regex.yaml", "spec.http[0].match[0].uri.regex", 10, "RE2"),
        ("port-level-mtls.yaml", "spec", 5, "portLevelMtls requires selector"),
        ("bad-subset.yaml", "spec.subsets[0].name", 8, "subset name is invalid"),
    ],
)
def test_invalid_examples_fail_at_the_field(fixture: str, path: str, line: int, text: str) -> None:
    result = load_paths([FIXTURES / "invalid" / fixture])
    errors = result.errors
    assert errors, "expected an error"
    match = [e for e in errors if e.path == path and text in e.message]
    assert match, [e.format_text() for e in errors]
    assert match[0].line == line
    assert match[0].file == str(FIXTURES / "invalid" / fixture)
    assert match[0].code == "IST0106"


def test_one_bad_document_does_not_stop_the_others() -> None:
    text = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: a}
spec: {hosts: [a], http: [{route: [{destination: {host: a}}]}]}
---
this: [is, broken
---
apiVersion: example.com/v1
kind: Widget
metadata: {name: w}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: b}
spec: {host: b, unknownField: 1}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: c}
spec: {host: c}
"""
    result = load_text(text, "mixed.yaml")
    assert [r.metadata.name for r in result.resources] == ["a", "c"]
    by_code = {d.code: d for d in result.diagnostics}
    assert by_code["MC0001"].document == 1
    assert by_code["MC0001"].line == 6
    assert by_code["MC0002"].level is Level.WARNING
    assert "Widget" in by_code["MC0002"].message
    unknown = by_code["IST0106"]
    assert (unknown.path, unknown.message, unknown.line) == (
        "spec.unknownField",
        "unknown field",
        15,
    )
    assert unknown.origin == "DestinationRule default/b"


def test_format_text_is_istioctl_style() -> None:
    diagnostic = Diagnostic(
        code="IST0106",
        level=Level.ERROR,
        message="weight -1 < 0",
        origin="VirtualService default/reviews",
        path="spec.http[0].route[0].weight",
        file="file.yaml",
        line=12,
    )
    assert diagnostic.format_text() == (
        "Error [IST0106] (VirtualService default/reviews file.yaml:12) "
        "Schema validation error: spec.http[0].route[0].weight: weight -1 < 0"
    )


def test_directories_are_read_recursively(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "vs.yml").write_text(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: x}\n"
        "spec: {hosts: [x], tcp: [{route: [{destination: {host: x}}]}]}\n"
    )
    (tmp_path / "dr.json").write_text(
        '{"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",'
        ' "metadata": {"name": "y"}, "spec": {"host": "y"}}'
    )
    (tmp_path / "notes.txt").write_text("not config")
    result = load_paths([tmp_path])
    assert sorted(r.kind for r in result.resources) == ["DestinationRule", "VirtualService"]
    assert result.diagnostics == []
