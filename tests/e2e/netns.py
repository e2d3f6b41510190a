"""Small hosts made of network namespaces, for end-to-end tests of transparent capture.

A `Lan` is one switch namespace holding a bridge, and hosts (one namespace each) joined to
it by a veth pair whose host end is `eth0`. Nothing is created in the namespace the tests
run in, so names only need to be unique among namespaces: every name starts with the
run's prefix. `Lan.close` kills every process started through it, deletes every namespace
(which deletes their veths) and the hosts files, whatever state the test left.

Addresses come from 198.18.0.0/15 (RFC 2544 benchmarking), never any other range.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

COMMAND_TIMEOUT = 15.0


def missing_requirements() -> str | None:
    """Why netns tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root to create network namespaces"
    for tool in ("ip", "iptables-restore", "iptables-save", "curl", "setpriv"):
        if shutil.which(tool) is None:
            return f"needs {tool} (apt-get install iproute2 iptables curl util-linux)"
    probe = f"mcprobe{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, check=False)
    if made.returncode != 0:
        return f"ip netns add failed: {made.stderr.decode().strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True, check=False)
    return None


def run(
    args: Sequence[str], *, timeout: float = COMMAND_TIMEOUT, env: dict[str, str] | None = None
) -> str:
    """Runs a command; its stdout, or an AssertionError with its stderr."""
    done = subprocess.run(
        list(args), capture_output=True, text=True, timeout=timeout, check=False, env=env
    )
    if done.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} failed ({done.returncode}): {done.stderr.strip() or done.stdout}"
        )
    return done.stdout


@dataclass
class Host:
    """One namespace on the LAN."""

    lan: Lan
    name: str
    address: str
    netns: str

    def exec_args(self, args: Sequence[str], *, user: int | None = None) -> list[str]:
        """`args` run inside this host, as `user` (uid = gid) when given."""
        prefix = ["ip", "netns", "exec", self.netns]
        if user is not None:
            prefix += ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", "--"]
        return [*prefix, *args]

    def run(self, *args: str, timeout: float = COMMAND_TIMEOUT) -> str:
        return run(self.exec_args(args), timeout=timeout, env=self.lan.env)

    def spawn(
        self, *args: str, user: int | None = None, log: Path | None = None
    ) -> subprocess.Popen[bytes]:
        """Starts a process in this host; `Lan.close` stops it. `ip netns exec` and
        `setpriv` exec in place, so the Popen's pid is the process itself."""
        out = log.open("ab") if log is not None else subprocess.DEVNULL
        process = subprocess.Popen(
            self.exec_args(args, user=user),
            stdout=out,
            stderr=subprocess.STDOUT if log is not None else subprocess.DEVNULL,
            env=self.lan.env,
        )
        self.lan.processes.append(process)
        return process

    def http(self, url: str, *, timeout: float = 5.0) -> tuple[int, str]:
        """`curl` from this host: (status, body); status 0 when the connection failed."""
        done = subprocess.run(
            self.exec_args(
                ["curl", "-s", "-m", str(timeout), "-o", "-", "-w", "\n%{http_code}", url]
            ),
            capture_output=True,
            text=True,
            timeout=timeout + COMMAND_TIMEOUT,
            check=False,
        )
        body, _, status = done.stdout.rpartition("\n")
        return int(status or 0), body

    def admin(self, path: str, port: int) -> Any:
        """JSON from a sidecar's admin API (127.0.0.1 inside the host)."""
        status, body = self.http(f"http://127.0.0.1:{port}{path}", timeout=2.0)
        if status != 200:
            raise AssertionError(f"{self.name}: admin {path} answered {status}: {body}")
        return json.loads(body)


@dataclass
class Lan:
    """A bridge in its own namespace and the hosts on it; see the module docs."""

    subnet_prefix: str = "198.18.0"
    prefix: str = field(default_factory=lambda: f"mc{os.getpid() % 10000}{secrets.token_hex(2)}")
    hosts: dict[str, Host] = field(default_factory=dict)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    _namespaces: list[str] = field(default_factory=list)
    _hosts_files: list[Path] = field(default_factory=list)

    @property
    def switch(self) -> str:
        return f"{self.prefix}-sw"

    def open(self) -> None:
        self._add_netns(self.switch)
        run(["ip", "-n", self.switch, "link", "add", "br0", "type", "bridge"])
        run(["ip", "-n", self.switch, "link", "set", "br0", "up"])

    def add_host(self, name: str, octet: int, *, default_route: bool = False) -> Host:
        netns = f"{self.prefix}-{name}"
        self._add_netns(netns)
        port = f"p{octet}"
        run(
            [
                "ip",
                "link",
                "add",
                "eth0",
                "netns",
                netns,
                "type",
                "veth",
                "peer",
                "name",
                port,
                "netns",
                self.switch,
            ]
        )
        run(["ip", "-n", self.switch, "link", "set", port, "master", "br0"])
        run(["ip", "-n", self.switch, "link", "set", port, "up"])
        address = f"{self.subnet_prefix}.{octet}"
        run(["ip", "-n", netns, "addr", "add", f"{address}/24", "dev", "eth0"])
        run(["ip", "-n", netns, "link", "set", "eth0", "up"])
        if default_route:
            # Service addresses belong to no host: without a route the client's connect
            # fails before capture sees it (a pod has a default route for the same reason).
            run(["ip", "-n", netns, "route", "add", "default", "dev", "eth0"])
        host = Host(self, name, address, netns)
        self.hosts[name] = host
        return host

    def hosts_file(self, host: Host, entries: dict[str, str]) -> None:
        """`ip netns exec` bind-mounts /etc/netns/NETNS/hosts over /etc/hosts."""
        path = Path("/etc/netns") / host.netns / "hosts"
        path.parent.mkdir(parents=True, exist_ok=True)
        self._hosts_files.append(path)
        lines = ["127.0.0.1 localhost"] + [f"{ip} {name}" for name, ip in entries.items()]
        path.write_text("\n".join(lines) + "\n")

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 5
        for process in self.processes:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        for netns in reversed(self._namespaces):
            # Anything still running in a namespace of ours was started by this run.
            pids = subprocess.run(
                ["ip", "netns", "pids", netns], capture_output=True, text=True, check=False
            )
            for pid in pids.stdout.split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
            subprocess.run(["ip", "netns", "del", netns], capture_output=True, check=False)
        for path in self._hosts_files:
            path.unlink(missing_ok=True)
            try:
                path.parent.rmdir()
                path.parent.parent.rmdir()  # /etc/netns, if no one else uses it
            except OSError:
                pass

    def _add_netns(self, netns: str) -> None:
        run(["ip", "netns", "add", netns])
        self._namespaces.append(netns)
        run(["ip", "-n", netns, "link", "set", "lo", "up"])
