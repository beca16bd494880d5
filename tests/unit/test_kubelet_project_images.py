"""The node's own images: names as containerd stores them, and a pod whose image is still
being imported since the node started shows ContainerCreating and syncs again when the import
is done, instead of trying a pull."""

from __future__ import annotations

import asyncio

from pyk8s.kubelet.images import docker_reference
from pyk8s.kubelet.pods import PodManager, PodRecord


def test_docker_reference_adds_docker_io_and_library_like_containerd():
    assert docker_reference("busybox") == "docker.io/library/busybox"
    assert docker_reference("busybox:1.35") == "docker.io/library/busybox:1.35"
    assert docker_reference("pyk8s/dns:py3.11-abc") == "docker.io/pyk8s/dns:py3.11-abc"
    assert docker_reference("docker.io/pyk8s/pause:3.10") == "docker.io/pyk8s/pause:3.10"
    assert docker_reference("registry.local/payments/checkout:1") == "registry.local/payments/checkout:1"
    assert docker_reference("localhost/x:1") == "localhost/x:1"
    assert docker_reference("127.0.0.1:5000/x:1") == "127.0.0.1:5000/x:1"


class FakeImages:
    """image_status answers from a set; PullImage fails (no registry), as on these nodes."""

    def __init__(self):
        self.present: set[str] = set()
        self.pulls: list[str] = []

    async def image_status(self, image: str):
        return {"id": f"sha256:{docker_reference(image)}"} if docker_reference(image) in self.present else None

    async def call(self, method, request):
        self.pulls.append(request["image"]["image"])
        from pyk8s.kubelet.cri.client import CRIError
        raise CRIError("PullImage", "UNAVAILABLE", "no registry")


def test_a_pod_waits_for_its_image_still_being_imported_then_finds_it_present(tmp_path):
    async def scenario():
        cri = FakeImages()
        imports: dict[str, asyncio.Task] = {}

        def pending(image: str):
            task = imports.get(docker_reference(image))
            return task if task is not None and not task.done() else None

        manager = PodManager(None, cri, node_name="n", node_ip="127.0.0.1", data_dir=tmp_path,
                             log_root=tmp_path / "logs", pending_image_import=pending)
        events = []
        manager._event = lambda pod, kind, reason, message, container="": events.append((reason, message))

        async def slow_import():
            await asyncio.sleep(0.2)
            cri.present.add("docker.io/pyk8s/dns:x")
        imports["docker.io/pyk8s/dns:x"] = asyncio.get_running_loop().create_task(slow_import())
        woken = []
        manager.wake = woken.append
        pod = {"metadata": {"name": "dns", "namespace": "kube-system", "uid": "u1"}, "spec": {}}
        spec = {"name": "coredns", "image": "pyk8s/dns:x", "imagePullPolicy": "IfNotPresent"}
        waiting = PodRecord("u1")
        assert await manager._ensure_image(waiting, pod, spec) is None  # not started yet, no pull tried
        assert waiting.waiting["coredns"] == {"reason": "ContainerCreating"} and cri.pulls == [] and events == []
        await imports["docker.io/pyk8s/dns:x"]
        await asyncio.sleep(0)
        assert woken == ["u1"]  # the pod syncs again once its image is in
        reference = await manager._ensure_image(waiting, pod, spec)
        assert reference == "sha256:docker.io/pyk8s/dns:x" and cri.pulls == []
        assert events == [("Pulled", 'Container image "pyk8s/dns:x" already present on machine')]
        # Without a pending import the same missing image goes to a pull (which fails here).
        record = PodRecord("u2")
        assert await manager._ensure_image(record, pod, {**spec, "image": "pyk8s/other:1"}) is None
        assert cri.pulls == ["pyk8s/other:1"] and record.waiting["coredns"]["reason"] == "ErrImagePull"
    asyncio.run(scenario())
