"""A container's environment, as upstream's kubelet makes it (makeEnvironmentVariables).

Pure: the caller reads the ConfigMaps and Secrets a container refers to (`referenced_objects`
says which) and passes their data in, with the service variables and the node's and pod's
addresses; `make_environment` returns the variables in a stable order, or raises
`EnvConfigError` with upstream's message, which the pod worker shows as the container's
`CreateContainerConfigError`.

Upstream's order of evaluation, which is what decides precedence:
1. `envFrom`, in order: every key of each ConfigMap / Secret (with its `prefix`); a later
   source overwrites an earlier one;
2. `env`, in order: a `value` has its `$(VAR)` references expanded against everything so
   far (envFrom, earlier env entries) and then the service variables; a `valueFrom` is
   resolved as it is (never expanded); an explicit entry overwrites an envFrom key, a
   later entry an earlier one;
3. the service variables not set by 1–2.
`command` and `args` are then expanded against that final environment.
"""

from __future__ import annotations

import base64
import math
import os
import re
import shutil
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable

from pyk8s.api.quantity import parse_quantity

CONFIG_MAP, SECRET = "configmaps", "secrets"

# ObjectData: (kind, name) -> the object's data as text (Secrets' base64 decoded), or None
# when the object does not exist.
ObjectData = dict[tuple[str, str], "dict[str, str] | None"]


class EnvConfigError(Exception):
    """A reference that cannot be resolved; str() is upstream's message."""


# ---- $(VAR) expansion (upstream's third_party/forked/golang/expansion) ---------------------

def expand(text: str, *mappings: dict[str, str]) -> str:
    """`$(NAME)` becomes the first mapping's value of NAME, or stays `$(NAME)` when no mapping
    has it; `$$` is an escaped `$`; a `$` followed by anything else (or a `$(` that is never
    closed) stays as written."""
    if "$" not in text:
        return text
    out: list[str] = []
    checkpoint = 0
    cursor = 0
    length = len(text)
    while cursor < length:
        if text[cursor] == "$" and cursor + 1 < length:
            out.append(text[checkpoint:cursor])
            following = text[cursor + 1]
            advance = 1
            if following == "$":
                out.append("$")
            elif following == "(":
                closing = text.find(")", cursor + 2)
                if closing < 0:
                    out.append("$(")
                else:
                    name = text[cursor + 2:closing]
                    out.append(_lookup(name, mappings))
                    advance = closing - cursor
            else:
                out.append("$" + following)
            cursor += advance
            checkpoint = cursor + 1
        cursor += 1
    out.append(text[checkpoint:])
    return "".join(out)


def _lookup(name: str, mappings: tuple[dict[str, str], ...]) -> str:
    for mapping in mappings:
        if name in mapping:
            return mapping[name]
    return f"$({name})"


def expand_command(container: dict[str, Any], env: list[tuple[str, str]]) -> tuple[list[str], list[str]]:
    """The container's command and args with `$(VAR)` references expanded (upstream's
    ExpandContainerCommandAndArgs)."""
    mapping = dict(env)
    return ([expand(part, mapping) for part in container.get("command") or []],
            [expand(part, mapping) for part in container.get("args") or []])


# ---- what a container refers to ---------------------------------------------------------

def referenced_objects(container: dict[str, Any]) -> list[tuple[str, str]]:
    """The (kind, name) of every ConfigMap and Secret the container's env and envFrom read,
    in first-use order."""
    seen: dict[tuple[str, str], None] = {}
    for source in container.get("envFrom") or []:
        if (source.get("configMapRef") or {}).get("name") is not None:
            seen[(CONFIG_MAP, source["configMapRef"]["name"])] = None
        if (source.get("secretRef") or {}).get("name") is not None:
            seen[(SECRET, source["secretRef"]["name"])] = None
    for item in container.get("env") or []:
        value_from = item.get("valueFrom") or {}
        if item.get("value") or not value_from:
            continue
        if value_from.get("configMapKeyRef"):
            seen[(CONFIG_MAP, value_from["configMapKeyRef"].get("name", ""))] = None
        elif value_from.get("secretKeyRef"):
            seen[(SECRET, value_from["secretKeyRef"].get("name", ""))] = None
    return list(seen)


