"""`pyk8s images`: the images of a running cluster's containerd.

    pyk8s images import [--data-dir D] FILE...   OCI or docker-archive tarballs
    pyk8s images ls     [--data-dir D] [-q]      what the kubelet sees (CRI ListImages)
    pyk8s images rm     [--data-dir D] IMAGE...

The cluster is the one whose data dir is given (default $PYK8S_DATA_DIR, else
/var/lib/pyk8s): its agent's containerd listens on a unix socket under
`<data-dir>/agent/containerd`, which works from any network namespace. Imports stream the
file into `ctr images import -` in the `k8s.io` namespace (the one CRI uses), printing
progress for large files.

Hook into cli/main.py with `add_images_parser(commands)` in build_parser() and dispatch
`args.command == "images"` to `run_images(args)`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

_CHUNK = 1 << 20
# Files smaller than this import without a progress line.
_PROGRESS_FROM = 32 << 20


def add_images_parser(commands) -> argparse.ArgumentParser:
    parser = commands.add_parser("images", help="import, list and remove the cluster's container images")
    actions = parser.add_subparsers(dest="images_command", required=True, metavar="ACTION")
    importing = actions.add_parser("import", help="import OCI or docker-archive tarballs")
    importing.add_argument("files", nargs="+", type=Path, metavar="FILE")
    listing = actions.add_parser("ls", help="list images")
    listing.add_argument("-q", "--quiet", action="store_true", help="only image IDs")
    removing = actions.add_parser("rm", help="remove images")
    removing.add_argument("images", nargs="+", metavar="IMAGE")
    for action in (importing, listing, removing):
        action.add_argument("--data-dir", type=Path, default=None,
                            help="the cluster's data dir (default $PYK8S_DATA_DIR or /var/lib/pyk8s)")
    return parser


def containerd_socket(data_dir: Path) -> str:
    """The socket the agent of `data_dir` gives its containerd (same rule as the agent)."""
    from pyk8s.kubelet.containerd import Containerd

    agent_dir = data_dir / "agent"
    return Containerd(agent_dir, cni_conf_dir=agent_dir / "cni" / "net.d").socket


def run_images(args: argparse.Namespace) -> int:
    data_dir = (args.data_dir or Path(os.environ.get("PYK8S_DATA_DIR") or "/var/lib/pyk8s")).absolute()
    socket = containerd_socket(data_dir)
    if not os.path.exists(socket):
        print(f"no running cluster in {data_dir} (no containerd socket {socket}); start one with `pyk8s up`",
              file=sys.stderr)
        return 1
    if args.images_command == "import":
        return import_images(socket, args.files)
    if args.images_command == "ls":
        return asyncio.run(list_images(socket, quiet=args.quiet))
    return asyncio.run(remove_images(socket, args.images))


def import_images(socket: str, files: list[Path]) -> int:
    for path in files:
        if not path.is_file():
            print(f"{path}: no such file", file=sys.stderr)
            return 1
    for path in files:
        size = path.stat().st_size
        process = subprocess.Popen(["ctr", "--address", socket, "--namespace", "k8s.io", "images", "import", "-"],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert process.stdin is not None and process.stdout is not None
        sent, last_report = 0, 0.0
        show_progress = size >= _PROGRESS_FROM
        try:
            with open(path, "rb") as archive:
                while chunk := archive.read(_CHUNK):
                    process.stdin.write(chunk)
                    sent += len(chunk)
                    now = time.monotonic()
                    if show_progress and now - last_report >= 0.5:
                        last_report = now
                        print(f"\r{path.name}: {sent >> 20}/{size >> 20} MiB ({100 * sent // size}%)", end="",
                              file=sys.stderr, flush=True)
            process.stdin.close()
        except BrokenPipeError:
            pass  # ctr failed early; its output says why
        output = process.stdout.read().decode(errors="replace")
        code = process.wait()
        if show_progress:
            print(file=sys.stderr)
        if code != 0:
            print(f"importing {path} failed: {output.strip()}", file=sys.stderr)
            return 1
        names = [line.split()[1] for line in output.splitlines() if line.startswith("unpacking ")]
        for name in names or [path.name]:
            print(f"imported {name}")
    return 0


def _human_size(size: int) -> str:
    """Sizes as crictl prints them (decimal units)."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.3g}{unit}"
        value /= 1000
    return f"{size}B"


async def list_images(socket: str, *, quiet: bool) -> int:
    from pyk8s.kubelet.cri import CRIClient

    cri = CRIClient(socket)
    try:
        images = (await cri.call("ListImages", {})).get("images", [])
    finally:
        await cri.close()
    rows = []
    for image in images:
        short_id = image["id"].split(":", 1)[-1][:13]
        tags = image.get("repo_tags") or []
        if not tags:
            repository = (image.get("repo_digests") or ["<none>@"])[0].split("@", 1)[0]
            tags = [f"{repository}:<none>"]
        for tag in tags:
            repository, _, name = tag.rpartition(":")
            rows.append((repository, name, short_id, _human_size(int(image.get("size", 0)))))
    if quiet:
        for image_id in dict.fromkeys(row[2] for row in rows):
            print(image_id)
        return 0
    rows.sort()
    table = [("IMAGE", "TAG", "IMAGE ID", "SIZE"), *rows]
    widths = [max(len(row[i]) for row in table) for i in range(3)]
    for row in table:
        print("   ".join(value.ljust(widths[i]) for i, value in enumerate(row[:3])) + "   " + row[3])
    return 0


async def remove_images(socket: str, names: list[str]) -> int:
    from pyk8s.kubelet.cri import CRIClient, CRIError

    cri = CRIClient(socket)
    failed = 0
    try:
        for name in names:
            status = await cri.image_status(name)
            if status is None:
                print(f'image "{name}" not found', file=sys.stderr)
                failed += 1
                continue
            try:
                await cri.call("RemoveImage", {"image": {"image": status["id"]}})
            except CRIError as error:
                print(f"removing {name} failed: {error.details}", file=sys.stderr)
                failed += 1
                continue
            print(f"Deleted: {name}")
    finally:
        await cri.close()
    return 1 if failed else 0
