"""IST0130 / IST0131: VirtualService rules and matches that can never be used.

Within the http, tcp and tls rules of one VirtualService: a match identical to an earlier
rule's match is ineffective (IST0131); a rule all of whose matches are ineffective is
unreachable (IST0130), as is every rule after a rule with no match (a catch-all).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from meshcore.config.analyzers.index import ResourceIndex
from meshcore.config.analyzers.messages import (
    VIRTUAL_SERVICE_INEFFECTIVE_MATCH,
    VIRTUAL_SERVICE_UNREACHABLE_RULE,
)
from meshcore.config.diagnostics import Diagnostic
from meshcore.config.networking import VirtualService


def _name(item: Any, position: int) -> str:
    name = getattr(item, "name", None)
    return json.dumps(name) if name else f"#{position}"


def _key(match: Any) -> str:
    data = match.to_dict()
    data.pop("name", None)
    return json.dumps(data, sort_keys=True)


class MatchesAnalyzer:
    """Checks VirtualService rules for unreachable rules and duplicate matches."""

    name = "virtualservice.MatchesAnalyzer"
    description = "Checks VirtualService rules for unreachable rules and duplicate matches"
    codes = ("IST0130", "IST0131")

    def analyze(self, index: ResourceIndex) -> Iterator[Diagnostic]:
        for vs in index.of(VirtualService):
            spec = vs.spec
            for section, rules in (("http", spec.http), ("tcp", spec.tcp), ("tls", spec.tls)):
                yield from self._rules(index, vs, section, rules or [])

    def _rules(
        self, index: ResourceIndex, vs: VirtualService, section: str, rules: Sequence[Any]
    ) -> Iterator[Diagnostic]:
        seen: dict[str, int] = {}
        catch_all: int | None = None
        for position, rule in enumerate(rules):
            path = ("spec", section, position)
            name = _name(rule, position)
            if catch_all is not None:
                reason = (
                    "only the last rule can have no matches"
                    if not rule.match
                    else f"rule {_name(rules[catch_all], catch_all)} before it matches all traffic"
                )
                message = f"VirtualService rule {name} not used ({reason})."
                yield index.report(vs, VIRTUAL_SERVICE_UNREACHABLE_RULE, message, path)
                continue
            if not rule.match:
                catch_all = position
                continue
            duplicates = 0
            for match_position, match in enumerate(rule.match):
                key = _key(match)
                first = seen.get(key)
                if first is None:
                    seen[key] = position
                    continue
                duplicates += 1
                message = (
                    f"VirtualService rule {name} match {_name(match, match_position)} is not used "
                    f"(duplicate/overlapping match in rule {_name(rules[first], first)})."
                )
                yield index.report(
                    vs, VIRTUAL_SERVICE_INEFFECTIVE_MATCH, message, (*path, "match", match_position)
                )
            if duplicates == len(rule.match):
                message = f"VirtualService rule {name} not used (all matches used by prior rules)."
                yield index.report(vs, VIRTUAL_SERVICE_UNREACHABLE_RULE, message, path)
