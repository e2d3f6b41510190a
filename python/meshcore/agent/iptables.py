"""Transparent capture rules, as data: what `meshcore iptables` installs (istio-init's role).

Pure functions only. `capture_rules` turns a `CaptureConfig` (the options of
istio-iptables and the `traffic.sidecar.istio.io/*` annotations) into the nat-table rules
of one address family; `restore_input` writes them for `iptables-restore --noflush`;
`cleanup_input` reads `iptables-save -t nat` and writes what removes every rule and chain
of ours, and nothing else. `meshcore.cli.iptables` runs the commands.

The chains mirror Istio's, so `iptables-save` reads the same to anyone who knows those:

- ``PREROUTING → MESHCORE_INBOUND``: inbound TCP to the captured ports →
  ``MESHCORE_IN_REDIRECT`` (REDIRECT to the inbound port, 15006).
- ``OUTPUT → MESHCORE_OUTPUT``: outbound TCP from the app → ``MESHCORE_REDIRECT``
  (REDIRECT to the outbound port, 15001). The proxy's own connections (its uid or gid)
  pass, except those it makes over loopback to this host's own non-loopback address (an
  app calling itself through its service), which go to the inbound listener as Istio sends
  them. Other loopback traffic is the app talking to itself and passes.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

Family = Literal[4, 6]

CHAIN_PREFIX = "MESHCORE_"
INBOUND_CHAIN = "MESHCORE_INBOUND"
IN_REDIRECT_CHAIN = "MESHCORE_IN_REDIRECT"
OUTPUT_CHAIN = "MESHCORE_OUTPUT"
REDIRECT_CHAIN = "MESHCORE_REDIRECT"

DEFAULT_OUTBOUND_PORT = 15001
DEFAULT_INBOUND_PORT = 15006
DEFAULT_EXCLUDED_INBOUND_PORTS = (15020, 15021)
"""The sidecar's metrics and readiness ports (`--metrics-port`, `--status-port`), which
Istio's injector excludes too: a kubelet probe must reach the agent, not the app."""

ALL: Final = "*"

_LOOPBACK: dict[Family, str] = {4: "127.0.0.1/32", 6: "::1/128"}
_OWNER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


class CaptureConfigError(ValueError):
    """An option that cannot become a rule; the message names the option."""


