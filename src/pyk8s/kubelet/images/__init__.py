"""The project's own container images, built locally without Docker or a registry.

`build_images(out_dir)` writes OCI image-layout tarballs:
- `pyk8s/pause:3.10`: a static C pause process (gcc -static), else a busybox fallback;
- `pyk8s/busybox:1.35`: Debian's busybox-static with every applet linked (sh, httpd, wget,
  nslookup, nc, ping, ...), /etc/passwd and /etc/group, default command `sh`;
- `pyk8s/whoami:1`: the same busybox, serving on port 80 (busybox httpd) a page with the
  pod's hostname (= pod name): the book's "which pod answered?" web server;
- `pyk8s/dns:<python>-<fingerprint>`: this node's Python with the cluster DNS (images/python.py).
Tarballs are deterministic (fixed mtimes), so rebuilding gives the same image IDs and an
agent restart re-imports nothing. Import more images with
`ctr --address <data-dir>/containerd/containerd.sock -n k8s.io images import FILE.tar`
(OCI or docker-archive; later `pyk8s images import`).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PAUSE_IMAGE = "docker.io/pyk8s/pause:3.10"
BUSYBOX_IMAGE = "docker.io/pyk8s/busybox:1.35"
WHOAMI_IMAGE = "docker.io/pyk8s/whoami:1"
# Layers of a few MB at most, cheap to assemble in memory in a long-running process.
SMALL_IMAGES = frozenset({PAUSE_IMAGE, BUSYBOX_IMAGE, WHOAMI_IMAGE})
BUSYBOX_BINARY = "/bin/busybox"
# Written at start, not at build time: the page must name the pod that serves it.
WHOAMI_SCRIPT = b"""#!/bin/sh
# pyk8s/whoami: answer every GET with this container's hostname (the pod name).
mkdir -p /var/www
echo "You've hit $(hostname)" > /var/www/index.html
exec httpd -f -p "${PORT:-80}" -h /var/www
"""
_EPOCH = 0
_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _file_info(name: str, size: int = 0, mode: int = 0o644, kind: bytes = tarfile.REGTYPE,
               link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.type, info.linkname, info.mtime = size, mode, kind, link, _EPOCH
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


class LayerBuilder:
    """An uncompressed layer tar assembled in memory in a fixed order."""

    def __init__(self) -> None:
        self.buffer = io.BytesIO()
        self.tar = tarfile.open(fileobj=self.buffer, mode="w", format=tarfile.USTAR_FORMAT)

    def directory(self, name: str, mode: int = 0o755) -> None:
        self.tar.addfile(_file_info(name, mode=mode, kind=tarfile.DIRTYPE))

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self.tar.addfile(_file_info(name, len(data), mode), io.BytesIO(data))

    def symlink(self, name: str, target: str) -> None:
        self.tar.addfile(_file_info(name, mode=0o777, kind=tarfile.SYMTYPE, link=target))

    def finish(self) -> bytes:
        self.tar.close()
        return self.buffer.getvalue()


def _blob(data: bytes) -> tuple[str, bytes]:
    return "sha256:" + hashlib.sha256(data).hexdigest(), data


def write_oci_archive(path: Path, image_name: str, layer: bytes, config: dict) -> None:
    """One-layer, single-platform OCI image layout in a tar, named for containerd import."""
    layer_digest, _ = _blob(layer)
    image_config = {
        "architecture": "amd64", "os": "linux", "config": config,
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        "history": [{"created_by": "pyk8s image builder"}],
    }
    config_digest, config_bytes = _blob(json.dumps(image_config, sort_keys=True).encode())
    manifest = {
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest,
                   "size": len(config_bytes)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest,
                    "size": len(layer)}],
    }
    manifest_digest, manifest_bytes = _blob(json.dumps(manifest, sort_keys=True).encode())
    index = {
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": manifest["mediaType"], "digest": manifest_digest, "size": len(manifest_bytes),
                       "platform": {"architecture": "amd64", "os": "linux"},
                       "annotations": {"io.containerd.image.name": image_name,
                                       "org.opencontainers.image.ref.name": image_name.rpartition(":")[2]}}],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    with tarfile.open(temporary, "w", format=tarfile.USTAR_FORMAT) as archive:
        def add(name: str, data: bytes) -> None:
            archive.addfile(_file_info(name, len(data)), io.BytesIO(data))
        archive.addfile(_file_info("blobs", mode=0o755, kind=tarfile.DIRTYPE))
        archive.addfile(_file_info("blobs/sha256", mode=0o755, kind=tarfile.DIRTYPE))
        for digest, data in ((layer_digest, layer), (config_digest, config_bytes), (manifest_digest, manifest_bytes)):
            add(f"blobs/sha256/{digest.split(':')[1]}", data)
        add("oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode())
        add("index.json", json.dumps(index, sort_keys=True).encode())
    temporary.replace(path)


def _base_files(layer: LayerBuilder) -> None:
    for directory, mode in (("bin", 0o755), ("etc", 0o755), ("tmp", 0o1777), ("root", 0o700), ("var", 0o755),
                            ("var/www", 0o755), ("home", 0o755), ("proc", 0o755), ("sys", 0o755), ("dev", 0o755)):
        layer.directory(directory, mode)
    layer.file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n")
    layer.file("etc/group", b"root:x:0:\nnogroup:x:65534:\n")


def build_pause_layer() -> bytes:
    layer = LayerBuilder()
    layer.directory("etc")
    layer.file("etc/passwd", b"root:x:0:0:root:/:/pause\n")
    layer.file("etc/group", b"root:x:0:\n")
    if shutil.which("gcc"):
        with tempfile.TemporaryDirectory() as work:
            binary = Path(work) / "pause"
            subprocess.run(["gcc", "-static", "-Os", "-s", "-o", str(binary), str(HERE / "pause.c")],
                           check=True, capture_output=True)
            layer.file("pause", binary.read_bytes(), 0o755)
    else:
        # Without a compiler: busybox as the sandbox process (it reaps children as init).
        layer.file("pause", Path(BUSYBOX_BINARY).read_bytes(), 0o755)
    return layer.finish()


def busybox_applets() -> list[str]:
    output = subprocess.run([BUSYBOX_BINARY, "--list-full"], capture_output=True, text=True, check=True).stdout
    return sorted(line.strip() for line in output.splitlines() if line.strip())


def _busybox_files(layer: LayerBuilder) -> None:
    _base_files(layer)
    for directory in ("sbin", "usr", "usr/bin", "usr/sbin"):
        layer.directory(directory)
    layer.file("bin/busybox", Path(BUSYBOX_BINARY).read_bytes(), 0o755)
    for applet in busybox_applets():
        if applet == "bin/busybox":
            continue
        layer.symlink(applet, "/bin/busybox")
    if "usr/bin/printenv" not in busybox_applets():
        layer.file("usr/bin/printenv", PRINTENV_SCRIPT, 0o755)


# Debian's busybox-static has no printenv applet, and the book's chapter 4 reads variables
# with it: coreutils' behaviour (values of the named variables, exit 1 when one is unset;
# every NAME=value without arguments) with busybox awk.
PRINTENV_SCRIPT = b'''#!/bin/sh
[ $# -eq 0 ] && exec env
exec awk 'BEGIN { missing = 0; for (i = 1; i < ARGC; i++) { if (ARGV[i] in ENVIRON) print ENVIRON[ARGV[i]]; else missing = 1 } exit missing }' "$@"
'''


def build_busybox_layer() -> bytes:
    layer = LayerBuilder()
    _busybox_files(layer)
    return layer.finish()


def build_whoami_layer() -> bytes:
    layer = LayerBuilder()
    _busybox_files(layer)
    layer.file("whoami.sh", WHOAMI_SCRIPT, 0o755)
    return layer.finish()


def docker_reference(image: str) -> str:
    """An image name as containerd stores it: `busybox` -> `docker.io/library/busybox`,
    `pyk8s/dns:x` -> `docker.io/pyk8s/dns:x` (names with a registry host stay as they are)."""
    first, _, rest = image.partition("/")
    if not rest:
        return f"docker.io/library/{image}"
    if "." in first or ":" in first or first == "localhost":
        return image
    return f"docker.io/{image}"


def build_images(out_dir: Path, names: set[str] | None = None, *, build: bool = True) -> dict[str, Path]:
    """Build (or reuse) the project's images (those in `names`, default all); returns image
    name -> archive path."""
    out_dir = Path(out_dir)
    images = {
        PAUSE_IMAGE: (out_dir / "pause.tar", build_pause_layer,
                      {"Entrypoint": ["/pause"], "Env": ["PATH=/"], "StopSignal": "SIGTERM"}),
        BUSYBOX_IMAGE: (out_dir / "busybox.tar", build_busybox_layer,
                        {"Cmd": ["sh"], "Env": [_PATH]}),
        WHOAMI_IMAGE: (out_dir / "whoami.tar", build_whoami_layer,
                       {"Entrypoint": ["/whoami.sh"], "Env": [_PATH], "ExposedPorts": {"80/tcp": {}}}),
    }
    from pyk8s.kubelet.images.python import build_dns_layer, dns_image_config, dns_image_name

    dns_image = dns_image_name()
    images[dns_image] = (out_dir / f"dns-{dns_image.rpartition(':')[2]}.tar", build_dns_layer, dns_image_config())
    built = {}
    for name, (path, build_layer, config) in images.items():
        if names is not None and name not in names:
            continue
        if build and not path.exists():
            write_oci_archive(path, name, build_layer(), config)
        built[name] = path
    return built


def archive_paths(out_dir: Path, names: set[str] | None = None) -> dict[str, Path]:
    """Where `build_images` puts (or has put) each archive, without building anything."""
    return build_images(out_dir, names, build=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="build pyk8s's own OCI image archives")
    parser.add_argument("--out", type=Path, default=Path("images/out"))
    parser.add_argument("--image", action="append", default=[], metavar="NAME", help="build only this image (repeatable)")
    args = parser.parse_args(argv)
    for name, path in build_images(args.out, set(args.image) or None).items():
        print(f"{name}\t{path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
