"""Registry mirrors: `pyk8s server --registry-mirror docker.io=http://127.0.0.1:PORT` makes the
node pull docker.io images through that registry (containerd hosts.toml).

Debian's `docker-registry` (distribution) runs on a free loopback port inside the test's
network namespace with a temporary storage dir; the test pushes one of the project's own
images into it under a name that exists nowhere else (registry v2 upload API: blobs, then
the manifest), then a pod with `imagePullPolicy: Always` of that name runs, and a pod of a
name the registry lacks fails with ErrImagePull / ImagePullBackOff.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tarfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import Kubectl
from pyk8s.cluster.localcluster import LocalServer, free_port
from pyk8s.kubelet.images import build_images, BUSYBOX_IMAGE

REGISTRY_BINARY = shutil.which("docker-registry")
MIRRORED_IMAGE = "docker.io/pyk8s/mirrored:1"
MISSING_IMAGE = "docker.io/pyk8s/missing-from-mirror:1"
pytestmark = pytest.mark.skipif(REGISTRY_BINARY is None,
                                reason="needs Debian's docker-registry (scripts/install-node-deps.sh)")


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what}: not within {timeout}s"
        time.sleep(0.2)


def _registry_answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/v2/", timeout=1) as reply:
            return reply.status == 200
    except (urllib.error.URLError, OSError):
        return False


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """docker-registry on 127.0.0.1:<free port>, storage in a temp dir; stopped at the end."""
    work = tmp_path_factory.mktemp("registry")
    port = free_port()
    config = work / "config.yml"
    config.write_text(f"""version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: {work / 'storage'}
http:
  addr: 127.0.0.1:{port}
""")
    log = open(work / "registry.log", "ab")
    process = subprocess.Popen([REGISTRY_BINARY, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL)
    log.close()
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for(lambda: process.poll() is not None or _registry_answers(url), 15, "registry listening")
        assert process.poll() is None, (work / "registry.log").read_text()
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def push_oci_archive(registry_url: str, archive: Path, repository: str, tag: str) -> None:
    """Upload an OCI image-layout tarball's single image: every blob (monolithic POST+PUT
    upload), then its manifest under `tag`."""
    with tarfile.open(archive) as tar:
        def blob(digest: str) -> bytes:
            return tar.extractfile(f"blobs/sha256/{digest.split(':', 1)[1]}").read()

        index = json.loads(tar.extractfile("index.json").read())
        descriptor = index["manifests"][0]
        manifest_bytes = blob(descriptor["digest"])
        manifest = json.loads(manifest_bytes)
        for entry in [manifest["config"], *manifest["layers"]]:
            data = blob(entry["digest"])
            assert "sha256:" + hashlib.sha256(data).hexdigest() == entry["digest"]
            start = urllib.request.Request(f"{registry_url}/v2/{repository}/blobs/uploads/", method="POST", data=b"")
            with urllib.request.urlopen(start, timeout=10) as reply:
                assert reply.status == 202
                location = reply.headers["Location"]
            if location.startswith("/"):
                location = registry_url + location
            separator = "&" if "?" in location else "?"
            finish = urllib.request.Request(f"{location}{separator}digest={entry['digest']}", method="PUT", data=data,
                                            headers={"Content-Type": "application/octet-stream"})
            with urllib.request.urlopen(finish, timeout=30) as reply:
                assert reply.status == 201
    put_manifest = urllib.request.Request(f"{registry_url}/v2/{repository}/manifests/{tag}", method="PUT",
                                          data=manifest_bytes, headers={"Content-Type": manifest["mediaType"]})
    with urllib.request.urlopen(put_manifest, timeout=10) as reply:
        assert reply.status == 201


@pytest.fixture(scope="module")
def mirrored_cluster(registry, tmp_path_factory):
    work = tmp_path_factory.mktemp("mirror-cluster")
    archive = build_images(work / "images")[BUSYBOX_IMAGE]
    push_oci_archive(registry, archive, "pyk8s/mirrored", "1")
    local = LocalServer(work / "server", extra_args=["--registry-mirror", f"docker.io={registry}"])
    local.start(timeout=120)
    try:
        yield local, Kubectl(local, work / "kube-cache")
    finally:
        Kubectl(local, work / "kube-cache").run("delete", "pods", "--all", "--wait=false", check=False)
        local.stop(timeout=60, remove_pods=True)


def _pod(kubectl: Kubectl, name: str) -> dict:
    return json.loads(kubectl("get", "pod", name, "-o", "json"))


def _waiting(kubectl: Kubectl, name: str) -> dict:
    statuses = _pod(kubectl, name)["status"].get("containerStatuses") or [{}]
    return statuses[0].get("state", {}).get("waiting") or {}


def test_pod_runs_an_image_that_exists_only_in_the_mirror(mirrored_cluster):
    _, kubectl = mirrored_cluster
    kubectl("run", "from-mirror", f"--image={MIRRORED_IMAGE}", "--image-pull-policy=Always", "--",
            "sleep", "3600")
    _wait_for(lambda: _pod(kubectl, "from-mirror")["status"].get("phase") == "Running", 60, "pod Running")
    status = _pod(kubectl, "from-mirror")["status"]["containerStatuses"][0]
    assert status["image"] == MIRRORED_IMAGE
    assert status["imageID"].startswith("docker.io/pyk8s/mirrored@sha256:")


def test_image_missing_from_the_mirror_fails_with_image_pull_errors(mirrored_cluster):
    _, kubectl = mirrored_cluster
    kubectl("run", "not-in-mirror", f"--image={MISSING_IMAGE}", "--image-pull-policy=Always")
    waiting = _wait_for(lambda: _waiting(kubectl, "not-in-mirror") if _waiting(kubectl, "not-in-mirror").get("reason")
                        in ("ErrImagePull", "ImagePullBackOff") else None, 60, "image pull error")
    if waiting["reason"] == "ErrImagePull":
        # upstream's waiting message is the CRI error as gRPC prints it
        assert waiting["message"].startswith("rpc error: code = ") and MISSING_IMAGE in waiting["message"]
    else:
        assert waiting["message"] == f'Back-off pulling image "{MISSING_IMAGE}"'