def object_data(kind: str, obj: dict[str, Any]) -> dict[str, str]:
    """A ConfigMap's `data` (binaryData is not environment material) or a Secret's `data`
    decoded from base64, as the text a process sees."""
    if kind == SECRET:
        return {key: base64.b64decode(value).decode("utf-8", errors="replace")
                for key, value in (obj.get("data") or {}).items()}
    return dict(obj.get("data") or {})


# ---- the environment ---------------------------------------------------------------------

def is_env_var_name(name: str) -> bool:
    """Upstream's relaxed rule (RelaxedEnvironmentVariableValidation, GA since 1.34): any
    printable ASCII but `=`, not empty. Older kubelets also refused names like `1abc` or
    `a-b`; today's pass those keys on, as this kubelet does."""
    return bool(name) and all(" " <= ch <= "~" and ch != "=" for ch in name)


def make_environment(pod: dict[str, Any], container: dict[str, Any], *, objects: ObjectData,
                     service_env: dict[str, str], pod_ips: list[str], host_ips: list[str],
                     node_allocatable: dict[str, str] | None = None,
                     warn: Callable[[str, str], None] | None = None) -> list[tuple[str, str]]:
    """The environment in upstream's precedence (module docstring). `warn(reason, message)`
    receives the InvalidEnvironmentVariableNames events of envFrom keys that cannot be
    variable names. Raises EnvConfigError."""
    namespace = pod["metadata"].get("namespace", "default")
    values: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix") or ""
        for field, kind, label in (("configMapRef", CONFIG_MAP, "configMap"), ("secretRef", SECRET, "secret")):
            ref = source.get(field)
            if not ref:
                continue
            name = ref.get("name", "")
            data = objects.get((kind, name))
            if data is None:
                if ref.get("optional"):
                    continue
                raise EnvConfigError(_not_found(kind, name))
            invalid = []
            for key, value in data.items():
                key = prefix + key
                if not is_env_var_name(key):
                    invalid.append(key)
                    continue
                values.pop(key, None)  # a redefined variable moves to its latest place
                values[key] = value
            if invalid and warn is not None:
                warn("InvalidEnvironmentVariableNames",
                     f"Keys [{', '.join(sorted(invalid))}] from the EnvFrom {label} {namespace}/{name} were skipped "
                     f"since they are considered invalid environment variable names.")
    for item in container.get("env") or []:
        name = item["name"]
        value = item.get("value") or ""
        value_from = item.get("valueFrom")
        if value:
            value = expand(value, values, service_env)
        elif value_from:
            resolved = _value_from(pod, container, value_from, objects, namespace, pod_ips, host_ips,
                                   node_allocatable or {})
            if resolved is None:
                continue  # an optional reference that is missing: no variable at all
            value = resolved
        values.pop(name, None)
        values[name] = value
    env = list(values.items())
    env.extend((key, value) for key, value in service_env.items() if key not in values)
    return env


def _not_found(kind: str, name: str) -> str:
    return f'{"configmap" if kind == CONFIG_MAP else "secret"} "{name}" not found'


def _value_from(pod: dict[str, Any], container: dict[str, Any], value_from: dict[str, Any], objects: ObjectData,
                namespace: str, pod_ips: list[str], host_ips: list[str],
                allocatable: dict[str, str]) -> str | None:
    if value_from.get("fieldRef"):
        return field_ref_value(pod, value_from["fieldRef"].get("fieldPath", ""), pod_ips, host_ips)
    if value_from.get("resourceFieldRef"):
        return resource_field_value(pod, container, value_from["resourceFieldRef"], allocatable)
    for field, kind, label in (("configMapKeyRef", CONFIG_MAP, "ConfigMap"), ("secretKeyRef", SECRET, "Secret")):
        ref = value_from.get(field)
        if not ref:
            continue
        name, key = ref.get("name", ""), ref.get("key", "")
        data = objects.get((kind, name))
        if data is None:
            if ref.get("optional"):
                return None
            raise EnvConfigError(_not_found(kind, name))
        if key not in data:
            if ref.get("optional"):
                return None
            raise EnvConfigError(f"couldn't find key {key} in {label} {namespace}/{name}")
        return data[key]
    return ""


