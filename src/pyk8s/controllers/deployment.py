"""The Deployment controller (upstream pkg/controller/deployment).

Informers on Deployments, ReplicaSets and pods feed a queue of Deployment keys. `reconcile`
claims the Deployment's ReplicaSets (adopting and releasing by selector like the ReplicaSet
controller does with pods), then either only scales (paused, or a change of spec.replicas
while a rollout runs: proportional scaling) or rolls out: RollingUpdate scales the new
ReplicaSet up within maxSurge and old ones down within maxUnavailable; Recreate scales all
old ones to zero, waits for their pods to go, then scales the new one up. The new
ReplicaSet is the one whose template equals the Deployment's ignoring `pod-template-hash`,
so reverting a template reuses (and re-revisions) the old ReplicaSet. Status and the
Progressing/Available conditions follow upstream's progress.go, messages included.

The module-level functions are the pure parts of upstream's deployment_util.go and are
unit-tested on their own.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

from pyk8s.api import errors
from pyk8s.api.resources import lookup
from pyk8s.api.selectors import label_selector_from_spec
from pyk8s.client.informer import object_key
from pyk8s.controllers.base import Controller, Requeue, controller_ref, owner_reference, split_key
from pyk8s.client.events import EventRecorder
from pyk8s.controllers import podtemplate
from pyk8s.controllers.podtemplate import POD_TEMPLATE_HASH_LABEL

log = logging.getLogger("pyk8s.controllers.deployment")

DEPLOYMENTS = lookup("apps", "v1", "deployments")
REPLICASETS = lookup("apps", "v1", "replicasets")
PODS = lookup("", "v1", "pods")

REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
REVISION_HISTORY_ANNOTATION = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS_ANNOTATION = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS_ANNOTATION = "deployment.kubernetes.io/max-replicas"
ROLLBACK_TO_ANNOTATION = "deprecated.deployment.rollback.to"
LAST_APPLIED_ANNOTATION = "kubectl.kubernetes.io/last-applied-configuration"
# Annotations that belong to the Deployment or the ReplicaSet alone (upstream `annotationsToSkip`).
ANNOTATIONS_TO_SKIP = {LAST_APPLIED_ANNOTATION, REVISION_ANNOTATION, REVISION_HISTORY_ANNOTATION,
                       DESIRED_REPLICAS_ANNOTATION, MAX_REPLICAS_ANNOTATION, ROLLBACK_TO_ANNOTATION}

# Condition reasons (upstream deployment_util.go).
NEW_RS_CREATED = "NewReplicaSetCreated"
FOUND_NEW_RS = "FoundNewReplicaSet"
RS_UPDATED = "ReplicaSetUpdated"
NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
TIMED_OUT = "ProgressDeadlineExceeded"
PAUSED = "DeploymentPaused"
RESUMED = "DeploymentResumed"
MIN_AVAILABLE = "MinimumReplicasAvailable"
MIN_UNAVAILABLE = "MinimumReplicasUnavailable"
FAILED_RS_CREATE = "ReplicaSetCreateError"

MAX_INT32 = 2 ** 31 - 1


# ---- pure helpers (deployment_util.go) ----------------------------------------------

def replicas_of(obj: dict[str, Any] | None) -> int:
    if obj is None:
        return 0
    value = (obj.get("spec") or {}).get("replicas")
    return 1 if value is None else int(value)


def status_count(obj: dict[str, Any] | None, field: str) -> int:
    if obj is None:
        return 0
    return int((obj.get("status") or {}).get(field) or 0)


def annotations_of(obj: dict[str, Any]) -> dict[str, str]:
    return obj["metadata"].get("annotations") or {}


def revision_of(obj: dict[str, Any]) -> int:
    try:
        return int(annotations_of(obj).get(REVISION_ANNOTATION) or 0)
    except ValueError:
        return 0


def scaled_value(value: int | str | None, total: int, round_up: bool) -> int:
    """Upstream `GetScaledValueFromIntOrPercent`: ints as is, "N%" of total rounded up or down."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    text = str(value)
    if not text.endswith("%"):
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"invalid value for IntOrString: invalid type: string is not a percentage") from None
    percent = int(text[:-1])
    scaled = percent * total / 100
    return math.ceil(scaled) if round_up else math.floor(scaled)


