"""Liveness, readiness and startup probes (upstream's prober manager, one task per probe).

Each probe runs every `periodSeconds` after `initialDelaySeconds`, with `timeoutSeconds`,
and flips its result only after `failureThreshold` failures or `successThreshold`
successes in a row. Readiness starts False, liveness and startup results start True-ish
(unknown); liveness and readiness do not run until the startup probe succeeded. Handlers:
exec (CRI ExecSync), httpGet (to the pod IP; 200-399 is success), tcpSocket (connect), grpc
(grpc.health.v1.Health/Check answering SERVING). A result change wakes the pod worker.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable

import aiohttp

from pyk8s.kubelet.cri import CRIClient, CRIError
from pyk8s.grpcclient.http2 import GrpcChannel, GrpcError

log = logging.getLogger("pyk8s.kubelet.probes")


def _port(value: Any, container_spec: dict[str, Any]) -> int:
    if isinstance(value, int) or str(value).isdigit():
        return int(value)
    for port in container_spec.get("ports") or []:
        if port.get("name") == value:
            return int(port["containerPort"])
    raise ValueError(f"port {value!r} not found")


class ProbeWorker:
    def __init__(self, prober: "Prober", kind: str, probe: dict[str, Any], container_spec: dict[str, Any],
                 container_id: str, wake: Callable[[], None], pod_ip: Callable[[], str]):
        self.prober, self.kind, self.probe = prober, kind, probe
        self.container_spec, self.container_id = container_spec, container_id
        self.wake, self.pod_ip = wake, pod_ip
        self.result: bool | None = False if kind == "readiness" else None
        self.task: asyncio.Task | None = None

    async def run(self) -> None:
        probe = self.probe
        period = max(1, int(probe.get("periodSeconds", 10)))
        failure_threshold = max(1, int(probe.get("failureThreshold", 3)))
        success_threshold = max(1, int(probe.get("successThreshold", 1)))
        await asyncio.sleep(int(probe.get("initialDelaySeconds", 0)))
        successes = failures = 0
        while True:
            if self.kind != "startup" and not self.prober.started_ok(self.container_id):
                await asyncio.sleep(period)
                continue
            ok = await self.execute()
            if ok:
                successes, failures = successes + 1, 0
                new = True if successes >= success_threshold else self.result
            else:
                failures, successes = failures + 1, 0
                new = False if failures >= failure_threshold else self.result
            if new != self.result:
                self.result = new
                self.wake()
                if self.kind == "startup" and new:
                    pass  # keeps running: upstream stops startup probes after success
            if self.kind == "startup" and self.result:
                return
            await asyncio.sleep(period)

    async def execute(self) -> bool:
        probe = self.probe
        timeout = max(1, int(probe.get("timeoutSeconds", 1)))
        try:
            if probe.get("exec"):
                reply = await self.prober.cri.call(
                    "ExecSync", {"container_id": self.container_id, "cmd": probe["exec"].get("command") or [],
                                 "timeout": timeout}, timeout=timeout + 5)
                return reply.get("exit_code", 0) == 0
            if probe.get("httpGet"):
                action = probe["httpGet"]
                host = action.get("host") or self.pod_ip() or "127.0.0.1"
                scheme = action.get("scheme", "HTTP").lower()
                url = f"{scheme}://{host}:{_port(action['port'], self.container_spec)}{action.get('path', '/')}"
                headers = {h["name"]: h["value"] for h in action.get("httpHeaders") or []}
                headers.setdefault("User-Agent", "kube-probe/1.36")
                async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
                    async with session.get(url, headers=headers, ssl=False, allow_redirects=True) as reply:
                        return 200 <= reply.status < 400
            if probe.get("tcpSocket"):
                action = probe["tcpSocket"]
                host = action.get("host") or self.pod_ip() or "127.0.0.1"
                _, writer = await asyncio.wait_for(
                    asyncio.open_connection(host, _port(action["port"], self.container_spec)), timeout)
                writer.close()
                return True
            if probe.get("grpc"):
                return await self._grpc(probe["grpc"], timeout)
        except (CRIError, OSError, asyncio.TimeoutError, aiohttp.ClientError, ValueError) as error:
            log.debug("%s probe of %s failed: %s", self.kind, self.container_id[:12], error)
            return False
        return False

    async def _grpc(self, action: dict[str, Any], timeout: int) -> bool:
        service = action.get("service") or ""
        request = (b"\x0a" + bytes([len(service)]) + service.encode()) if service else b""
        channel = GrpcChannel.tcp(self.pod_ip() or "127.0.0.1", int(action["port"]))
        try:
            reply = await channel.unary("/grpc.health.v1.Health/Check", request, timeout=timeout)
        except GrpcError:
            return False
        finally:
            await channel.close()
        return reply == b"\x08\x01"  # status = SERVING


class Prober:
    def __init__(self, cri: CRIClient):
        self.cri = cri
        self.workers: dict[str, dict[str, ProbeWorker]] = {}  # container id -> kind -> worker
        self.pod_of: dict[str, str] = {}
        self.names: dict[tuple[str, str], str] = {}  # (pod uid, container name) -> container id

    def add_container(self, uid: str, pod: dict[str, Any], container_spec: dict[str, Any], container_id: str,
                      wake: Callable[[], None], pod_ip: Callable[[], str]) -> None:
        if container_id in self.workers:
            return
        workers = {}
        for kind in ("startup", "liveness", "readiness"):
            probe = container_spec.get(f"{kind}Probe")
            if probe:
                worker = ProbeWorker(self, kind, probe, container_spec, container_id, wake, pod_ip)
                worker.task = asyncio.create_task(worker.run(), name=f"{kind}-probe-{container_id[:8]}")
                workers[kind] = worker
        self.workers[container_id] = workers
        self.pod_of[container_id] = uid
        self.names[(uid, container_spec["name"])] = container_id

    def ensure(self, uid: str, pod: dict[str, Any], container_spec: dict[str, Any], container_id: str,
               wake: Callable[[], None], pod_ip: Callable[[], str]) -> None:
        """Adopted containers (after an agent restart) get their probes back."""
        self.add_container(uid, pod, container_spec, container_id, wake, pod_ip)

    def started_ok(self, container_id: str) -> bool:
        worker = self.workers.get(container_id, {}).get("startup")
        return worker is None or worker.result is True

    def started(self, container_id: str) -> bool | None:
        if container_id not in self.workers:
            return None
        return self.started_ok(container_id)

    def readiness(self, container_id: str) -> bool | None:
        workers = self.workers.get(container_id)
        if workers is None:
            return None
        worker = workers.get("readiness")
        if worker is None:
            return self.started_ok(container_id)
        return bool(worker.result) and self.started_ok(container_id)

    def liveness_failed(self, uid: str, name: str, container_id: str) -> bool:
        workers = self.workers.get(container_id, {})
        liveness, startup = workers.get("liveness"), workers.get("startup")
        return (liveness is not None and liveness.result is False) or (startup is not None and startup.result is False)

    def forget_container(self, container_id: str) -> None:
        for worker in self.workers.pop(container_id, {}).values():
            if worker.task:
                worker.task.cancel()
        self.pod_of.pop(container_id, None)

    def forget_pod(self, uid: str) -> None:
        for container_id in [cid for cid, pod_uid in self.pod_of.items() if pod_uid == uid]:
            self.forget_container(container_id)

    def stop(self) -> None:
        for container_id in list(self.workers):
            self.forget_container(container_id)
