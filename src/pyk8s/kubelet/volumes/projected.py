"""The projected volume: several sources merged into one directory (later sources win a
path), on tmpfs. Each source kind is a function in SOURCES, so the serviceAccountToken
source (the identity issue) slots in with `SOURCES["serviceAccountToken"] = its_function`:
an async function (context, pod, source, default_mode) -> payload, which may call the API
through `context.client` (TokenRequest) and is re-run on every refresh."""

from __future__ import annotations

from typing import Any, Awaitable, Callable

from pyk8s.kubelet.volumes.atomic_writer import FileProjection
from pyk8s.kubelet.volumes.base import MountError, ProjectedFilesPlugin, VolumeContext, mode_of
from pyk8s.kubelet.volumes.configmap import config_map_source_payload
from pyk8s.kubelet.volumes.downwardapi import downward_payload
from pyk8s.kubelet.volumes.secret import secret_source_payload
from pyk8s.kubelet.volumes.serviceaccounttoken import service_account_token_source

Payload = dict[str, FileProjection]
SourceFunction = Callable[[VolumeContext, dict[str, Any], dict[str, Any], int], Awaitable[Payload]]


async def _config_map_source(context, pod, source, default_mode) -> Payload:
    return await config_map_source_payload(context, pod["metadata"]["namespace"], source["name"], source,
                                           default_mode)


async def _secret_source(context, pod, source, default_mode) -> Payload:
    return await secret_source_payload(context, pod["metadata"]["namespace"], source["name"], source, default_mode)


async def _downward_api_source(context, pod, source, default_mode) -> Payload:
    return downward_payload(pod, source.get("items") or [], default_mode, context.node_allocatable())


SOURCES: dict[str, SourceFunction] = {
    "configMap": _config_map_source,
    "secret": _secret_source,
    "downwardAPI": _downward_api_source,
    "serviceAccountToken": service_account_token_source,
}
# The API objects each source kind depends on, for live updates.
REFERENCES: dict[str, Callable[[dict[str, Any]], set[tuple[str, str]]]] = {
    "configMap": lambda source: {("configmaps", source["name"])},
    "secret": lambda source: {("secrets", source["name"])},
}


class ProjectedPlugin(ProjectedFilesPlugin):
    plugin_name = "kubernetes.io/projected"
    source_field = "projected"
    tmpfs = True

    def references(self, volume: dict[str, Any]) -> set[tuple[str, str]]:
        found: set[tuple[str, str]] = set()
        for source in volume["projected"].get("sources") or []:
            for kind, referenced in REFERENCES.items():
                if source.get(kind):
                    found |= referenced(source[kind])
        return found

    async def payload(self, context, pod, volume):
        projected = volume["projected"]
        default_mode = mode_of(projected.get("defaultMode"))
        payload: Payload = {}
        failures: list[str] = []
        for source in projected.get("sources") or []:
            for kind, function in SOURCES.items():
                if source.get(kind) is None:
                    continue
                try:
                    payload.update(await function(context, pod, source[kind], default_mode))
                except MountError as error:
                    failures.append(str(error))
        if failures:
            # upstream's utilerrors.NewAggregate: one error as is, several in brackets
            raise MountError(failures[0] if len(failures) == 1 else "[" + ", ".join(failures) + "]")
        return payload
