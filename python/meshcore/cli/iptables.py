"""``meshcore iptables``: install transparent-capture rules in this network namespace
(istio-init's role), print them (``--dry-run``), or remove them (``--cleanup``).

The rules come from `meshcore.agent.iptables` (pure); this module only runs
``iptables-save`` and ``iptables-restore --noflush`` (``ip6tables-*`` with ``--ipv6``).
Installing first removes rules a previous run left, so running it twice leaves one set;
``--cleanup`` removes every MESHCORE_* chain and the jumps to them, and nothing else, and
does nothing when there is nothing to remove. Flags mirror istio-iptables' short options
and the ``traffic.sidecar.istio.io/*`` annotations' names.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys

from meshcore.agent.iptables import (
    ALL,
    DEFAULT_EXCLUDED_INBOUND_PORTS,
    DEFAULT_INBOUND_PORT,
    DEFAULT_OUTBOUND_PORT,
    CaptureConfig,
    CaptureConfigError,
    Family,
    capture_rules,
    cleanup_input,
    failed_line,
    installed,
    parse_cidrs,
    parse_included_cidrs,
    parse_included_ports,
    parse_owners,
    parse_ports,
    restore_input,
)

_TIMEOUT = 30.0


class IptablesError(RuntimeError):
    """An iptables command failed; the message names the command and the rule."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    owner = parser.add_argument_group("the proxy's own traffic (never captured)")
    owner.add_argument(
        "-u", "--proxy-uid", default="", metavar="UID,...", help="the proxy's user ids or names"
    )
    owner.add_argument(
        "-g", "--proxy-gid", default="", metavar="GID,...", help="the proxy's group ids or names"
    )
    ports = parser.add_argument_group("proxy ports")
    ports.add_argument(
        "-p",
        "--proxy-port",
        type=int,
        default=DEFAULT_OUTBOUND_PORT,
        help=f"outbound capture goes here (default {DEFAULT_OUTBOUND_PORT})",
    )
    ports.add_argument(
        "-z",
        "--inbound-capture-port",
        type=int,
        default=DEFAULT_INBOUND_PORT,
        help=f"inbound capture goes here (default {DEFAULT_INBOUND_PORT})",
    )
    capture = parser.add_argument_group(
        "what to capture (names of the traffic.sidecar.istio.io/* annotations)"
    )
    capture.add_argument(
        "-b",
        "--include-inbound-ports",
        default=ALL,
        metavar="PORTS",
        help="inbound ports to capture, '*' for all, '' for none (default '*')",
    )
    excluded = ",".join(map(str, DEFAULT_EXCLUDED_INBOUND_PORTS))
    capture.add_argument(
        "-d",
        "--exclude-inbound-ports",
        default=excluded,
        metavar="PORTS",
        help=f"inbound ports never captured (default {excluded}: the sidecar's status ports)",
    )
    capture.add_argument(
        "-i",
        "--include-outbound-ip-ranges",
        default=ALL,
        metavar="CIDRS",
        help="outbound destinations to capture, '*' for all, '' for none (default '*')",
    )
    capture.add_argument(
        "-x",
        "--exclude-outbound-ip-ranges",
        default="",
        metavar="CIDRS",
        help="outbound destinations never captured",
    )
    capture.add_argument(
        "-o",
        "--exclude-outbound-ports",
        default="",
        metavar="PORTS",
        help="outbound destination ports never captured",
    )
    parser.add_argument(
        "--ipv6", action="store_true", help="also install the IPv6 rules (ip6tables)"
    )
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--dry-run", action="store_true", help="print the rules; change nothing")
    action.add_argument(
        "--cleanup", action="store_true", help="remove the rules meshcore installed"
    )


def config_from(args: argparse.Namespace) -> CaptureConfig:
    """The capture config the flags describe (raises CaptureConfigError)."""
    return CaptureConfig(
        proxy_uids=parse_owners("--proxy-uid", args.proxy_uid),
        proxy_gids=parse_owners("--proxy-gid", args.proxy_gid),
        outbound_port=args.proxy_port,
        inbound_port=args.inbound_capture_port,
        include_inbound_ports=parse_included_ports(
            "--include-inbound-ports", args.include_inbound_ports
        ),
        exclude_inbound_ports=parse_ports("--exclude-inbound-ports", args.exclude_inbound_ports),
        include_outbound_cidrs=parse_included_cidrs(
            "--include-outbound-ip-ranges", args.include_outbound_ip_ranges
        ),
        exclude_outbound_cidrs=parse_cidrs(
            "--exclude-outbound-ip-ranges", args.exclude_outbound_ip_ranges
        ),
        exclude_outbound_ports=parse_ports("--exclude-outbound-ports", args.exclude_outbound_ports),
    )


def run(args: argparse.Namespace) -> int:
    families: list[Family] = [4, 6] if args.ipv6 else [4]
    try:
        if args.cleanup:
            for family in families:
                cleanup(family)
            return 0
        config = config_from(args)
        for family in families:
            text = restore_input(capture_rules(config, family))
            if args.dry_run:
                print(f"# {_tool(family, 'restore')} --noflush")
                print(text, end="")
            else:
                install(family, text)
    except CaptureConfigError as error:
        print(f"meshcore iptables: {error}", file=sys.stderr)
        return 2
    except IptablesError as error:
        print(f"meshcore iptables: {error}", file=sys.stderr)
        return 1
    return 0


def install(family: Family, text: str) -> None:
    """Replaces any meshcore rules of `family` with the rules in `text`."""
    cleanup(family, quiet_if_none=True)
    _restore(family, text)
    rules = [line for line in text.splitlines() if line.startswith("-A ")]
    print(f"{_tool(family)}: installed {len(rules)} rules in the nat table:")
    for line in rules:
        print(f"  {line}")


def cleanup(family: Family, *, quiet_if_none: bool = False) -> None:
    """Removes every meshcore chain of `family` and every jump to one; idempotent."""
    found = installed(_save(family))
    text = cleanup_input(found)
    if text is None:
        if not quiet_if_none:
            print(f"{_tool(family)}: no meshcore rules installed; nothing to remove")
        return
    _restore(family, text)
    print(f"{_tool(family)}: removed {len(found.jumps)} jumps and chains {', '.join(found.chains)}")
    for jump in found.jumps:
        print(f"  -D{jump[2:]}")


def _save(family: Family) -> str:
    command = [_binary(family, "save"), "-t", "nat"]
    done = _call(command, None)
    return done.stdout


def _restore(family: Family, text: str) -> None:
    command = [_binary(family, "restore"), "--noflush", "--wait"]
    try:
        _call(command, text)
    except IptablesError as error:
        rule = failed_line(text, str(error))
        raise IptablesError(
            f"{error}" + (f"\n  the rule that failed: {rule}" if rule else "")
        ) from None


def _call(command: list[str], stdin: str | None) -> subprocess.CompletedProcess[str]:
    try:
        done = subprocess.run(
            command, input=stdin, capture_output=True, text=True, timeout=_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise IptablesError(f"{' '.join(command)}: {error}") from None
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip()
        raise IptablesError(f"{' '.join(command)} failed (exit {done.returncode}): {detail}")
    return done


def _binary(family: Family, verb: str) -> str:
    name = _tool(family, verb)
    found = shutil.which(name)
    if found is None:
        raise IptablesError(f"{name} not found; install the iptables package")
    return found


def _tool(family: Family, verb: str = "") -> str:
    base = "iptables" if family == 4 else "ip6tables"
    return f"{base}-{verb}" if verb else base
