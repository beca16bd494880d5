"""The `pyk8s` command (also `python -m pyk8s`).

    pyk8s server   run the control plane in the foreground (what `up` runs in the background)
    pyk8s up       start it detached, wait until ready, merge its kubeconfig into the user's
    pyk8s down     stop it
    pyk8s status   what runs and whether it is ready
    pyk8s reset    stop it and delete everything it wrote (data dir, kubeconfig entries, netns)
    pyk8s kubectl  kubectl with the cluster's admin kubeconfig (inside its netns if isolated)
    pyk8s images   import, list and remove the cluster's container images
    pyk8s secrets-encrypt  status / rotate the key Secrets are encrypted with at rest
    pyk8s etcd-snapshot    save / ls / restore snapshots of the embedded etcd
    pyk8s etcd-member      list the embedded etcd's members / remove one (cli/etcdmember_command.py)

Every command takes `--data-dir` (default $PYK8S_DATA_DIR, else /var/lib/pyk8s): that is how
the later commands find the cluster an earlier `up` started. Parsing builds a ServerConfig
(`server_config_from_args`) and `server_argv` turns one back into flags, so `up` starts
exactly the server it was asked for.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

from pyk8s.cluster import daemon
from pyk8s.cluster.netns import nsenter_prefix
from pyk8s.cluster.server import ServerConfig

ISOLATED_NETNS = "pyk8s"
_DEFAULTS = ServerConfig()


def default_data_dir() -> Path:
    return Path(os.environ.get("PYK8S_DATA_DIR") or _DEFAULTS.data_dir)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pyk8s", description="Kubernetes, written in Python.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    server = commands.add_parser("server", help="run the control plane in the foreground")
    _add_server_flags(server)
    server.add_argument("--netns", default=None, metavar="NAME",
                        help="run inside network namespace NAME (created if missing)")

    from pyk8s.cli.agent_command import add_agent_parser
    add_agent_parser(commands)

    from pyk8s.cli.images_command import add_images_parser
    add_images_parser(commands)

    up = commands.add_parser("up", help="start the cluster in the background and wait until it is ready")
    _add_server_flags(up)
    up.add_argument("--isolated", action="store_true",
                    help=f"run in network namespace {ISOLATED_NETNS!r} (no route out); kubectl reaches "
                         "the API through a relay on this host's 127.0.0.1:<https-port>")
    up.add_argument("--netns", default=None, metavar="NAME",
                    help=f"the namespace for --isolated (default {ISOLATED_NETNS!r}); implies --isolated")
    up.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for readiness (default 60)")
    from pyk8s.cli.multinode_command import add_multinode_flags
    add_multinode_flags(up)

    down = commands.add_parser("down", help="stop the cluster")
    _add_data_dir_flag(down)
    down.add_argument("--timeout", type=float, default=30.0, help="seconds before SIGKILL (default 30)")

    status = commands.add_parser("status", help="show whether the cluster runs and is ready")
    _add_data_dir_flag(status)

    reset = commands.add_parser("reset", help="stop the cluster and delete all its data")
    _add_data_dir_flag(reset)
    reset.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")

    encrypt = commands.add_parser("secrets-encrypt", help="status of Secrets encryption at rest, key rotation")
    encrypt.add_argument("action", choices=["status", "rotate"],
                         help="status: keys and how many Secrets each holds; rotate: add a new key and "
                              "rewrite every Secret with it")
    _add_data_dir_flag(encrypt)
    encrypt.add_argument("--datastore", default=_DEFAULTS.datastore, help="sqlite:PATH, as given to the server")

    snapshot = commands.add_parser("etcd-snapshot", help="save or restore a snapshot of the embedded etcd")
    snapshot.add_argument("action", choices=["save", "restore", "ls"],
                          help="save: snapshot the running member into <data-dir>/server/db/snapshots/ (prints the "
                               "path); restore FILE: replace this stopped server's etcd data with FILE as a new "
                               "one-member cluster (as `pyk8s server --cluster-init --cluster-reset-restore-path FILE`); "
                               "ls: list the snapshots")
    snapshot.add_argument("file", nargs="?", default="", help="the snapshot to restore")
    snapshot.add_argument("--name", default="", help="save: file name prefix (default on-demand)")
    snapshot.add_argument("--advertise-address", default="", help="restore: this server's address (default: from its "
                                                                   "etcd certificate's member, else 127.0.0.1)")
    _add_data_dir_flag(snapshot)

    from pyk8s.cli.etcdmember_command import add_etcd_member_parser
    add_etcd_member_parser(commands)

    # Listed for --help; `main` hands its arguments to kubectl untouched (see split_kubectl_args).
    commands.add_parser("kubectl", help="run kubectl against the cluster: pyk8s kubectl [--data-dir D] ARGS...",
                        add_help=False)
    return parser


def _add_data_dir_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="where the cluster keeps its files (default $PYK8S_DATA_DIR or /var/lib/pyk8s)")


def _add_server_flags(parser: argparse.ArgumentParser) -> None:
    _add_data_dir_flag(parser)
    # None = "not given", so that --isolated can choose 127.0.0.1 unless told otherwise.
    parser.add_argument("--bind-address", default=None,
                        help=f"address the API listens on (default {_DEFAULTS.bind_address})")
    parser.add_argument("--https-port", type=int, default=_DEFAULTS.https_port)
    parser.add_argument("--advertise-address", default=_DEFAULTS.advertise_address,
                        help="address other nodes and the kubernetes Service use (default: this node's IP)")
    parser.add_argument("--datastore", default=_DEFAULTS.datastore,
                        help="sqlite:PATH (default sqlite:<data-dir>/server/state.db), or an external etcd: "
                             "etcd://HOST:2379[,HOST2:2379] (https://... for TLS)")
    parser.add_argument("--etcd-cafile", default="", help="CA bundle of the external etcd's serving certificates")
    parser.add_argument("--etcd-certfile", default="", help="client certificate for the external etcd")
    parser.add_argument("--etcd-keyfile", default="", help="client key for the external etcd")
    parser.add_argument("--service-cidr", default=_DEFAULTS.service_cidr)
    parser.add_argument("--cluster-cidr", default=_DEFAULTS.cluster_cidr)
    parser.add_argument("--disable-agent", action="store_true", help="do not run the embedded node agent")
    parser.add_argument("--disable-controllers", action="store_true",
                        help="serve the API only: no controllers and no scheduler")
    parser.add_argument("--tls-san", action="extend", nargs="+", default=[], metavar="NAME",
                        help="extra host names or IPs for the serving certificate (repeatable, comma-separated ok)")
    parser.add_argument("--registry-mirror", action="append", default=[], metavar="HOST=URL",
                        help="pull images of registry HOST through URL, e.g. docker.io=http://127.0.0.1:5000 "
                             "(repeatable; the embedded agent writes containerd hosts.toml)")
    parser.add_argument("--proxy-mode", default=os.environ.get("PYK8S_PROXY_MODE") or "nftables",
                        choices=["iptables", "nftables"],
                        help="how the service proxy writes its rules (upstream kube-proxy's flag): iptables "
                             "(iptables-restore) or nftables (nft, table ip kube-proxy); default $PYK8S_PROXY_MODE "
                             "or nftables")
    parser.add_argument("--resolv-conf", default="", metavar="FILE",
                        help="resolvers for dnsPolicy Default pods and the cluster DNS's upstreams "
                             "(default /etc/resolv.conf; none in a namespace without a default route)")
    parser.add_argument("--secrets-encryption", action="store_true",
                        help="encrypt Secrets at rest (AES-CBC, key in <data-dir>/server/cred, mode 0600)")
    parser.add_argument("--audit-log", default="", metavar="PATH",
                        help="write audit events (audit.k8s.io/v1, JSON lines) to PATH")
    parser.add_argument("--audit-policy-file", default="", metavar="FILE",
                        help="audit Policy (default: every request at Metadata level)")
    parser.add_argument("--audit-log-maxsize", type=int, default=0, metavar="MB",
                        help="rotate the audit log before it passes MB megabytes (0: never)")
    parser.add_argument("--audit-log-maxbackup", type=int, default=0, metavar="N",
                        help="rotated audit logs to keep (0: all)")
    parser.add_argument("--node-name", default="", help="the embedded agent's node name (default: the hostname)")
    parser.add_argument("--node-ip", default="", help="the embedded agent's address (default: this host's)")
    parser.add_argument("--flannel-backend", default="vxlan", choices=["vxlan", "host-gw", "none"],
                        help="pod network across nodes (k3s's flag): vxlan (flannel.1, UDP 8472) or host-gw")
    parser.add_argument("--kube-controller-manager-arg", action="append", default=[], metavar="NAME=VALUE",
                        help="e.g. node-monitor-grace-period=20s (also node-monitor-period, node-cidr-mask-size)")
    parser.add_argument("--cluster-init", action="store_true",
                        help="run an embedded etcd member and keep the cluster's state in it (other servers can "
                             "then join; an existing SQLite state is migrated)")
    parser.add_argument("--server", dest="join_server", default="", metavar="URL",
                        help="join the server at URL as another server (embedded etcd member); needs --token")
    parser.add_argument("--token", default="", help="with --server: the first server's <data-dir>/server-token")
    parser.add_argument("--cluster-reset-restore-path", default="", metavar="FILE",
                        help="with --cluster-init: restore this etcd snapshot as a new one-member cluster")
    parser.add_argument("--authorization-mode", choices=["RBAC", "AlwaysAllow"], default=_DEFAULTS.authorization_mode,
                        help="RBAC (default; system:masters, then RBAC) or AlwaysAllow (no authorization, for baselines)")


def server_config_from_args(args: argparse.Namespace) -> ServerConfig:
    bind_address = args.bind_address
    if bind_address is None:
        isolated = getattr(args, "isolated", False) or getattr(args, "netns", None)
        bind_address = "127.0.0.1" if isolated else _DEFAULTS.bind_address
    return ServerConfig(
        data_dir=(args.data_dir or default_data_dir()).absolute(),
        bind_address=bind_address,
        https_port=args.https_port,
        advertise_address=args.advertise_address,
        datastore=args.datastore,
        etcd_cafile=getattr(args, "etcd_cafile", ""),
        etcd_certfile=getattr(args, "etcd_certfile", ""),
        etcd_keyfile=getattr(args, "etcd_keyfile", ""),
        service_cidr=args.service_cidr,
        cluster_cidr=args.cluster_cidr,
        disable_agent=args.disable_agent,
        disable_controllers=args.disable_controllers,
        # k3s's --tls-san is a string slice: "a,b" means two names.
        extra_sans=[name for value in args.tls_san for name in value.split(",") if name],
        registry_mirrors=parse_registry_mirrors(getattr(args, "registry_mirror", [])),
        resolv_conf=getattr(args, "resolv_conf", "") or "",
        proxy_mode=getattr(args, "proxy_mode", "") or "nftables",
        secrets_encryption=getattr(args, "secrets_encryption", False),
        audit_log=getattr(args, "audit_log", "") or "",
        audit_policy_file=getattr(args, "audit_policy_file", "") or "",
        audit_log_maxsize=getattr(args, "audit_log_maxsize", 0) or 0,
        audit_log_maxbackup=getattr(args, "audit_log_maxbackup", 0) or 0,
        node_name=getattr(args, "node_name", "") or "",
        node_ip=getattr(args, "node_ip", "") or "",
        flannel_backend=getattr(args, "flannel_backend", "vxlan") or "vxlan",
        controller_manager_args=list(getattr(args, "kube_controller_manager_arg", []) or []),
        cluster_init=getattr(args, "cluster_init", False),
        join_server=getattr(args, "join_server", "") or "",
        token=getattr(args, "token", "") or "",
        cluster_reset_restore_path=getattr(args, "cluster_reset_restore_path", "") or "",
        authorization_mode=getattr(args, "authorization_mode", _DEFAULTS.authorization_mode),
    )


def parse_registry_mirrors(values: list[str]) -> dict[str, str]:
    """`HOST=URL` flags → {host: url}; a later flag for the same host wins."""
    mirrors = {}
    for value in values:
        host, separator, url = value.partition("=")
        if not separator or not host or not url:
            raise SystemExit(f"--registry-mirror {value!r}: expected HOST=URL, e.g. docker.io=http://127.0.0.1:5000")
        mirrors[host] = url
    return mirrors


def server_argv(config: ServerConfig) -> list[str]:
    """The `pyk8s server` command line that runs `config` (inverse of server_config_from_args)."""
    argv = [sys.executable, "-m", "pyk8s", "server",
            "--data-dir", str(config.data_dir),
            "--bind-address", config.bind_address,
            "--https-port", str(config.https_port),
            "--service-cidr", config.service_cidr,
            "--cluster-cidr", config.cluster_cidr]
    if config.advertise_address:
        argv += ["--advertise-address", config.advertise_address]
    if config.datastore:
        argv += ["--datastore", config.datastore]
    for flag, path in (("--etcd-cafile", config.etcd_cafile), ("--etcd-certfile", config.etcd_certfile),
                       ("--etcd-keyfile", config.etcd_keyfile)):
        if path:
            argv += [flag, path]
    if config.disable_agent:
        argv.append("--disable-agent")
    if config.disable_controllers:
        argv.append("--disable-controllers")
    for name in config.extra_sans:
        argv += ["--tls-san", name]
    for host, url in config.registry_mirrors.items():
        argv += ["--registry-mirror", f"{host}={url}"]
    if config.resolv_conf:
        argv += ["--resolv-conf", config.resolv_conf]
    argv += ["--proxy-mode", config.proxy_mode]  # always: the flag's default follows $PYK8S_PROXY_MODE
    if config.secrets_encryption:
        argv.append("--secrets-encryption")
    if config.audit_log:
        argv += ["--audit-log", config.audit_log, "--audit-log-maxsize", str(config.audit_log_maxsize),
                 "--audit-log-maxbackup", str(config.audit_log_maxbackup)]
        if config.audit_policy_file:
            argv += ["--audit-policy-file", config.audit_policy_file]
    if config.cluster_init:
        argv.append("--cluster-init")
    if config.join_server:
        argv += ["--server", config.join_server, "--token", config.token]
    if config.cluster_reset_restore_path:
        argv += ["--cluster-reset-restore-path", config.cluster_reset_restore_path]
    if config.node_name:
        argv += ["--node-name", config.node_name]
    if config.node_ip:
        argv += ["--node-ip", config.node_ip]
    if config.flannel_backend != "vxlan":
        argv += ["--flannel-backend", config.flannel_backend]
    for item in config.controller_manager_args:
        argv += ["--kube-controller-manager-arg", item]
    return argv


def split_kubectl_args(argv: list[str]) -> tuple[Path, list[str]]:
    """`pyk8s kubectl` arguments → (data dir, kubectl's own arguments). Only a leading
    `--data-dir D` (or `--data-dir=D`) and an optional `--` belong to pyk8s; everything else,
    flags included, goes to kubectl unchanged."""
    data_dir = None
    rest = list(argv)
    if rest and rest[0] == "--data-dir" and len(rest) >= 2:
        data_dir, rest = Path(rest[1]), rest[2:]
    elif rest and rest[0].startswith("--data-dir="):
        data_dir, rest = Path(rest[0].split("=", 1)[1]), rest[1:]
    if rest and rest[0] == "--":
        rest = rest[1:]
    return (data_dir or default_data_dir()).absolute(), rest


def kubectl_binary() -> str:
    """The kubectl installed next to this Python (the venv's), else the one on PATH."""
    beside_python = Path(sys.executable).parent / "kubectl"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("kubectl")
    if not found:
        raise FileNotFoundError("kubectl not found next to this Python nor on PATH")
    return found


def kubectl_command(data_dir: Path, kubectl_args: list[str]) -> list[str]:
    from pyk8s.cli import multinode_command
    if multinode_command.is_multinode(data_dir):
        return multinode_command.kubectl_command(data_dir, kubectl_args)
    state = daemon.read_state(data_dir)
    prefix = nsenter_prefix(state.netns) if state is not None and state.netns else []
    return prefix + [kubectl_binary(), "--kubeconfig", str(data_dir / daemon.KUBECONFIG_FILE), *kubectl_args]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "kubectl":
        return run_kubectl(*split_kubectl_args(argv[1:]))
    args = build_parser().parse_args(argv)
    from pyk8s.cli.agent_command import run_agent
    from pyk8s.cli.images_command import run_images
    from pyk8s.cli.etcdmember_command import run_etcd_member

    handlers = {"server": run_server_foreground, "agent": run_agent, "images": run_images, "up": up, "down": down,
                "status": status, "reset": reset, "secrets-encrypt": secrets_encrypt,
                "etcd-snapshot": etcd_snapshot, "etcd-member": run_etcd_member}
    return handlers[args.command](args)


# --- commands ----------------------------------------------------------------------------

def run_server_foreground(args: argparse.Namespace) -> int:
    from pyk8s.cluster.server import run_server

    config = server_config_from_args(args)
    if args.netns:
        from pyk8s.cluster.netns import create_netns

        create_netns(args.netns, config.service_cidr)
        # Re-exec inside the namespace (nsenter, never `ip netns exec`: see cluster/netns.py);
        # the new command line has no --netns, so it runs the server itself.
        command = nsenter_prefix(args.netns) + server_argv(config)
        sys.stdout.flush()
        sys.stderr.flush()
        os.execvp(command[0], command)
    run_server(config)
    return 0


def etcd_snapshot(args: argparse.Namespace) -> int:
    from pyk8s.cluster import embeddedetcd

    data_dir = (args.data_dir or default_data_dir()).absolute()
    files = embeddedetcd.EtcdFiles(data_dir)
    try:
        if args.action == "save":
            from pyk8s.cli.etcdmember_command import run_in_server_netns

            run_in_server_netns(data_dir, ["etcd-snapshot", "save", *(["--name", args.name] if args.name else [])])
            print(embeddedetcd.save_snapshot(data_dir, embeddedetcd.local_client_endpoint(data_dir), args.name))
        elif args.action == "ls":
            for path in sorted(files.snapshot_dir.glob("*")) if files.snapshot_dir.exists() else []:
                print(f"{path}\t{path.stat().st_size}")
        else:
            if not args.file:
                print("pyk8s etcd-snapshot restore FILE", file=sys.stderr)
                return 2
            if daemon.running_server(data_dir) is not None:
                print("stop the server first (pyk8s down)", file=sys.stderr)
                return 1
            address = args.advertise_address or embeddedetcd.recorded_advertise_address(data_dir) or "127.0.0.1"
            moved = embeddedetcd.restore_snapshot(data_dir, Path(args.file), address)
            print(f"restored {args.file} into {files.etcd_dir} (previous data: {moved}); start the server with "
                  f"--cluster-init, then join the other servers again")
    except embeddedetcd.EtcdError as error:
        print(f"pyk8s etcd-snapshot: error: {error}", file=sys.stderr)
        return 1
    return 0


def secrets_encrypt(args: argparse.Namespace) -> int:
    from pyk8s.cluster import secretsencryption

    config = ServerConfig(data_dir=(args.data_dir or default_data_dir()).absolute(), datastore=args.datastore)
    if args.action == "status":
        print(secretsencryption.status(config.data_dir, config.datastore_path))
    else:
        print(secretsencryption.rotate(config.data_dir, config.datastore_path))
    return 0


def up(args: argparse.Namespace) -> int:
    from pyk8s.cluster.kubeconfig import merge_into_user_config
    from pyk8s.cluster.netns import create_netns

    from pyk8s.cli import multinode_command
    if multinode_command.wanted(args):
        return multinode_command.up(args, server_config_from_args(args))
    config = server_config_from_args(args)
    data_dir = config.data_dir
    running = daemon.running_server(data_dir)
    if running is not None:
        print(f"pyk8s is already running (pid {running.pid}, {running.url or 'url unknown'}, data dir {data_dir})")
        return 0

    netns = None
    data_dir.mkdir(parents=True, exist_ok=True)
    if args.isolated or args.netns:
        netns = args.netns or ISOLATED_NETNS
        if create_netns(netns, config.service_cidr):
            (data_dir / daemon.NETNS_MARKER).write_text(netns + "\n")
    # The server rewrites the kubeconfig once it listens; an old one must not make us
    # believe it is ready, nor be merged with a stale URL.
    (data_dir / daemon.KUBECONFIG_FILE).unlink(missing_ok=True)

    url = daemon.local_api_url(config)
    process, log_offset = daemon.start_server(server_argv(config), data_dir, url, netns)
    state = daemon.read_state(data_dir)
    print(f"starting pyk8s server (pid {process.pid}{f', network namespace {netns}' if netns else ''}); "
          f"log: {data_dir / daemon.LOG_FILE}", flush=True)
    try:
        ready = daemon.wait_until_ready(process, state, args.timeout, log_offset)
    except daemon.ServerExited as exited:
        daemon.clear_state(data_dir)
        print(f"pyk8s server exited with status {exited.returncode} before it was ready; end of its log:",
              file=sys.stderr)
        print(exited.log_tail, file=sys.stderr)
        return 1
    if not ready:
        print(f"pyk8s server was not ready within {args.timeout:g}s; stopping it. End of its log:", file=sys.stderr)
        print(daemon.log_tail(data_dir / daemon.LOG_FILE, log_offset), file=sys.stderr)
        daemon.stop_server(data_dir)
        return 1

    kubeconfig = data_dir / daemon.KUBECONFIG_FILE
    print(f"pyk8s is ready at {url}")
    if netns:
        from pyk8s.cluster.relay import RelayFailed, start_relay

        # The server listens on 127.0.0.1:<port> inside the namespace; the relay listens on
        # the same address here, so the kubeconfig's URL (and certificate) is right as is.
        try:
            state.relay_pid = start_relay(data_dir, config.https_port, netns, config.https_port,
                                          services_kubeconfig=kubeconfig)
        except RelayFailed as failed:
            print(f"pyk8s runs in network namespace {netns!r}, but the relay on this host's "
                  f"127.0.0.1:{config.https_port} failed:\n{failed}\nUse: pyk8s kubectl{_data_dir_flag(data_dir)} "
                  f"get nodes", file=sys.stderr)
            return 1
        daemon.write_state(state)
        print(f"The cluster runs in network namespace {netns!r}; relay (pid {state.relay_pid}) on this host's "
              f"127.0.0.1:{config.https_port} forwards to its API.")
    merged = merge_into_user_config(kubeconfig)
    print(f"Merged context 'pyk8s' into {merged} and made it current. Use:\n"
          f"  kubectl get nodes\n"
          f"or: kubectl --kubeconfig {kubeconfig} get nodes")
    return 0


def down(args: argparse.Namespace) -> int:
    data_dir = (args.data_dir or default_data_dir()).absolute()
    from pyk8s.cli import multinode_command
    if multinode_command.is_multinode(data_dir):
        return multinode_command.down(data_dir, args.timeout)
    stopped = daemon.stop_server(data_dir, timeout=args.timeout)
    print(f"pyk8s server (pid {stopped}) stopped" if stopped else "pyk8s is not running")
    return 0


def status(args: argparse.Namespace) -> int:
    data_dir = (args.data_dir or default_data_dir()).absolute()
    from pyk8s.cli import multinode_command
    if multinode_command.is_multinode(data_dir):
        return multinode_command.status(data_dir)
    state = daemon.running_server(data_dir)
    if state is None:
        print(f"pyk8s is not running (data dir {data_dir})")
        return 1
    ready = daemon.probe_ready(state)
    print(f"pyk8s is running\n"
          f"  pid:        {state.pid}\n"
          f"  url:        {state.url}\n"
          f"  data dir:   {state.data_dir}\n"
          f"  kubeconfig: {state.kubeconfig}\n"
          f"  netns:      {state.netns or '-'}\n"
          f"  relay pid:  {state.relay_pid or '-'}\n"
          f"  ready:      {'yes' if ready else 'no'}")
    return 0 if ready else 1


def reset(args: argparse.Namespace) -> int:
    from pyk8s.cluster.kubeconfig import remove_from_user_config
    from pyk8s.cluster.netns import delete_netns

    data_dir = (args.data_dir or default_data_dir()).absolute()
    if data_dir.resolve() in (Path("/"), Path.home().resolve()):
        print(f"refusing to wipe {data_dir}", file=sys.stderr)
        return 1
    if not args.yes:
        if not sys.stdin.isatty():
            print("pyk8s reset deletes every object of the cluster; re-run with --yes (make reset YES=1)",
                  file=sys.stderr)
            return 1
        answer = input(f"Delete the cluster in {data_dir} and all its data? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            return 1
    from pyk8s.cli import multinode_command
    if multinode_command.is_multinode(data_dir):
        multinode_command.reset(data_dir)
    stopped = daemon.stop_server(data_dir)
    if stopped:
        print(f"pyk8s server (pid {stopped}) stopped")
    marker = data_dir / daemon.NETNS_MARKER
    created_netns = marker.read_text().strip() if marker.exists() else None
    remove_pods(data_dir, created_netns)
    if data_dir.exists():
        for entry in data_dir.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        print(f"wiped {data_dir}")
    if remove_from_user_config():
        print("removed context 'pyk8s' from the user's kubeconfig")
    if created_netns and delete_netns(created_netns):
        print(f"deleted network namespace {created_netns}")
    return 0


def remove_pods(data_dir: Path, netns: str | None) -> None:
    """Pods outlive the server (a restart adopts them): reset ends them, with their
    containers, sandboxes and mounts, from inside the cluster's network namespace."""
    from pyk8s.cluster.netns import nsenter_prefix

    agent_dir = data_dir / "agent"
    if not (agent_dir / "containerd").exists():
        return
    prefix = nsenter_prefix(netns) if netns else []
    subprocess.run([*prefix, sys.executable, "-m", "pyk8s.kubelet.cleanup", str(agent_dir)], check=False)


def run_kubectl(data_dir: Path, kubectl_args: list[str]) -> int:
    if not (data_dir / daemon.KUBECONFIG_FILE).exists():
        print(f"no cluster in {data_dir} (no {daemon.KUBECONFIG_FILE}); start one with `pyk8s up`", file=sys.stderr)
        return 1
    command = kubectl_command(data_dir, kubectl_args)
    sys.stdout.flush()
    sys.stderr.flush()
    # Replace this process: kubectl gets the terminal and signals directly (exec -it,
    # get -w and Ctrl-C), and its exit status becomes ours.
    os.execvp(command[0], command)
    return 127  # not reached


def _data_dir_flag(data_dir: Path) -> str:
    return "" if data_dir == default_data_dir().absolute() else f" --data-dir {data_dir}"
