"""Pieces of snapshots that many proxies share, built once per config generation or less.

Most of a snapshot does not depend on which proxy it is for: the clusters of a service port,
the routes a VirtualService gives one port. A `Memo` keeps such pieces for one `Compiler`,
with the previous generation's `Memo` as a fallback, so an edit rebuilds only what it
touched. An entry is found by a key that names everything the piece was built from:

- content (hostnames, port numbers, a service's full value as text);
- config objects by `id()`: the entry *pins* them (keeps them alive, so the id cannot be
  reused by another object) and a hit requires the very same objects (`is`). The config
  source hands out the same object for an unchanged file, so across generations identity
  is content identity;
- answers the piece got from the proxy's view of the registry (`deps`): a hit requires
  that the asking proxy gets the same answers; otherwise the piece is built again, as
  another variant under the same key.

Warnings are part of a piece: replayed into the report of every compile that uses it, so
a compile reports exactly what building it from scratch would have.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from meshcore.config import Diagnostic

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Piece(Generic[T]):
    """A built value, what building it reported, and what it was built from."""

    value: T
    warnings: tuple[Diagnostic, ...] = ()
    pins: tuple[object, ...] = ()
    deps: tuple[tuple[Any, Any], ...] = ()
    """(question, answer) pairs asked of the proxy's view while building."""


class Memo:
    """Pieces by key for one generation; the previous generation's are promoted on use."""

    def __init__(self, previous: Memo | None = None) -> None:
        self._entries: dict[Hashable, list[Piece[Any]]] = {}
        self._previous: dict[Hashable, list[Piece[Any]]] = (
            previous._entries if previous is not None else {}
        )
        self.hits = 0
        self.builds = 0

    def find(
        self,
        key: Hashable,
        pins: Sequence[object] = (),
        holds: Callable[[Piece[Any]], bool] | None = None,
    ) -> Piece[Any] | None:
        """The piece under `key` built from the same `pins` whose `deps` still hold."""
        for piece in self._entries.get(key, ()):
            if _same(piece.pins, pins) and (holds is None or holds(piece)):
                self.hits += 1
                return piece
        for piece in self._previous.get(key, ()):
            if _same(piece.pins, pins) and (holds is None or holds(piece)):
                self.hits += 1
                self._entries.setdefault(key, []).append(piece)
                return piece
        return None

    def add(self, key: Hashable, piece: Piece[T]) -> Piece[T]:
        self.builds += 1
        self._entries.setdefault(key, []).append(piece)
        return piece

    def __len__(self) -> int:
        return sum(len(v) for v in self._entries.values())


def _same(pinned: Sequence[object], pins: Sequence[object]) -> bool:
    return len(pinned) == len(pins) and all(a is b for a, b in zip(pinned, pins, strict=True))
