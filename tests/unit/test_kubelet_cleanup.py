"""Finding a node's leftover runc shims by the containerd address they were given."""

from __future__ import annotations

import subprocess
import sys
import time

from pyk8s.kubelet.cleanup import kill_orphan_shims, shims_of


def _fake_shim(address: str) -> subprocess.Popen:
    # `exec -a` names the process as containerd names its shims; it only sleeps.
    return subprocess.Popen(["bash", "-c", f'exec -a containerd-shim-runc-v2 {sys.executable} -c "import time; time.sleep(60)"'
                                           f" -namespace k8s.io -address {address}"])


def test_only_the_shims_of_this_containerd_are_found_and_killed(tmp_path):
    ours = _fake_shim(str(tmp_path / "containerd.sock"))
    theirs = _fake_shim(str(tmp_path / "other.sock"))
    try:
        deadline = time.monotonic() + 5
        while ours.pid not in shims_of(str(tmp_path / "containerd.sock")) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert shims_of(str(tmp_path / "containerd.sock")) == [ours.pid]
        kill_orphan_shims(str(tmp_path / "containerd.sock"))
        assert ours.wait(timeout=5) == -9
        assert theirs.poll() is None
    finally:
        for process in (ours, theirs):
            process.kill()
            process.wait()
