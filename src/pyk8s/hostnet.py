"""This machine's own addresses, as the server (advertise address) and the agent (node IP)
both need them: the address of the interface holding the default route, else the first
non-loopback IPv4 address — skipping the interfaces pyk8s itself creates (pod bridges,
veths), so a node also works inside a network namespace with no default route."""

from __future__ import annotations

import fcntl
import socket
import struct

_SIOCGIFADDR = 0x8915
_OWN_INTERFACE_PREFIXES = ("pyk8s", "veth", "cni", "flannel")


def interface_ipv4(interface: str) -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            packed = fcntl.ioctl(sock.fileno(), _SIOCGIFADDR, struct.pack("256s", interface.encode()[:15]))
        except OSError:
            return None
    return socket.inet_ntoa(packed[20:24])


def host_ipv4() -> str | None:
    def ours(name: str) -> bool:
        return name == "lo" or name.startswith(_OWN_INTERFACE_PREFIXES)

    try:
        with open("/proc/net/route") as routes:
            next(routes)
            for line in routes:
                fields = line.split()
                if fields[1] == "00000000" and not ours(fields[0]):
                    address = interface_ipv4(fields[0])
                    if address:
                        return address
    except OSError:
        pass
    for _, name in socket.if_nameindex():
        if not ours(name):
            address = interface_ipv4(name)
            if address:
                return address
    return None
