"""Named network namespaces (the ones `ip netns` manages under /var/run/netns), used to run a
cluster that is reachable only from inside that namespace (`pyk8s up --isolated`, and the
test harness).

Processes enter a namespace with `nsenter --net=/var/run/netns/NAME`, never with
`ip netns exec`: the latter also remounts /sys, after which runc finds no cgroup mount.
This process itself talks into a namespace with `connect_in_netns`, which switches one
short-lived thread into the namespace (setns(2) changes only the calling thread) just to
create a socket; the socket stays in that namespace and is usable from any thread.

A namespace pyk8s creates has no default route, so without more a connection from the node
to a ClusterIP fails with "Network is unreachable" before the service proxy's OUTPUT rules
see it (on a host the default route covers the service CIDR). `add_service_route` gives
such a namespace a route for the service CIDR into a veth pair of its own
(`pyk8s-svc`, no ARP, no address, its peer a dead end in the same namespace): the proxy's
DNAT and REJECT rules then apply as on a host, and a packet no rule takes goes nowhere.
Deleting the namespace deletes the pair.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import socket
import subprocess
import threading
from pathlib import Path

NETNS_DIR = Path("/var/run/netns")
_CLONE_NEWNET = 0x40000000
DEFAULT_SERVICE_CIDR = "10.43.0.0/16"
SERVICE_ROUTE_DEVICE = "pyk8s-svc"
SERVICE_ROUTE_PEER = "pyk8s-svc-peer"


def netns_path(name: str) -> Path:
    return NETNS_DIR / name


def netns_exists(name: str) -> bool:
    return netns_path(name).exists()


def create_netns(name: str, service_cidr: str = DEFAULT_SERVICE_CIDR) -> bool:
    """Create network namespace `name` (if missing) with its loopback up and, when this
    call creates it, a route for `service_cidr` (see above). Returns True if this call
    created it, so the caller knows whether it may delete it later."""
    created = False
    if not netns_exists(name):
        subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True, text=True)
        created = True
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True, capture_output=True, text=True)
    if created:
        add_service_route(service_cidr, name)
    return created


def add_service_route(service_cidr: str, name: str | None = None) -> None:
    """Route `service_cidr` into the `pyk8s-svc` veth pair, in network namespace `name`
    (None: this process's own, which must be one pyk8s created: never the host's).
    Idempotent."""
    ip = ["ip", "-n", name] if name else ["ip"]
    if subprocess.run([*ip, "link", "show", SERVICE_ROUTE_DEVICE], capture_output=True).returncode:
        subprocess.run([*ip, "link", "add", SERVICE_ROUTE_DEVICE, "type", "veth", "peer", "name", SERVICE_ROUTE_PEER],
                       check=True, capture_output=True, text=True)
    # No ARP: a packet to a ClusterIP no rule takes is dropped by the peer (this namespace
    # does not forward), as the host's gateway would, instead of failing neighbour lookup.
    for device, settings in ((SERVICE_ROUTE_DEVICE, ["arp", "off", "up"]), (SERVICE_ROUTE_PEER, ["up"])):
        subprocess.run([*ip, "link", "set", device, *settings], check=True, capture_output=True, text=True)
    subprocess.run([*ip, "route", "replace", service_cidr, "dev", SERVICE_ROUTE_DEVICE], check=True,
                   capture_output=True, text=True)


def delete_netns(name: str) -> bool:
    """Delete network namespace `name` if it exists. Returns whether it existed. Processes
    still inside keep the namespace alive (without its name) until they exit."""
    if not netns_exists(name):
        return False
    subprocess.run(["ip", "netns", "delete", name], check=True, capture_output=True, text=True)
    return True


def nsenter_prefix(name: str) -> list[str]:
    """The command prefix that runs a program inside network namespace `name`."""
    return ["nsenter", f"--net={netns_path(name)}"]


def connect_in_netns(name: str | None, host: str, port: int, timeout: float) -> socket.socket:
    """A TCP connection to (host, port) made from inside network namespace `name` (or from
    this process's own namespace when `name` is None)."""
    if not name:
        return socket.create_connection((host, port), timeout=timeout)
    outcome: dict[str, object] = {}

    def connect_from_namespace() -> None:
        # This thread never leaves the namespace; it ends right after connecting.
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
            descriptor = os.open(netns_path(name), os.O_RDONLY | os.O_CLOEXEC)
            try:
                if libc.setns(descriptor, _CLONE_NEWNET) != 0:
                    error = ctypes.get_errno()
                    raise OSError(error, f"setns into network namespace {name!r}: {os.strerror(error)}")
            finally:
                os.close(descriptor)
            outcome["socket"] = socket.create_connection((host, port), timeout=timeout)
        except BaseException as error:  # noqa: BLE001 - re-raised in the caller's thread
            outcome["error"] = error

    thread = threading.Thread(target=connect_from_namespace, name=f"connect-in-{name}", daemon=True)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["socket"]  # type: ignore[return-value]
