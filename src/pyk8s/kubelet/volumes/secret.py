"""The secret volume: one file per key of a Secret (or the `items` picked), values decoded
byte for byte, on a tmpfs of its own so they never reach the node's disk."""

from __future__ import annotations

import base64
from typing import Any

from pyk8s.kubelet.volumes.atomic_writer import FileProjection
from pyk8s.kubelet.volumes.base import MountError, ProjectedFilesPlugin, VolumeContext, mode_of


def secret_payload(secret: dict[str, Any], items: list[dict[str, Any]] | None, default_mode: int,
                   optional: bool) -> dict[str, FileProjection]:
    """Upstream's secret.MakePayload."""
    data = {key: base64.b64decode(value) for key, value in (secret.get("data") or {}).items()}
    if not items:
        return {key: FileProjection(value, default_mode) for key, value in data.items()}
    payload: dict[str, FileProjection] = {}
    for item in items:
        if item["key"] not in data:
            if optional:
                continue
            raise MountError(f"references non-existent secret key: {item['key']}")
        payload[item["path"]] = FileProjection(data[item["key"]], mode_of(item.get("mode"), default_mode))
    return payload


async def get_secret(context: VolumeContext, namespace: str, name: str, optional: bool) -> dict[str, Any]:
    secret = await context.get_object("secrets", namespace, name)
    if secret is None:
        if not optional:
            raise MountError(f'secret "{name}" not found')
        secret = {}
    return secret


class SecretPlugin(ProjectedFilesPlugin):
    plugin_name = "kubernetes.io/secret"
    source_field = "secret"
    tmpfs = True

    def references(self, volume: dict[str, Any]) -> set[tuple[str, str]]:
        return {("secrets", volume["secret"]["secretName"])}

    async def payload(self, context, pod, volume):
        source = volume["secret"]
        optional = bool(source.get("optional"))
        secret = await get_secret(context, pod["metadata"]["namespace"], source["secretName"], optional)
        return secret_payload(secret, source.get("items"), mode_of(source.get("defaultMode")), optional)
