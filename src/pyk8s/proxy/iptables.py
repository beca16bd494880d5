"""The proxy's I/O with the kernel: iptables-restore / iptables-save, the sysctls it needs,
conntrack flushes, and removing everything it wrote.

All of it acts on the network namespace this process runs in: a cluster started with
`--isolated` (or by the tests) has its own, so nothing here touches the host's tables.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import subprocess
from pathlib import Path

from pyk8s.proxy import rules

log = logging.getLogger("pyk8s.proxy")

# Which iptables: the legacy (x_tables) backend when it is installed. Measured here for
# 1 000 services x 10 endpoints (43 000 lines): iptables-legacy-restore 0.4 s,
# iptables-nft-restore 8 s (comments or not). Both backends' rules run side by side in the
# kernel (the CNI portmap plugin's hostPort rules stay in nft); `iptables-save` of the nft
# backend then says legacy tables are present. PYK8S_PROXY_IPTABLES=nft|legacy overrides.
BACKENDS = {"legacy": ("iptables-legacy-restore", "iptables-legacy-save"),
            "nft": ("iptables-nft-restore", "iptables-nft-save")}


def backend() -> str:
    chosen = os.environ.get("PYK8S_PROXY_IPTABLES", "")
    if chosen in BACKENDS:
        return chosen
    return "legacy" if shutil.which(BACKENDS["legacy"][0]) else "nft"


def _restore_argv(name: str | None = None) -> list[str]:
    return [BACKENDS[name or backend()][0], "-w", "5", "--noflush"]


def _save_argv(name: str | None = None) -> list[str]:
    return [BACKENDS[name or backend()][1]]

# route_localnet: node ports on 127.0.0.1 (DNAT of loopback traffic to a pod) — upstream
# sets it too and guards it with KUBE-FIREWALL. bridge-nf-call-iptables: a pod reaching a
# service whose endpoint is on the same bridge gets its reply through conntrack (un-DNAT)
# only if bridged frames pass iptables; measured here: per network namespace, settable.
SYSCTLS = {
    "net/ipv4/ip_forward": "1",
    "net/ipv4/conf/all/route_localnet": "1",
    "net/bridge/bridge-nf-call-iptables": "1",
}


class RestoreFailed(Exception):
    pass


def set_sysctls() -> dict[str, str]:
    """Sets what the rules need; returns the ones that could not be set (name → why)."""
    failed = {}
    for name, value in SYSCTLS.items():
        path = Path("/proc/sys") / name
        try:
            if path.read_text().strip() != value:
                path.write_text(value + "\n")
        except OSError as error:
            failed[name] = str(error)
    return failed


async def restore(text: str) -> None:
    process = await asyncio.create_subprocess_exec(*_restore_argv(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                                   stderr=subprocess.PIPE)
    _, stderr = await process.communicate(text.encode())
    if process.returncode != 0:
        raise RestoreFailed(stderr.decode(errors="replace").strip() or f"iptables-restore exited {process.returncode}")


def restore_sync(text: str, name: str | None = None) -> None:
    result = subprocess.run(_restore_argv(name), input=text.encode(), capture_output=True)
    if result.returncode != 0:
        raise RestoreFailed(result.stderr.decode(errors="replace").strip())


def parse_save(text: str) -> tuple[dict[str, set[str]], set[tuple[str, str, str]]]:
    """iptables-save output → (table → its KUBE- chains, the jumps of rules.JUMPS present)."""
    chains: dict[str, set[str]] = {}
    lines_by_table: dict[str, set[str]] = {}
    table = ""
    for line in text.splitlines():
        if line.startswith("*"):
            table = line[1:]
            chains.setdefault(table, set())
            lines_by_table.setdefault(table, set())
        elif line.startswith(":KUBE-"):
            chains[table].add(line[1:].split(" ", 1)[0])
        elif line.startswith("-A ") and "KUBE-" in line:
            lines_by_table[table].add(line)
    present = set()
    for jump in rules.JUMPS:
        jump_table, chain, rule = jump
        # iptables-save prints matches in its own order; compare on the target and the
        # conntrack state, which is what tells our jumps apart.
        for line in lines_by_table.get(jump_table, ()):
            if line.startswith(f"-A {chain} ") and _same_jump(line, rule):
                present.add(jump)
                break
    return chains, present


def _same_jump(saved: str, rule: str) -> bool:
    target = rule.rsplit("-j ", 1)[1]
    return saved.endswith(f"-j {target}") and (("--ctstate NEW" in saved) == ("--ctstate NEW" in rule))


async def current() -> tuple[dict[str, set[str]], set[tuple[str, str, str]]]:
    process = await asyncio.create_subprocess_exec(*_save_argv(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stdout, stderr = await process.communicate()
    if process.returncode != 0:
        raise RestoreFailed(stderr.decode(errors="replace").strip())
    return parse_save(stdout.decode(errors="replace"))


async def flush_udp_conntrack(*, destination: str | None = None, nat_destination: str | None = None,
                              original_port: int | None = None) -> None:
    """Delete UDP conntrack entries (a client would otherwise keep sending to a removed
    endpoint for as long as it keeps the flow alive: DNS retries never get through)."""
    argv = ["conntrack", "-D", "-p", "udp"]
    if destination:
        argv += ["--orig-dst", destination]
    if original_port:
        argv += ["--orig-port-dst", str(original_port)]
    if nat_destination:
        argv += ["--dst-nat", nat_destination]
    try:
        process = await asyncio.create_subprocess_exec(*argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        await process.wait()  # exit 1 = nothing matched: fine
    except FileNotFoundError:
        log.warning("conntrack not installed: stale UDP flows to removed endpoints are not flushed")


def remove_all_rules() -> bool:
    """Remove every chain and jump the proxy made in this network namespace's tables, in
    both backends (a node may have run with the other one). Returns whether there was
    anything to remove."""
    removed = False
    for name in BACKENDS:
        try:
            saved = subprocess.run(_save_argv(name), capture_output=True, text=True, check=True).stdout
        except (OSError, subprocess.CalledProcessError):
            continue
        chains, jumps = parse_save(saved)
        text = rules.cleanup_text(chains, jumps)
        if text:
            restore_sync(text, name)
            removed = True
    return removed
