"""The capture rules `meshcore iptables` installs, against expected rule lists, and the
cleanup it derives from `iptables-save` output."""

from __future__ import annotations

import pytest

from meshcore.agent.iptables import (
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


def lines(config: CaptureConfig, family: Family = 4) -> list[str]:
    return [rule.line() for rule in capture_rules(config, family).rules]


def test_defaults_capture_everything_but_the_proxy_and_its_status_ports() -> None:
    assert lines(CaptureConfig(proxy_uids=("1337",))) == [
        "-A MESHCORE_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006",
        "-A PREROUTING -p tcp -j MESHCORE_INBOUND",
        "-A MESHCORE_INBOUND -p tcp --dport 15020 -j RETURN",
        "-A MESHCORE_INBOUND -p tcp --dport 15021 -j RETURN",
        "-A MESHCORE_INBOUND -p tcp -j MESHCORE_IN_REDIRECT",
        "-A MESHCORE_REDIRECT -p tcp -j REDIRECT --to-ports 15001",
        "-A OUTPUT -p tcp -j MESHCORE_OUTPUT",
        "-A MESHCORE_OUTPUT -o lo ! -d 127.0.0.1/32 -m owner --uid-owner 1337"
        " -j MESHCORE_IN_REDIRECT",
        "-A MESHCORE_OUTPUT -m owner --uid-owner 1337 -j RETURN",
        "-A MESHCORE_OUTPUT -o lo -j RETURN",
        "-A MESHCORE_OUTPUT -j MESHCORE_REDIRECT",
    ]


def test_restore_input_declares_the_chains_then_appends_in_order() -> None:
    rule_set = capture_rules(CaptureConfig(proxy_uids=("1337",)))
    text = restore_input(rule_set)
    assert text.splitlines()[:5] == [
        "*nat",
        ":MESHCORE_INBOUND - [0:0]",
        ":MESHCORE_IN_REDIRECT - [0:0]",
        ":MESHCORE_OUTPUT - [0:0]",
        ":MESHCORE_REDIRECT - [0:0]",
    ]
    assert text.endswith("-A MESHCORE_OUTPUT -j MESHCORE_REDIRECT\nCOMMIT\n")


def test_included_inbound_ports_are_the_only_ones_captured_minus_excluded() -> None:
    config = CaptureConfig(
        proxy_uids=("1337",),
        include_inbound_ports=(9080, 15021, 8080),
        include_outbound_cidrs=(),
    )
    assert lines(config) == [
        "-A MESHCORE_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006",
        "-A PREROUTING -p tcp -j MESHCORE_INBOUND",
        "-A MESHCORE_INBOUND -p tcp --dport 9080 -j MESHCORE_IN_REDIRECT",
        "-A MESHCORE_INBOUND -p tcp --dport 8080 -j MESHCORE_IN_REDIRECT",
    ]
    assert capture_rules(config).chains == ("MESHCORE_INBOUND", "MESHCORE_IN_REDIRECT")


def test_outbound_only_has_no_inbound_chains_and_no_loopback_redirect() -> None:
    config = CaptureConfig(
        proxy_uids=("1337",),
        proxy_gids=("1337",),
        outbound_port=16001,
        include_inbound_ports=(),
        exclude_outbound_ports=(22, 3306),
        exclude_outbound_cidrs=("169.254.169.254/32", "fd00::/8"),
    )
    assert lines(config) == [
        "-A MESHCORE_REDIRECT -p tcp -j REDIRECT --to-ports 16001",
        "-A OUTPUT -p tcp -j MESHCORE_OUTPUT",
        "-A MESHCORE_OUTPUT -p tcp --dport 22 -j RETURN",
        "-A MESHCORE_OUTPUT -p tcp --dport 3306 -j RETURN",
        "-A MESHCORE_OUTPUT -m owner --uid-owner 1337 -j RETURN",
        "-A MESHCORE_OUTPUT -m owner --gid-owner 1337 -j RETURN",
        "-A MESHCORE_OUTPUT -o lo -j RETURN",
        "-A MESHCORE_OUTPUT -d 169.254.169.254/32 -j RETURN",
        "-A MESHCORE_OUTPUT -j MESHCORE_REDIRECT",
    ]


def test_included_outbound_ranges_redirect_only_those_per_family() -> None:
    config = CaptureConfig(
        proxy_uids=("meshcore-proxy",),
        include_inbound_ports=(),
        include_outbound_cidrs=("198.18.0.0/15", "fd00::/8"),
        exclude_outbound_cidrs=("198.18.0.9/32",),
    )
    assert lines(config)[-3:] == [
        "-A MESHCORE_OUTPUT -o lo -j RETURN",
        "-A MESHCORE_OUTPUT -d 198.18.0.9/32 -j RETURN",
        "-A MESHCORE_OUTPUT -d 198.18.0.0/15 -j MESHCORE_REDIRECT",
    ]
    assert lines(config, 6)[-2:] == [
        "-A MESHCORE_OUTPUT -o lo -j RETURN",
        "-A MESHCORE_OUTPUT -d fd00::/8 -j MESHCORE_REDIRECT",
    ]


def test_ipv6_uses_the_ipv6_loopback() -> None:
    assert (
        "-A MESHCORE_OUTPUT -o lo ! -d ::1/128 -m owner --uid-owner 1337 -j MESHCORE_IN_REDIRECT"
        in lines(CaptureConfig(proxy_uids=("1337",)), 6)
    )


def test_no_capture_at_all_is_an_empty_rule_set() -> None:
    rule_set = capture_rules(
        CaptureConfig(proxy_uids=("1",), include_inbound_ports=(), include_outbound_cidrs=())
    )
    assert rule_set.rules == ()
    assert rule_set.chains == ()


def test_the_proxy_must_be_excluded_and_owners_and_ports_are_checked() -> None:
    with pytest.raises(CaptureConfigError, match="--proxy-uid or --proxy-gid is required"):
        CaptureConfig()
    with pytest.raises(CaptureConfigError, match="--proxy-uid: 'a b'"):
        CaptureConfig(proxy_uids=("a b",))
    with pytest.raises(CaptureConfigError, match="--proxy-port: 0"):
        CaptureConfig(proxy_uids=("1",), outbound_port=0)


def test_parsing_options() -> None:
    assert parse_ports("-o", " 22, 80,22 ,") == (22, 80)
    assert parse_ports("-o", "") == ()
    assert parse_included_ports("-b", "*") == "*"
    assert parse_included_cidrs("-i", " * ") == "*"
    assert parse_cidrs("-x", "10.1.2.3, 10.0.0.0/8,fd00::1/8") == (
        "10.1.2.3/32",
        "10.0.0.0/8",
        "fd00::/8",
    )
    assert parse_owners("-u", "1337, meshcore-proxy") == ("1337", "meshcore-proxy")
    with pytest.raises(CaptureConfigError, match="-o: 'http' is not a port number"):
        parse_ports("-o", "http")
    with pytest.raises(CaptureConfigError, match="-d: 70000"):
        parse_ports("-d", "70000")
    with pytest.raises(CaptureConfigError, match="-d: '\\*' is not allowed"):
        parse_ports("-d", "*")
    with pytest.raises(CaptureConfigError, match="-x: "):
        parse_cidrs("-x", "10.0.0.0/33")


SAVED = """\
# Generated by iptables-save v1.8.9 (nf_tables)
*mangle
:PREROUTING ACCEPT [0:0]
-A PREROUTING -j MESHCORE_NOT_NAT
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:MESHCORE_INBOUND - [0:0]
:MESHCORE_OUTPUT - [0:0]
:OTHER - [0:0]
-A PREROUTING -p tcp -j MESHCORE_INBOUND
-A PREROUTING -p tcp -j OTHER
-A OUTPUT -p tcp -j MESHCORE_OUTPUT
-A OTHER -p tcp -m tcp --dport 80 -j RETURN
-A MESHCORE_INBOUND -p tcp -j RETURN
COMMIT
"""


def test_cleanup_removes_our_chains_and_the_jumps_to_them_only() -> None:
    found = installed(SAVED)
    assert found.jumps == (
        "-A PREROUTING -p tcp -j MESHCORE_INBOUND",
        "-A OUTPUT -p tcp -j MESHCORE_OUTPUT",
    )
    assert found.chains == ("MESHCORE_INBOUND", "MESHCORE_OUTPUT")
    assert cleanup_input(found) == (
        "*nat\n"
        "-D PREROUTING -p tcp -j MESHCORE_INBOUND\n"
        "-D OUTPUT -p tcp -j MESHCORE_OUTPUT\n"
        "-F MESHCORE_INBOUND\n"
        "-F MESHCORE_OUTPUT\n"
        "-X MESHCORE_INBOUND\n"
        "-X MESHCORE_OUTPUT\n"
        "COMMIT\n"
    )


def test_cleanup_of_nothing_is_nothing() -> None:
    found = installed("*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n")
    assert not found
    assert cleanup_input(found) is None


def test_a_failed_restore_names_its_rule() -> None:
    text = restore_input(capture_rules(CaptureConfig(proxy_uids=("nosuchuser",))))
    stderr = 'owner: Bad value for "--uid-owner" option\nError occurred at line: 13\n'
    assert failed_line(text, stderr) == (
        "-A MESHCORE_OUTPUT -o lo ! -d 127.0.0.1/32 -m owner --uid-owner nosuchuser "
        "-j MESHCORE_IN_REDIRECT"
    )
    assert failed_line(text, "iptables-restore: line 2 failed") == ":MESHCORE_INBOUND - [0:0]"
    assert failed_line(text, "something else") is None


def test_the_cli_dry_run_prints_the_restore_input_and_changes_nothing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from meshcore.cli.main import main  # noqa: PLC0415

    assert main(["iptables", "--dry-run", "-u", "1337", "-b", "9080", "-i", "198.18.0.0/15"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "# iptables-restore --noflush"
    assert "-A MESHCORE_INBOUND -p tcp --dport 9080 -j MESHCORE_IN_REDIRECT" in out
    assert "-A MESHCORE_OUTPUT -d 198.18.0.0/15 -j MESHCORE_REDIRECT" in out
    assert out[-1] == "COMMIT"


def test_the_cli_rejects_bad_options_with_their_name(capsys: pytest.CaptureFixture[str]) -> None:
    from meshcore.cli.main import main  # noqa: PLC0415

    assert main(["iptables", "--dry-run", "-u", "1337", "-o", "ssh"]) == 2
    assert "--exclude-outbound-ports: 'ssh' is not a port number" in capsys.readouterr().err
    assert main(["iptables", "--dry-run"]) == 2
    assert "--proxy-uid or --proxy-gid is required" in capsys.readouterr().err
