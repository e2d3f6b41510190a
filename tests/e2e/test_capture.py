"""Transparent capture end to end: unmodified curl and servers in network namespaces, a
sidecar per host running as its own uid, real iptables rules from `meshcore iptables`.

```
  client 198.18.0.1           reviews-v1 198.18.0.2        reviews-v2 198.18.0.3
  curl ─► OUTPUT capture      PREROUTING capture            PREROUTING capture
     ─► sidecar :15001 ─────► sidecar :15006 ─► :9080      sidecar :15006 ─► :9080
                    └──────────────────────────────────────►┘  (80/20 by weight)
                    └─► PassthroughCluster ─► outside 198.18.0.4 :8000 (http), :7000 (tcp)
  every host's eth0 on one bridge (its own namespace); "reviews" = 198.18.1.10, no host's
```

The client resolves `reviews` through a hosts file to a service address no host has, so
a reply at all proves capture; the sidecars' admin `/stats` show which listener and
cluster carried each request. Each test writes the client's snapshot it needs and sends
SIGHUP, as an operator would.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import meshcore
from tests.e2e.netns import Host, Lan, missing_requirements

pytestmark = pytest.mark.netns

SKIP = missing_requirements()

PROXY_UID = 65534  # nobody: the sidecars run as this uid, and capture lets it pass
ADMIN_PORT = 15000
SERVICE_IP = "198.18.1.10"
APP_PORT = 9080
OUTSIDE_HTTP_PORT = 8000
OUTSIDE_TCP_PORT = 7000
DEADLINE = 10.0


def inbound_snapshot(version: str) -> dict[str, Any]:
    """A server's sidecar: captured inbound HTTP on :15006 to the app on :9080."""
    return {
        "version": version,
        "listeners": [
            {
                "name": "virtualInbound",
                "address": "0.0.0.0",
                "port": 15006,
                "protocol": "auto",
                "direction": "inbound",
                "route_config": "inbound|9080",
                "tcp_route": {"clusters": [{"name": "InboundPassthroughCluster"}]},
            },
            _outbound_listener("PassthroughCluster"),
        ],
        "route_configs": [
            {
                "name": "inbound|9080",
                "virtual_hosts": [
                    {
                        "name": "inbound|http|9080",
                        "domains": ["*"],
                        "routes": [{"route": {"clusters": [{"name": "inbound|9080||"}]}}],
                    }
                ],
            },
            {"name": "outbound", "virtual_hosts": [_allow_any()]},
        ],
        "clusters": [
            {
                "name": "inbound|9080||",
                "protocol": "http1",
                "endpoints": [{"address": "127.0.0.1", "port": APP_PORT}],
            },
            {"name": "InboundPassthroughCluster", "kind": "original_dst"},
            {"name": "PassthroughCluster", "kind": "original_dst"},
        ],
    }


def client_snapshot(
    version: str, weights: dict[str, int], *, registry_only: bool = False
) -> dict[str, Any]:
    """The client's sidecar: `reviews` split by `weights` over the two server hosts; other
    hosts passed through (ALLOW_ANY) or refused (REGISTRY_ONLY)."""
    fallback = _blocked() if registry_only else _allow_any()
    return {
        "version": version,
        "listeners": [
            _outbound_listener("BlackHoleCluster" if registry_only else "PassthroughCluster")
        ],
        "route_configs": [
            {
                "name": "outbound",
                "virtual_hosts": [
                    {
                        "name": "reviews.default.svc.cluster.local:9080",
                        "domains": ["reviews", f"reviews:{APP_PORT}", f"{SERVICE_IP}:{APP_PORT}"],
                        "routes": [
                            {
                                "route": {
                                    "clusters": [
                                        {
                                            "name": f"outbound|9080|{subset}|reviews",
                                            "weight": weight,
                                        }
                                        for subset, weight in weights.items()
                                    ]
                                }
                            }
                        ],
                    },
                    fallback,
                ],
            }
        ],
        "clusters": [
            {
                "name": f"outbound|9080|{subset}|reviews",
                "protocol": "http1",
                "endpoints": [{"address": address, "port": APP_PORT}],
            }
            for subset, address in (("v1", "198.18.0.2"), ("v2", "198.18.0.3"))
        ]
        + [
            {"name": "PassthroughCluster", "kind": "original_dst"},
            {"name": "BlackHoleCluster"},
        ],
    }


