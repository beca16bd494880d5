"""Pod networking configuration: one CNI conflist that containerd's CRI plugin runs for
every sandbox (Debian's containernetworking-plugins in /usr/lib/cni).

bridge (a bridge named after the data dir, so two clusters on one machine never share one,
the node's gateway address on it) + host-local IPAM over the node's podCIDR (its state under
the data dir) + portmap for hostPort. containerd brings up each pod's loopback itself. No
masquerading here: the pod network component (pyk8s.flannel) masquerades only traffic that
leaves the cluster CIDR, so pods on different nodes see each other's addresses.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from pathlib import Path

NETWORK_NAME = "pyk8s"


def bridge_name(data_dir: Path) -> str:
    """A bridge name unique to the data dir (interface names hold at most 15 bytes)."""
    return "pyk8s" + hashlib.sha1(str(Path(data_dir).resolve()).encode()).hexdigest()[:8]


def remove_stale_bridges(data_dir: Path) -> list[str]:
    """Deletes pyk8s bridges of other data dirs that are down and have no ports left: a
    node that ended without cleanup leaves one behind, and its route for the same pod CIDR
    would shadow ours. A bridge with any pod attached is never touched."""
    import json
    import subprocess

    own = bridge_name(data_dir)
    try:
        links = json.loads(subprocess.run(["ip", "-j", "link", "show"], capture_output=True, text=True,
                                          check=True).stdout or "[]")
    except (OSError, subprocess.CalledProcessError, ValueError):
        return []
    masters = {link.get("master") for link in links if link.get("master")}
    removed = []
    for link in links:
        name = link.get("ifname", "")
        if name.startswith("pyk8s") and name != own and name not in masters and link.get("operstate") == "DOWN":
            if subprocess.run(["ip", "link", "delete", name], capture_output=True).returncode == 0:
                removed.append(name)
    return removed


def conflist(data_dir: Path, pod_cidr: str, mtu: int | None = None) -> dict:
    """`mtu`: the pods' MTU when the pod network across nodes needs a smaller one (VXLAN)."""
    network = ipaddress.ip_network(pod_cidr, strict=False)
    bridge = {
        "type": "bridge",
        "bridge": bridge_name(data_dir),
        "isGateway": True,
        "ipMasq": False,
        "hairpinMode": True,
        "ipam": {
            "type": "host-local",
            "ranges": [[{"subnet": str(network), "gateway": str(network.network_address + 1)}]],
            "routes": [{"dst": "0.0.0.0/0"}],
            "dataDir": str(Path(data_dir) / "cni" / "ipam"),
        },
    }
    if mtu:
        bridge["mtu"] = mtu
    return {
        "cniVersion": "1.0.0",
        "name": NETWORK_NAME,
        "plugins": [bridge, {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True}],
    }


def write_conflist(data_dir: Path, conf_dir: Path, pod_cidr: str, mtu: int | None = None) -> Path:
    conf_dir.mkdir(parents=True, exist_ok=True)
    path = conf_dir / "10-pyk8s.conflist"
    text = json.dumps(conflist(data_dir, pod_cidr, mtu), indent=2) + "\n"
    if not path.exists() or path.read_text() != text:
        temporary = path.with_suffix(".tmp")
        temporary.write_text(text)
        temporary.replace(path)
    return path
