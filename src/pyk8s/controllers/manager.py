"""Starts every controller (upstream's kube-controller-manager) with its own API client."""

from __future__ import annotations

import importlib
import logging

log = logging.getLogger("pyk8s.controllers")

# module:class of every controller, in start order.
CONTROLLERS = (
    "pyk8s.controllers.namespace:NamespaceController",
    "pyk8s.controllers.serviceaccount:ServiceAccountController",
    "pyk8s.controllers.clusterroleaggregation:ClusterRoleAggregationController",
    "pyk8s.controllers.garbagecollector:GarbageCollector",
    "pyk8s.controllers.replicaset:ReplicaSetController",
    "pyk8s.controllers.replicaset:ReplicationControllerController",
    "pyk8s.controllers.deployment:DeploymentController",
    "pyk8s.controllers.daemonset:DaemonSetController",
    "pyk8s.controllers.nodelifecycle:NodeLifecycleController",
    "pyk8s.controllers.nodeipam:NodeIPAMController",
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
    def __init__(self, client, names: tuple[str, ...] = CONTROLLERS,
                 options: dict[str, dict] | None = None):
        """`options`: keyword arguments per controller, keyed by its `module:class` entry
        (the cluster CIDR for node IPAM, --kube-controller-manager-arg settings)."""
        self.client = client
        options = options or {}
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
            self.controllers.append(getattr(module, class_name)(client, **options.get(spec, {})))

    async def start(self) -> None:
        for controller in self.controllers:
            await controller.start()
            log.info("controller started: %s", controller.name)

    async def stop(self) -> None:
        for controller in reversed(self.controllers):
            await controller.stop()


# --kube-controller-manager-arg NAME=VALUE (k3s's flag) → the controller keyword it sets.
MANAGER_ARGS = {
    "node-monitor-grace-period": ("pyk8s.controllers.nodelifecycle:NodeLifecycleController", "grace_period"),
    "node-monitor-period": ("pyk8s.controllers.nodelifecycle:NodeLifecycleController", "monitor_period"),
    "node-cidr-mask-size": ("pyk8s.controllers.nodeipam:NodeIPAMController", "node_cidr_mask_size"),
}


def _duration_seconds(text: str) -> float:
    """A Go duration as kube-controller-manager takes it ("40s", "1m30s", "500ms") in seconds."""
    import re

    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        raise ValueError(f"invalid duration {text!r}")
    return sum(float(number) * units[unit] for number, unit in parts)


def controller_options(cluster_cidr: str, manager_args: list[str] | None = None) -> dict[str, dict]:
    """ControllerManager options from the server's settings and --kube-controller-manager-arg."""
    options: dict[str, dict] = {"pyk8s.controllers.nodeipam:NodeIPAMController": {"cluster_cidr": cluster_cidr}}
    for item in manager_args or []:
        name, _, value = item.lstrip("-").partition("=")
        if name not in MANAGER_ARGS:
            raise ValueError(f"unsupported kube-controller-manager arg {name!r} (supported: {', '.join(MANAGER_ARGS)})")
        spec, keyword = MANAGER_ARGS[name]
        options.setdefault(spec, {})[keyword] = int(value) if keyword == "node_cidr_mask_size" else _duration_seconds(value)
    return options