def _outbound_listener(fallback: str) -> dict[str, Any]:
    return {
        "name": "virtualOutbound",
        "address": "0.0.0.0",
        "port": 15001,
        "protocol": "auto",
        "direction": "outbound",
        "detect_timeout_ms": 300,
        "route_config": "outbound",
        "tcp_route": {"clusters": [{"name": fallback}]},
    }


def _allow_any() -> dict[str, Any]:
    return {
        "name": "allow_any",
        "domains": ["*"],
        "routes": [{"route": {"clusters": [{"name": "PassthroughCluster"}]}}],
    }


def _blocked() -> dict[str, Any]:
    return {
        "name": "block_all",
        "domains": ["*"],
        "routes": [{"direct_response": {"status": 502, "body": "REGISTRY_ONLY\n"}}],
    }


class Sidecar:
    """`meshcore sidecar --snapshot FILE` in a host, as PROXY_UID."""

    def __init__(self, host: Host, workdir: Path, snapshot: dict[str, Any]) -> None:
        self.host = host
        self.path = workdir / f"{host.name}.json"
        self.log = workdir / f"{host.name}.log"
        self.write(snapshot)
        self.process = host.spawn(
            sys.executable, "-m", "meshcore.cli.main", "sidecar",
            "--snapshot", str(self.path), "--admin-port", str(ADMIN_PORT),
            user=PROXY_UID, log=self.log,
        )  # fmt: skip
        self.wait_for_version(snapshot["version"])

    def write(self, snapshot: dict[str, Any]) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(snapshot))
        tmp.chmod(0o644)
        tmp.replace(self.path)

    def reload(self, snapshot: dict[str, Any]) -> None:
        """Rewrites the snapshot file and sends SIGHUP; returns once it serves it."""
        self.write(snapshot)
        self.process.send_signal(signal.SIGHUP)
        self.wait_for_version(snapshot["version"])

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = self.host.admin("/stats", ADMIN_PORT)
        return stats

    def listener(self, name: str) -> dict[str, Any]:
        return next(item for item in self.stats()["listeners"] if item["name"] == name)

    def cluster(self, name: str) -> dict[str, Any]:
        return next(item for item in self.stats()["clusters"] if item["name"] == name)

    def wait_for_version(self, version: str) -> None:
        def serving() -> bool:
            try:
                return bool(self.stats()["version"] == version)
            except (AssertionError, ValueError):
                return False

        if not eventually(serving):
            if self.process.poll() is not None:
                pytest.fail(f"sidecar {self.host.name} exited:\n{self.log.read_text()}")
            pytest.fail(
                f"sidecar {self.host.name} does not serve {version}:\n{self.log.read_text()}"
            )


def serves(host: Host, port: int) -> bool:
    return host.http(f"http://127.0.0.1:{port}/")[0] == 200


def eventually(check: Callable[[], bool], timeout: float = DEADLINE) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return check()


