"""Webhook-layer validation: Istio's semantic checks, each with the field it names."""

from __future__ import annotations

from typing import Any

import pytest

from meshcore.config import DestinationRule, VirtualService, load_text, validate
from meshcore.config.diagnostics import Level
from meshcore.config.validation import duration, regex, wildcard_domain


def vs(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "r"},
        "spec": {"hosts": ["reviews"], **spec},
    }


def route(**extra: Any) -> dict[str, Any]:
    return {"route": [{"destination": {"host": "reviews"}}], **extra}


CASES = [
    (vs(http=[route(timeout="0s")]), "spec.http[0].timeout", "greater than 1ms"),
    (
        vs(
            http=[
                {
                    "route": [
                        {"destination": {"host": "a"}, "weight": 0},
                        {"destination": {"host": "b"}, "weight": 0},
                    ]
                }
            ]
        ),
        "spec.http[0].route",
        "total destination weight = 0",
    ),
    (vs(http=[route(retries={"attempts": -1})]), "spec.http[0].retries.attempts", "negative"),
    (
        vs(http=[route(retries={"attempts": 0, "retryOn": "5xx"})]),
        "spec.http[0].retries",
        "attempts are set to 0",
    ),
    (
        vs(http=[route(retries={"attempts": 2, "retryOn": "sometimes"})]),
        "spec.http[0].retries.retryOn",
        "not a valid retryOn",
    ),
    (vs(http=[{"redirect": {"uri": "/x"}, **route()}]), "spec.http[0]", "more than one"),
    (vs(http=[{}]), "spec.http[0]", "route, redirect or directResponse is required"),
    (
        vs(http=[{"redirect": {"redirectCode": 200, "uri": "/x"}}]),
        "spec.http[0].redirect.redirectCode",
        "must be 3xx",
    ),
    (vs(http=[route(fault={})]), "spec.http[0].fault", "abort and/or a delay"),
    (
        vs(http=[route(fault={"abort": {"httpStatus": 99}})]),
        "spec.http[0].fault.abort.httpStatus",
        "not in range",
    ),
    (vs(http=[route(rewrite={})]), "spec.http[0].rewrite", "at least one of URI"),
    (
        vs(http=[{"route": [{"destination": {"host": "*"}}]}]),
        "spec.http[0].route[0].destination.host",
        "invalid destination host",
    ),
    (
        vs(http=[{"route": [{"destination": {"host": "a", "subset": "V_1"}}]}]),
        "spec.http[0].route[0].destination.subset",
        "subset name is invalid",
    ),
    (
        vs(http=[{"route": [{"destination": {"host": "a", "port": {"number": 70000}}}]}]),
        "spec.http[0].route[0].destination.port.number",
        "1..65535",
    ),
    (
        vs(http=[route(match=[{"headers": {"bad header": {"exact": "x"}}}])]),
        "spec.http[0].match[0].headers{bad header}",
        "not a valid HTTP header name",
    ),
    (vs(http=[route(match=[{"uri": {"regex": "(a"}}])]), "spec.http[0].match[0].uri.regex", "RE2"),
    (vs(hosts=["bad_host!"], http=[route()]), "spec.hosts[0]", "invalid"),
    (vs(gateways=["ns/Bad_Name"], http=[route()]), "spec.gateways[0]", "invalid value for gateway"),
    (
        vs(tls=[{"match": [{"port": 443}], "route": [{"destination": {"host": "a"}}]}]),
        "spec.tls[0].match[0].sniHosts",
        "required field is missing",
    ),
    (
        vs(tls=[{"match": [{"sniHosts": []}], "route": [{"destination": {"host": "a"}}]}]),
        "spec.tls[0].match[0].sniHosts",
        "at least one SNI host",
    ),
    (
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "DestinationRule",
            "metadata": {"name": "d"},
            "spec": {"host": "reviews", "subsets": [{"name": "v1"}, {"name": "v1"}]},
        },
        "spec.subsets[1].name",
        "duplicate subset name",
    ),
    (
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "DestinationRule",
            "metadata": {"name": "d"},
            "spec": {"host": "reviews", "trafficPolicy": {"tls": {"mode": "MUTUAL"}}},
        },
        "spec.trafficPolicy.tls",
        "client certificate",
    ),
    (
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "Gateway",
            "metadata": {"name": "g"},
            "spec": {
                "servers": [
                    {
                        "port": {"number": 443, "name": "https", "protocol": "HTTPS"},
                        "hosts": ["a.example.com"],
                    }
                ]
            },
        },
        "spec.servers[0].tls",
        "TLS settings",
    ),
    (
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "ServiceEntry",
            "metadata": {"name": "s"},
            "spec": {
                "hosts": ["a.example.com"],
                "resolution": "STATIC",
                "ports": [{"number": 80, "name": "http", "protocol": "HTTP"}],
            },
        },
        "spec.endpoints",
        "STATIC",
    ),
    (
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "Sidecar",
            "metadata": {"name": "s"},
            "spec": {"egress": [{"hosts": ["no-namespace"]}]},
        },
        "spec.egress[0].hosts[0]",
        "namespace/dnsName",
    ),
    (
        {
            "apiVersion": "security.istio.io/v1",
            "kind": "AuthorizationPolicy",
            "metadata": {"name": "a"},
            "spec": {"action": "CUSTOM"},
        },
        "spec.provider",
        "CUSTOM",
    ),
    (
        {
            "apiVersion": "security.istio.io/v1",
            "kind": "AuthorizationPolicy",
            "metadata": {"name": "a"},
            "spec": {"rules": [{"when": [{"key": "request.headers[x]"}]}]},
        },
        "spec.rules[0].when[0]",
        "values or notValues",
    ),
    (
        {
            "apiVersion": "security.istio.io/v1",
            "kind": "RequestAuthentication",
            "metadata": {"name": "a"},
            "spec": {"jwtRules": [{"issuer": "i"}, {"issuer": "i"}]},
        },
        "spec.jwtRules[1].issuer",
        "duplicate issuer",
    ),
]


