"""Property: whatever is done to a valid object, loading reports Diagnostics, never raises."""

from __future__ import annotations

import copy
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshcore.config import Diagnostic, load_text
from tests.unit.config.schema import KINDS, maximal_object

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False),
    st.text(max_size=12),
    st.just("*"),
    st.just("unix://"),
    st.just("0s"),
    st.just("8080"),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)


def _containers(node: Any, out: list[Any]) -> list[Any]:
    if isinstance(node, dict | list):
        out.append(node)
        for child in node.values() if isinstance(node, dict) else node:
            _containers(child, out)
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(KINDS), data=st.data())
def test_mutations_never_raise(kind: str, data: st.DataObject) -> None:
    obj = copy.deepcopy(maximal_object(kind))
    for _ in range(data.draw(st.integers(1, 4))):
        containers = _containers(obj, [])
        target = data.draw(st.sampled_from(containers))
        value = data.draw(VALUES)
        if isinstance(target, dict) and target and data.draw(st.booleans()):
            key = data.draw(st.sampled_from(sorted(target, key=str)))
            if data.draw(st.booleans()):
                del target[key]
            else:
                target[key] = value
        elif isinstance(target, dict):
            target[data.draw(st.text(max_size=8))] = value
        elif isinstance(target, list):
            target.append(value)
    result = load_text(yaml.safe_dump(obj), "mutated.yaml")
    assert all(isinstance(d, Diagnostic) for d in result.diagnostics)
    assert not [d for d in result.diagnostics if d.code == "IST0001"], result.diagnostics
    assert bool(result.resources) or result.diagnostics