@dataclass(frozen=True, slots=True)
class CaptureConfig:
    """What to capture; every field has the meaning of the istio-iptables flag of that name.

    `include_*` take `"*"` (everything) or a tuple; an empty tuple captures nothing in that
    direction (no chain is installed for it).
    """

    proxy_uids: tuple[str, ...] = ()
    proxy_gids: tuple[str, ...] = ()
    outbound_port: int = DEFAULT_OUTBOUND_PORT
    inbound_port: int = DEFAULT_INBOUND_PORT
    include_inbound_ports: tuple[int, ...] | Literal["*"] = ALL
    exclude_inbound_ports: tuple[int, ...] = DEFAULT_EXCLUDED_INBOUND_PORTS
    include_outbound_cidrs: tuple[str, ...] | Literal["*"] = ALL
    exclude_outbound_cidrs: tuple[str, ...] = ()
    exclude_outbound_ports: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not self.proxy_uids and not self.proxy_gids:
            raise CaptureConfigError(
                "--proxy-uid or --proxy-gid is required: without one the proxy's own "
                "connections would be captured and loop"
            )
        for name, owners in (("--proxy-uid", self.proxy_uids), ("--proxy-gid", self.proxy_gids)):
            for owner in owners:
                if not _OWNER.match(owner):
                    raise CaptureConfigError(f"{name}: {owner!r} is not a user/group id or name")
        for name, port in (
            ("--proxy-port", self.outbound_port),
            ("--inbound-capture-port", self.inbound_port),
        ):
            _check_port(name, port)


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule appended to a chain of the nat table."""

    chain: str
    spec: tuple[str, ...]

    def line(self) -> str:
        """The rule as `iptables-restore` and `iptables-save` write it."""
        return " ".join(("-A", self.chain, *self.spec))


@dataclass(frozen=True, slots=True)
class RuleSet:
    """The chains of one address family and the rules that fill and reach them, in order."""

    family: Family
    chains: tuple[str, ...]
    rules: tuple[Rule, ...] = field(default=())


def parse_ports(option: str, text: str) -> tuple[int, ...]:
    """`"80,8080"` → (80, 8080); `""` → ()."""
    ports = []
    for item in _items(option, text):
        if not item.isdigit():
            raise CaptureConfigError(f"{option}: {item!r} is not a port number")
        _check_port(option, int(item))
        ports.append(int(item))
    return tuple(dict.fromkeys(ports))


def parse_included_ports(option: str, text: str) -> tuple[int, ...] | Literal["*"]:
    """Like `parse_ports`, and `"*"` means every port."""
    return ALL if text.strip() == ALL else parse_ports(option, text)


def parse_cidrs(option: str, text: str) -> tuple[str, ...]:
    """`"10.0.0.0/8,fd00::/8"` → normalised networks (a bare address is a /32 or /128)."""
    networks = []
    for item in _items(option, text):
        try:
            networks.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError as error:
            raise CaptureConfigError(f"{option}: {error}") from None
    return tuple(dict.fromkeys(networks))


def parse_included_cidrs(option: str, text: str) -> tuple[str, ...] | Literal["*"]:
    """Like `parse_cidrs`, and `"*"` means every destination."""
    return ALL if text.strip() == ALL else parse_cidrs(option, text)


def parse_owners(option: str, text: str) -> tuple[str, ...]:
    """`"1337,meshcore-proxy"` → ("1337", "meshcore-proxy")."""
    return tuple(_items(option, text))


def capture_rules(config: CaptureConfig, family: Family = 4) -> RuleSet:
    """The nat-table chains and rules that capture `family`'s TCP as `config` says."""
    chains: list[str] = []
    rules: list[Rule] = []
    inbound = config.include_inbound_ports == ALL or bool(config.include_inbound_ports)
    outbound = config.include_outbound_cidrs == ALL or bool(
        _of_family(config.include_outbound_cidrs, family)
    )
    if inbound:
        chains += [INBOUND_CHAIN, IN_REDIRECT_CHAIN]
        rules.append(_rule(IN_REDIRECT_CHAIN, "-p tcp -j REDIRECT --to-ports", config.inbound_port))
        rules.append(_rule("PREROUTING", "-p tcp -j", INBOUND_CHAIN))
        rules += _inbound_rules(config)
    if outbound:
        chains += [OUTPUT_CHAIN, REDIRECT_CHAIN]
        rules.append(_rule(REDIRECT_CHAIN, "-p tcp -j REDIRECT --to-ports", config.outbound_port))
        rules.append(_rule("OUTPUT", "-p tcp -j", OUTPUT_CHAIN))
        rules += _outbound_rules(config, family, inbound=inbound)
    return RuleSet(family, tuple(chains), tuple(rules))


def _inbound_rules(config: CaptureConfig) -> list[Rule]:
    excluded = set(config.exclude_inbound_ports)
    if config.include_inbound_ports == ALL:
        rules = [
            _rule(INBOUND_CHAIN, "-p tcp --dport", port, "-j RETURN")
            for port in config.exclude_inbound_ports
        ]
        rules.append(_rule(INBOUND_CHAIN, "-p tcp -j", IN_REDIRECT_CHAIN))
        return rules
    return [
        _rule(INBOUND_CHAIN, "-p tcp --dport", port, "-j", IN_REDIRECT_CHAIN)
        for port in config.include_inbound_ports
        if port not in excluded
    ]


