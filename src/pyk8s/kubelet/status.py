"""Pod status: computed from what the runtime reports, written through `pods/status`.

`generate_status()` follows upstream's kubelet (generateAPIPodStatus / getPhase): per
container the newest runtime container gives the state and the one before it the
lastState; waiting reasons the sync loop recorded (ContainerCreating, ErrImagePull,
ImagePullBackOff, CrashLoopBackOff, ...) fill containers that are not running; phase and the
pod conditions (PodScheduled, PodReadyToStartContainers, Initialized, ContainersReady,
Ready) keep their lastTransitionTime while their status does not change.

`StatusWriter` is the status manager: it writes only when the status differs from what the
API has, retrying on conflicts against a fresh read.
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import logging
from typing import Any

from pyk8s.api import errors
from pyk8s.api.resources import lookup
from pyk8s.kubelet.cri.messages import CONTAINER_CREATED, CONTAINER_EXITED, CONTAINER_RUNNING

log = logging.getLogger("pyk8s.kubelet.status")
PODS = lookup("", "v1", "pods")


def rfc3339_from_ns(nanoseconds: int) -> str | None:
    if not nanoseconds:
        return None
    return datetime.datetime.fromtimestamp(nanoseconds / 1e9, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def qos_class(pod: dict[str, Any]) -> str:
    """Guaranteed / Burstable / BestEffort as upstream's GetPodQOS computes it."""
    containers = list(pod["spec"].get("containers") or []) + list(pod["spec"].get("initContainers") or [])
    any_set = False
    guaranteed = True
    for container in containers:
        resources = container.get("resources") or {}
        requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
        if requests or limits:
            any_set = True
        for name in ("cpu", "memory"):
            limit = limits.get(name)
            if limit is None or str(requests.get(name, limit)) != str(limit):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def container_state(runtime: dict[str, Any] | None) -> dict[str, Any]:
    if runtime is None:
        return {}
    state = runtime.get("state", CONTAINER_CREATED)
    container_id = "containerd://" + runtime["id"]
    if state == CONTAINER_RUNNING:
        return {"running": {"startedAt": rfc3339_from_ns(runtime.get("started_at", 0))}}
    if state == CONTAINER_EXITED:
        terminated = {"exitCode": runtime.get("exit_code", 0), "reason": runtime.get("reason") or
                      ("Completed" if not runtime.get("exit_code") else "Error"),
                      "startedAt": rfc3339_from_ns(runtime.get("started_at", 0)),
                      "finishedAt": rfc3339_from_ns(runtime.get("finished_at", 0)), "containerID": container_id}
        if runtime.get("termination_message"):
            terminated["message"] = runtime["termination_message"]
        if runtime.get("signal"):
            terminated["signal"] = runtime["signal"]
        return {"terminated": {k: v for k, v in terminated.items() if v is not None}}
    return {"waiting": {"reason": "ContainerCreating"}}


def container_status(spec: dict[str, Any], history: list[dict[str, Any]], waiting: dict[str, str] | None,
                     *, ready: bool, started: bool | None, image_names: dict[str, str]) -> dict[str, Any]:
    """`history` is this container's runtime containers, newest first (with ContainerStatus
    fields merged in)."""
    latest = history[0] if history else None
    previous = history[1] if len(history) > 1 else None
    status: dict[str, Any] = {"name": spec["name"], "image": spec.get("image", ""), "imageID": "",
                              "ready": False, "restartCount": 0, "started": False}
    if latest is not None:
        status["restartCount"] = int((latest.get("annotations") or {}).get("io.kubernetes.container.restartCount", "0"))
        status["containerID"] = "containerd://" + latest["id"]
        image_ref = latest.get("image_ref", "")
        status["imageID"] = image_names.get(image_ref, image_ref)
        state = container_state(latest)
    else:
        state = {}
    if waiting and (latest is None or latest.get("state") != CONTAINER_RUNNING):
        state = {"waiting": {k: v for k, v in waiting.items() if v}}
    if not state:
        state = {"waiting": {"reason": "ContainerCreating"}}
    status["state"] = state
    last = previous
    if latest is not None and latest.get("state") == CONTAINER_EXITED and "waiting" in state:
        last = latest  # the waiting state replaces it: it is now the last termination
    status["lastState"] = container_state(last) if last is not None and last.get("state") == CONTAINER_EXITED else {}
    running = "running" in state
    status["started"] = bool(running and (started if started is not None else True))
    status["ready"] = bool(running and ready)
    return status


def _condition(previous: dict[str, dict[str, Any]], kind: str, ok: bool, reason: str = "",
               message: str = "") -> dict[str, Any]:
    status = "True" if ok else "False"
    old = previous.get(kind)
    transition = old.get("lastTransitionTime") if old and old.get("status") == status else now_rfc3339()
    condition = {"type": kind, "status": status, "lastProbeTime": None, "lastTransitionTime": transition}
    if reason:
        condition["reason"] = reason
    if message:
        condition["message"] = message
    return condition


