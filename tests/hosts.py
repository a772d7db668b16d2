"""Hosts on one machine for the multi-host test: Linux network namespaces, each with one veth
pair into a private bridge in the test's own namespace (the test process is a host too).
Cutting a host's link (``ip link set ... down``) is what a node falling off the network
does to everything on it. Needs root and a kernel that allows namespaces."""

from __future__ import annotations

import os
import subprocess
import uuid


class NamespacesRefused(Exception):
    """The kernel or the container refused to make namespaces, links or a bridge."""


def _ip(*args: str) -> None:
    try:
        run = subprocess.run(["ip", *args], capture_output=True, text=True)
    except FileNotFoundError:
        raise NamespacesRefused("the `ip` command (iproute2) is not installed") from None
    if run.returncode:
        raise NamespacesRefused(f"`ip {' '.join(args)}` failed: {run.stderr.strip() or run.returncode}")


class Network:
    """A bridge with an address for the test's namespace and ``add_host`` for the others."""

    def __init__(self, subnet: int):
        """subnet: the third octet of 10.250.<subnet>.0/24 (one per test run)."""
        self.tag = uuid.uuid4().hex[:6]
        self.prefix = f"10.250.{subnet}"
        self.bridge = f"vfb{self.tag}"
        self.hosts: dict[str, str] = {}     # name -> address
        self._namespaces: list[str] = []
        self._links: list[str] = []

    @property
    def gateway(self) -> str:
        """The test process's own address on the bridge."""
        return f"{self.prefix}.1"

    def start(self) -> "Network":
        if os.geteuid() != 0:
            raise NamespacesRefused("network namespaces need root")
        _ip("link", "add", self.bridge, "type", "bridge")
        self._links.append(self.bridge)
        _ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        return self

    def add_host(self, name: str) -> str:
        """A namespace ``vf<tag>-<name>`` joined to the bridge; returns its address."""
        namespace, address = self.namespace(name), f"{self.prefix}.{len(self.hosts) + 2}"
        outside, inside = self.link(name), f"vfi{self.tag}{len(self.hosts)}"
        _ip("netns", "add", namespace)
        self._namespaces.append(namespace)
        _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
        self._links.append(outside)
        _ip("link", "set", inside, "netns", namespace)
        _ip("link", "set", outside, "master", self.bridge)
        _ip("link", "set", outside, "up")
        _ip("-n", namespace, "addr", "add", f"{address}/24", "dev", inside)
        _ip("-n", namespace, "link", "set", inside, "up")
        _ip("-n", namespace, "link", "set", "lo", "up")
        self.hosts[name] = address
        return address

    def namespace(self, name: str) -> str:
        return f"vf{self.tag}-{name}"

    def link(self, name: str) -> str:
        """The bridge side of a host's cable (cut it to take the host off the network)."""
        return f"vfo{self.tag}{list(self.hosts).index(name) if name in self.hosts else len(self.hosts)}"

    def cut(self, name: str) -> None:
        _ip("link", "set", self.link(name), "down")

    def reconnect(self, name: str) -> None:
        _ip("link", "set", self.link(name), "up")

    def on(self, name: str, args: list[str]) -> list[str]:
        """A command line that runs ``args`` on host ``name`` (``ip netns exec`` execs it in place,
        so the process started is the command itself)."""
        return ["ip", "netns", "exec", self.namespace(name), *args]

    def stop(self) -> None:
        for link in reversed(self._links):
            subprocess.run(["ip", "link", "del", link], capture_output=True)
        for namespace in self._namespaces:
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True)
