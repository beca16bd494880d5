"""`pyk8s etcd-member list|remove`: the members of the embedded etcd cluster a server's data
dir belongs to, and taking one out (k3s removes a server's member when its Node is deleted;
a server without a Node, `--disable-agent`, needs this instead).

Everything goes through etcdctl with the data dir's own client certificate
(cluster/embeddedetcd.py), to this member's client URL first, then to the other members'
URLs its server recorded, so the cluster is reached from the data dir of a stopped server too.
A server that pyk8s put in a network namespace (`up --isolated`, a node of `up --servers N`)
has its etcd reachable only from there: `server_netns` says which, and the command runs
itself inside it.

A removal is refused, changing nothing, when it would break the cluster or a server:
- an unknown member (the error lists the known ones), or the only member;
- this data dir's member while its server runs (its pid file, as `pyk8s status` reads it, or
  its etcd still answering: a `pyk8s server` run in the foreground writes no pid file);
- another member that still answers, unless forced: its server runs, and a removed member
  stops for good (its server then needs its etcd data wiped and a new join). Forcing is the
  way out of a two-member cluster, which holds no quorum once either member is stopped;
- a removal after which the members that answer would not hold quorum of the smaller
  cluster (etcd could not commit the removal, or the cluster would stop taking writes).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from pyk8s.cluster import daemon
from pyk8s.cluster.embeddedetcd import (EtcdError, EtcdFiles, Member, cluster_client_endpoints, etcdctl,
                                         list_members, member_health, recorded_member_name)


UNHEALTHY_CLUSTER_RETRY_SECONDS = 15.0


class RemovalRefused(EtcdError):
    """The removal would break the cluster or a running server; nothing was changed."""


@dataclass
class MemberState:
    member: Member
    local: bool  # this data dir's own member
    healthy: bool | None  # None: never started, nothing to ask


def server_netns(data_dir: Path) -> str | None:
    """The network namespace pyk8s runs (or ran) the server of `data_dir` in, if any: the one
    `up --isolated` recorded (or created, for a stopped server), or the node's namespace when
    `data_dir` is a server node of `up --servers N` (`<cluster data dir>/nodes/<name>`)."""
    data_dir = Path(data_dir).absolute()
    state = daemon.read_state(data_dir)
    if state is not None and state.netns:
        return state.netns
    marker = data_dir / daemon.NETNS_MARKER
    if marker.is_file() and marker.read_text().strip():
        return marker.read_text().strip()
    from pyk8s.cluster.multinode import ClusterState

    cluster = ClusterState.load(data_dir.parent.parent)
    for node in cluster.servers if cluster is not None else []:
        if Path(node.data_dir).absolute() == data_dir:
            return node.netns
    return None


def inside_netns(name: str) -> bool:
    """Whether this process already runs in network namespace `name`."""
    from pyk8s.cluster.netns import netns_path

    here, there = os.stat("/proc/self/ns/net"), os.stat(netns_path(name))
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def quorum(size: int) -> int:
    return size // 2 + 1


def member_states(data_dir: Path) -> list[MemberState]:
    data_dir = Path(data_dir)
    files = EtcdFiles(data_dir)
    endpoints = cluster_client_endpoints(data_dir)
    try:
        members = list_members(files, endpoints)
    except EtcdError as error:
        # etcdctl's last line is its error; the lines before are its client's retry log.
        raise EtcdError(f"no etcd member answers at {', '.join(endpoints)} (does a server of this cluster run?): "
                        f"{str(error).strip().splitlines()[-1]}") from None
    health = member_health(files, members)
    own_name = recorded_member_name(data_dir)
    return [MemberState(member, local=bool(own_name) and member.name == own_name,
                        healthy=health.get(member.id) if member.started else None)
            for member in members]


def find(states: list[MemberState], name_or_id: str) -> MemberState | None:
    """By name, or by hex ID (an added member that never started has no name)."""
    for state in states:
        if state.member.name and state.member.name == name_or_id:
            return state
    wanted = name_or_id.lower().removeprefix("0x")
    for state in states:
        if state.member.hex_id == wanted:
            return state
    return None


def remove(data_dir: Path, name_or_id: str, *, force: bool = False) -> MemberState:
    """Remove a member after the checks of the module docstring; the removed member's state,
    or RemovalRefused."""
    data_dir = Path(data_dir)
    states = member_states(data_dir)
    target = find(states, name_or_id)
    if target is None:
        known = ", ".join(state.member.name or f"{state.member.hex_id} (unstarted)" for state in states)
        raise RemovalRefused(f"no member named {name_or_id!r}; the members are: {known}")
    label = target.member.name or target.member.hex_id
    if len(states) == 1:
        raise RemovalRefused(f"member {label} is the only member of the cluster: removing it would leave no cluster")
    if target.local:
        running = daemon.running_server(data_dir)
        if running is not None or target.healthy:
            which = f"pid {running.pid}" if running is not None else "its etcd still answers"
            raise RemovalRefused(
                f"member {label} belongs to this data dir ({data_dir}), whose server is running ({which}): stop that "
                f"server first (pyk8s down --data-dir {data_dir}, or stop its `pyk8s server`), then remove its member")
    elif target.healthy and not force:
        raise RemovalRefused(
            f"member {label} still answers at {target.member.client_urls[0]}: its server is running; stop that "
            f"server first, then remove its member (or pass --force: a removed member stops for good, and its "
            f"server must be joined again with its etcd data wiped)")
    remaining = [state for state in states if state is not target]
    answering = [state for state in remaining if state.healthy]
    if not answering:
        raise RemovalRefused(
            f"no other member answers: the cluster has no quorum ({len(states)} members need "
            f"{quorum(len(states))} running), so etcd cannot remove a member; start the stopped servers first, "
            f"or restore a snapshot as a new cluster (pyk8s etcd-snapshot restore)")
    if len(answering) < quorum(len(remaining)):
        down = ", ".join(state.member.name or state.member.hex_id for state in remaining if not state.healthy)
        raise RemovalRefused(
            f"removing member {label} leaves {len(remaining)} members of which {len(answering)} answer, fewer than "
            f"the {quorum(len(remaining))} the cluster needs to take writes; start the servers of {down} first")
    endpoints = [state.member.client_urls[0] for state in answering]
    # etcd refuses to remove a running member ("unhealthy cluster") until every other member
    # has been connected for 5 s (its health interval): right after a server (re)joined.
    deadline = time.monotonic() + UNHEALTHY_CLUSTER_RETRY_SECONDS
    while True:
        try:
            etcdctl(EtcdFiles(data_dir), endpoints, "member", "remove", target.member.hex_id)
            return target
        except EtcdError as error:
            if "unhealthy cluster" not in str(error) or time.monotonic() > deadline:
                raise
        time.sleep(0.5)


def table(states: list[MemberState]) -> str:
    """kubectl-like aligned columns."""
    rows = [("NAME", "ID", "STATUS", "HEALTH", "PEER URLS", "CLIENT URLS", "LOCAL")]
    for state in states:
        member = state.member
        health = "<unknown>" if state.healthy is None else ("healthy" if state.healthy else "unhealthy")
        rows.append((member.name or "<none>", member.hex_id, "started" if member.started else "unstarted", health,
                     ",".join(member.peer_urls) or "<none>", ",".join(member.client_urls) or "<none>",
                     "yes" if state.local else "no"))
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return "\n".join("   ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows)
