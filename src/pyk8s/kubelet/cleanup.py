"""Removing everything a node left on the machine: its pods (containers, shims, sandbox
network namespaces, mounts, cgroups), its containerd and the service proxy's iptables rules. Pods outlive the agent on purpose
(a restart adopts them); `pyk8s reset` and test teardown use this to end them for good.

Run as `python -m pyk8s.kubelet.cleanup AGENT_DATA_DIR`, inside the cluster's network
namespace when it has one (CNI teardown runs where the pods' bridge is).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Iterator

from pyk8s.kubelet import cni
from pyk8s.kubelet.containerd import Containerd
from pyk8s.kubelet.cri import CRIClient, CRIError
from pyk8s.kubelet.pods import remove_pod_cgroups
from pyk8s.proxy.cleanup import remove_all as remove_all_proxy_rules
from pyk8s.proxy.iptables import RestoreFailed
from pyk8s.proxy.nftables import NftFailed

log = logging.getLogger("pyk8s.kubelet.cleanup")

POD_UID_LABEL = "io.kubernetes.pod.uid"


async def remove_node_state(agent_data_dir: Path) -> int:
    """Starts the node's containerd (if it is not running), stops and removes every pod
    sandbox, stops containerd, unmounts what is left under the data dir. Returns the
    number of sandboxes removed."""
    agent_data_dir = Path(agent_data_dir)
    remove_proxy_rules()
    if not (agent_data_dir / "containerd").exists():
        remove_bridge(agent_data_dir)
        return 0
    containerd = Containerd(agent_data_dir, cni_conf_dir=agent_data_dir / "cni" / "net.d")
    await containerd.start()
    removed = 0
    cri = CRIClient(containerd.socket)
    try:
        for container in await cri.list_containers({}):
            try:
                await cri.call("StopContainer", {"container_id": container["id"], "timeout": 0})
                await cri.call("RemoveContainer", {"container_id": container["id"]})
            except CRIError as error:
                log.warning("removing container %s failed: %s", container["id"][:12], error)
        for sandbox in await cri.list_sandboxes({}):
            try:
                await cri.call("StopPodSandbox", {"pod_sandbox_id": sandbox["id"]})
                await cri.call("RemovePodSandbox", {"pod_sandbox_id": sandbox["id"]})
                removed += 1
            except CRIError as error:
                log.warning("removing sandbox %s failed: %s", sandbox["id"][:12], error)
            uid = (sandbox.get("labels") or {}).get(POD_UID_LABEL)
            if uid:
                remove_pod_cgroups(uid)
    finally:
        await cri.close()
        await containerd.stop()
    kill_orphan_shims(containerd.socket)
    unmount_under(agent_data_dir)
    remove_empty_qos_cgroups()
    remove_bridge(agent_data_dir)
    return removed


def remove_proxy_rules() -> None:
    try:
        remove_all_proxy_rules()
    except (RestoreFailed, NftFailed) as error:
        log.warning("removing the service proxy's rules failed: %s", error)


def process_command_lines() -> Iterator[tuple[int, list[bytes]]]:
    """(pid, argv) of every process whose command line can still be read."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        yield int(entry.name), argv


def shims_of(containerd_socket: str) -> list[int]:
    """PIDs of the runc shims started by the containerd listening on `containerd_socket`
    (each shim is told that address with `-address`)."""
    found = []
    for pid, argv in process_command_lines():
        if argv and argv[0].endswith(b"containerd-shim-runc-v2") and b"-address" in argv:
            at = argv.index(b"-address")
            if at + 1 < len(argv) and argv[at + 1] == containerd_socket.encode():
                found.append(pid)
    return found


def kill_orphan_shims(containerd_socket: str) -> None:
    """A shim whose sandbox containerd no longer lists (a StopPodSandbox cut short when the
    node stopped) outlives everything else: kill it and the container processes under it."""
    for shim in shims_of(containerd_socket):
        for child in _children(shim):
            _kill(child)
        _kill(shim)
        log.warning("killed orphan shim %d", shim)


def _children(pid: int) -> list[int]:
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def remove_bridge(agent_data_dir: Path) -> None:
    """The node's CNI bridge outlives its pods; a later node in the same namespace would
    get the same pod CIDR on a new bridge, and the old bridge's route would shadow it."""
    subprocess.run(["ip", "link", "delete", cni.bridge_name(agent_data_dir)], check=False, capture_output=True)


def remove_empty_qos_cgroups() -> None:
    """The kubepods QoS parents are shared by every node on the machine: remove them only
    when empty (rmdir refuses otherwise), deepest first."""
    root = Path("/sys/fs/cgroup")
    for controller in root.iterdir() if root.exists() else []:
        for parent in ("kubepods/burstable", "kubepods/besteffort", "kubepods"):
            try:
                (controller / parent).rmdir()
            except OSError:
                pass


def unmount_under(directory: Path) -> None:
    """Lazily unmount every mount point below `directory`, deepest first."""
    prefix = str(Path(directory).resolve()) + "/"
    with open("/proc/self/mounts") as mounts:
        points = [line.split()[1] for line in mounts]
    for point in sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m pyk8s.kubelet.cleanup AGENT_DATA_DIR", file=sys.stderr)
        return 2
    removed = asyncio.run(remove_node_state(Path(args[0])))
    if removed:
        print(f"removed {removed} pod sandbox(es)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
