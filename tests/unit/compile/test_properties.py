"""Properties: compiling is deterministic and order-insensitive, and valid config only ever
fails with a validation error."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshcore.compile import CompileError
from meshcore.compile.snapshot import validate_snapshot
from meshcore.config import has_errors, load_paths
from meshcore.config.loader import parse_object

from .helpers import FIXTURES, compile_resources

DOC_RESOURCES = [r for f in sorted(FIXTURES.glob("*.yaml")) for r in load_paths([f]).resources]
NAMESPACES = st.sampled_from(["default", "prod", "canary"])
NAMES = st.sampled_from(["reviews", "ratings", "details", "productpage", "localhost"])
SUBSETS = st.sampled_from([None, "v1", "v2", "v3", "sticky"])


@st.composite
def string_matches(draw: st.DrawFn) -> dict[str, str]:
    kind = draw(st.sampled_from(["exact", "prefix", "regex"]))
    value = draw(st.sampled_from(["/", "/api", "jason", "^/v[0-9]+/.*$", "GET"]))
    return {kind: value}


@st.composite
def http_rules(draw: st.DrawFn) -> dict[str, Any]:  # noqa: PLR0912 - one branch per field
    rule: dict[str, Any] = {}
    if draw(st.booleans()):
        match: dict[str, Any] = {}
        if draw(st.booleans()):
            match["uri"] = draw(string_matches())
        if draw(st.booleans()):
            match["headers"] = {"end-user": draw(string_matches())}
        if draw(st.booleans()):
            match["sourceLabels"] = {"app": draw(NAMES)}
        if draw(st.booleans()):
            match["sourceNamespace"] = draw(NAMESPACES)
        if draw(st.booleans()):
            match["port"] = draw(st.sampled_from([80, 9080]))
        rule["match"] = [match]
    action = draw(st.sampled_from(["route", "redirect", "direct"]))
    if action == "redirect":
        rule["redirect"] = {"uri": "/moved"}
    elif action == "direct":
        rule["directResponse"] = {"status": draw(st.sampled_from([200, 404, 503]))}
    else:
        count = draw(st.integers(1, 3))
        destinations = []
        for _ in range(count):
            destination: dict[str, Any] = {"host": draw(NAMES)}
            subset = draw(SUBSETS)
            if subset:
                destination["subset"] = subset
            entry: dict[str, Any] = {"destination": destination}
            if count > 1:
                entry["weight"] = draw(st.integers(1, 100))
            destinations.append(entry)
        rule["route"] = destinations
        if draw(st.booleans()):
            rule["timeout"] = draw(st.sampled_from(["1s", "250ms"]))
        if draw(st.booleans()):
            rule["retries"] = {"attempts": draw(st.integers(0, 4)), "retryOn": "5xx"}
    return rule


@st.composite
def virtual_services(draw: st.DrawFn) -> Any:
    namespace = draw(NAMESPACES)
    data: dict[str, Any] = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": f"vs-{draw(st.integers(0, 50))}", "namespace": namespace},
        "spec": {
            "hosts": [draw(NAMES)],
            "http": draw(st.lists(http_rules(), min_size=1, max_size=4)),
        },
    }
    if draw(st.booleans()):
        data["spec"]["exportTo"] = [draw(st.sampled_from([".", "*", "prod"]))]
    return data


def _valid(documents: list[Any]) -> list[object]:
    resources: list[object] = []
    for document in documents:
        resource, diagnostics = parse_object(document)
        if resource is None or has_errors(diagnostics):
            continue
        resources.append(resource)
    return resources


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    extra=st.lists(virtual_services(), max_size=6),
    seed=st.randoms(use_true_random=False),
    proxy=st.sampled_from(["productpage-v1.default", "sleep.prod", "reviews-v1.default"]),
)
def test_compile_is_deterministic_and_order_insensitive(
    extra: list[Any], seed: Any, proxy: str
) -> None:
    resources = DOC_RESOURCES + _valid(extra)
    try:
        first = compile_resources(resources, proxy).snapshot
    except CompileError:
        return  # a validation error is the only failure allowed (checked below)
    again = compile_resources(resources, proxy).snapshot
    shuffled = list(resources)
    seed.shuffle(shuffled)
    reordered = compile_resources(shuffled, proxy).snapshot
    assert first.to_json() == again.to_json()
    assert first.to_json() == reordered.to_json()
    assert validate_snapshot(first) == []


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents=st.lists(virtual_services(), min_size=1, max_size=5))
def test_valid_input_never_raises_anything_but_a_validation_error(documents: list[Any]) -> None:
    resources = DOC_RESOURCES + _valid(documents)
    for proxy in ("productpage-v1.default", "sleep.canary"):
        try:
            snapshot = compile_resources(resources, proxy).snapshot
        except CompileError as error:
            errors = error.errors  # names the contract violations
            assert errors
            continue
        assert validate_snapshot(snapshot) == []
