"""The models against the reference schema: every field, bound, enum and object of the CRDs."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pydantic import ValidationError

from meshcore.config.introspect import model_paths
from meshcore.config.kinds import ISTIO_KINDS
from tests.unit.config.schema import (
    KINDS,
    VARIANTS,
    crds,
    find_variant,
    legal_string,
    maximal_object,
    rules_of,
    spec_schema,
    versions,
    walk,
    with_value,
)


def model_of(kind: str) -> Any:
    return ISTIO_KINDS[(crds()[kind]["spec"]["group"], kind)]


def schema_paths(kind: str, version: int) -> set[str]:
    spec = versions(kind)[version][2]
    return {path for path, _ in walk(spec)} - {"spec"}


def all_versions() -> list[tuple[str, int]]:
    return [(kind, index) for kind in KINDS for index in range(3 if kind.startswith("V") else 2)]


@pytest.mark.parametrize("kind", KINDS)
def test_every_schema_path_is_a_model_path(kind: str) -> None:
    spec_model = model_of(kind).model_fields["spec"].annotation
    known = model_paths(spec_model, "spec")
    for index in range(len(versions(kind))):
        missing = sorted(schema_paths(kind, index) - known)
        assert not missing, f"{kind} {versions(kind)[index][1]}: model lacks {missing}"


@pytest.mark.parametrize("kind", KINDS)
def test_model_has_no_path_the_schema_lacks(kind: str) -> None:
    spec_model = model_of(kind).model_fields["spec"].annotation
    extra = sorted(model_paths(spec_model, "spec") - schema_paths(kind, 0))
    assert not extra


def test_coverage_counts() -> None:
    """The walk really walks: the README counts ~750 leaves over 15 kinds."""
    total = sum(len(schema_paths(kind, 0)) for kind in KINDS)
    leaves = sum(
        1
        for kind in KINDS
        for _, node in walk(spec_schema(kind))
        if node.get("type") not in ("object", "array")
    )
    assert total > 700
    assert leaves > 600


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("variant", range(len(VARIANTS)))
def test_maximal_object_round_trips(kind: str, variant: int) -> None:
    for index in range(len(versions(kind))):
        obj = maximal_object(kind, VARIANTS[variant], index)
        parsed = model_of(kind).model_validate(copy.deepcopy(obj))
        assert parsed.to_dict() == obj


def bound_cases() -> list[Any]:
    cases = []
    for kind in KINDS:
        nodes = dict(walk(spec_schema(kind)))
        for path, node in nodes.items():
            has_rules = bool(rules_of(node))
            if "enum" in node:
                # The last value, unless a CEL rule of the parent ties it to other fields.
                parent_rules = rules_of(nodes.get(path.rsplit(".", 1)[0], {}))
                ok = node["enum"][0] if parent_rules else node["enum"][-1]
                cases.append(pytest.param(kind, path, ok, True, id=f"{path}-enum-ok"))
                cases.append(pytest.param(kind, path, "NOT_AN_ENUM", False, id=f"{path}-enum-bad"))
            for key, outside in (("minimum", -1), ("maximum", 1)):
                if key in node:
                    bound = node[key]
                    if not has_rules:
                        cases.append(pytest.param(kind, path, bound, True, id=f"{path}-{key}-ok"))
                    cases.append(
                        pytest.param(kind, path, bound + outside, False, id=f"{path}-{key}-bad")
                    )
            if "maxLength" in node:
                limit = node["maxLength"]
                legal = legal_string(node, path.rsplit(".", 1)[-1])
                ok = legal + "a" * (limit - len(legal))
                cases.append(pytest.param(kind, path, ok, True, id=f"{path}-maxLength-ok"))
                cases.append(pytest.param(kind, path, ok + "a", False, id=f"{path}-maxLength-bad"))
            if "maxItems" in node:
                cases.append(
                    pytest.param(
                        kind,
                        path,
                        ("items", node["maxItems"] + 1),
                        False,
                        id=f"{path}-maxItems-bad",
                    )
                )
            if node.get("type") == "integer":
                cases.append(pytest.param(kind, path, "1", False, id=f"{path}-string-for-int"))
            if node.get("type") == "boolean":
                cases.append(pytest.param(kind, path, "true", False, id=f"{path}-string-for-bool"))
            if node.get("type") == "string" and "enum" not in node:
                cases.append(pytest.param(kind, path, 7, False, id=f"{path}-int-for-string"))
    return cases


@pytest.mark.parametrize(("kind", "path", "value", "accepted"), bound_cases())
def test_bounds_and_enums(kind: str, path: str, value: Any, accepted: bool) -> None:
    found = find_variant(kind, path)
    assert found is not None, f"no generated object sets {path}"
    obj, parts = found
    if isinstance(value, tuple):
        current: Any = obj
        for part in parts:
            current = current[part]
        value = [copy.deepcopy(current[0]) for _ in range(value[1])]
    candidate = with_value(obj, parts, value)
    model = model_of(kind)
    if accepted:
        model.model_validate(candidate)
    else:
        with pytest.raises(ValidationError):
            model.model_validate(candidate)


@pytest.mark.parametrize("kind", KINDS)
def test_unknown_fields_rejected_everywhere(kind: str) -> None:
    obj = maximal_object(kind)
    objects = [
        p for p, n in walk(spec_schema(kind)) if n.get("type") == "object" and "properties" in n
    ]
    for path in objects:
        found = find_variant(kind, path)
        assert found is not None
        obj, parts = found
        current: Any = obj
        for part in parts:
            current = current[part]
        bogus = with_value(obj, [*parts, "notAField"], 1) if parts else obj
        with pytest.raises(ValidationError, match="notAField"):
            model_of(kind).model_validate(bogus)
