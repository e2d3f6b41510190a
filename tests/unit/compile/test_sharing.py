"""Properties of sharing: a `Compiler` reuses pieces between proxies (and, given the previous
generation's compiler, between generations); every snapshot, warning and refusal must be
exactly what a fresh compiler gives for that proxy alone."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshcore.compile import Compiled, CompileError, Compiler, identify_proxy
from meshcore.config import load_paths, load_text
from meshcore.registry import registry_from_resources

from .helpers import FIXTURES, localhost_resolver
from .test_properties import DOC_RESOURCES, _valid, virtual_services

PROXIES = st.tuples(
    st.sampled_from(["productpage-v1", "productpage-v2", "reviews-v1", "sleep", "nobody"]),
    st.sampled_from(["default", "prod", "canary"]),
    st.sampled_from(
        [
            None,
            {},
            {"app": "productpage"},
            {"app": "productpage", "version": "v2"},
            {"app": "reviews", "version": "v1"},
            {"app": "sleep"},
        ]
    ),
)


def _outcome(compiler: Compiler, proxy: tuple[str, str, dict[str, str] | None]) -> Any:
    name, namespace, labels = proxy
    identity = identify_proxy(compiler.registry, name, namespace, labels=labels)
    try:
        compiled: Compiled = compiler.compile_with_report(identity)
    except CompileError as error:
        return ("refused", [(e.path, e.code, e.message) for e in error.errors])
    return (compiled.payload, compiled.diagnostics)


def _fresh(resources: Sequence[object], proxy: tuple[str, str, dict[str, str] | None]) -> Any:
    registry = registry_from_resources(resources)
    return _outcome(Compiler(resources, registry, resolver=localhost_resolver), proxy)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    extra=st.lists(virtual_services(), max_size=5),
    proxies=st.lists(PROXIES, min_size=2, max_size=8),
)
def test_a_shared_compiler_gives_each_proxy_what_a_fresh_one_would(
    extra: list[Any], proxies: list[tuple[str, str, dict[str, str] | None]]
) -> None:
    resources = DOC_RESOURCES + _valid(extra)
    registry = registry_from_resources(resources)
    shared = Compiler(resources, registry, resolver=localhost_resolver)
    for proxy in proxies:
        assert _outcome(shared, proxy) == _fresh(resources, proxy)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    extra=st.lists(virtual_services(), max_size=5),
    proxies=st.lists(PROXIES, min_size=2, max_size=8),
)
def test_proxies_with_equal_keys_get_equal_snapshots(
    extra: list[Any], proxies: list[tuple[str, str, dict[str, str] | None]]
) -> None:
    """`proxy_key` leaves out only what the snapshot does not depend on (the control
    plane compiles once per key)."""
    resources = DOC_RESOURCES + _valid(extra)
    registry = registry_from_resources(resources)
    compiler = Compiler(resources, registry, resolver=localhost_resolver)
    by_key: dict[object, Any] = {}
    for name, namespace, labels in proxies:
        identity = identify_proxy(registry, name, namespace, labels=labels)
        outcome = _fresh(resources, (name, namespace, labels))
        key = compiler.proxy_key(identity)
        assert by_key.setdefault(key, outcome) == outcome


def test_the_key_reads_labels_only_where_a_selector_does() -> None:
    resources = list(DOC_RESOURCES)
    registry = registry_from_resources(resources)
    compiler = Compiler(resources, registry, resolver=localhost_resolver)

    def key(namespace: str, labels: dict[str, str]) -> object:
        return compiler.proxy_key(identify_proxy(registry, "x", namespace, labels=labels))

    # source-labels.yaml routes {app: productpage, version: v2} apart from the rest.
    assert key("default", {"app": "a"}) == key("default", {"app": "b", "team": "c"})
    assert key("default", {"app": "productpage"}) == key("default", {})
    assert key("default", {"app": "productpage", "version": "v2"}) != key("default", {})
    assert key("default", {}) != key("prod", {})


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    before=st.lists(virtual_services(), max_size=4),
    after=st.lists(virtual_services(), max_size=4),
    proxies=st.lists(PROXIES, min_size=1, max_size=6),
)
def test_the_next_generation_reuses_only_what_still_holds(
    before: list[Any], after: list[Any], proxies: list[tuple[str, str, dict[str, str] | None]]
) -> None:
    """An edit: the objects of untouched files are the very same objects (as the control
    plane's file source gives them), the edited ones are new."""
    first = DOC_RESOURCES + _valid(before)
    old = Compiler(first, registry_from_resources(first), resolver=localhost_resolver)
    for proxy in proxies:
        _outcome(old, proxy)
    second = DOC_RESOURCES + _valid(after)
    new = Compiler(
        second, registry_from_resources(second), resolver=localhost_resolver, previous=old
    )
    assert new.memo is not old.memo
    for proxy in proxies:
        assert _outcome(new, proxy) == _fresh(second, proxy)


def test_a_new_endpoint_rebuilds_its_service_and_nothing_else() -> None:
    """The registry is rebuilt every generation; a service whose value changed (a new pod
    behind it) gets new clusters, the others are reused."""
    bookinfo = load_paths([FIXTURES / "bookinfo.yaml"]).resources
    pod = load_text(
        """apiVersion: v1
kind: Pod
metadata: {name: reviews-v9, namespace: default, labels: {app: reviews, version: v1}}
spec: {containers: [{name: reviews}]}
status: {podIP: 10.244.0.99}
"""
    ).resources
    proxy = ("productpage-v1", "default", None)
    old = Compiler(bookinfo, registry_from_resources(bookinfo), resolver=localhost_resolver)
    before = _outcome(old, proxy)
    second = [*bookinfo, *pod]
    new = Compiler(
        second, registry_from_resources(second), resolver=localhost_resolver, previous=old
    )
    after = _outcome(new, proxy)
    assert after == _fresh(second, proxy)
    assert after[0] != before[0]
    assert b"10.244.0.99" in after[0]
    assert new.memo.hits > 0