_SUBSCRIPTED = re.compile(r"^metadata\.(labels|annotations)\['(.*)'\]$")


def field_ref_value(pod: dict[str, Any], path: str, pod_ips: list[str], host_ips: list[str]) -> str:
    """A downward API field of the pod (upstream's podFieldSelectorRuntimeValue and
    ExtractFieldPathAsString)."""
    meta, spec = pod["metadata"], pod.get("spec") or {}
    match = _SUBSCRIPTED.match(path)
    if match:
        return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
    simple = {"metadata.name": meta.get("name", ""), "metadata.namespace": meta.get("namespace", ""),
              "metadata.uid": meta.get("uid", ""), "spec.nodeName": spec.get("nodeName", ""),
              "spec.serviceAccountName": spec.get("serviceAccountName", ""),
              "status.podIP": pod_ips[0] if pod_ips else "", "status.podIPs": ",".join(pod_ips),
              "status.hostIP": host_ips[0] if host_ips else "", "status.hostIPs": ",".join(host_ips)}
    if path in simple:
        return simple[path]
    if path in ("metadata.labels", "metadata.annotations"):
        return format_map(meta.get(path.split(".")[1]) or {})
    raise EnvConfigError(f"unsupported fieldPath: {path}")


def format_map(values: dict[str, str]) -> str:
    """Upstream's fieldpath.FormatMap: sorted `key="value"` lines (values Go-quoted)."""
    import json
    return "\n".join(f"{key}={json.dumps(values[key], ensure_ascii=False)}" for key in sorted(values))


_DEFAULTED_LIMITS = ("cpu", "memory", "ephemeral-storage")


def resource_field_value(pod: dict[str, Any], container: dict[str, Any], ref: dict[str, Any],
                         allocatable: dict[str, str]) -> str:
    """`limits.X` / `requests.X` of a container divided by `divisor`, rounded up (upstream's
    ExtractContainerResourceValue). A limit that is not set is the node's allocatable
    (upstream's defaultPodLimitsForDownwardAPI)."""
    target = container
    if ref.get("containerName"):
        everyone = (pod.get("spec") or {}).get("containers", []) + (pod.get("spec") or {}).get("initContainers", [])
        target = next((c for c in everyone if c.get("name") == ref["containerName"]), None)
        if target is None:
            raise EnvConfigError(f"container {ref['containerName']} not found")
    resource = ref.get("resource", "")
    kind, _, name = resource.partition(".")
    if kind not in ("limits", "requests") or not (name in _DEFAULTED_LIMITS or name.startswith("hugepages-")):
        raise EnvConfigError(f"unsupported container resource : {resource}")
    resources = target.get("resources") or {}
    quantity = (resources.get(kind) or {}).get(name)
    if kind == "limits" and name in _DEFAULTED_LIMITS and (quantity is None or parse_quantity(quantity) == 0):
        quantity = allocatable.get(name)
    value = parse_quantity(quantity) if quantity is not None else Fraction(0)
    divisor = parse_quantity(ref["divisor"]) if ref.get("divisor") not in (None, "", 0, "0") else Fraction(1)
    if name == "cpu":
        # MilliValue() of both, rounded up, then the quotient rounded up.
        return str(math.ceil(Fraction(math.ceil(value * 1000), max(1, math.ceil(divisor * 1000)))))
    return str(math.ceil(Fraction(math.ceil(value), max(1, math.ceil(divisor)))))


def node_allocatable(data_dir: Path | str = "/") -> dict[str, str]:
    """What this node offers pods (the kubelet reports the same as allocatable): all CPUs,
    all memory, the data dir's disk."""
    memory_kib = 0
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    memory_kib = int(line.split()[1])
                    break
    except OSError:
        pass
    try:
        disk = shutil.disk_usage(data_dir).total
    except OSError:
        disk = 0
    return {"cpu": str(os.cpu_count() or 1), "memory": f"{memory_kib}Ki", "ephemeral-storage": f"{disk // 1024}Ki"}
