"""The pod network's I/O with the kernel of the network namespace the agent runs in: iproute2
(`ip`, `bridge`, JSON output and -batch input) and iptables. Nothing here decides anything
(plan.py does)."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
from pathlib import Path

from pyk8s.flannel import plan

log = logging.getLogger("pyk8s.flannel")


class CommandFailed(Exception):
    pass


async def run(*argv: str, stdin: str | None = None, check: bool = True) -> str:
    process = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await process.communicate(stdin.encode() if stdin is not None else None)
    if check and process.returncode:
        raise CommandFailed(f"{' '.join(argv)}: {err.decode(errors='replace').strip()}")
    return out.decode()


async def run_json(*argv: str) -> list[dict]:
    text = await run(*argv, check=False)
    try:
        return json.loads(text or "[]") or []
    except ValueError:
        return []


async def batch(tool: str, lines: list[str]) -> None:
    """`ip -batch -` / `bridge -batch -` with -force (one failed line does not stop the rest;
    the next sync sees and retries it)."""
    if lines:
        await run(tool, "-force", "-batch", "-", stdin="\n".join(lines) + "\n")


def enable_forwarding() -> None:
    Path("/proc/sys/net/ipv4/ip_forward").write_text("1\n")


async def interface_of(address: str) -> tuple[str, int]:
    """(interface name, MTU) of the interface holding `address`."""
    for link in await run_json("ip", "-j", "-4", "addr", "show"):
        for info in link.get("addr_info") or []:
            if info.get("local") == address:
                return link["ifname"], int(link.get("mtu") or 1500)
    raise CommandFailed(f"no interface has the node address {address}")


async def link(name: str) -> dict | None:
    found = await run_json("ip", "-d", "-j", "link", "show", "dev", name)
    return found[0] if found else None


async def delete_link(name: str) -> bool:
    if await link(name) is None:
        return False
    await run("ip", "link", "delete", name)
    return True


async def ensure_vxlan(node_ip: str, pod_cidr: str) -> tuple[str, int]:
    """flannel.1 for this node (VNI 1, port 8472, underlay `node_ip`), holding
    <podCIDR>.0/32 and up. An existing device with the same settings is kept (its MAC, the
    one other nodes know, with it); one with other settings is recreated. Returns (MAC, MTU)."""
    parent, parent_mtu = await interface_of(node_ip)
    mtu = parent_mtu - plan.VXLAN_OVERHEAD
    existing = await link(plan.VXLAN_DEVICE)
    if existing is not None:
        data = (existing.get("linkinfo") or {}).get("info_data") or {}
        if (data.get("id"), data.get("local"), data.get("port")) != (plan.VXLAN_VNI, node_ip, plan.VXLAN_PORT):
            await run("ip", "link", "delete", plan.VXLAN_DEVICE)
            existing = None
    if existing is None:
        await run("ip", "link", "add", plan.VXLAN_DEVICE, "type", "vxlan", "id", str(plan.VXLAN_VNI),
                  "local", node_ip, "dev", parent, "dstport", str(plan.VXLAN_PORT), "nolearning")
    await run("ip", "link", "set", plan.VXLAN_DEVICE, "mtu", str(mtu))
    vtep_address = str(plan.Peer("", pod_cidr, "", "").vtep_ip)
    addresses = [info.get("local") for entry in await run_json("ip", "-j", "-4", "addr", "show", "dev", plan.VXLAN_DEVICE)
                 for info in entry.get("addr_info") or []]
    if addresses != [vtep_address]:
        await run("ip", "addr", "flush", "dev", plan.VXLAN_DEVICE)
        await run("ip", "addr", "add", f"{vtep_address}/32", "dev", plan.VXLAN_DEVICE)
    await run("ip", "link", "set", plan.VXLAN_DEVICE, "up")
    device = await link(plan.VXLAN_DEVICE)
    return device["address"].lower(), mtu


async def vxlan_current() -> plan.VxlanState:
    return plan.vxlan_current(
        await run_json("ip", "-j", "route", "show", "dev", plan.VXLAN_DEVICE),
        await run_json("ip", "-j", "neigh", "show", "dev", plan.VXLAN_DEVICE),
        await run_json("bridge", "-j", "fdb", "show", "dev", plan.VXLAN_DEVICE))


async def main_routes() -> list[dict]:
    return await run_json("ip", "-j", "-4", "route", "show", "table", "main")


def _iptables(kind: str) -> str:
    # The same backend as the service proxy (legacy when installed): the rules of both must
    # live in one set of tables for their order to mean anything.
    legacy = f"iptables-legacy{kind}"
    return legacy if shutil.which(legacy) else f"iptables{kind}"


async def write_masquerade(cluster_cidr: str, pod_cidr: str) -> None:
    await run(_iptables("-restore"), "-w", "5", "--noflush", stdin=plan.masquerade_rules(cluster_cidr, pod_cidr))
    for table, chain, target, comment in plan.JUMPS:
        rule = ["-m", "comment", "--comment", comment, "-j", target]
        check = await asyncio.create_subprocess_exec(_iptables(""), "-w", "5", "-t", table, "-C", chain, *rule,
                                                     stdout=asyncio.subprocess.DEVNULL,
                                                     stderr=asyncio.subprocess.DEVNULL)
        if await check.wait() != 0:
            await run(_iptables(""), "-w", "5", "-t", table, "-A", chain, *rule)


async def remove_masquerade() -> None:
    for table, chain, target, comment in plan.JUMPS:
        rule = ["-m", "comment", "--comment", comment, "-j", target]
        await run(_iptables(""), "-w", "5", "-t", table, "-D", chain, *rule, check=False)
        await run(_iptables(""), "-w", "5", "-t", table, "-F", target, check=False)
        await run(_iptables(""), "-w", "5", "-t", table, "-X", target, check=False)