def resolve_fenceposts(max_surge, max_unavailable, desired: int) -> tuple[int, int]:
    """(surge, unavailable) in pods; surge rounds up, unavailable down; both zero would
    deadlock a rollout, so unavailable becomes 1 (upstream `ResolveFenceposts`)."""
    surge = scaled_value(max_surge, desired, True)
    unavailable = scaled_value(max_unavailable, desired, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def is_rolling_update(deployment: dict[str, Any]) -> bool:
    return ((deployment.get("spec") or {}).get("strategy") or {}).get("type", "RollingUpdate") == "RollingUpdate"


def _rolling_params(deployment: dict[str, Any]) -> tuple[Any, Any]:
    rolling = ((deployment.get("spec") or {}).get("strategy") or {}).get("rollingUpdate") or {}
    return rolling.get("maxSurge", "25%"), rolling.get("maxUnavailable", "25%")


def max_surge(deployment: dict[str, Any]) -> int:
    if not is_rolling_update(deployment):
        return 0
    surge, _ = resolve_fenceposts(*_rolling_params(deployment), replicas_of(deployment))
    return surge


def max_unavailable(deployment: dict[str, Any]) -> int:
    desired = replicas_of(deployment)
    if not is_rolling_update(deployment) or desired == 0:
        return 0
    _, unavailable = resolve_fenceposts(*_rolling_params(deployment), desired)
    return min(unavailable, desired)


def _creation_key(rs: dict[str, Any]):
    return (rs["metadata"].get("creationTimestamp") or "", rs["metadata"]["name"])


def sort_by_creation(replica_sets: list[dict[str, Any]], newest_first: bool = False) -> list[dict[str, Any]]:
    return sorted(replica_sets, key=_creation_key, reverse=newest_first)


def find_new_replica_set(deployment: dict[str, Any], replica_sets: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The oldest ReplicaSet whose template equals the Deployment's, ignoring the hash label
    (upstream `FindNewReplicaSet`: after a revert the oldest match is the one to reuse)."""
    template = (deployment.get("spec") or {}).get("template")
    for rs in sort_by_creation(replica_sets):
        if podtemplate.templates_equal_ignoring_hash((rs.get("spec") or {}).get("template"), template):
            return rs
    return None


def active_replica_sets(replica_sets: list[dict[str, Any] | None]) -> list[dict[str, Any]]:
    return [rs for rs in replica_sets if rs is not None and replicas_of(rs) > 0]


def total_replicas(replica_sets: list[dict[str, Any] | None]) -> int:
    return sum(replicas_of(rs) for rs in replica_sets if rs is not None)


def total_status(replica_sets: list[dict[str, Any] | None], field: str) -> int:
    return sum(status_count(rs, field) for rs in replica_sets if rs is not None)


def new_rs_new_replicas(deployment: dict[str, Any], all_rses: list[dict[str, Any]], new_rs: dict[str, Any]) -> int:
    """Upstream `NewRSNewReplicas`: how far the new ReplicaSet may grow now."""
    desired = replicas_of(deployment)
    if not is_rolling_update(deployment):
        return desired
    current = total_replicas(all_rses)
    max_total = desired + max_surge(deployment)
    if current >= max_total:
        return replicas_of(new_rs)
    scale_up = min(max_total - current, desired - replicas_of(new_rs))
    return replicas_of(new_rs) + scale_up


def _annotation_int(rs: dict[str, Any], name: str) -> int | None:
    value = annotations_of(rs).get(name)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def go_round(value: float) -> int:
    """Go's math.Round: half away from zero (Python's round() is half to even)."""
    return int(math.floor(value + 0.5)) if value >= 0 else -int(math.floor(-value + 0.5))


def replica_set_fraction(rs: dict[str, Any], deployment: dict[str, Any]) -> int:
    """Upstream `getReplicaSetFraction`: this ReplicaSet's share of a scaling event."""
    desired = replicas_of(deployment)
    if desired == 0:
        return -replicas_of(rs)
    deployment_replicas = desired + max_surge(deployment)
    annotated = _annotation_int(rs, MAX_REPLICAS_ANNOTATION)
    if annotated is None:
        annotated = status_count(deployment, "replicas")
    if annotated == 0:
        return 0
    return go_round(replicas_of(rs) * deployment_replicas / annotated) - replicas_of(rs)


def proportion(rs: dict[str, Any], deployment: dict[str, Any], to_add: int, added: int) -> int:
    """Upstream `GetProportion`."""
    if rs is None or replicas_of(rs) == 0 or to_add == 0 or to_add == added:
        return 0
    fraction = replica_set_fraction(rs, deployment)
    allowed = to_add - added
    return min(fraction, allowed) if to_add > 0 else max(fraction, allowed)


def proportional_sizes(deployment: dict[str, Any], replica_sets: list[dict[str, Any]]) -> tuple[dict[str, int], str]:
    """Spread a change of spec.replicas over the active ReplicaSets of a running rollout
    (upstream `scale`'s RollingUpdate branch). Returns new sizes by name and "up"/"down"."""
    active = active_replica_sets(replica_sets)
    current = total_replicas(active)
    allowed = replicas_of(deployment) + max_surge(deployment) if replicas_of(deployment) > 0 else 0
    to_add = allowed - current
    operation = ""
    if to_add > 0:
        # Larger first, newer first on ties (ReplicaSetsBySizeNewer).
        active = sorted(sort_by_creation(active, newest_first=True), key=lambda rs: -replicas_of(rs))
        operation = "up"
    elif to_add < 0:
        # Larger first, older first on ties (ReplicaSetsBySizeOlder).
        active = sorted(sort_by_creation(active), key=lambda rs: -replicas_of(rs))
        operation = "down"
    sizes: dict[str, int] = {}
    added = 0
    for rs in active:
        if to_add != 0:
            share = proportion(rs, deployment, to_add, added)
            sizes[rs["metadata"]["name"]] = replicas_of(rs) + share
            added += share
        else:
            sizes[rs["metadata"]["name"]] = replicas_of(rs)
    if to_add != added and active:
        first = active[0]["metadata"]["name"]
        sizes[first] = max(0, sizes[first] + to_add - added)
    return sizes, operation


def is_saturated(deployment: dict[str, Any], rs: dict[str, Any] | None) -> bool:
    if rs is None:
        return False
    desired = _annotation_int(rs, DESIRED_REPLICAS_ANNOTATION)
    wanted = replicas_of(deployment)
    return desired == wanted and replicas_of(rs) == wanted and status_count(rs, "availableReplicas") == wanted


def replicas_annotations_need_update(rs: dict[str, Any], desired: int, max_replicas: int) -> bool:
    annotations = annotations_of(rs)
    return (annotations.get(DESIRED_REPLICAS_ANNOTATION) != str(desired)
            or annotations.get(MAX_REPLICAS_ANNOTATION) != str(max_replicas))


def set_replicas_annotations(rs: dict[str, Any], desired: int, max_replicas: int) -> bool:
    changed = replicas_annotations_need_update(rs, desired, max_replicas)
    annotations = rs["metadata"].setdefault("annotations", {})
    annotations[DESIRED_REPLICAS_ANNOTATION] = str(desired)
    annotations[MAX_REPLICAS_ANNOTATION] = str(max_replicas)
    return changed


def set_new_replica_set_annotations(deployment: dict[str, Any], rs: dict[str, Any], new_revision: int,
                                    exists: bool) -> bool:
    """Upstream `SetNewReplicaSetAnnotations`: copy the Deployment's own annotations (e.g.
    kubernetes.io/change-cause), move the revision forward keeping the old number in
    revision-history, and for a fresh ReplicaSet record desired/max replicas."""
    annotations = rs["metadata"].setdefault("annotations", {})
    changed = False
    for key, value in annotations_of(deployment).items():
        if key in ANNOTATIONS_TO_SKIP:
            continue
        if annotations.get(key) != value:
            annotations[key] = value
            changed = True
    old_revision = annotations.get(REVISION_ANNOTATION)
    try:
        old_number = int(old_revision) if old_revision else 0
    except ValueError:
        old_number = 0
    if old_number < new_revision:
        annotations[REVISION_ANNOTATION] = str(new_revision)
        changed = True
        if old_revision:
            history = annotations.get(REVISION_HISTORY_ANNOTATION)
            annotations[REVISION_HISTORY_ANNOTATION] = f"{history},{old_revision}" if history else old_revision
    if not exists:
        desired = replicas_of(deployment)
        if set_replicas_annotations(rs, desired, desired + max_surge(deployment)):
            changed = True
    return changed


def get_condition(status: dict[str, Any], condition_type: str) -> dict[str, Any] | None:
    for condition in status.get("conditions") or []:
        if condition.get("type") == condition_type:
            return condition
    return None


def new_condition(condition_type: str, status: str, reason: str, message: str, now: str) -> dict[str, Any]:
    return {"type": condition_type, "status": status, "lastUpdateTime": now, "lastTransitionTime": now,
            "reason": reason, "message": message}


def set_condition(status: dict[str, Any], condition: dict[str, Any]) -> None:
    """Upstream `SetDeploymentCondition`: same status and reason is no change; same status
    keeps the transition time."""
    current = get_condition(status, condition["type"])
    if current is not None and current.get("status") == condition["status"] and current.get("reason") == condition["reason"]:
        return
    if current is not None and current.get("status") == condition["status"]:
        condition["lastTransitionTime"] = current.get("lastTransitionTime")
    remove_condition(status, condition["type"])
    status.setdefault("conditions", []).append(condition)


def remove_condition(status: dict[str, Any], condition_type: str) -> None:
    conditions = [c for c in status.get("conditions") or [] if c.get("type") != condition_type]
    if conditions:
        status["conditions"] = conditions
    else:
        status.pop("conditions", None)


def has_progress_deadline(deployment: dict[str, Any]) -> bool:
    deadline = (deployment.get("spec") or {}).get("progressDeadlineSeconds")
    return deadline is not None and deadline != MAX_INT32


def deployment_complete(deployment: dict[str, Any], status: dict[str, Any]) -> bool:
    desired = replicas_of(deployment)
    return (status.get("updatedReplicas", 0) == desired and status.get("replicas", 0) == desired
            and status.get("availableReplicas", 0) == desired
            and status.get("observedGeneration", 0) >= (deployment["metadata"].get("generation") or 0))


def deployment_progressing(deployment: dict[str, Any], new_status: dict[str, Any]) -> bool:
    old = deployment.get("status") or {}
    old_old_replicas = old.get("replicas", 0) - old.get("updatedReplicas", 0)
    new_old_replicas = new_status.get("replicas", 0) - new_status.get("updatedReplicas", 0)
    return (new_status.get("updatedReplicas", 0) > old.get("updatedReplicas", 0)
            or new_old_replicas < old_old_replicas
            or new_status.get("readyReplicas", 0) > old.get("readyReplicas", 0)
            or new_status.get("availableReplicas", 0) > old.get("availableReplicas", 0))


def deployment_timed_out(deployment: dict[str, Any], status: dict[str, Any], now) -> bool:
    if not has_progress_deadline(deployment):
        return False
    condition = get_condition(status, "Progressing")
    if condition is None or condition.get("reason") == NEW_RS_AVAILABLE:
        return False
    if condition.get("reason") == TIMED_OUT:
        return True
    since = podtemplate.parse_time(condition.get("lastUpdateTime"))
    if since is None:
        return False
    return (now - since).total_seconds() > deployment["spec"]["progressDeadlineSeconds"]


def calculate_status(all_rses: list[dict[str, Any]], new_rs: dict[str, Any] | None, deployment: dict[str, Any],
                     now: str) -> dict[str, Any]:
    """Upstream `calculateStatus`, with the Available condition."""
    available = total_status(all_rses, "availableReplicas")
    unavailable = max(0, total_replicas(all_rses) - available)
    old = deployment.get("status") or {}
    status: dict[str, Any] = {
        "observedGeneration": deployment["metadata"].get("generation"),
        "replicas": total_status(all_rses, "replicas"),
        "updatedReplicas": total_status([new_rs], "replicas"),
        "readyReplicas": total_status(all_rses, "readyReplicas"),
        "availableReplicas": available,
        "unavailableReplicas": unavailable,
    }
    if old.get("collisionCount") is not None:
        status["collisionCount"] = old["collisionCount"]
    if old.get("conditions"):
        status["conditions"] = [dict(c) for c in old["conditions"]]
    if available >= replicas_of(deployment) - max_unavailable(deployment):
        set_condition(status, new_condition("Available", "True", MIN_AVAILABLE, "Deployment has minimum availability.", now))
    else:
        set_condition(status, new_condition("Available", "False", MIN_UNAVAILABLE,
                                            "Deployment does not have minimum availability.", now))
    return status


def _normalised_status(status: dict[str, Any]) -> dict[str, Any]:
    # Zero counts are omitted on the wire (omitempty), so compare with them dropped.
    return {key: value for key, value in (status or {}).items() if value not in (0, None, [], {})}


def old_replica_sets_to_clean(deployment: dict[str, Any], old_rses: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Upstream `cleanupDeployment`: beyond revisionHistoryLimit, the oldest revisions that
    are fully scaled down and observed."""
    limit = (deployment.get("spec") or {}).get("revisionHistoryLimit")
    if limit is None:
        return []
    alive = [rs for rs in old_rses if not rs["metadata"].get("deletionTimestamp")]
    excess = len(alive) - int(limit)
    if excess <= 0:
        return []
    ordered = sorted(alive, key=lambda rs: (revision_of(rs), _creation_key(rs)))
    cleanable = []
    for rs in ordered[:excess]:
        if status_count(rs, "replicas") != 0 or replicas_of(rs) != 0:
            continue
        if (rs["metadata"].get("generation") or 0) > status_count(rs, "observedGeneration"):
            continue
        cleanable.append(rs)
    return cleanable


def deep_copy(obj: Any) -> Any:
    return json.loads(json.dumps(obj))


# ---- the controller -----------------------------------------------------------------------

class DeploymentController(Controller):
    name = "deployment-controller"
    workers = 4

    def __init__(self, client):
        super().__init__(client)
        self.deployments = self.informer(DEPLOYMENTS)
        self.replica_sets = self.informer(REPLICASETS)
        self.pods = self.informer(PODS)
        self.recorder = EventRecorder(client, self.name)
        self.deployments.add_handlers(**self.enqueue_handlers())
        self.replica_sets.add_handlers(on_add=self._rs_changed, on_update=self._rs_updated, on_delete=self._rs_changed)
        self.pods.add_handlers(on_delete=self._pod_deleted, on_update=self._pod_updated)

    # -- event handlers ------------------------------------------------------------------

    def _owner_key(self, rs: dict[str, Any]) -> str | None:
        ref = controller_ref(rs)
        if not ref or ref.get("kind") != "Deployment":
            return None
        return f"{rs['metadata'].get('namespace')}/{ref['name']}"

    def _enqueue_matching(self, rs: dict[str, Any]) -> None:
        labels = rs["metadata"].get("labels") or {}
        for deployment in self.deployments.list(rs["metadata"].get("namespace")):
            try:
                selector = label_selector_from_spec((deployment.get("spec") or {}).get("selector"))
            except errors.ApiError:
                continue
            if not selector.empty() and selector.matches(labels):
                self.enqueue(deployment)

    def _rs_changed(self, rs: dict[str, Any]) -> None:
        key = self._owner_key(rs)
        if key:
            self.queue.add(key)
        elif not controller_ref(rs):
            self._enqueue_matching(rs)

    def _rs_updated(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        old_key, new_key = self._owner_key(old), self._owner_key(new)
        if old_key and old_key != new_key:
            self.queue.add(old_key)
        self._rs_changed(new)

    def _deployment_key_of_pod(self, pod: dict[str, Any]) -> str | None:
        ref = controller_ref(pod)
        if not ref or ref.get("kind") != "ReplicaSet":
            return None
        rs = self.replica_sets.get(f"{pod['metadata'].get('namespace')}/{ref['name']}")
        return self._owner_key(rs) if rs else None

    def _pod_deleted(self, pod: dict[str, Any]) -> None:
        # Only Recreate waits on pods (for the old ones to be gone).
        key = self._deployment_key_of_pod(pod)
        if key:
            deployment = self.deployments.get(key)
            if deployment and not is_rolling_update(deployment):
                self.queue.add(key)

    def _pod_updated(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        if (old.get("status") or {}).get("phase") != (new.get("status") or {}).get("phase"):
            self._pod_deleted(new)

    # -- reconcile ---------------------------------------------------------------------

    async def reconcile(self, key: str) -> None:
        cached = self.deployments.get(key)
        if cached is None:
            return
        deployment = deep_copy(cached)
        namespace = deployment["metadata"].get("namespace")
        try:
            selector = label_selector_from_spec((deployment.get("spec") or {}).get("selector"))
        except errors.ApiError:
            return
        if selector.empty():
            await self.recorder.event(deployment, "Warning", "SelectingAll",
                                      "This deployment is selecting all pods. A non-empty selector is required.")
            if (deployment.get("status") or {}).get("observedGeneration") != deployment["metadata"].get("generation"):
                deployment.setdefault("status", {})["observedGeneration"] = deployment["metadata"].get("generation")
                await self._update_status(deployment)
            return
        replica_sets = await self._claim_replica_sets(deployment, selector, namespace)

        if deployment["metadata"].get("deletionTimestamp"):
            await self._sync_status_only(deployment, replica_sets)
            return
        await self._check_paused_conditions(deployment)
        if (deployment.get("spec") or {}).get("paused"):
            await self._sync(deployment, replica_sets)
            return
        if self._is_scaling_event(deployment, replica_sets):
            await self._sync(deployment, replica_sets)
            return
        if is_rolling_update(deployment):
            await self._rollout_rolling(deployment, replica_sets)
        else:
            await self._rollout_recreate(deployment, replica_sets)

    async def _claim_replica_sets(self, deployment, selector, namespace) -> list[dict[str, Any]]:
        uid = deployment["metadata"]["uid"]
        deleting = bool(deployment["metadata"].get("deletionTimestamp"))
        claimed = []
        for rs in self.replica_sets.list(namespace):
            ref = controller_ref(rs)
            labels = rs["metadata"].get("labels") or {}
            if ref is not None:
                if ref.get("uid") != uid:
                    continue
                if selector.matches(labels):
                    claimed.append(rs)
                elif not deleting:
                    refs = [r for r in rs["metadata"].get("ownerReferences") or [] if r.get("uid") != uid]
                    await self._patch_rs_owners(rs, refs)
                continue
            if deleting or rs["metadata"].get("deletionTimestamp") or not selector.matches(labels):
                continue
            refs = list(rs["metadata"].get("ownerReferences") or []) + [owner_reference(deployment)]
            adopted = await self._patch_rs_owners(rs, refs)
            if adopted is not None:
                claimed.append(adopted)
        return claimed

    async def _patch_rs_owners(self, rs, refs) -> dict[str, Any] | None:
        patch = {"metadata": {"ownerReferences": refs or None, "resourceVersion": rs["metadata"]["resourceVersion"]}}
        try:
            return await self.client.patch(REPLICASETS, rs["metadata"]["name"], patch, rs["metadata"].get("namespace"))
        except (errors.NotFound, errors.Conflict):
            return None

    # -- shared steps -------------------------------------------------------------------

    async def _update_status(self, deployment: dict[str, Any]) -> dict[str, Any]:
        updated = await self.client.update(DEPLOYMENTS, deployment, subresource="status")
        deployment["metadata"]["resourceVersion"] = updated["metadata"]["resourceVersion"]
        return updated

    async def _set_deployment_revision(self, deployment: dict[str, Any], revision: str) -> None:
        """The Deployment carries its newest revision. Upstream writes it together with
        status (its status strategy keeps annotations); ours keeps only status, so the
        annotation goes in a metadata patch of its own."""
        if annotations_of(deployment).get(REVISION_ANNOTATION) == revision:
            return
        updated = await self.client.patch(
            DEPLOYMENTS, deployment["metadata"]["name"],
            {"metadata": {"annotations": {REVISION_ANNOTATION: revision}}}, deployment["metadata"].get("namespace"))
        deployment["metadata"]["annotations"] = updated["metadata"].get("annotations") or {}
        deployment["metadata"]["resourceVersion"] = updated["metadata"]["resourceVersion"]

    async def _check_paused_conditions(self, deployment: dict[str, Any]) -> None:
        if not has_progress_deadline(deployment):
            return
        status = deployment.setdefault("status", {})
        condition = get_condition(status, "Progressing")
        if condition is not None and condition.get("reason") == TIMED_OUT:
            return
        paused = bool((deployment.get("spec") or {}).get("paused"))
        paused_reason = condition is not None and condition.get("reason") == PAUSED
        now = podtemplate.format_time(podtemplate.now_utc())
        if paused and not paused_reason:
            set_condition(status, new_condition("Progressing", "Unknown", PAUSED, "Deployment is paused", now))
        elif not paused and paused_reason:
            set_condition(status, new_condition("Progressing", "Unknown", RESUMED, "Deployment is resumed", now))
        else:
            return
        await self._update_status(deployment)

    async def _get_all_replica_sets(self, deployment, replica_sets, create: bool):
        """Upstream `getAllReplicaSetsAndSyncRevision`: (new RS or None, old RSes)."""
        new_rs = find_new_replica_set(deployment, replica_sets)
        old_rses = [rs for rs in replica_sets if rs is not new_rs]
        new_rs = await self._get_new_replica_set(deployment, new_rs, old_rses, create)
        return new_rs, old_rses

    async def _get_new_replica_set(self, deployment, existing, old_rses, create):
        max_old_revision = max((revision_of(rs) for rs in old_rses), default=0)
        new_revision = max_old_revision + 1
        now = podtemplate.format_time(podtemplate.now_utc())
        spec = deployment["spec"]
        if existing is not None:
            rs = deep_copy(existing)
            annotations_changed = set_new_replica_set_annotations(deployment, rs, new_revision, True)
            min_ready_changed = (rs["spec"].get("minReadySeconds") or 0) != (spec.get("minReadySeconds") or 0)
            if annotations_changed or min_ready_changed:
                rs["spec"]["minReadySeconds"] = spec.get("minReadySeconds") or 0
                rs = await self.client.update(REPLICASETS, rs)
            await self._set_deployment_revision(deployment, annotations_of(rs).get(REVISION_ANNOTATION, ""))
            status = deployment.setdefault("status", {})
            if has_progress_deadline(deployment) and get_condition(status, "Progressing") is None:
                set_condition(status, new_condition("Progressing", "True", FOUND_NEW_RS,
                                                    f'Found new replica set "{rs["metadata"]["name"]}"', now))
                await self._update_status(deployment)
            return rs
        if not create:
            return None

        collision_count = (deployment.get("status") or {}).get("collisionCount")
        template_hash = podtemplate.compute_template_hash(spec["template"], collision_count)
        template = deep_copy(spec["template"])
        template.setdefault("metadata", {}).setdefault("labels", {})[POD_TEMPLATE_HASH_LABEL] = template_hash
        selector = deep_copy(spec["selector"])
        selector.setdefault("matchLabels", {})[POD_TEMPLATE_HASH_LABEL] = template_hash
        name = f"{deployment['metadata']['name']}-{template_hash}"
        new_rs = {
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": name, "namespace": deployment["metadata"].get("namespace"),
                         "ownerReferences": [owner_reference(deployment)],
                         "labels": dict(template["metadata"]["labels"])},
            "spec": {"replicas": 0, "minReadySeconds": spec.get("minReadySeconds") or 0,
                     "selector": selector, "template": template},
        }
        new_rs["spec"]["replicas"] = new_rs_new_replicas(deployment, old_rses + [new_rs], new_rs)
        set_new_replica_set_annotations(deployment, new_rs, new_revision, False)
        try:
            created = await self.client.create(REPLICASETS, new_rs)
        except errors.AlreadyExists:
            try:
                found = await self.client.get(REPLICASETS, name, deployment["metadata"].get("namespace"))
            except errors.NotFound:
                raise Requeue(0.1) from None
            ref = controller_ref(found)
            if (ref and ref.get("uid") == deployment["metadata"]["uid"]
                    and podtemplate.templates_equal_ignoring_hash(found["spec"].get("template"), spec["template"])):
                return found
            # A hash collision: bump collisionCount so the next hash differs (upstream).
            status = deployment.setdefault("status", {})
            status["collisionCount"] = (status.get("collisionCount") or 0) + 1
            await self._update_status(deployment)
            raise Requeue(0.05) from None
        except errors.ApiError as exc:
            status = deployment.setdefault("status", {})
            if has_progress_deadline(deployment):
                set_condition(status, new_condition("Progressing", "False", FAILED_RS_CREATE,
                                                    f'Failed to create new replica set "{name}": {exc}', now))
                await self._update_status(deployment)
            await self.recorder.event(deployment, "Warning", FAILED_RS_CREATE,
                                      f'Failed to create new replica set "{name}": {exc}')
            raise
        replicas = replicas_of(created)
        if replicas > 0:
            await self.recorder.event(deployment, "Normal", "ScalingReplicaSet",
                                      f"Scaled up replica set {name} to {replicas} from 0")
        await self._set_deployment_revision(deployment, str(new_revision))
        if has_progress_deadline(deployment):
            status = deployment.setdefault("status", {})
            set_condition(status, new_condition("Progressing", "True", NEW_RS_CREATED,
                                                f'Created new replica set "{name}"', now))
            await self._update_status(deployment)
        return created

    async def _scale_replica_set(self, rs, new_scale: int, deployment, operation: str):
        """Upstream `scaleReplicaSet`: write size and desired/max annotations; an Event when
        the size changed."""
        size_changed = replicas_of(rs) != new_scale
        desired = replicas_of(deployment)
        annotations_changed = replicas_annotations_need_update(rs, desired, desired + max_surge(deployment))
        if not (size_changed or annotations_changed):
            return False, rs
        old_scale = replicas_of(rs)
        updated = deep_copy(rs)
        updated["spec"]["replicas"] = new_scale
        set_replicas_annotations(updated, desired, desired + max_surge(deployment))
        updated = await self.client.update(REPLICASETS, updated)
        if size_changed:
            await self.recorder.event(deployment, "Normal", "ScalingReplicaSet",
                                      f"Scaled {operation} replica set {rs['metadata']['name']} to {new_scale} from {old_scale}")
        return size_changed, updated

    async def _scale_and_record(self, rs, new_scale: int, deployment):
        if replicas_of(rs) == new_scale:
            return False, rs
        operation = "up" if replicas_of(rs) < new_scale else "down"
        return await self._scale_replica_set(rs, new_scale, deployment, operation)

    def _is_scaling_event(self, deployment, replica_sets) -> bool:
        new_rs = find_new_replica_set(deployment, replica_sets)
        candidates = replica_sets if new_rs is None else replica_sets
        for rs in active_replica_sets(candidates):
            desired = _annotation_int(rs, DESIRED_REPLICAS_ANNOTATION)
            if desired is not None and desired != replicas_of(deployment):
                return True
        return False

    async def _scale(self, deployment, new_rs, old_rses) -> None:
        """Upstream `scale`: one active ReplicaSet takes the whole size; a saturated new one
        means old ones go to zero; otherwise spread the change proportionally."""
        old_sorted = sort_by_creation(old_rses, newest_first=True)
        everything = old_sorted + ([new_rs] if new_rs is not None else [])
        active = active_replica_sets(everything)
        target = None
        if new_rs is not None or old_sorted:
            if not active:
                target = new_rs if new_rs is not None else old_sorted[0]
            elif len(active) == 1:
                target = active[0]
        if target is not None:
            if replicas_of(target) != replicas_of(deployment):
                await self._scale_and_record(target, replicas_of(deployment), deployment)
            return
        if is_saturated(deployment, new_rs):
            for rs in active_replica_sets(old_rses):
                await self._scale_and_record(rs, 0, deployment)
            return
        if is_rolling_update(deployment):
            sizes, operation = proportional_sizes(deployment, everything)
            for rs in active:
                await self._scale_replica_set(rs, sizes[rs["metadata"]["name"]], deployment, operation)

    async def _sync(self, deployment, replica_sets) -> None:
        """Scaling only (paused Deployments and spec.replicas changes)."""
        new_rs, old_rses = await self._get_all_replica_sets(deployment, replica_sets, create=False)
        await self._scale(deployment, new_rs, old_rses)
        if (deployment.get("spec") or {}).get("paused"):
            await self._cleanup(deployment, old_rses)
        # Sizes changed above: compute status from the informer on the next pass.
        await self._sync_deployment_status(deployment, self._fresh(replica_sets, old_rses, new_rs), new_rs)

    def _fresh(self, replica_sets, old_rses, new_rs) -> list[dict[str, Any]]:
        return old_rses + ([new_rs] if new_rs is not None else [])

    async def _sync_status_only(self, deployment, replica_sets) -> None:
        new_rs, old_rses = await self._get_all_replica_sets(deployment, replica_sets, create=False)
        await self._sync_deployment_status(deployment, self._fresh(replica_sets, old_rses, new_rs), new_rs)

    async def _sync_deployment_status(self, deployment, all_rses, new_rs) -> None:
        now = podtemplate.format_time(podtemplate.now_utc())
        status = calculate_status(all_rses, new_rs, deployment, now)
        if _normalised_status(status) == _normalised_status(deployment.get("status") or {}):
            return
        deployment["status"] = status
        await self._update_status(deployment)

    async def _cleanup(self, deployment, old_rses) -> None:
        for rs in old_replica_sets_to_clean(deployment, old_rses):
            try:
                await self.client.delete(REPLICASETS, rs["metadata"]["name"], rs["metadata"].get("namespace"))
            except errors.NotFound:
                pass

    async def _sync_rollout_status(self, deployment, all_rses, new_rs) -> None:
        """Upstream progress.go `syncRolloutStatus`: Progressing from the rollout's movement,
        ReplicaFailure copied from the ReplicaSets; requeue to notice the deadline."""
        moment = podtemplate.now_utc()
        now = podtemplate.format_time(moment)
        status = calculate_status(all_rses, new_rs, deployment, now)
        if not has_progress_deadline(deployment):
            remove_condition(status, "Progressing")
        current = get_condition(deployment.get("status") or {}, "Progressing")
        complete = (status.get("replicas") == status.get("updatedReplicas") and current is not None
                    and current.get("reason") == NEW_RS_AVAILABLE)
        name = deployment["metadata"]["name"]
        rs_name = new_rs["metadata"]["name"] if new_rs is not None else None
        if has_progress_deadline(deployment) and not complete:
            if deployment_complete(deployment, status):
                message = (f'ReplicaSet "{rs_name}" has successfully progressed.' if rs_name
                           else f'Deployment "{name}" has successfully progressed.')
                set_condition(status, new_condition("Progressing", "True", NEW_RS_AVAILABLE, message, now))
            elif deployment_progressing(deployment, status):
                message = (f'ReplicaSet "{rs_name}" is progressing.' if rs_name
                           else f'Deployment "{name}" is progressing.')
                condition = new_condition("Progressing", "True", RS_UPDATED, message, now)
                if current is not None:
                    if current.get("status") == "True":
                        condition["lastTransitionTime"] = current.get("lastTransitionTime")
                    remove_condition(status, "Progressing")
                set_condition(status, condition)
            elif deployment_timed_out(deployment, status, moment):
                message = (f'ReplicaSet "{rs_name}" has timed out progressing.' if rs_name
                           else f'Deployment "{name}" has timed out progressing.')
                set_condition(status, new_condition("Progressing", "False", TIMED_OUT, message, now))
        failures = []
        for rs in ([new_rs] if new_rs is not None else []) + [rs for rs in all_rses if rs is not new_rs]:
            failure = get_condition(rs.get("status") or {}, "ReplicaFailure")
            if failure is not None and failure.get("status") == "True":
                failures.append(failure)
        if failures:
            failure = failures[0]
            set_condition(status, {"type": "ReplicaFailure", "status": "True", "lastUpdateTime": now,
                                   "lastTransitionTime": failure.get("lastTransitionTime") or now,
                                   "reason": failure.get("reason"), "message": failure.get("message")})
        else:
            remove_condition(status, "ReplicaFailure")
        if _normalised_status(status) == _normalised_status(deployment.get("status") or {}):
            self._requeue_stuck(deployment, status, moment)
            return
        deployment["status"] = status
        await self._update_status(deployment)

    def _requeue_stuck(self, deployment, status, moment) -> None:
        """Upstream `requeueStuckDeployment`: check again when the deadline would pass."""
        condition = get_condition(deployment.get("status") or {}, "Progressing")
        if not has_progress_deadline(deployment) or condition is None:
            return
        if deployment_complete(deployment, status) or condition.get("reason") == TIMED_OUT:
            return
        since = podtemplate.parse_time(condition.get("lastUpdateTime"))
        if since is None:
            return
        remaining = since.timestamp() + deployment["spec"]["progressDeadlineSeconds"] - moment.timestamp()
        self.queue.add_after(object_key(deployment), max(remaining, 0) + 1.0)

    # -- RollingUpdate (rolling.go) --------------------------------------------------------

    async def _rollout_rolling(self, deployment, replica_sets) -> None:
        new_rs, old_rses = await self._get_all_replica_sets(deployment, replica_sets, create=True)
        all_rses = old_rses + [new_rs]
        scaled, new_rs = await self._reconcile_new_replica_set(all_rses, new_rs, deployment)
        if scaled:
            await self._sync_rollout_status(deployment, old_rses + [new_rs], new_rs)
            return
        scaled, old_rses = await self._reconcile_old_replica_sets(old_rses, new_rs, deployment)
        if scaled:
            await self._sync_rollout_status(deployment, old_rses + [new_rs], new_rs)
            return
        if deployment_complete(deployment, deployment.get("status") or {}):
            await self._cleanup(deployment, old_rses)
        await self._sync_rollout_status(deployment, old_rses + [new_rs], new_rs)

    async def _reconcile_new_replica_set(self, all_rses, new_rs, deployment):
        desired = replicas_of(deployment)
        if replicas_of(new_rs) == desired:
            return False, new_rs
        if replicas_of(new_rs) > desired:
            return await self._scale_and_record(new_rs, desired, deployment)
        return await self._scale_and_record(new_rs, new_rs_new_replicas(deployment, all_rses, new_rs), deployment)

    async def _reconcile_old_replica_sets(self, old_rses, new_rs, deployment):
        if total_replicas(old_rses) == 0:
            return False, old_rses
        all_pods = total_replicas(old_rses + [new_rs])
        min_available = replicas_of(deployment) - max_unavailable(deployment)
        new_rs_unavailable = replicas_of(new_rs) - status_count(new_rs, "availableReplicas")
        max_scaled_down = all_pods - min_available - new_rs_unavailable
        if max_scaled_down <= 0:
            return False, old_rses
        # First drop old pods that are not available anyway: they cost no availability.
        old_rses, cleaned = await self._cleanup_unhealthy_replicas(old_rses, deployment, max_scaled_down)
        old_rses, scaled_down = await self._scale_down_old_for_rolling(old_rses + [new_rs], old_rses, deployment)
        return cleaned + scaled_down > 0, old_rses

    async def _cleanup_unhealthy_replicas(self, old_rses, deployment, max_cleanup: int):
        result = []
        total = 0
        for rs in sort_by_creation(old_rses):
            if total >= max_cleanup or replicas_of(rs) == 0 or replicas_of(rs) == status_count(rs, "availableReplicas"):
                result.append(rs)
                continue
            count = min(max_cleanup - total, replicas_of(rs) - status_count(rs, "availableReplicas"))
            _, rs = await self._scale_and_record(rs, replicas_of(rs) - count, deployment)
            total += count
            result.append(rs)
        return result, total

    async def _scale_down_old_for_rolling(self, all_rses, old_rses, deployment):
        min_available = replicas_of(deployment) - max_unavailable(deployment)
        available = total_status(all_rses, "availableReplicas")
        if available <= min_available:
            return old_rses, 0
        to_scale_down = available - min_available
        result = []
        total = 0
        for rs in sort_by_creation(old_rses):
            if total >= to_scale_down or replicas_of(rs) == 0:
                result.append(rs)
                continue
            count = min(replicas_of(rs), to_scale_down - total)
            _, rs = await self._scale_and_record(rs, replicas_of(rs) - count, deployment)
            total += count
            result.append(rs)
        return result, total

    # -- Recreate (recreate.go) ------------------------------------------------------------

    async def _rollout_recreate(self, deployment, replica_sets) -> None:
        new_rs, old_rses = await self._get_all_replica_sets(deployment, replica_sets, create=False)
        scaled_down = False
        updated_old = []
        for rs in old_rses:
            if replicas_of(rs) > 0:
                scaled, rs = await self._scale_and_record(rs, 0, deployment)
                scaled_down = scaled_down or scaled
            updated_old.append(rs)
        old_rses = updated_old
        all_rses = old_rses + ([new_rs] if new_rs is not None else [])
        if scaled_down:
            await self._sync_rollout_status(deployment, all_rses, new_rs)
            return
        if self._old_pods_running(old_rses):
            await self._sync_rollout_status(deployment, all_rses, new_rs)
            return
        if new_rs is None:
            new_rs, old_rses = await self._get_all_replica_sets(deployment, replica_sets, create=True)
            all_rses = old_rses + [new_rs]
        scaled, new_rs = await self._scale_and_record(new_rs, replicas_of(deployment), deployment)
        all_rses = old_rses + [new_rs]
        if scaled:
            await self._sync_rollout_status(deployment, all_rses, new_rs)
            return
        if deployment_complete(deployment, deployment.get("status") or {}):
            await self._cleanup(deployment, old_rses)
        await self._sync_rollout_status(deployment, all_rses, new_rs)

    def _old_pods_running(self, old_rses) -> bool:
        """Upstream `oldPodsRunning`: any old pod not yet Succeeded or Failed."""
        if total_status(old_rses, "replicas") > 0:
            return True
        old_uids = {rs["metadata"].get("uid") for rs in old_rses}
        for pod in self.pods.list():
            ref = controller_ref(pod)
            if ref and ref.get("uid") in old_uids:
                if (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
                    return True
        return False
