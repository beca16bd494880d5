"""Starts every controller (upstream's kube-controller-manager) with its own API client."""

from __future__ import annotations

import importlib
import logging

log = logging.getLogger("pyk8s.controllers")

# module:class of every controller, in start order.
CONTROLLERS = (
    "pyk8s.controllers.namespace:NamespaceController",
    "pyk8s.controllers.serviceaccount:ServiceAccountController",
    "pyk8s.controllers.garbagecollector:GarbageCollector",
    "pyk8s.controllers.replicaset:ReplicaSetController",
    "pyk8s.controllers.replicaset:ReplicationControllerController",
    "pyk8s.controllers.deployment:DeploymentController",
    "pyk8s.controllers.daemonset:DaemonSetController",
    "pyk8s.controllers.nodelifecycle:NodeLifecycleController",
    "pyk8s.controllers.eventttl:EventTTLController",
    "pyk8s.controllers.endpoints:EndpointsController",
    "pyk8s.controllers.endpointslice:EndpointSliceController",
    "pyk8s.controllers.endpointslicemirroring:EndpointSliceMirroringController",
    "pyk8s.controllers.servicelb:ServiceLBController",
    "pyk8s.controllers.persistentvolume:PersistentVolumeController",
    "pyk8s.controllers.persistentvolume:PVCProtectionController",
    "pyk8s.controllers.persistentvolume:PVProtectionController",
)


class ControllerManager:
    def __init__(self, client, names: tuple[str, ...] = CONTROLLERS):
        self.client = client
        self.controllers = []
        for spec in names:
            module_name, _, class_name = spec.partition(":")
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as exc:
                if exc.name != module_name:
                    raise
                log.warning("controller %s is not available yet", spec)
                continue
            self.controllers.append(getattr(module, class_name)(client))

    async def start(self) -> None:
        for controller in self.controllers:
            await controller.start()
            log.info("controller started: %s", controller.name)

    async def stop(self) -> None:
        for controller in reversed(self.controllers):
            await controller.stop()
