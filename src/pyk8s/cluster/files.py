"""Writing files so readers never see half of one: shared by the PKI, kubeconfigs and the
daemon's state (kept apart from `pki` so those need not load a crypto library)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_file_atomic(path: Path, data: bytes, mode: int) -> None:
    """Write `data` to `path` with permissions `mode` so that readers see either the old or
    the new content, never a partial file (a temporary file in the same directory, fsynced,
    then renamed over the target)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(descriptor, mode)
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise
