"""Reading the reference CRD schema and generating objects from it, for the tests."""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from meshcore.config.codegen import GROUPS, one_of_groups

ROOT = Path(__file__).resolve().parents[3]
CRD_PATH = ROOT / "tests" / "fixtures" / "istio" / "crd-all.gen.yaml"
KINDS = tuple(kind for _, kinds in GROUPS.values() for kind in kinds)

Schema = dict[str, Any]


@functools.cache
def crds() -> dict[str, Schema]:
    """The CRDs of the supported kinds, by kind (skips the test when the file is absent)."""
    if not CRD_PATH.exists():
        pytest.skip(f"reference schema not found at {CRD_PATH}")
    with CRD_PATH.open() as handle:
        docs = [d for d in yaml.safe_load_all(handle) if d]
    return {d["spec"]["names"]["kind"]: d for d in docs if d["spec"]["names"]["kind"] in KINDS}


def versions(kind: str) -> list[tuple[str, str, Schema]]:
    """(group, version, spec schema) of every served version of `kind`."""
    crd = crds()[kind]
    group = crd["spec"]["group"]
    return [
        (group, v["name"], v["schema"]["openAPIV3Schema"]["properties"]["spec"])
        for v in crd["spec"]["versions"]
    ]


def spec_schema(kind: str) -> Schema:
    """The spec schema of the first served version."""
    return versions(kind)[0][2]


def walk(node: Schema, path: str = "spec") -> Iterator[tuple[str, Schema]]:
    """Every (generic path, schema node) under `node`, the node itself first."""
    yield path, node
    for name, child in node.get("properties", {}).items():
        yield from walk(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from walk(node["items"], path + "[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], path + "{}")


def rules_of(node: Schema) -> list[str]:
    return [r["rule"] for r in node.get("x-kubernetes-validations", [])]


_AT_MOST_ONE = re.compile(r"has\(self\.(\w+)\)")


def exclusive_groups(node: Schema) -> list[list[str]]:
    """Field groups of which at most one may be set: oneOf and `has+has<=1` CEL rules."""
    groups = one_of_groups(node)
    for rule in rules_of(node):
        if rule.endswith("<= 1") and rule.startswith("(has("):
            groups.append(_AT_MOST_ONE.findall(rule))
    return groups


def map_key(node: Schema) -> str:
    """A legal key for a map schema."""
    if any("int(key)" in rule for rule in rules_of(node)):
        return "8080"
    return "key"


def legal_string(node: Schema, name: str) -> str:  # noqa: PLR0911 - one legal value per rule
    rules = " ".join(rules_of(node))
    if "duration(" in rules:
        return "5s"
    if "url(self)" in rules:
        return "https://example.com/jwks.json"
    if "self.size() == 0" in rules:
        return ""
    if '"HTTP", "HTTPS"' in rules:
        return "HTTP"
    pattern = node.get("pattern", "")
    if pattern.startswith("^$|"):
        return ""
    if pattern.startswith("^[a-zA-Z]"):
        return "Service"
    if pattern:
        return "x-header"
    return "value" if name != "address" else "10.0.0.1"


def legal_int(node: Schema) -> int:
    low = node.get("minimum", 1)
    high = node.get("maximum", 2**31 - 1)
    return int(max(min(1, high), low))


@dataclass(frozen=True)
class Choice:
    """Which branch of each exclusive group a generated object keeps."""

    index: int

    def pick(self, group: list[str]) -> str:
        return group[min(self.index, len(group) - 1)] if self.index >= 0 else group[-1]


VARIANTS = (Choice(0), Choice(1), Choice(-1))


def _on_path(path: str, want: str) -> bool:
    return want == path or (want.startswith(path) and want[len(path)] in ".[{")


def generate(  # noqa: PLR0911 - one return per schema type
    node: Schema, choice: Choice, name: str = "", path: str = "spec", want: str = ""
) -> Any:
    """A legal value filling every field of `node` (one branch per exclusive group).

    In each exclusive group the branch on the way to `want` is kept, else `choice` picks.
    """
    kind = node.get("type")
    if kind == "object" and "properties" in node:
        value = {
            key: generate(child, choice, key, f"{path}.{key}", want)
            for key, child in node["properties"].items()
        }
        for group in exclusive_groups(node):
            wanted = [member for member in group if _on_path(f"{path}.{member}", want)]
            keep = wanted[0] if wanted else choice.pick(group)
            for other in group:
                if other != keep:
                    value.pop(other, None)
        _fix_object(value, choice)
        return value
    if kind == "object":
        item = generate(node["additionalProperties"], choice, name, path + "{}", want)
        return {map_key(node): item}
    if kind == "array":
        return [generate(node["items"], choice, name, path + "[]", want)]
    if kind == "string":
        return node["enum"][0] if "enum" in node else legal_string(node, name)
    if kind == "integer":
        return legal_int(node)
    if kind == "number":
        return float(node.get("minimum", 1.0))
    if kind == "boolean":
        return True
    raise AssertionError(f"unsupported schema {node}")


def _fix_object(value: dict[str, Any], choice: Choice) -> None:
    """Satisfy the few CEL rules that tie several fields together."""
    if "resolution" in value and "endpoints" in value:
        value["resolution"] = "STATIC"
    if "serviceAccounts" in value:
        if choice.index == 0:
            for other in ("principals", "notPrincipals", "namespaces", "notNamespaces"):
                value.pop(other, None)
        else:
            value.pop("serviceAccounts", None)
            value.pop("notServiceAccounts", None)
    if value.get("operation") == "REMOVE":
        value.pop("value", None)


def maximal_object(
    kind: str, choice: Choice = VARIANTS[0], version: int = 0, want: str = ""
) -> dict[str, Any]:
    """A whole object of `kind` with every field set (and `want` among them, if given)."""
    group, name, spec = versions(kind)[version]
    return {
        "apiVersion": f"{group}/{name}",
        "kind": kind,
        "metadata": {"name": "maximal", "namespace": "test"},
        "spec": generate(spec, choice, want=want),
    }


def concrete(generic: str, obj: dict[str, Any], kind: str) -> list[str | int] | None:
    """Concrete path parts for a generic path in a generated object, or None if absent."""
    parts: list[str | int] = []
    current: Any = obj
    for token in re.findall(r"[^.\[\]{}]+|\[\]|\{\}", generic):
        if token == "[]":
            if not isinstance(current, list) or not current:
                return None
            parts.append(0)
            current = current[0]
        elif token == "{}":
            if not isinstance(current, dict) or not current:
                return None
            key = next(iter(current))
            parts.append(key)
            current = current[key]
        else:
            if not isinstance(current, dict) or token not in current:
                return None
            parts.append(token)
            current = current[token]
    return parts


def with_value(obj: dict[str, Any], parts: list[str | int], value: Any) -> dict[str, Any]:
    """A deep copy of `obj` with the value at `parts` replaced."""
    result = copy.deepcopy(obj)
    target: Any = result
    for part in parts[:-1]:
        target = target[part]
    target[parts[-1]] = value
    return result


def find_variant(kind: str, generic: str) -> tuple[dict[str, Any], list[str | int]] | None:
    """A generated object that contains `generic`, and the concrete path to it."""
    for choice in VARIANTS:
        obj = maximal_object(kind, choice, want=generic)
        parts = concrete(generic, obj, kind)
        if parts is not None:
            return obj, parts
    return None
