"""What a pod asks of a node and what a node offers, as plain integers (no I/O).

Quantities become integers once, when a pod or node enters the scheduler's cache: CPU in
millicores, everything else (memory, ephemeral-storage, extended resources) in units,
rounded up as upstream's `Quantity.Value()` does. The scheduler then only adds and
compares ints on its hot path.

A pod's request follows upstream's resource helpers: the sum over app containers and
restartable (sidecar) init containers, or the largest single init-container phase if that
is bigger, plus `spec.overhead`. Scoring uses "non-zero" requests: a container that asks
for no CPU or memory counts as 100m / 200Mi so empty pods still spread.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any, Iterable, NamedTuple

from pyk8s.api.quantity import parse_quantity

CPU = "cpu"
MEMORY = "memory"
PODS = "pods"
EPHEMERAL_STORAGE = "ephemeral-storage"

# upstream's schedutil.DefaultMilliCPURequest / DefaultMemoryRequest
DEFAULT_MILLI_CPU_REQUEST = 100
DEFAULT_MEMORY_REQUEST = 200 * 1024 * 1024


@lru_cache(maxsize=4096)
def quantity_units(name: str, text: str) -> int:
    """A quantity as the integer the scheduler compares: millicores for cpu, else units."""
    value = parse_quantity(text)
    return math.ceil(value * 1000) if name == CPU else math.ceil(value)


def resource_list(values: dict[str, Any] | None) -> dict[str, int]:
    if not values:
        return {}
    units = {}
    for name, text in values.items():
        try:
            units[name] = quantity_units(name, str(text) if not isinstance(text, str) else text)
        except (ValueError, ZeroDivisionError):
            continue  # validation rejects bad quantities; never let one stop scheduling
    return units


def container_requests(container: dict[str, Any]) -> dict[str, int]:
    resources = container.get("resources") or {}
    requests = resources.get("requests")
    if requests is None and resources.get("limits"):
        # Defaulting copies limits into missing requests; do the same for objects that
        # reached us without it.
        requests = resources["limits"]
    return resource_list(requests)


def _add(total: dict[str, int], extra: dict[str, int]) -> None:
    for name, value in extra.items():
        total[name] = total.get(name, 0) + value


def _max_into(total: dict[str, int], other: dict[str, int]) -> None:
    for name, value in other.items():
        if value > total.get(name, 0):
            total[name] = value


class PodRequests(NamedTuple):
    resources: dict[str, int]  # effective request per resource name (no "pods" entry)
    non_zero_milli_cpu: int
    non_zero_memory: int


def pod_requests(pod: dict[str, Any]) -> PodRequests:
    spec = pod.get("spec") or {}
    total: dict[str, int] = {}
    non_zero_cpu = 0
    non_zero_memory = 0
    for container in spec.get("containers") or ():
        requests = container_requests(container)
        _add(total, requests)
        non_zero_cpu += requests.get(CPU) or DEFAULT_MILLI_CPU_REQUEST
        non_zero_memory += requests.get(MEMORY) or DEFAULT_MEMORY_REQUEST
    # Init containers run one at a time before the app containers, but sidecars
    # (restartPolicy Always) keep running and add to everything after them.
    sidecars: dict[str, int] = {}
    init_peak: dict[str, int] = {}
    non_zero_sidecar_cpu = non_zero_sidecar_memory = 0
    non_zero_init_cpu = non_zero_init_memory = 0
    for container in spec.get("initContainers") or ():
        requests = container_requests(container)
        cpu = requests.get(CPU) or DEFAULT_MILLI_CPU_REQUEST
        memory = requests.get(MEMORY) or DEFAULT_MEMORY_REQUEST
        if container.get("restartPolicy") == "Always":
            _add(total, requests)
            _add(sidecars, requests)
            non_zero_cpu += cpu
            non_zero_memory += memory
            non_zero_sidecar_cpu += cpu
            non_zero_sidecar_memory += memory
            phase = dict(sidecars)
            phase_cpu, phase_memory = non_zero_sidecar_cpu, non_zero_sidecar_memory
        else:
            phase = dict(sidecars)
            _add(phase, requests)
            phase_cpu, phase_memory = non_zero_sidecar_cpu + cpu, non_zero_sidecar_memory + memory
        _max_into(init_peak, phase)
        non_zero_init_cpu = max(non_zero_init_cpu, phase_cpu)
        non_zero_init_memory = max(non_zero_init_memory, phase_memory)
    _max_into(total, init_peak)
    non_zero_cpu = max(non_zero_cpu, non_zero_init_cpu)
    non_zero_memory = max(non_zero_memory, non_zero_init_memory)
    overhead = resource_list(spec.get("overhead"))
    _add(total, overhead)
    non_zero_cpu += overhead.get(CPU, 0)
    non_zero_memory += overhead.get(MEMORY, 0)
    return PodRequests({k: v for k, v in total.items() if v}, non_zero_cpu, non_zero_memory)


class HostPort(NamedTuple):
    ip: str
    protocol: str
    port: int


def pod_host_ports(pod: dict[str, Any]) -> tuple[HostPort, ...]:
    spec = pod.get("spec") or {}
    ports = []
    for container in _all_containers(spec):
        for port in container.get("ports") or ():
            host_port = port.get("hostPort") or 0
            if host_port > 0:
                ports.append(HostPort(port.get("hostIP") or "0.0.0.0", port.get("protocol") or "TCP", host_port))
    return tuple(ports)


def _all_containers(spec: dict[str, Any]) -> Iterable[dict[str, Any]]:
    yield from spec.get("initContainers") or ()
    yield from spec.get("containers") or ()


def node_allocatable(node: dict[str, Any]) -> dict[str, int]:
    status = node.get("status") or {}
    return resource_list(status.get("allocatable") or status.get("capacity"))