def _outbound_rules(config: CaptureConfig, family: Family, *, inbound: bool) -> list[Rule]:
    loopback = _LOOPBACK[family]
    owners = [("--uid-owner", uid) for uid in config.proxy_uids] + [
        ("--gid-owner", gid) for gid in config.proxy_gids
    ]
    rules = [
        _rule(OUTPUT_CHAIN, "-p tcp --dport", port, "-j RETURN")
        for port in config.exclude_outbound_ports
    ]
    if inbound:
        # The proxy dialling this host's own address (an app calling its own service):
        # deliver it through the inbound listener, as if it had come from outside.
        rules += [
            _rule(
                OUTPUT_CHAIN,
                "-o lo ! -d",
                loopback,
                "-m owner",
                match,
                owner,
                "-j",
                IN_REDIRECT_CHAIN,
            )
            for match, owner in owners
        ]
    rules += [_rule(OUTPUT_CHAIN, "-m owner", match, owner, "-j RETURN") for match, owner in owners]
    # Anything else over loopback is the app talking to itself.
    rules.append(_rule(OUTPUT_CHAIN, "-o lo -j RETURN"))
    rules += [
        _rule(OUTPUT_CHAIN, "-d", cidr, "-j RETURN")
        for cidr in _of_family(config.exclude_outbound_cidrs, family)
    ]
    if config.include_outbound_cidrs == ALL:
        rules.append(_rule(OUTPUT_CHAIN, "-j", REDIRECT_CHAIN))
    else:
        rules += [
            _rule(OUTPUT_CHAIN, "-d", cidr, "-j", REDIRECT_CHAIN)
            for cidr in _of_family(config.include_outbound_cidrs, family)
        ]
    return rules


def restore_input(rule_set: RuleSet) -> str:
    """`iptables-restore --noflush` input that creates the chains and appends the rules."""
    lines = ["*nat"]
    lines += [f":{chain} - [0:0]" for chain in rule_set.chains]
    lines += [rule.line() for rule in rule_set.rules]
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True, slots=True)
class Installed:
    """What of ours `iptables-save -t nat` shows: jumps from built-in chains, our chains."""

    jumps: tuple[str, ...]
    chains: tuple[str, ...]

    def __bool__(self) -> bool:
        return bool(self.jumps or self.chains)


def installed(save_output: str) -> Installed:
    """Finds our rules in `iptables-save -t nat` output (the `*nat` table only)."""
    jumps: list[str] = []
    chains: list[str] = []
    in_nat = False
    for raw in save_output.splitlines():
        line = raw.strip()
        if line.startswith("*"):
            in_nat = line == "*nat"
        elif not in_nat or not line or line.startswith("#"):
            continue
        elif line.startswith(":" + CHAIN_PREFIX):
            chains.append(line[1:].split()[0])
        elif line.startswith("-A "):
            chain = line.split()[1]
            target = _jump_target(line)
            if not chain.startswith(CHAIN_PREFIX) and target.startswith(CHAIN_PREFIX):
                jumps.append(line)
    return Installed(tuple(jumps), tuple(chains))


def cleanup_input(found: Installed) -> str | None:
    """`iptables-restore --noflush` input removing what `installed` found; None if nothing."""
    if not found:
        return None
    lines = ["*nat"]
    lines += ["-D" + jump[2:] for jump in found.jumps]
    # Flush every chain before deleting any: they jump to each other.
    lines += [f"-F {chain}" for chain in found.chains]
    lines += [f"-X {chain}" for chain in found.chains]
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def failed_line(restore_text: str, stderr: str) -> str | None:
    """The input line `iptables-restore` names in its error ("line 7 failed"), if any."""
    match = re.search(r"line:? (\d+)", stderr)
    if match is None:
        return None
    lines = restore_text.splitlines()
    number = int(match.group(1))
    return lines[number - 1] if 0 < number <= len(lines) else None


def _jump_target(line: str) -> str:
    parts = line.split()
    for flag in ("-j", "--jump", "-g", "--goto"):
        if flag in parts:
            index = parts.index(flag)
            if index + 1 < len(parts):
                return parts[index + 1]
    return ""


def _of_family(cidrs: Sequence[str] | Literal["*"], family: Family) -> tuple[str, ...]:
    if cidrs == ALL:
        return ()
    return tuple(c for c in cidrs if ipaddress.ip_network(c, strict=False).version == family)


def _items(option: str, text: str) -> list[str]:
    items = [part.strip() for part in text.split(",")]
    if ALL in items:
        raise CaptureConfigError(f"{option}: '*' is not allowed here")
    return [item for item in items if item]


def _rule(chain: str, *parts: object) -> Rule:
    return Rule(chain, tuple(_words(parts)))


def _words(parts: Iterable[object]) -> Iterable[str]:
    for part in parts:
        yield from str(part).split()


def _check_port(option: str, port: int) -> None:
    if not 0 < port < 65536:
        raise CaptureConfigError(f"{option}: {port} is not a port number (1-65535)")
