"""Pod networking configuration: one CNI conflist that containerd's CRI plugin runs for
every sandbox (Debian's containernetworking-plugins in /usr/lib/cni).

bridge (a bridge named after the data dir, so two clusters on one machine never share one,
the node's gateway address on it) + host-local IPAM over the node's podCIDR (its state under
the data dir) + portmap for hostPort. containerd brings up each pod's loopback itself. No
masquerading: pods reach each other and the node directly, and clusters run in namespaces
with no route out.
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


def conflist(data_dir: Path, pod_cidr: str) -> dict:
    network = ipaddress.ip_network(pod_cidr, strict=False)
    return {
        "cniVersion": "1.0.0",
        "name": NETWORK_NAME,
        "plugins": [
            {
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
            },
            {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True},
        ],
    }


def write_conflist(data_dir: Path, conf_dir: Path, pod_cidr: str) -> Path:
    conf_dir.mkdir(parents=True, exist_ok=True)
    path = conf_dir / "10-pyk8s.conflist"
    text = json.dumps(conflist(data_dir, pod_cidr), indent=2) + "\n"
    if not path.exists() or path.read_text() != text:
        temporary = path.with_suffix(".tmp")
        temporary.write_text(text)
        temporary.replace(path)
    return path