def pod_phase(pod: dict[str, Any], init_statuses: list[dict[str, Any]], statuses: list[dict[str, Any]],
              sandbox_ready: bool) -> str:
    """Upstream's getPhase, for regular and init containers."""
    restart_policy = pod["spec"].get("restartPolicy", "Always")
    for init in init_statuses:
        state = init["state"]
        if "terminated" in state and state["terminated"].get("exitCode", 0) == 0:
            continue
        if "terminated" in state and restart_policy == "Never":
            return "Failed"
        if "waiting" in state and init["lastState"].get("terminated") and restart_policy == "Never":
            return "Failed"
        return "Pending"
    running = waiting = stopped = succeeded = 0
    for status in statuses:
        state = status["state"]
        if "running" in state:
            running += 1
        elif "terminated" in state:
            stopped += 1
            if state["terminated"].get("exitCode", 0) == 0:
                succeeded += 1
        elif "waiting" in state:
            if status["lastState"].get("terminated"):
                stopped += 1
            else:
                waiting += 1
    if waiting:
        return "Pending"
    if running:
        return "Running"
    if stopped and stopped == len(statuses):
        if restart_policy == "Always":
            return "Running"  # restarting: upstream reports Running while it backs off
        if succeeded == stopped:
            return "Succeeded"
        if restart_policy == "Never":
            return "Failed"
        return "Running"
    return "Pending"


def generate_status(pod: dict[str, Any], *, init_statuses: list[dict[str, Any]], statuses: list[dict[str, Any]],
                    sandbox_ready: bool, pod_ip: str, host_ip: str) -> dict[str, Any]:
    old = pod.get("status") or {}
    previous = {c["type"]: c for c in old.get("conditions") or []}
    phase = pod_phase(pod, init_statuses, statuses, sandbox_ready)
    if old.get("phase") in ("Succeeded", "Failed"):
        phase = old["phase"]  # terminal phases never change back (upstream invariant)
    initialized = all("terminated" in s["state"] and s["state"]["terminated"].get("exitCode", 0) == 0
                      for s in init_statuses)
    not_ready = [s["name"] for s in statuses if not s["ready"]]
    containers_ready = not not_ready and phase not in ("Succeeded", "Failed")
    message = f"containers with unready status: [{' '.join(not_ready)}]" if not_ready else ""
    pending_init = [s["name"] for s in init_statuses if not ("terminated" in s["state"]
                                                           and s["state"]["terminated"].get("exitCode", 0) == 0)]
    terminal_reason = "PodCompleted" if phase in ("Succeeded", "Failed") else ""
    conditions = [
        _condition(previous, "PodReadyToStartContainers", sandbox_ready),
        _condition(previous, "Initialized", initialized or phase == "Succeeded",
                   "" if initialized else "ContainersNotInitialized",
                   "" if initialized else f"containers with incomplete status: [{' '.join(pending_init)}]"),
        _condition(previous, "Ready", containers_ready, terminal_reason or ("" if containers_ready else "ContainersNotReady"),
                   "" if containers_ready or terminal_reason else message),
        _condition(previous, "ContainersReady", containers_ready,
                   terminal_reason or ("" if containers_ready else "ContainersNotReady"),
                   "" if containers_ready or terminal_reason else message),
        _condition(previous, "PodScheduled", True),
    ]
    if "PodScheduled" in previous:
        conditions[-1] = previous["PodScheduled"]
    status: dict[str, Any] = {
        "phase": phase,
        "conditions": conditions,
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "startTime": old.get("startTime") or now_rfc3339(),
        "qosClass": old.get("qosClass") or qos_class(pod),
        "containerStatuses": statuses,
    }
    if pod_ip:
        status["podIP"] = pod_ip
        status["podIPs"] = [{"ip": pod_ip}]
    elif old.get("podIP"):
        status["podIP"], status["podIPs"] = old["podIP"], old.get("podIPs") or [{"ip": old["podIP"]}]
    if init_statuses:
        status["initContainerStatuses"] = init_statuses
    if phase in ("Succeeded", "Failed"):
        for field in ("reason", "message"):  # an eviction's reason stays with the ended pod
            if old.get(field):
                status[field] = old[field]
    return status


def _comparable(status: dict[str, Any]) -> dict[str, Any]:
    copied = copy.deepcopy(status)
    for condition in copied.get("conditions") or []:
        condition.pop("lastTransitionTime", None)
        condition.pop("lastProbeTime", None)
    return copied


class StatusWriter:
    """Writes pod status through the status subresource when it changed.

    At most `concurrency` writes are in flight (upstream's status manager writes from one
    goroutine): a burst of pods otherwise opens one API connection per pod, each with its
    TLS buffers, while the API server works through them one at a time anyway."""

    def __init__(self, client, *, concurrency: int = 4):
        self.client = client
        self._in_flight = asyncio.Semaphore(concurrency)

    async def write(self, pod: dict[str, Any], status: dict[str, Any]) -> dict[str, Any] | None:
        if _comparable(pod.get("status") or {}) == _comparable(status):
            return pod
        async with self._in_flight:
            return await self._write(pod, status)

    async def _write(self, pod: dict[str, Any], status: dict[str, Any]) -> dict[str, Any] | None:
        current = pod
        for attempt in range(5):
            body = copy.deepcopy(current)
            body["status"] = status
            try:
                return await self.client.update(PODS, body, subresource="status")
            except errors.Conflict:
                try:
                    current = await self.client.get(PODS, pod["metadata"]["name"], pod["metadata"]["namespace"])
                except errors.NotFound:
                    return None
                if current["metadata"].get("uid") != pod["metadata"].get("uid"):
                    return None
            except errors.NotFound:
                return None
        log.warning("status of %s/%s not written after retries", pod["metadata"]["namespace"], pod["metadata"]["name"])
        return None
