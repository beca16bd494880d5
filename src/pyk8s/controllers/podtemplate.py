"""Helpers the workload controllers share: pod-template hashing, building pods from a
template, pod readiness and availability, the scale-down ranking of pods, and the slow-start
batches used to create many pods.

Everything here is pure (no I/O) except `slow_start_batch`, which only awaits the callable
it is given, so it is unit-tested directly.

About the template hash: upstream (`controller.ComputeHash`) feeds the Go struct of the pod
template through a deep-printer into fnv-32a. That printer's byte stream cannot be reproduced
from Python, so our hash differs from a real cluster's for the same template. What we keep:
fnv-32a, the optional collisionCount appended to the hashed bytes, and the rendering of the
decimal hash through upstream's `SafeEncodeString` alphabet. The bytes hashed are a
canonical JSON form (sorted keys, no spaces) of the template without its
`pod-template-hash` label, so the hash is deterministic, stable across restarts and Python
versions, and identical for identical templates.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import random
from typing import Any, Awaitable, Callable, Iterable

# Upstream's rand alphabet (k8s.io/apimachinery/pkg/util/rand): no vowels, no 0/1/3.
SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"

POD_TEMPLATE_HASH_LABEL = "pod-template-hash"

_FNV32_OFFSET = 0x811C9DC5
_FNV32_PRIME = 0x01000193


def fnv32a(data: bytes) -> int:
    value = _FNV32_OFFSET
    for byte in data:
        value ^= byte
        value = (value * _FNV32_PRIME) & 0xFFFFFFFF
    return value


def safe_encode_string(text: str) -> str:
    """Upstream `rand.SafeEncodeString`: each byte mapped into the safe alphabet."""
    return "".join(SAFE_ALPHABET[byte % len(SAFE_ALPHABET)] for byte in text.encode())


def random_suffix(length: int = 5) -> str:
    return "".join(random.choice(SAFE_ALPHABET) for _ in range(length))


def _without_hash_label(template: dict[str, Any] | None) -> dict[str, Any]:
    template = json.loads(json.dumps(template or {}))
    labels = (template.get("metadata") or {}).get("labels")
    if labels and POD_TEMPLATE_HASH_LABEL in labels:
        del labels[POD_TEMPLATE_HASH_LABEL]
    return template


def canonical_template_bytes(template: dict[str, Any] | None) -> bytes:
    return json.dumps(_without_hash_label(template), sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode()


def compute_template_hash(template: dict[str, Any] | None, collision_count: int | None = None) -> str:
    """The `pod-template-hash` value for a template (see the module docstring)."""
    data = canonical_template_bytes(template)
    if collision_count is not None:
        # Upstream writes the decimal collisionCount into the hasher after the template.
        data += str(int(collision_count)).encode()
    return safe_encode_string(str(fnv32a(data)))


def templates_equal_ignoring_hash(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    """Upstream `EqualIgnoreHash`: templates equal once the pod-template-hash label is gone.
    A missing labels map and an empty one compare equal, as they do after a Go round trip."""
    def normalise(template):
        template = _without_hash_label(template)
        meta = template.get("metadata") or {}
        for key in ("labels", "annotations"):
            if not meta.get(key):
                meta.pop(key, None)
        template["metadata"] = meta
        return template
    return normalise(a) == normalise(b)


# -- pods from templates ------------------------------------------------------------

def pod_from_template(template: dict[str, Any], owner: dict[str, Any], owner_ref: dict[str, Any]) -> dict[str, Any]:
    """A pod for `owner` (upstream `GetPodFromTemplate`): template labels, annotations,
    finalizers and spec; generateName `<owner>-` so the server picks the 5-char suffix."""
    template_meta = template.get("metadata") or {}
    metadata: dict[str, Any] = {
        "generateName": f"{owner['metadata']['name']}-",
        "namespace": owner["metadata"].get("namespace"),
        "ownerReferences": [owner_ref],
    }
    for key in ("labels", "annotations", "finalizers"):
        if template_meta.get(key):
            metadata[key] = json.loads(json.dumps(template_meta[key]))
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata,
            "spec": json.loads(json.dumps(template.get("spec") or {}))}


# -- time ---------------------------------------------------------------------------

def now_utc() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def format_time(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str | None) -> datetime.datetime | None:
    if not text:
        return None
    try:
        return datetime.datetime.strptime(text[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.timezone.utc)
    except ValueError:
        return None


# -- readiness ----------------------------------------------------------------------

def pod_condition(pod: dict[str, Any], condition_type: str) -> dict[str, Any] | None:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == condition_type:
            return condition
    return None


def is_pod_ready(pod: dict[str, Any]) -> bool:
    condition = pod_condition(pod, "Ready")
    return bool(condition and condition.get("status") == "True")


def is_pod_available(pod: dict[str, Any], min_ready_seconds: int, now: datetime.datetime) -> bool:
    """Ready for at least minReadySeconds (upstream `IsPodAvailable`)."""
    if not is_pod_ready(pod):
        return False
    if not min_ready_seconds:
        return True
    since = parse_time(pod_condition(pod, "Ready").get("lastTransitionTime"))
    if since is None:
        return False
    return since + datetime.timedelta(seconds=min_ready_seconds) <= now


def seconds_until_available(pod: dict[str, Any], min_ready_seconds: int, now: datetime.datetime) -> float | None:
    """For a ready but not yet available pod: how long until minReadySeconds pass."""
    if not is_pod_ready(pod) or not min_ready_seconds:
        return None
    since = parse_time(pod_condition(pod, "Ready").get("lastTransitionTime"))
    if since is None:
        return None
    remaining = (since + datetime.timedelta(seconds=min_ready_seconds) - now).total_seconds()
    return remaining if remaining > 0 else None


def is_pod_active(pod: dict[str, Any]) -> bool:
    """Upstream `IsPodActive`: not finished and not being deleted."""
    phase = (pod.get("status") or {}).get("phase")
    return phase not in ("Succeeded", "Failed") and not pod["metadata"].get("deletionTimestamp")


# -- scale-down ranking (upstream ActivePodsWithRanks) ------------------------------

_PHASE_ORDER = {"Pending": 0, "Unknown": 1, "Running": 2}


def _restart_count(pod: dict[str, Any]) -> int:
    return max((status.get("restartCount") or 0 for status in (pod.get("status") or {}).get("containerStatuses") or []),
               default=0)


def _deletion_cost(pod: dict[str, Any]) -> int:
    value = ((pod["metadata"].get("annotations") or {}).get("controller.kubernetes.io/pod-deletion-cost"))
    try:
        return int(value) if value is not None else 0
    except ValueError:
        return 0


def pods_to_delete_first(pods: list[dict[str, Any]], related_pods: Iterable[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Pods sorted so the best ones to delete come first (upstream `ActivePodsWithRanks`):
    unassigned < assigned; Pending < Unknown < Running; not ready < ready; lower
    pod-deletion-cost first; more pods of the same owner on the node first; ready for less
    time first; more restarts first; newer first."""
    related = list(related_pods) if related_pods is not None else pods
    pods_on_node: dict[str, int] = {}
    for pod in related:
        node = (pod.get("spec") or {}).get("nodeName")
        if node and is_pod_active(pod):
            pods_on_node[node] = pods_on_node.get(node, 0) + 1

    def rank(pod: dict[str, Any]):
        node = (pod.get("spec") or {}).get("nodeName") or ""
        ready = is_pod_ready(pod)
        ready_since = parse_time((pod_condition(pod, "Ready") or {}).get("lastTransitionTime")) if ready else None
        created = parse_time(pod["metadata"].get("creationTimestamp"))
        return (
            1 if node else 0,
            _PHASE_ORDER.get((pod.get("status") or {}).get("phase"), 0),
            1 if ready else 0,
            _deletion_cost(pod),
            -pods_on_node.get(node, 0) if node else 0,
            # Ready more recently sorts first: negate the timestamp.
            -(ready_since.timestamp()) if ready_since else float("-inf"),
            -_restart_count(pod),
            -(created.timestamp()) if created else float("-inf"),
        )
    return sorted(pods, key=rank)


# -- slow start -------------------------------------------------------------------------

async def slow_start_batch(count: int, initial_batch_size: int, action: Callable[[], Awaitable[Any]]) -> tuple[int, Exception | None]:
    """Run `action` `count` times in batches of 1, 2, 4, ... (upstream `slowStartBatch`), so
    a failing create (quota, admission) fails once instead of hundreds of times. Stops after
    the first batch with a failure; returns (successes, first error)."""
    remaining = count
    successes = 0
    batch_size = min(remaining, initial_batch_size)
    while batch_size > 0:
        results = await asyncio.gather(*(action() for _ in range(batch_size)), return_exceptions=True)
        failures = [result for result in results if isinstance(result, Exception)]
        successes += batch_size - len(failures)
        if failures:
            return successes, failures[0]
        remaining -= batch_size
        batch_size = min(2 * batch_size, remaining)
    return successes, None