class Mesh:
    """The running topology the tests share."""

    def __init__(self, lan: Lan, workdir: Path) -> None:
        self.lan = lan
        self.workdir = workdir
        self.client = lan.add_host("client", 1, default_route=True)
        self.v1 = lan.add_host("v1", 2)
        self.v2 = lan.add_host("v2", 3)
        self.outside = lan.add_host("outside", 4)
        lan.hosts_file(self.client, {"reviews": SERVICE_IP})
        for host, text in (
            (self.v1, "reviews-v1"),
            (self.v2, "reviews-v2"),
            (self.outside, "outside"),
        ):
            site = workdir / host.name
            site.mkdir()
            (site / "index.html").write_text(text + "\n")
            port = OUTSIDE_HTTP_PORT if host is self.outside else APP_PORT
            host.spawn(
                sys.executable,
                "-m",
                "http.server",
                str(port),
                "--bind",
                "0.0.0.0",
                "--directory",
                str(site),
            )
        self.outside.spawn(
            sys.executable, "-m", "meshcore.cli.samples.echo", "outside",
            "--host", "0.0.0.0", "--port", str(OUTSIDE_TCP_PORT),
        )  # fmt: skip
        for host in (self.client, self.v1, self.v2):
            installed = host.run(
                sys.executable, "-m", "meshcore.cli.main", "iptables", "--proxy-uid", str(PROXY_UID)
            )
            assert "installed" in installed, installed
        self.v1_sidecar = Sidecar(self.v1, workdir, inbound_snapshot("server-1"))
        self.v2_sidecar = Sidecar(self.v2, workdir, inbound_snapshot("server-1"))
        self.client_sidecar = Sidecar(
            self.client, workdir, client_snapshot("client-1", {"v1": 80, "v2": 20})
        )
        for host, port in (
            (self.v1, APP_PORT),
            (self.v2, APP_PORT),
            (self.outside, OUTSIDE_HTTP_PORT),
        ):
            # From inside the server host over loopback: not captured.
            assert eventually(functools.partial(serves, host, port)), f"{host.name}:{port}"

    def curl_many(self, url: str, count: int) -> list[str]:
        """`count` GETs of `url` on one curl (one keep-alive connection); the bodies."""
        output = self.client.run("curl", "-s", "-m", "30", *[url] * count, timeout=45)
        return output.split()

    def tcp_exchange(self, host: str, port: int, message: str) -> str:
        """A plain TCP client in the client host: sends `message`, returns what came back
        until the peer closed or a short quiet spell."""
        script = (
            "import socket,sys\n"
            f"s=socket.create_connection(({host!r},{port}),timeout=5)\n"
            f"s.sendall({message.encode()!r})\n"
            "s.settimeout(1.5)\n"
            "got=b''\n"
            "try:\n"
            "    while len(got)<64:\n"
            "        b=s.recv(64)\n"
            "        if not b: break\n"
            "        got+=b\n"
            "except (TimeoutError, ConnectionError): pass\n"
            "sys.stdout.write(got.decode())\n"
        )
        return self.client.run(sys.executable, "-c", script)


@pytest.fixture(scope="module")
def mesh() -> Iterator[Mesh]:
    if SKIP is not None:
        pytest.skip(SKIP)
    workdir = Path(tempfile.mkdtemp(prefix="meshcore-e2e-"))
    workdir.chmod(0o755)  # the sidecars run as another uid and read their snapshots here
    lan = Lan()
    # The sidecars and the iptables command import meshcore from this checkout.
    package_root = str(Path(meshcore.__file__).resolve().parent.parent)
    lan.env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, lan.env.get("PYTHONPATH")]))
    try:
        lan.open()
        yield Mesh(lan, workdir)
    finally:
        lan.close()
        subprocess.run(["rm", "-rf", str(workdir)], check=False)


def test_a_plain_curl_goes_through_both_sidecars(mesh: Mesh) -> None:
    mesh.client_sidecar.reload(client_snapshot("client-a", {"v1": 1}))
    outbound_before = mesh.client_sidecar.listener("virtualOutbound")["http_requests"]
    inbound_before = mesh.v1_sidecar.listener("virtualInbound")["http_requests"]

    status, body = mesh.client.http(f"http://reviews:{APP_PORT}/")

    assert (status, body) == (200, "reviews-v1\n")
    assert mesh.client_sidecar.listener("virtualOutbound")["http_requests"] == outbound_before + 1
    assert mesh.client_sidecar.cluster("outbound|9080|v1|reviews")["responses_2xx"] >= 1
    assert mesh.v1_sidecar.listener("virtualInbound")["http_requests"] == inbound_before + 1
    assert mesh.v1_sidecar.cluster("inbound|9080||")["responses_2xx"] >= 1


def test_a_canary_split_follows_the_weights(mesh: Mesh) -> None:
    mesh.client_sidecar.reload(client_snapshot("client-b", {"v1": 80, "v2": 20}))
    v1_inbound = mesh.v1_sidecar.listener("virtualInbound")["http_requests"]
    v2_inbound = mesh.v2_sidecar.listener("virtualInbound")["http_requests"]

    bodies = mesh.curl_many(f"http://reviews:{APP_PORT}/", 200)

    assert len(bodies) == 200
    v2 = bodies.count("reviews-v2")
    assert bodies.count("reviews-v1") + v2 == 200
    # 40 expected; ±20 is more than 3.5 standard deviations of a binomial(200, 0.2).
    assert 20 <= v2 <= 60, f"{v2} of 200 went to v2"
    assert mesh.v2_sidecar.listener("virtualInbound")["http_requests"] - v2_inbound == v2
    assert mesh.v1_sidecar.listener("virtualInbound")["http_requests"] - v1_inbound == 200 - v2


