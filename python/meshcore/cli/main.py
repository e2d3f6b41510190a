"""The ``meshcore`` command: parses arguments and hands off to one subcommand module.

Only the chosen subcommand's module is imported, so ``meshcore sidecar`` loads nothing it
does not run (the sidecar's memory footprint is a design target).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from typing import Protocol, cast

# name -> (module, one-line help); each module has add_arguments(parser) and run(args) -> int.
_SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "sidecar": ("meshcore.cli.sidecar", "run a sidecar data plane"),
    "demo": ("meshcore.cli.demo", "run a local mesh with sample services and live traffic"),
    "compile": ("meshcore.cli.compile", "print the snapshot compiled for one proxy"),
    "simulate": ("meshcore.cli.simulate", "show what the mesh does with one request, from config"),
    "analyze": ("meshcore.cli.analyze", "analyze Istio and Kubernetes YAML like istioctl analyze"),
    "control": ("meshcore.cli.control", "run the control plane: watch config, push to sidecars"),
    "proxy-status": ("meshcore.cli.proxy_status", "show each sidecar's sync status"),
    "proxy-config": ("meshcore.cli.proxy_config", "show a sidecar's listeners, routes, clusters"),
    "iptables": ("meshcore.cli.iptables", "install transparent-capture rules in this netns"),
}


class Subcommand(Protocol):
    """What every subcommand module provides."""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


def _load(name: str) -> Subcommand:
    return cast(Subcommand, importlib.import_module(_SUBCOMMANDS[name][0]))


class _Version(argparse.Action):
    """``--version``, resolving the version only when asked (importlib.metadata is not
    worth loading in every sidecar)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, help=str(kwargs.get("help", "")))

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        import meshcore  # noqa: PLC0415

        parser.exit(message=f"meshcore {meshcore.__version__}\n")


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    """A parser whose only fully built subcommand is the one ``argv`` names."""
    parser = argparse.ArgumentParser(
        prog="meshcore", description="A service mesh with Istio's API and a Rust data plane."
    )
    parser.add_argument("--version", action=_Version, help="show the version and exit")
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    chosen = next((a for a in argv if a in _SUBCOMMANDS), None)
    for name, (_, help_text) in _SUBCOMMANDS.items():
        sub = commands.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            _load(name).add_arguments(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(argv).parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    return _load(args.command).run(args)


if __name__ == "__main__":
    sys.exit(main())
