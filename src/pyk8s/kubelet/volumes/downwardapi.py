"""The downwardAPI volume: files rendered from the pod's own metadata and its containers'
resources. The pod worker sets the volume up on every sync, so a relabelled or re-annotated
pod sees its `labels` / `annotations` files change (upstream refreshes them the same way).
Kept on tmpfs as upstream does (a memory emptyDir underneath)."""

from __future__ import annotations

import math
import os
import re
from fractions import Fraction
from typing import Any

from pyk8s.api.quantity import parse_quantity
from pyk8s.kubelet.volumes.atomic_writer import FileProjection
from pyk8s.kubelet.volumes.base import MountError, ProjectedFilesPlugin, mode_of

_SUBSCRIPT = re.compile(r"^metadata\.(labels|annotations)\['(.*)'\]$")


def go_quote(text: str) -> str:
    """Go's strconv.Quote (the %q of upstream's FormatMap)."""
    escapes = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v",
               "\\": "\\\\", '"': '\\"'}
    out = []
    for char in text:
        if char in escapes:
            out.append(escapes[char])
        elif char.isprintable():
            out.append(char)
        elif ord(char) < 0x80:
            out.append(f"\\x{ord(char):02x}")
        elif ord(char) < 0x10000:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    return '"' + "".join(out) + '"'


def format_map(values: dict[str, str]) -> str:
    """Upstream's fieldpath.FormatMap: `key="value"` lines in key order, no final newline."""
    return "\n".join(f"{key}={go_quote(str(values[key]))}" for key in sorted(values))


def field_value(pod: dict[str, Any], field_path: str) -> str:
    """Upstream's fieldpath.ExtractFieldPathAsString, which volumes use (metadata only)."""
    meta = pod["metadata"]
    match = _SUBSCRIPT.match(field_path)
    if match:
        return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
    if field_path in ("metadata.labels", "metadata.annotations"):
        return format_map(meta.get(field_path.split(".")[1]) or {})
    if field_path in ("metadata.name", "metadata.namespace", "metadata.uid"):
        return str(meta.get(field_path.split(".")[1], ""))
    raise MountError(f"unsupported fieldPath: {field_path}")


def node_allocatable() -> dict[str, int]:
    """This node's CPU count and memory, what a container without a limit may use."""
    memory = 0
    try:
        with open("/proc/meminfo") as info:
            for line in info:
                if line.startswith("MemTotal:"):
                    memory = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    return {"cpu": os.cpu_count() or 1, "memory": memory, "ephemeral-storage": 0}


def resource_value(pod: dict[str, Any], reference: dict[str, Any], allocatable: dict[str, int]) -> str:
    """Upstream's ExtractResourceValueByContainerNameAndNodeAllocatable: the container's
    limit (the node's allocatable when it has none) or request, divided by `divisor` and
    rounded up."""
    name = reference.get("containerName", "")
    containers = (pod["spec"].get("containers") or []) + (pod["spec"].get("initContainers") or [])
    container = next((c for c in containers if c["name"] == name), None)
    if container is None:
        raise MountError(f"container {name} not found")
    kind, _, resource = reference["resource"].partition(".")
    resources = container.get("resources") or {}
    quantity = (resources.get(kind) or {}).get(resource)
    if quantity is not None:
        amount = parse_quantity(quantity)
    elif kind == "limits":
        amount = Fraction(allocatable.get(resource, 0))
    else:
        amount = Fraction(0)
    divisor = parse_quantity(reference.get("divisor") or "1")
    if divisor == 0:
        divisor = Fraction(1)
    if resource == "cpu":
        # Upstream divides milli-values: ceil(milli(cpu) / milli(divisor)).
        return str(math.ceil(math.ceil(amount * 1000) / math.ceil(divisor * 1000)))
    return str(math.ceil(amount / divisor))


def downward_payload(pod: dict[str, Any], items: list[dict[str, Any]], default_mode: int,
                     allocatable: dict[str, int]) -> dict[str, FileProjection]:
    """Upstream's downwardapi.CollectData."""
    payload: dict[str, FileProjection] = {}
    failures = []
    for item in items or []:
        mode = mode_of(item.get("mode"), default_mode)
        data = b""
        try:
            if item.get("fieldRef"):
                data = field_value(pod, item["fieldRef"]["fieldPath"]).encode()
            elif item.get("resourceFieldRef"):
                data = resource_value(pod, item["resourceFieldRef"], allocatable).encode()
        except MountError as error:
            failures.append(str(error))
        payload[os.path.normpath(item["path"])] = FileProjection(data, mode)
    if failures:
        raise MountError(failures[0] if len(failures) == 1 else "[" + ", ".join(failures) + "]")
    return payload


class DownwardAPIPlugin(ProjectedFilesPlugin):
    plugin_name = "kubernetes.io/downward-api"
    source_field = "downwardAPI"
    tmpfs = True

    async def payload(self, context, pod, volume):
        source = volume["downwardAPI"]
        return downward_payload(pod, source.get("items") or [], mode_of(source.get("defaultMode")),
                                context.node_allocatable())
