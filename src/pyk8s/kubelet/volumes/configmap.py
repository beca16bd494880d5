"""The configMap volume: one file per key of a ConfigMap (or the `items` picked), on the
node's disk as upstream (ConfigMaps are not secret)."""

from __future__ import annotations

import base64
from typing import Any

from pyk8s.kubelet.volumes.atomic_writer import FileProjection
from pyk8s.kubelet.volumes.base import MountError, ProjectedFilesPlugin, VolumeContext, mode_of


def config_map_payload(config_map: dict[str, Any], items: list[dict[str, Any]] | None, default_mode: int,
                       optional: bool) -> dict[str, FileProjection]:
    """Upstream's configmap.MakePayload: every key (data and binaryData, byte for byte), or
    only `items` (key -> path, per-item mode); a missing item key fails unless optional."""
    data = config_map.get("data") or {}
    binary = config_map.get("binaryData") or {}

    def value(key: str) -> bytes | None:
        if key in data:
            return str(data[key]).encode()
        if key in binary:
            return base64.b64decode(binary[key])
        return None

    payload: dict[str, FileProjection] = {}
    if not items:
        for key in list(data) + list(binary):
            payload[key] = FileProjection(value(key) or b"", default_mode)
        return payload
    for item in items:
        content = value(item["key"])
        if content is None:
            if optional:
                continue
            raise MountError(f"configmap references non-existent config key: {item['key']}")
        payload[item["path"]] = FileProjection(content, mode_of(item.get("mode"), default_mode))
    return payload


async def get_config_map(context: VolumeContext, namespace: str, name: str, optional: bool) -> dict[str, Any]:
    config_map = await context.get_object("configmaps", namespace, name)
    if config_map is None:
        if not optional:
            # The kubelet's object cache names the resource in the singular (upstream).
            raise MountError(f'configmap "{name}" not found')
        config_map = {}
    return config_map


class ConfigMapPlugin(ProjectedFilesPlugin):
    plugin_name = "kubernetes.io/configmap"
    source_field = "configMap"

    def references(self, volume: dict[str, Any]) -> set[tuple[str, str]]:
        return {("configmaps", volume["configMap"]["name"])}

    async def payload(self, context, pod, volume):
        source = volume["configMap"]
        optional = bool(source.get("optional"))
        config_map = await get_config_map(context, pod["metadata"]["namespace"], source["name"], optional)
        return config_map_payload(config_map, source.get("items"), mode_of(source.get("defaultMode")), optional)
