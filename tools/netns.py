"""Two "hosts" on one machine: Linux network namespaces joined by a veth pair (root and `ip` needed).

``with two_hosts() as (a, b):`` gives two :class:`Host`\\ s with their own network stack and an
address each (``a.address``, ``b.address``) on a private /24 that reaches nothing outside them;
``host.popen(argv)`` runs a process inside. Everything is removed at the end, even on failure
(deleting a namespace deletes its end of the veth pair, and the pair with it).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from typing import Iterator, Sequence


def unavailable() -> str | None:
    """Why namespaces cannot be made here (None: they can)."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    probe = f"scprobe{os.getpid()}"
    r = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if r.returncode != 0:
        return f"`ip netns add` failed: {r.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


@dataclass(frozen=True)
class Host:
    name: str
    """The namespace's name."""
    address: str
    """Its address on the veth pair."""

    def argv(self, argv: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]

    def popen(self, argv: Sequence[str], **kw) -> subprocess.Popen:
        """A process in this host's namespace (``ip netns exec`` execs it: the pid is the process's own)."""
        return subprocess.Popen(self.argv(argv), **kw)


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=10)


@contextlib.contextmanager
def two_hosts(subnet: int = 231) -> Iterator[tuple[Host, Host]]:
    """Namespaces ``sc<pid>a`` (10.<subnet>.0.1) and ``sc<pid>b`` (10.<subnet>.0.2) joined by a veth pair."""
    tag = f"sc{os.getpid() % 100000}"
    a, b = Host(f"{tag}a", f"10.{subnet}.0.1"), Host(f"{tag}b", f"10.{subnet}.0.2")
    made: list[str] = []
    try:
        for h in (a, b):
            _ip("netns", "add", h.name)
            made.append(h.name)
        _ip("link", "add", f"{tag}va", "type", "veth", "peer", "name", f"{tag}vb")
        for h, dev in ((a, f"{tag}va"), (b, f"{tag}vb")):
            _ip("link", "set", dev, "netns", h.name)
            _ip("-n", h.name, "addr", "add", f"{h.address}/24", "dev", dev)
            _ip("-n", h.name, "link", "set", dev, "up")
            _ip("-n", h.name, "link", "set", "lo", "up")
        yield a, b
    finally:
        for name in made:
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)
