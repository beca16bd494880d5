"""The clusterrole-aggregation controller (upstream's pkg/controller/clusterroleaggregation):
a ClusterRole with an `aggregationRule` gets as its rules the rules of every ClusterRole
whose labels match one of its `clusterRoleSelectors` (api/rbac.py aggregated_rules). Any
ClusterRole change queues every aggregated ClusterRole; reconcile writes the rules only
when they differ. Writing rules one does not hold needs `escalate` on clusterroles, which
the controller manager's role has (apiserver/bootstrappolicy.py).
"""

from __future__ import annotations

import copy

from pyk8s.api import errors, rbac
from pyk8s.api.resources import lookup
from pyk8s.controllers.base import Controller

CLUSTER_ROLES = lookup(rbac.RBAC_GROUP, "v1", "clusterroles")


class ClusterRoleAggregationController(Controller):
    name = "clusterrole-aggregation"

    def __init__(self, client):
        super().__init__(client)
        self.cluster_roles = self.informer(CLUSTER_ROLES)
        self.cluster_roles.add_handlers(on_add=self._queue_aggregates, on_update=lambda old, new: self._queue_aggregates(new),
                                        on_delete=self._queue_aggregates)

    def _queue_aggregates(self, _changed) -> None:
        for role in self.cluster_roles.list():
            if role.get("aggregationRule"):
                self.queue.add(role["metadata"]["name"])

    async def reconcile(self, name: str) -> None:
        role = self.cluster_roles.get(name)
        if role is None or not role.get("aggregationRule"):
            return
        rules = rbac.aggregated_rules(role, self.cluster_roles.list())
        if (role.get("rules") or []) == rules:
            return
        updated = copy.deepcopy(role)
        updated["rules"] = rules
        try:
            await self.client.update(CLUSTER_ROLES, updated)
        except (errors.Conflict, errors.NotFound):
            pass  # a newer version is on its way through the informer, and queues us again
