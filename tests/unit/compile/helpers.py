"""Shared helpers: load fixture config, build a registry, compile for a proxy."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from meshcore.compile import Compiled, Compiler, identify_proxy
from meshcore.config import MeshConfig, load_paths, load_text
from meshcore.registry import registry_from_resources

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "compile"
GOLDEN = Path(__file__).resolve().parents[2] / "golden" / "compile"


def localhost_resolver(hostname: str) -> tuple[str, ...]:
    """Deterministic DNS for tests: `localhost` is 127.0.0.1, nothing else resolves."""
    return ("127.0.0.1",) if hostname == "localhost" else ()


def compile_fixture(
    fixture: str,
    proxy: str,
    labels: dict[str, str] | None = None,
    mesh: MeshConfig | None = None,
) -> Compiled:
    result = load_paths([FIXTURES / fixture])
    assert [d.format_text() for d in result.errors] == []
    return compile_resources(result.resources, proxy, labels, mesh)


def compile_text(
    text: str, proxy: str, labels: dict[str, str] | None = None, mesh: MeshConfig | None = None
) -> Compiled:
    result = load_text(text)
    assert [d.format_text() for d in result.errors] == []
    return compile_resources(result.resources, proxy, labels, mesh)


def compile_resources(
    resources: Sequence[object],
    proxy: str,
    labels: dict[str, str] | None = None,
    mesh: MeshConfig | None = None,
) -> Compiled:
    name, _, namespace = proxy.partition(".")
    registry = registry_from_resources(resources)
    identity = identify_proxy(registry, name, namespace, labels=labels)
    compiler = Compiler(resources, registry, mesh=mesh, resolver=localhost_resolver)
    return compiler.compile_with_report(identity)
