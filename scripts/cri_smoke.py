"""Manual smoke test: our containerd + CRI in a throw-away network namespace.

Usage: .venv/bin/python scripts/cri_smoke.py  (root). Starts containerd under a temp dir,
imports the project images, runs one pod with one busybox container, prints timings and the
pod IP, then removes everything.
"""

import asyncio
import sys
import tempfile
import time
from pathlib import Path

from pyk8s.cluster.localcluster import isolate_network


async def main(data_dir: Path) -> None:
    from pyk8s.kubelet import cni
    from pyk8s.kubelet.containerd import Containerd
    from pyk8s.kubelet.cri import CRIClient
    from pyk8s.kubelet.images import build_images

    runtime = Containerd(data_dir, cni_conf_dir=data_dir / "cni" / "net.d")
    cni.write_conflist(data_dir, runtime.cni_conf_dir, "10.42.0.0/24")
    started = time.monotonic()
    await runtime.start()
    print(f"containerd ready in {time.monotonic() - started:.2f}s")
    cri = CRIClient(runtime.socket)
    try:
        print(await cri.version())
        for name, path in build_images(data_dir / "images").items():
            runtime.import_image(path)
        print([image.get("repo_tags") for image in (await cri.call("ListImages")).get("images", [])])
        sandbox_config = {"metadata": {"name": "smoke", "uid": "smoke-uid", "namespace": "default"},
                          "hostname": "smoke", "log_directory": str(data_dir / "logs"),
                          "labels": {"io.kubernetes.pod.uid": "smoke-uid"},
                          "linux": {"security_context": {"namespace_options": {"pid": 1}}}}
        t0 = time.monotonic()
        sandbox_id = (await cri.call("RunPodSandbox", {"config": sandbox_config}))["pod_sandbox_id"]
        t1 = time.monotonic()
        container_id = (await cri.call("CreateContainer", {
            "pod_sandbox_id": sandbox_id, "sandbox_config": sandbox_config,
            "config": {"metadata": {"name": "c"}, "image": {"image": "docker.io/pyk8s/busybox:1.35"},
                       "command": ["sh", "-c", "echo hello from $(hostname); sleep 3600"], "log_path": "c/0.log"}}))["container_id"]
        await cri.call("StartContainer", {"container_id": container_id})
        t2 = time.monotonic()
        print(f"sandbox {1000 * (t1 - t0):.0f} ms, container {1000 * (t2 - t1):.0f} ms")
        print("sandbox", await cri.sandbox_status(sandbox_id))
        status = await cri.container_status(container_id)
        print("container state", status.get("state"), status.get("image_ref"))
        result = await cri.call("ExecSync", {"container_id": container_id, "cmd": ["cat", "/etc/hostname"], "timeout": 5})
        print("exec", result)
        await asyncio.sleep(0.2)
        print("log:", (data_dir / "logs" / "c" / "0.log").read_text())
        await cri.call("StopPodSandbox", {"pod_sandbox_id": sandbox_id})
        await cri.call("RemovePodSandbox", {"pod_sandbox_id": sandbox_id})
        print("sandboxes left", await cri.list_sandboxes())
    finally:
        await cri.close()
        await runtime.stop()


if __name__ == "__main__":
    isolate_network()
    with tempfile.TemporaryDirectory(prefix="pyk8s-smoke-") as directory:
        asyncio.run(main(Path(directory)))
    sys.exit(0)
