"""The project's own images on a real node: `pyk8s/whoami:1` (busybox httpd on port 80)
answers with the hostname of the pod that serves it, i.e. its pod name, to another pod."""

from __future__ import annotations

import json

from conftest import Kubectl, eventually


def _pod(kubectl: Kubectl, name: str) -> dict:
    return json.loads(kubectl("get", "pod", name, "-o", "json"))


def test_whoami_image_answers_another_pod_with_its_pod_name(cluster, tmp_path):
    kubectl = Kubectl(cluster, tmp_path / "cache")
    kubectl("run", "whoami-web", "--image=pyk8s/whoami:1", "--image-pull-policy=IfNotPresent")
    try:
        eventually(lambda: _pod(kubectl, "whoami-web")["status"].get("phase") == "Running"
                   and _pod(kubectl, "whoami-web")["status"].get("podIP"), 60, what="whoami-web running", interval=0.2)
        pod_ip = _pod(kubectl, "whoami-web")["status"]["podIP"]
        # httpd may need a moment after the container started: retry inside the client pod.
        kubectl("run", "whoami-client", "--image=pyk8s/busybox:1.35", "--restart=Never", "--",
                "sh", "-c", f"for i in $(seq 50); do wget -qO- http://{pod_ip}:80/ && exit 0; sleep 0.1; done; exit 1")
        eventually(lambda: _pod(kubectl, "whoami-client")["status"].get("phase") in ("Succeeded", "Failed"), 60,
                   what="whoami-client finished", interval=0.2)
        assert _pod(kubectl, "whoami-client")["status"]["phase"] == "Succeeded"
        assert kubectl("logs", "whoami-client").strip() == "You've hit whoami-web"
    finally:
        kubectl("delete", "pod", "whoami-web", "whoami-client", "--ignore-not-found", "--wait=false")
