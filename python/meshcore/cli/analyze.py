"""``meshcore analyze``: istioctl-style analysis of Istio and Kubernetes YAML files.

Loads the files and directories given (recursively), validates every object (IST0106),
runs the cross-object analyzers of `meshcore.config.analyzers` and reports the fields
meshcore accepts but does not implement (MC0003; errors with ``--strict``). Output is
istioctl's text form or ``-o json``; the exit status is 1 when a finding at or above
``--failure-threshold`` (default Error) is reported, else 0.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from meshcore.config import Diagnostic, Level, load_paths
from meshcore.config.analyzers import analyze, at_or_above, documentation_url, format_text
from meshcore.config.analyzers import message_text as _message_text

_LEVELS = {level.value: level for level in Level}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH", help="files or directories to analyze")
    parser.add_argument(
        "-o", "--output", choices=["text", "json"], default="text", help="output format"
    )
    parser.add_argument(
        "--failure-threshold",
        choices=list(_LEVELS),
        default="Error",
        help="the severity at which to exit with status 1 (default Error)",
    )
    parser.add_argument(
        "--output-threshold",
        choices=list(_LEVELS),
        default="Info",
        help="the lowest severity to print (default Info)",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="report fields meshcore does not implement yet (MC0003) as errors",
    )
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "-A", "--all-namespaces", action="store_true", help="report on all namespaces"
    )
    scope.add_argument(
        "-n",
        "--namespace",
        default="default",
        help="report only on objects of this namespace (default: default)",
    )


def _namespace(diagnostic: Diagnostic) -> str | None:
    """The namespace of a diagnostic's object; None for files and cluster-scoped objects."""
    if not diagnostic.origin or " " not in diagnostic.origin:
        return None
    name = diagnostic.origin.split(" ", 1)[1]
    return name.split("/", 1)[0] if "/" in name else None


def to_json(diagnostic: Diagnostic) -> dict[str, Any]:
    """One finding as `-o json` prints it."""
    return {
        "code": diagnostic.code,
        "level": diagnostic.level.value,
        "origin": diagnostic.origin,
        "message": _message_text(diagnostic),
        "path": diagnostic.path,
        "file": diagnostic.file,
        "line": diagnostic.line,
        "documentation_url": documentation_url(diagnostic.code),
    }


def run(args: argparse.Namespace) -> int:
    found = analyze(load_paths(args.paths), strict=args.strict)
    if not args.all_namespaces:
        found = [d for d in found if _namespace(d) in (None, args.namespace)]
    shown = [d for d in found if at_or_above(d, _LEVELS[args.output_threshold])]
    if args.output == "json":
        print(json.dumps([to_json(d) for d in shown], indent=2, ensure_ascii=False))
    else:
        for diagnostic in shown:
            print(format_text(diagnostic))
    if not shown:
        target = "\n".join(args.paths)
        print(f"\u2714 No validation issues found when analyzing {target}.", file=sys.stderr)
    threshold = _LEVELS[args.failure_threshold]
    return 1 if any(at_or_above(d, threshold) for d in found) else 0
