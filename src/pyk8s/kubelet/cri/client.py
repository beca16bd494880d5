"""An asyncio CRI client: runtime.v1 RuntimeService and ImageService over gRPC on a unix
socket, with the hand-written messages of `messages.py` and our own HTTP/2 (`pyk8s.grpcclient`).

`await cri.call("RunPodSandbox", {...})` returns the decoded response dict. gRPC errors
surface as `CRIError` with the status code name (NOT_FOUND, UNKNOWN, ...) and message.
"""

from __future__ import annotations

from typing import Any

from pyk8s.kubelet.cri import messages, proto
from pyk8s.grpcclient.http2 import GrpcChannel, GrpcError


class CRIError(Exception):
    def __init__(self, method: str, code: str, details: str):
        super().__init__(f"{method}: {code}: {details}")
        self.method = method
        self.code = code
        self.details = details


class CRIClient:
    def __init__(self, socket_path: str, *, timeout: float = 120.0):
        self.socket_path = socket_path
        self.timeout = timeout
        # ListContainers of a busy node can pass gRPC's 4 MiB default.
        self._channel = GrpcChannel.unix(socket_path, max_message=16 * 1024 * 1024)

    async def call(self, method: str, request: dict[str, Any] | None = None, *,
                   timeout: float | None = None) -> dict[str, Any]:
        service, request_schema, response_schema = messages.METHODS[method]
        try:
            reply = await self._channel.unary(f"/{service}/{method}", proto.encode(request_schema, request or {}),
                                              timeout=timeout or self.timeout)
        except GrpcError as error:
            raise CRIError(method, error.code, error.details) from None
        return proto.decode(response_schema, reply)

    async def close(self) -> None:
        await self._channel.close()

    # Small conveniences for the calls the kubelet makes most.
    async def version(self) -> dict[str, Any]:
        return await self.call("Version", {"version": "v1"}, timeout=5)

    async def list_sandboxes(self, labels: dict[str, str] | None = None) -> list[dict[str, Any]]:
        request = {"filter": {"label_selector": labels}} if labels else {}
        return (await self.call("ListPodSandbox", request)).get("items", [])

    async def list_containers(self, labels: dict[str, str] | None = None, sandbox_id: str = "") -> list[dict[str, Any]]:
        container_filter: dict[str, Any] = {}
        if labels:
            container_filter["label_selector"] = labels
        if sandbox_id:
            container_filter["pod_sandbox_id"] = sandbox_id
        request = {"filter": container_filter} if container_filter else {}
        return (await self.call("ListContainers", request)).get("containers", [])

    async def container_status(self, container_id: str) -> dict[str, Any]:
        return (await self.call("ContainerStatus", {"container_id": container_id})).get("status", {})

    async def sandbox_status(self, sandbox_id: str) -> dict[str, Any]:
        return (await self.call("PodSandboxStatus", {"pod_sandbox_id": sandbox_id})).get("status", {})

    async def image_status(self, image: str) -> dict[str, Any] | None:
        return (await self.call("ImageStatus", {"image": {"image": image}})).get("image")