def test_a_snapshot_rewritten_and_sighup_takes_effect(mesh: Mesh) -> None:
    mesh.client_sidecar.reload(client_snapshot("client-c1", {"v1": 1}))
    assert set(mesh.curl_many(f"http://reviews:{APP_PORT}/", 10)) == {"reviews-v1"}

    mesh.client_sidecar.reload(client_snapshot("client-c2", {"v2": 1}))

    assert set(mesh.curl_many(f"http://reviews:{APP_PORT}/", 10)) == {"reviews-v2"}


def test_unknown_destinations_pass_through_under_allow_any(mesh: Mesh) -> None:
    mesh.client_sidecar.reload(client_snapshot("client-d1", {"v1": 1}))
    passthrough = mesh.client_sidecar.cluster("PassthroughCluster")

    status, body = mesh.client.http(f"http://{mesh.outside.address}:{OUTSIDE_HTTP_PORT}/")
    greeting = mesh.tcp_exchange(mesh.outside.address, OUTSIDE_TCP_PORT, "hello\n")

    assert (status, body) == (200, "outside\n")
    assert greeting == "outside\nhello\n"
    after = mesh.client_sidecar.cluster("PassthroughCluster")
    assert after["http_requests"] == passthrough["http_requests"] + 1
    # The HTTP request's connection and the TCP one.
    assert after["connections_opened"] == passthrough["connections_opened"] + 2


def test_a_declared_opaque_port_is_greeted_without_waiting_for_detection(mesh: Mesh) -> None:
    snapshot = client_snapshot("client-o1", {"v1": 1})
    # Detection would hold a silent client for a minute; the port is declared opaque, so
    # the server-first greeting must come at once (the exchange waits 1.5 s for it).
    snapshot["listeners"][0] |= {"detect_timeout_ms": 60_000, "opaque_ports": [OUTSIDE_TCP_PORT]}
    mesh.client_sidecar.reload(snapshot)
    before = mesh.client_sidecar.listener("virtualOutbound")

    greeting = mesh.tcp_exchange(mesh.outside.address, OUTSIDE_TCP_PORT, "")

    assert greeting == "outside\n"
    after = mesh.client_sidecar.listener("virtualOutbound")
    assert after["declared_opaque"] == before["declared_opaque"] + 1
    assert after["detect_timeouts"] == before["detect_timeouts"]


def test_unknown_destinations_are_refused_under_registry_only(mesh: Mesh) -> None:
    mesh.client_sidecar.reload(client_snapshot("client-e", {"v1": 1}, registry_only=True))
    passthrough = mesh.client_sidecar.cluster("PassthroughCluster")
    blackhole = mesh.client_sidecar.cluster("BlackHoleCluster")

    status, body = mesh.client.http(f"http://{mesh.outside.address}:{OUTSIDE_HTTP_PORT}/")
    greeting = mesh.tcp_exchange(mesh.outside.address, OUTSIDE_TCP_PORT, "hello\n")

    assert (status, body) == (502, "REGISTRY_ONLY\n")
    assert greeting == ""
    assert mesh.client_sidecar.cluster("BlackHoleCluster")["no_healthy_upstream"] == (
        blackhole["no_healthy_upstream"] + 1
    )
    assert mesh.client_sidecar.cluster("PassthroughCluster") == passthrough
    # The mesh still serves what it knows.
    assert mesh.client.http(f"http://reviews:{APP_PORT}/") == (200, "reviews-v1\n")


def test_cleanup_removes_the_rules_and_is_idempotent(mesh: Mesh) -> None:
    host = mesh.v2
    saved_before = host.run("iptables-save", "-t", "nat")
    assert "MESHCORE_INBOUND" in saved_before
    try:
        removed = host.run(sys.executable, "-m", "meshcore.cli.main", "iptables", "--cleanup")
        again = host.run(sys.executable, "-m", "meshcore.cli.main", "iptables", "--cleanup")
        assert "removed 2 jumps" in removed
        assert "nothing to remove" in again
        assert "MESHCORE" not in host.run("iptables-save", "-t", "nat")
    finally:
        host.run(
            sys.executable, "-m", "meshcore.cli.main", "iptables", "--proxy-uid", str(PROXY_UID)
        )
