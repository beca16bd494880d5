"""`pyk8s/dns`: an image holding this node's own Python runtime and the pyk8s packages the
cluster DNS needs, built from the files of the running interpreter (no registry, no pip).

What goes in (paths as on the host, so the interpreter finds its prefix and its shared
libraries exactly where it was built to look):
- the interpreter binary, its libpython, the standard library without tests, IDLE, Tk,
  ensurepip and site-packages (with the host's .pyc files, real mtimes kept so they stay
  valid), and the shared libraries `ldd` names for all of them;
- under /app: pyk8s's `api`, `client` and `dns` packages and the third-party packages they
  import (aiohttp and its dependencies, orjson, dnslib), found by importing
  `pyk8s.dns.__main__` in a child interpreter and reading where its modules came from.
The tag carries a fingerprint of every input file (path, size, mtime), so a changed source
file gives a new image name and the node imports the new image; the server computes the
same name for the Deployment (`dns_image_name()`).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
from functools import lru_cache
from pathlib import Path

DNS_IMAGE_REPOSITORY = "docker.io/pyk8s/dns"
APP_DIR = "/app"
_PYK8S_PACKAGES = ("api", "client", "dns")
_STDLIB_SKIP = {"test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "site-packages", "pydoc_data",
                "unittest", "distutils", "venv", "__phello__", "sqlite3", "xmlrpc", "curses", "dbm"}
# Extension modules with heavy libraries (X11, ncurses, readline, Berkeley DB) or test-only.
_DYNLOAD_SKIP = ("_tkinter", "_curses", "_dbm", "_gdbm", "_sqlite3", "readline", "nis", "_test", "_ctypes_test",
                 "xxlimited", "xxsubtype", "_xxtestfuzz", "_xxsubinterpreters", "audioop", "ossaudiodev")


def _third_party_roots() -> list[Path]:
    """Top-level package dirs (or module files) outside the stdlib that pyk8s.dns imports."""
    probe = ("import sys, pyk8s.dns.__main__, pyk8s.dns.server\n"
             "print('\\n'.join(sorted({getattr(m, '__file__', None) or '' for m in list(sys.modules.values())})))")
    output = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    stdlib = Path(sysconfig.get_path("stdlib")).resolve()
    roots: set[Path] = set()
    for line in output.splitlines():
        if not line:
            continue
        path = Path(line).resolve()
        if path.is_relative_to(stdlib) and "site-packages" not in path.parts:
            continue
        for parent in [path, *path.parents]:
            if parent.parent.name in ("site-packages", "src") and not parent.name.startswith("_distutils"):
                roots.add(parent)
                break
    return sorted(roots)


def _walk(root: Path, skip: set[str] = frozenset()) -> list[Path]:
    if root.is_file():
        return [root]
    files = []
    for directory, subdirs, names in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if d not in skip and not d.startswith("config-"))
        for name in sorted(names):
            if name.endswith((".opt-1.pyc", ".opt-2.pyc", ".exe")) or \
                    (name.endswith(".so") and name.startswith(_DYNLOAD_SKIP)):
                continue
            files.append(Path(directory) / name)
    return files


@lru_cache(maxsize=1)
def _inputs() -> tuple[list[Path], list[tuple[Path, str]]]:
    """(host files copied at their own path, (host file, path under /app))."""
    executable = Path(sys.executable).resolve()
    stdlib = Path(sysconfig.get_path("stdlib")).resolve()
    files = [executable, *_walk(stdlib, _STDLIB_SKIP)]
    app: list[tuple[Path, str]] = []
    for root in _third_party_roots():
        if root.name == "pyk8s":
            app.append((root / "__init__.py", "pyk8s/__init__.py"))
            for package in _PYK8S_PACKAGES:
                app += [(f, str(f.relative_to(root.parent))) for f in _walk(root / package, {"__pycache__"})]
        else:
            app += [(f, str(f.relative_to(root.parent))) for f in _walk(root, {"__pycache__"})]
    elf = [f for f in files if f.suffix == ".so" or f == executable] + [f for f, _ in app if ".so" in f.name]
    libraries: set[Path] = set()
    for binary in elf:
        result = subprocess.run(["ldd", str(binary)], capture_output=True, text=True)
        for line in result.stdout.splitlines():
            parts = line.split()
            candidate = parts[2] if len(parts) >= 3 and parts[1] == "=>" else parts[0] if parts else ""
            if candidate.startswith("/"):
                libraries.add(Path(candidate))
    return sorted(set(files)) + sorted(libraries), app


def dns_image_name() -> str:
    """`docker.io/pyk8s/dns:<python version>-<fingerprint of every input file>`."""
    files, app = _inputs()
    digest = hashlib.sha256(sys.version.encode())
    for path in [*files, *(f for f, _ in app)]:
        stat = path.stat()
        digest.update(f"{path}\0{stat.st_size}\0{int(stat.st_mtime)}\n".encode())
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    return f"{DNS_IMAGE_REPOSITORY}:py{version}-{digest.hexdigest()[:12]}"


def dns_image_config() -> dict:
    return {"Entrypoint": [str(Path(sys.executable).resolve()), "-m", "pyk8s.dns"],
            "Env": ["PATH=/usr/local/bin:/usr/bin:/bin", f"PYTHONPATH={APP_DIR}", "PYTHONDONTWRITEBYTECODE=1",
                    "PYTHONUNBUFFERED=1"],
            "ExposedPorts": {"53/udp": {}, "53/tcp": {}, "8181/tcp": {}, "9153/tcp": {}}}


_STRIP_ABOVE = 256 * 1024


def _stripped(path: Path) -> bytes | None:
    """The library without its debug symbols (libpython: 23 MB -> 4 MB), if `strip` exists."""
    if not shutil.which("strip"):
        return None
    with tempfile.TemporaryDirectory() as directory:
        out = Path(directory) / path.name
        if subprocess.run(["strip", "--strip-debug", "-o", str(out), str(path)], capture_output=True).returncode:
            return None
        return out.read_bytes()


def build_dns_layer() -> bytes:
    files, app = _inputs()
    buffer = io.BytesIO()
    directories: set[str] = set()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        def add_directories(name: str) -> None:
            parts = name.split("/")[:-1]
            for index in range(1, len(parts) + 1):
                directory = "/".join(parts[:index])
                if directory and directory not in directories:
                    directories.add(directory)
                    info = tarfile.TarInfo(directory)
                    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
                    tar.addfile(info)

        def add(source: Path, name: str) -> None:
            # Symbolic links are followed: the file lands at the path the loader asks for.
            add_directories(name)
            info = tarfile.TarInfo(name)
            stat = source.stat()
            info.mode, info.mtime = stat.st_mode & 0o777, int(stat.st_mtime)
            data = _stripped(source) if stat.st_size > _STRIP_ABOVE and ".so" in source.name else None
            if data is None:
                data = source.read_bytes()
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        for directory in ("tmp", "etc", "proc", "sys", "dev"):
            add_directories(directory + "/x")
        seen: set[str] = set()
        for source in files:
            name = str(source).lstrip("/")
            if name not in seen:
                seen.add(name)
                add(source, name)
        for source, relative in app:
            add(source, f"{APP_DIR.lstrip('/')}/{relative}")
        passwd = b"root:x:0:0:root:/root:/bin/false\nnobody:x:65534:65534:nobody:/:/bin/false\n"
        info = tarfile.TarInfo("etc/passwd")
        info.size, info.mode = len(passwd), 0o644
        tar.addfile(info, io.BytesIO(passwd))
    return buffer.getvalue()


def main() -> int:
    print(json.dumps({"name": dns_image_name(), "files": sum(map(len, _inputs()))}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
