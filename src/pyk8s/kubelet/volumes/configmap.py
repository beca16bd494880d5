"""The configMap volume: one file per key of a ConfigMap (or the `items` picked), on the
node's disk as upstream (ConfigMaps are not secret)."""

from __future__ import annotations

import base64
from typing import Any

from pyk8s.kubelet.volumes.atomic_writer import FileProjection
from pyk8s.kubelet.volumes.base import (ProjectedFilesPlugin, VolumeContext, get_referenced_object, key_payload,
                                        mode_of)


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

    return key_payload(list(data) + list(binary), value, items, default_mode, optional,
                       "configmap references non-existent config key")


async def get_config_map(context: VolumeContext, namespace: str, name: str, optional: bool) -> dict[str, Any]:
    return await get_referenced_object(context, "configmaps", "configmap", namespace, name, optional)


async def config_map_source_payload(context: VolumeContext, namespace: str, name: str, source: dict[str, Any],
                                    default_mode: int | None = None) -> dict[str, FileProjection]:
    """The files of a configMap volume or projected source naming ConfigMap `name`; the
    volume's own defaultMode unless `default_mode` (a projected volume's) is given."""
    optional = bool(source.get("optional"))
    config_map = await get_config_map(context, namespace, name, optional)
    if default_mode is None:
        default_mode = mode_of(source.get("defaultMode"))
    return config_map_payload(config_map, source.get("items"), default_mode, optional)


class ConfigMapPlugin(ProjectedFilesPlugin):
    plugin_name = "kubernetes.io/configmap"
    source_field = "configMap"

    def references(self, volume: dict[str, Any]) -> set[tuple[str, str]]:
        return {("configmaps", volume["configMap"]["name"])}

    async def payload(self, context, pod, volume):
        source = volume["configMap"]
        return await config_map_source_payload(context, pod["metadata"]["namespace"], source["name"], source)
