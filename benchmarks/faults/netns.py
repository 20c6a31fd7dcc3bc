"""Hosts on one machine: a network namespace per host, each joined to one bridge by a veth
pair, all named with the campaign's run id, so a campaign removes its own and nothing else
(also after Ctrl-C or a failure: :meth:`Network.remove`, and ``--clean RUN_ID``).

Needs root, ``ip`` (iproute2) and ``iptables`` (``scripts/setup-faults``)."""

from __future__ import annotations

import ipaddress
import random
import subprocess
from dataclasses import dataclass, field

__all__ = ["Host", "Network", "leftovers", "remove_run", "sh"]

PREFIX = "flt"
"""Every namespace, link and process tag of a campaign starts with ``flt<run id>``."""
COMMENT = "crdt-faults"


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` (no shell), capture its output; raise with it when ``check`` fails."""
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: exit {done.returncode}: {done.stderr.strip()}")
    return done


@dataclass(frozen=True)
class Host:
    """One namespace on the bridge: ``name`` (``pg``, ``s1``...), its namespace and address."""

    name: str
    netns: str
    address: str
    veth: str

    def argv(self, *argv: str) -> list[str]:
        """``argv`` run inside this host's namespace."""
        return ["ip", "netns", "exec", self.netns, *argv]

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return sh(*self.argv(*argv), check=check)

    def iptables(self, *rule: str) -> None:
        """Add a rule in this host's own filter table (its namespace: nothing else sees it)."""
        self.run("iptables", "-w", *rule)

    def flush(self) -> None:
        """Drop every rule this campaign added in this host (heal)."""
        self.run("iptables", "-w", "-F", "INPUT")
        self.run("iptables", "-w", "-F", "OUTPUT")


@dataclass
class Network:
    """A bridge ``flt<id>br`` with address ``.1`` in the machine's own namespace (so the
    campaign itself reaches every host) and one namespace per :class:`Host`."""

    run_id: str
    subnet: ipaddress.IPv4Network
    hosts: dict[str, Host] = field(default_factory=dict)
    forward_rule: bool = False

    @classmethod
    def create(cls, run_id: str) -> Network:
        used = sh("ip", "-4", "-o", "addr").stdout
        rng = random.Random(run_id)
        for _ in range(200):
            subnet = ipaddress.IPv4Network(f"10.{rng.randint(160, 250)}.{rng.randint(0, 255)}.0/24")
            if f" {'.'.join(str(subnet.network_address).split('.')[:3])}." not in used:
                break
        else:
            raise RuntimeError("no free 10.x.y.0/24 for the campaign's bridge")
        network = cls(run_id, subnet)
        bridge = network.bridge
        sh("ip", "link", "add", bridge, "type", "bridge")
        sh("ip", "addr", "add", f"{network.address(1)}/24", "dev", bridge)
        sh("ip", "link", "set", bridge, "up")
        # With br_netfilter loaded, bridged frames cross the machine's FORWARD chain, whose
        # policy may be DROP (Docker's): let the campaign's own bridge through, tagged.
        if sh("iptables", "-w", "-S", "FORWARD", check=False).returncode == 0:
            sh(*network._forward("-I"))
            network.forward_rule = True
        return network

    @property
    def tag(self) -> str:
        return f"{PREFIX}{self.run_id}"

    @property
    def bridge(self) -> str:
        return f"{self.tag}br"

    def address(self, last: int) -> str:
        return str(self.subnet.network_address + last)

    def _forward(self, op: str) -> list[str]:
        return [
            "iptables", "-w", op, "FORWARD", "-i", self.bridge, "-o", self.bridge,
            "-m", "comment", "--comment", f"{COMMENT} {self.tag}", "-j", "ACCEPT",
        ]  # fmt: skip

    def add(self, name: str, last: int) -> Host:
        """A namespace ``flt<id>-<name>`` at ``.<last>`` on the bridge, ``lo`` up."""
        netns = f"{self.tag}-{name}"
        veth = f"{self.tag}{len(self.hosts)}"
        host = Host(name, netns, self.address(last), veth)
        sh("ip", "netns", "add", netns)
        self.hosts[name] = host
        sh("ip", "link", "add", veth, "type", "veth", "peer", "name", f"{veth}p")
        sh("ip", "link", "set", f"{veth}p", "netns", netns)
        sh("ip", "link", "set", veth, "master", self.bridge)
        sh("ip", "link", "set", veth, "up")
        host.run("ip", "link", "set", f"{veth}p", "name", "eth0")
        host.run("ip", "addr", "add", f"{host.address}/24", "dev", "eth0")
        host.run("ip", "link", "set", "eth0", "up")
        host.run("ip", "link", "set", "lo", "up")
        return host

    def remove(self) -> None:
        """Remove every namespace, link and rule of this run (idempotent)."""
        remove_run(self.run_id)


def _processes_in(netns: str) -> list[int]:
    done = sh("ip", "netns", "pids", netns, check=False)
    return [int(p) for p in done.stdout.split()]


def remove_run(run_id: str) -> None:
    """Kill what still runs in the run's namespaces, then delete them, its links and its
    FORWARD rule. Only names that start with ``flt<run_id>`` are touched."""
    tag = f"{PREFIX}{run_id}"
    names = [n.split()[0] for n in sh("ip", "netns", "list").stdout.splitlines() if n.strip()]
    for netns in names:
        if netns.startswith(f"{tag}-"):
            for pid in _processes_in(netns):
                sh("kill", "-KILL", str(pid), check=False)
            sh("ip", "netns", "delete", netns, check=False)
    links = sh("ip", "-o", "link", "show").stdout.splitlines()
    for line in links:
        name = line.split(":")[1].strip().split("@")[0]
        if name.startswith(tag) and not name.endswith("br"):
            sh("ip", "link", "delete", name, check=False)
    sh("ip", "link", "delete", f"{tag}br", check=False)
    rules = sh("iptables", "-w", "-S", "FORWARD", check=False).stdout.splitlines()
    for rule in rules:
        if f"{COMMENT} {tag}" in rule and rule.startswith("-A "):
            sh("iptables", "-w", "-D", *_split_rule(rule[3:]), check=False)


def _split_rule(rule: str) -> list[str]:
    import shlex

    return shlex.split(rule)


def leftovers() -> list[str]:
    """Run ids of campaigns whose namespaces are still there."""
    found = set()
    for line in sh("ip", "netns", "list").stdout.splitlines():
        name = line.split()[0] if line.strip() else ""
        if name.startswith(PREFIX) and "-" in name:
            found.add(name[len(PREFIX) : name.index("-")])
    return sorted(found)
