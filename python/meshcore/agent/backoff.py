"""Reconnect delays: exponential backoff with full jitter, reset after a good connection.

Full jitter (a uniform delay between 0 and the exponential cap) spreads a fleet of
sidecars that lost the same control plane, so they do not all reconnect in one burst
when it returns.
"""

from __future__ import annotations

import random


class Backoff:
    """`next()` gives the delay before the next attempt; `reset()` after a success."""

    def __init__(
        self, initial: float = 0.5, maximum: float = 30.0, rng: random.Random | None = None
    ) -> None:
        if not 0 < initial <= maximum:
            raise ValueError(f"need 0 < initial <= maximum, got {initial}, {maximum}")
        self.initial = initial
        self.maximum = maximum
        self.attempt = 0
        self._rng = rng or random.Random()  # noqa: S311 (jitter, not cryptography)

    def cap(self) -> float:
        """The upper bound of the next delay."""
        return float(min(self.maximum, self.initial * 2**self.attempt))

    def next(self) -> float:
        cap = self.cap()
        self.attempt = min(self.attempt + 1, 32)
        return self._rng.uniform(self.initial / 2, cap)

    def reset(self) -> None:
        self.attempt = 0
