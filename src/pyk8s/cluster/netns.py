"""Named network namespaces (the ones `ip netns` manages under /var/run/netns), used to run a
cluster that is reachable only from inside that namespace (`pyk8s up --isolated`, and the
test harness).

Processes enter a namespace with `nsenter --net=/var/run/netns/NAME`, never with
`ip netns exec`: the latter also remounts /sys, after which runc finds no cgroup mount.
This process itself talks into a namespace with `connect_in_netns`, which switches one
short-lived thread into the namespace (setns(2) changes only the calling thread) just to
create a socket; the socket stays in that namespace and is usable from any thread.
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


def netns_path(name: str) -> Path:
    return NETNS_DIR / name


def netns_exists(name: str) -> bool:
    return netns_path(name).exists()


def create_netns(name: str) -> bool:
    """Create network namespace `name` (if missing) with its loopback up. Returns True if
    this call created it, so the caller knows whether it may delete it later."""
    created = False
    if not netns_exists(name):
        subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True, text=True)
        created = True
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True, capture_output=True, text=True)
    return created


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
