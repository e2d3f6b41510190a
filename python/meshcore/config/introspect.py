"""Field paths: what a model knows, and what an object actually sets.

Paths use the JSON names and the notation of the schema tools: `spec.http[].route[].weight`
for the generic form (`[]` for list items, `{}` for map values) and
`spec.http[0].route[1].weight` for a concrete field of one object.
"""

from __future__ import annotations

import types
from collections.abc import Iterator
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel


def unwrap_annotation(annotation: Any) -> Any:
    """Strip `Annotated[...]` and `X | None` down to X."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            options = [arg for arg in get_args(annotation) if arg is not type(None)]
            if len(options) != 1:
                return annotation
            annotation = options[0]
        else:
            return annotation


def _walk_type(annotation: Any, path: str, out: set[str], seen: frozenset[type]) -> None:
    annotation = unwrap_annotation(annotation)
    origin = get_origin(annotation)
    if origin is list:
        out.add(path + "[]")
        _walk_type(get_args(annotation)[0], path + "[]", out, seen)
    elif origin is dict:
        out.add(path + "{}")
        _walk_type(get_args(annotation)[1], path + "{}", out, seen)
    elif origin is Literal:
        return
    elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if annotation in seen:
            return
        for name, info in annotation.model_fields.items():
            child = f"{path}.{info.alias or name}"
            out.add(child)
            _walk_type(info.annotation, child, out, seen | {annotation})


def model_paths(model: Any, root: str) -> set[str]:
    """Every generic field path under `root` that `model` (a model class or annotation) accepts."""
    out: set[str] = set()
    _walk_type(model, root, out, frozenset())
    return out


def generic_path(concrete: str) -> str:
    """`spec.http[0].headers{x-a}` style → `spec.http[].headers{}`."""
    out: list[str] = []
    depth = 0
    for char in concrete:
        if char in "[{":
            out.append(char)
            depth += 1
        elif char in "]}":
            out.append(char)
            depth -= 1
        elif depth == 0:
            out.append(char)
    return "".join(out)


def set_fields(value: Any, path: str, generic: str) -> Iterator[tuple[str, str]]:
    """(concrete, generic) paths of every field set on a model instance, depth first."""
    if isinstance(value, BaseModel):
        fields = type(value).model_fields
        for name in value.model_fields_set:
            child = getattr(value, name)
            if child is None:
                continue
            alias = fields[name].alias or name
            yield f"{path}.{alias}", f"{generic}.{alias}"
            yield from set_fields(child, f"{path}.{alias}", f"{generic}.{alias}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from set_fields(item, f"{path}[{index}]", generic + "[]")
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from set_fields(item, f"{path}{{{key}}}", generic + "{}")
