"""Properties of sharing: a `Compiler` reuses pieces between proxies (and, given the previous
generation's compiler, between generations); every snapshot, warning and refusal must be
exactly what a fresh compiler gives for that proxy alone."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshcore.compile import Compiled, CompileError, Compiler, identify_proxy
from meshcore.registry import registry_from_resources

from .helpers import localhost_resolver
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


def _fresh(resources: list[object], proxy: tuple[str, str, dict[str, str] | None]) -> Any:
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
