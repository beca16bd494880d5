"""The secret volume: one file per key of a Secret (or the `items` picked), values decoded
byte for byte, on a tmpfs of its own so they never reach the node's disk."""

from __future__ import annotations

import base64
from typing import Any

from pyk8s.kubelet.volumes.atomic_writer import FileProjection
from pyk8s.kubelet.volumes.base import (ProjectedFilesPlugin, VolumeContext, get_referenced_object, key_payload,
                                        mode_of)


def secret_payload(secret: dict[str, Any], items: list[dict[str, Any]] | None, default_mode: int,
                   optional: bool) -> dict[str, FileProjection]:
    """Upstream's secret.MakePayload."""
    data = {key: base64.b64decode(value) for key, value in (secret.get("data") or {}).items()}
    return key_payload(data, data.get, items, default_mode, optional, "references non-existent secret key")


async def get_secret(context: VolumeContext, namespace: str, name: str, optional: bool) -> dict[str, Any]:
    return await get_referenced_object(context, "secrets", "secret", namespace, name, optional)


async def secret_source_payload(context: VolumeContext, namespace: str, name: str, source: dict[str, Any],
                                default_mode: int | None = None) -> dict[str, FileProjection]:
    """The files of a secret volume or projected source naming Secret `name`; the volume's
    own defaultMode unless `default_mode` (a projected volume's) is given."""
    optional = bool(source.get("optional"))
    secret = await get_secret(context, namespace, name, optional)
    if default_mode is None:
        default_mode = mode_of(source.get("defaultMode"))
    return secret_payload(secret, source.get("items"), default_mode, optional)


class SecretPlugin(ProjectedFilesPlugin):
    plugin_name = "kubernetes.io/secret"
    source_field = "secret"
    tmpfs = True

    def references(self, volume: dict[str, Any]) -> set[tuple[str, str]]:
        return {("secrets", volume["secret"]["secretName"])}

    async def payload(self, context, pod, volume):
        source = volume["secret"]
        return await secret_source_payload(context, pod["metadata"]["namespace"], source["secretName"], source)
