"""`pyk8s etcd-member`: the members of a server's embedded etcd cluster (cluster/etcdmembers.py).

    pyk8s etcd-member list   [--data-dir D]                 one row per member; LOCAL: D's own
    pyk8s etcd-member remove [--data-dir D] [--force] NAME  take a member out of the cluster

Hook into cli/main.py with `add_etcd_member_parser(commands)` in build_parser() and dispatch
`args.command == "etcd-member"` to `run_etcd_member(args)`.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def add_etcd_member_parser(commands) -> argparse.ArgumentParser:
    parser = commands.add_parser("etcd-member", help="list the embedded etcd's members, remove the member of a "
                                                     "server that is gone")
    parser.add_argument("action", choices=["list", "remove"],
                        help="list: the members, their health and which is this data dir's (LOCAL); remove NAME: "
                             "take that member out of the cluster (for a server without a Node; stop its server "
                             "first)")
    parser.add_argument("name", nargs="?", default="", help="remove: the member's NAME (or hex ID)")
    parser.add_argument("--force", action="store_true",
                        help="remove: also a member of another server that still runs (that server then needs its "
                             "etcd data wiped and a new join)")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="a server's data dir (default $PYK8S_DATA_DIR or /var/lib/pyk8s)")
    return parser


def run_in_server_netns(data_dir: Path, command: list[str]) -> None:
    """Re-run `pyk8s <command> --data-dir <data_dir>` inside the network namespace of that
    data dir's server (`up --isolated`, or a node of `up --servers N`), where alone its etcd
    listens; returns when already there or when the server has no namespace."""
    from pyk8s.cluster import etcdmembers

    netns = etcdmembers.server_netns(data_dir)
    if netns is None:
        return
    from pyk8s.cluster.netns import netns_exists, nsenter_prefix

    if netns_exists(netns) and not etcdmembers.inside_netns(netns):
        argv = [*nsenter_prefix(netns), sys.executable, "-m", "pyk8s", *command, "--data-dir", str(data_dir)]
        sys.stdout.flush()
        sys.stderr.flush()
        os.execvp(argv[0], argv)


def run_etcd_member(args: argparse.Namespace) -> int:
    from pyk8s.cluster import etcdmembers
    from pyk8s.cluster.embeddedetcd import EtcdError, EtcdFiles

    data_dir = (args.data_dir or Path(os.environ.get("PYK8S_DATA_DIR") or "/var/lib/pyk8s")).absolute()
    run_in_server_netns(data_dir, ["etcd-member", args.action, *([args.name] if args.name else []),
                                   *(["--force"] if args.force else [])])
    try:
        if args.action == "list":
            print(etcdmembers.table(etcdmembers.member_states(data_dir)))
            return 0
        if not args.name:
            print("pyk8s etcd-member remove NAME (see pyk8s etcd-member list)", file=sys.stderr)
            return 2
        removed = etcdmembers.remove(data_dir, args.name, force=args.force)
    except EtcdError as error:
        print(f"pyk8s etcd-member: error: {error}", file=sys.stderr)
        return 1
    print(f"member {removed.member.name or '<unstarted>'} ({removed.member.hex_id}) removed")
    if removed.local:
        etcd_dir = EtcdFiles(data_dir).etcd_dir
        print(f"this data dir's server cannot start from {etcd_dir} any more: to join it again, delete that "
              f"directory and start it with --server https://<a running server>:6443 --token <its server-token>")
    return 0
