"""The atomic writer: a directory of projected files that changes all at once.

Upstream's layout (pkg/volume/util/atomic_writer.go), which the book shows with `ls -l`:

    <volume>/..2024_05_01_12_00_00.123456789/config.json   the files, in a timestamped dir
    <volume>/..data -> ..2024_05_01_12_00_00.123456789      swapped by rename(2)
    <volume>/config.json -> ..data/config.json              one link per top-level name

A reader that opens `config.json` resolves `..data` once, so it sees either the whole old
payload or the whole new one, never a mix. A write makes a new timestamped directory, points
a `..data_tmp` link at it, renames that over `..data` (atomic), adds links for new names,
removes links for names that left the payload, then removes the old directory.
"""

from __future__ import annotations

import os
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

DATA_DIR = "..data"
DATA_DIR_TMP = "..data_tmp"


@dataclass(frozen=True)
class FileProjection:
    """One file of a payload: its bytes, its mode and (for token files) its owner."""
    data: bytes
    mode: int = 0o644
    fs_user: int | None = None


class PayloadError(ValueError):
    pass


def clean_payload(payload: dict[str, FileProjection]) -> dict[str, FileProjection]:
    """Upstream's validatePayload: relative paths without `..` elements, not starting with
    `..` (the writer's own names), normalised."""
    cleaned: dict[str, FileProjection] = {}
    for path, projection in payload.items():
        if not path:
            raise PayloadError("invalid path: must not be empty")
        if path.startswith("/"):
            raise PayloadError(f"invalid path: must be relative path: {path}")
        if ".." in path.split("/"):
            raise PayloadError(f"invalid path: must not contain '..': {path}")
        if path.startswith(".."):
            raise PayloadError(f"invalid path: must not start with '..': {path}")
        cleaned[os.path.normpath(path)] = projection
    return cleaned


def top_level(path: str) -> str:
    return path.split("/", 1)[0]


class AtomicWriter:
    def __init__(self, target_dir: Path):
        self.target_dir = Path(target_dir)

    def current_dir(self) -> Path | None:
        """The timestamped directory `..data` points at, None before the first write."""
        try:
            return self.target_dir / os.readlink(self.target_dir / DATA_DIR)
        except OSError:
            return None

    def read(self) -> dict[str, bytes]:
        """The files of the current payload (relative path -> bytes)."""
        current = self.current_dir()
        if current is None:
            return {}
        found = {}
        for root, _dirs, files in os.walk(current):
            for name in files:
                full = os.path.join(root, name)
                with open(full, "rb") as handle:
                    found[os.path.relpath(full, current)] = handle.read()
        return found

    def write(self, payload: dict[str, FileProjection], set_perms: Callable[[Path], None] | None = None) -> bool:
        """Makes the volume show exactly `payload`. Returns False when it already did (nothing
        is written: upstream compares contents only, as modes cannot change for a pod)."""
        payload = clean_payload(payload)
        self.target_dir.mkdir(parents=True, exist_ok=True)
        old_dir = self.current_dir()
        on_disk = self.read() if old_dir is not None else {}
        removed = set(on_disk) - set(payload)
        if old_dir is not None and not removed and \
                all(on_disk.get(path) == projection.data for path, projection in payload.items()):
            self._link_user_visible(payload)  # a link lost in a crash between rename and links
            return False
        new_dir = self._new_timestamp_dir()
        try:
            self._write_payload(new_dir, payload)
            if set_perms is not None:
                set_perms(new_dir)
            tmp_link = self.target_dir / DATA_DIR_TMP
            try:
                tmp_link.unlink()
            except FileNotFoundError:
                pass
            tmp_link.symlink_to(new_dir.name)
            os.rename(tmp_link, self.target_dir / DATA_DIR)
        except BaseException:
            shutil.rmtree(new_dir, ignore_errors=True)
            raise
        self._link_user_visible(payload)
        keep = {top_level(path) for path in payload}
        for name in {top_level(path) for path in removed} - keep:
            link = self.target_dir / name
            if link.is_symlink():
                link.unlink()
        if old_dir is not None and old_dir != new_dir:
            shutil.rmtree(old_dir, ignore_errors=True)
        return True

    def _new_timestamp_dir(self) -> Path:
        stamp = time.strftime("..%Y_%m_%d_%H_%M_%S.", time.gmtime())
        while True:
            # Go's os.MkdirTemp suffix: a random uint32 in decimal.
            path = self.target_dir / f"{stamp}{random.getrandbits(32)}"
            try:
                path.mkdir()
                break
            except FileExistsError:
                continue
        # 0755 whatever the umask: group and others must reach the files (upstream).
        os.chmod(path, 0o755)
        return path

    @staticmethod
    def _write_payload(directory: Path, payload: dict[str, FileProjection]) -> None:
        for path, projection in payload.items():
            full = directory / path
            if full.parent != directory:
                full.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
            with open(full, "wb") as handle:
                handle.write(projection.data)
            os.chmod(full, projection.mode & 0o7777)
            if projection.fs_user is not None:
                os.chown(full, projection.fs_user, -1)

    def _link_user_visible(self, payload: dict[str, FileProjection]) -> None:
        for name in {top_level(path) for path in payload}:
            link = self.target_dir / name
            if not os.path.lexists(link):
                link.symlink_to(f"{DATA_DIR}/{name}")


def set_volume_ownership(directory: Path, fs_group: int) -> None:
    """Upstream's SetVolumeOwnership for a read-only volume: every entry's group becomes
    fsGroup; files get group (and owner) read (0440), directories also search and setgid."""
    directory = Path(directory)
    for root, dirs, files in os.walk(directory):
        entries = [root] + [os.path.join(root, name) for name in dirs + files]
        for entry in entries:
            os.lchown(entry, -1, fs_group)
            if os.path.islink(entry):
                continue
            mode = os.lstat(entry).st_mode & 0o7777
            if os.path.isdir(entry):
                mode |= 0o440 | 0o110 | 0o2000
            else:
                mode |= 0o440
            os.chmod(entry, mode)