@pytest.mark.parametrize(("obj", "path", "text"), CASES, ids=[c[2] for c in CASES])
def test_webhook_rule(obj: dict[str, Any], path: str, text: str) -> None:
    import yaml  # noqa: PLC0415

    result = load_text(yaml.safe_dump(obj), "case.yaml")
    found = [d for d in result.errors if d.path == path and text in d.message]
    assert found, [d.format_text() for d in result.diagnostics]


def test_errors_are_collected_not_raised_one_by_one() -> None:
    obj = VirtualService.model_validate(
        vs(
            http=[
                route(retries={"attempts": -1}),
                {"route": [{"destination": {"host": "*", "subset": "BAD"}}]},
            ]
        )
    )
    assert len([d for d in validate(obj) if d.level is Level.ERROR]) == 3


def test_deprecated_mirror_percent_warns() -> None:
    obj = VirtualService.model_validate(vs(http=[route(mirror_percent=5)]))
    warnings = [d for d in validate(obj) if d.level is Level.WARNING]
    assert warnings
    assert warnings[0].code == "IST0133"
    assert warnings[0].path == "spec.http[0].mirror_percent"


def test_python_built_objects_validate_and_round_trip() -> None:
    rule = DestinationRule.build(
        "reviews", host="reviews", subsets=[{"name": "v1", "labels": {"version": "v1"}}]
    )
    assert validate(rule) == []
    assert rule.to_dict()["spec"] == {
        "host": "reviews",
        "subsets": [{"name": "v1", "labels": {"version": "v1"}}],
    }


@pytest.mark.parametrize(
    ("host", "ok"),
    [
        ("reviews", True),
        ("reviews.default.svc.cluster.local", True),
        ("*.example.com", True),
        ("*", True),
        ("a.*.com", False),
        ("-bad.com", False),
        ("a..b", False),
        ("", False),
        ("1.2.3.4", False),
        ("x" * 64 + ".com", False),
    ],
)
def test_host_syntax(host: str, ok: bool) -> None:
    assert (wildcard_domain(host) is None) is ok


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("1ms", True),
        ("5s", True),
        ("1h30m", True),
        ("1.5s", True),
        ("0.5ms", False),
        ("5", False),
        ("s", False),
        ("-5s", False),
        ("5 s", False),
    ],
)
def test_duration_syntax(text: str, ok: bool) -> None:
    assert (duration(text) is None) is ok


@pytest.mark.parametrize(
    ("pattern", "ok"),
    [
        ("^/v[0-9]+/.*$", True),
        ("(?i)abc", True),
        ("a(?=b)", False),
        ("(a)\\1", False),
        ("[", False),
    ],
)
def test_regexes_are_re2(pattern: str, ok: bool) -> None:
    assert (regex(pattern) is None) is ok
